import BackupCore
import Foundation
import TestSupport
import XCTest

/// What `backup`, `list`, `stats` and `restore` print for one small set, as a new administrator
/// reads it: the same sizes under the same names, ages in words, a restore report that does not
/// repeat its plan and names the safety copy once.
final class ReportWordingTests: XCTestCase {
    var dir = ""
    var config = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("wording")
        try TestSupport.write("print('hello')\n", to: dir + "/app/app.py")
        try FileOps.makeDirectory(dir + "/data")
        let (created, _) = try ChildProcess("sqlite3", [dir + "/data/app.db", "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('a'), ('b');"]).capture()
        XCTAssertEqual(created.status, 0, created.lastErrorLine)
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db code
        TARGET_DB_KIND=sqlite
        TARGET_DB_PATH=data/app.db
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=app
        TARGET_CODE_BASE=app
        """, to: config)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    /// The `N.N KiB`-style size after `prefix` in `text`.
    func size(after prefix: String, in text: String) -> String? {
        guard let r = text.range(of: prefix + #"[0-9.]+ (B|KiB|MiB)"#, options: .regularExpression) else { return nil }
        return String(text[r].dropFirst(prefix.count))
    }

    func testSizesAgesAndRestoreReportReadConsistently() throws {
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let set = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: dir + "/backups/daily").first)
        let manifest = try BackstopJSON.decoder().decode(SetManifest.self, from: TestSupport.read(dir + "/backups/daily/\(set)/manifest.json"))
        let data = Format.bytes(manifest.dataBytes), onDisk = Format.bytes(FileOps.freedSize(dir + "/backups/daily/\(set)"))
        XCTAssertNotEqual(data, onDisk, "the manifest and checksum files make a difference worth naming")
        XCTAssertTrue(backup.stderr.contains("complete: \(data) data, \(onDisk) on disk with manifest and checksum files"), backup.stderr)

        let list = try backstop(["list", "--size"])
        let row = try XCTUnwrap(list.stdout.split(separator: "\n").first { $0.hasPrefix(set) })
        XCTAssertTrue(row.hasSuffix("\(data)  \(onDisk)"), String(row))
        XCTAssertTrue(list.stdout.contains("DATA is what was backed up; ON DISK adds the manifest and checksum files"), list.stdout)

        let stats = try backstop(["stats"])
        XCTAssertTrue(stats.stdout.contains("size: \(data) data, \(onDisk) on disk with manifests and checksum files"), stats.stdout)
        XCTAssertTrue(stats.stdout.contains("target db (sqlite): last good backup \(set), just now, "), stats.stdout)
        XCTAssertFalse(stats.stdout.contains(" h ago"), stats.stdout)
        XCTAssertEqual(Format.ago(30), "just now")
        XCTAssertEqual(Format.ago(25 * 60), "25 min ago")
        XCTAssertEqual(Format.ago(3 * 3600), "3.0 h ago")

        // Restore over the live database: the plan's lines once, the safety copy's path once.
        let restore = try backstop(["restore", "db", "--yes"])
        XCTAssertEqual(restore.status, 0, restore.stderr)
        let lines = restore.stdout.split(separator: "\n").map(String.init)
        let planLines = lines.drop { !$0.hasPrefix("Restore plan") }.dropFirst().prefix { $0.hasPrefix("  ") }
        XCTAssertTrue(planLines.contains { $0.contains("destination: ") }, restore.stdout)
        for line in planLines { XCTAssertEqual(lines.filter { $0 == line }.count, 1, "printed twice: \(line)") }
        let safety = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: dir + "/backups/pre-restore").first { $0.hasPrefix("db-") })
        XCTAssertEqual((restore.stdout + restore.stderr).components(separatedBy: safety).count - 1, 1, restore.stdout + restore.stderr)
        XCTAssertTrue(lines.contains("  safety copy: \(dir)/backups/pre-restore/\(safety)"), restore.stdout)
        let log = try String(contentsOfFile: dir + "/backups/logs/" + (FileManager.default.contentsOfDirectory(atPath: dir + "/backups/logs").first ?? ""), encoding: .utf8)
        XCTAssertTrue(log.contains(safety), "the log file still records the safety copy")
    }
}
