import BackupCore
import Foundation
import TestSupport
import XCTest

/// Every rollback of the file and SQLite kinds run for real: a restore that fails after it
/// changed the destination (the `BACKSTOP_FAULT` hook) must leave the destination exactly as it
/// was; a rollback that itself fails must say so in capitals, name the safety copy, and exit 1.
final class RollbackTests: XCTestCase {
    var dir = ""
    var config = ""

    override func setUpWithError() throws {
        dir = try TestSupport.scratch("rollback")
        config = dir + "/backstop.env"
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String], fault: String? = nil) throws -> TestSupport.Run {
        if let fault { return try FaultSupport.run("backstop", args + ["--config", config], fault: fault) }
        return try TestSupport.run("backstop", args + ["--config", config])
    }

    /// The only safety copy taken so far.
    func safetyCopy() throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/pre-restore")
        XCTAssertEqual(names.count, 1, "\(names)")
        return dir + "/backups/pre-restore/" + (try XCTUnwrap(names.first))
    }

    // MARK: rsync

    /// A media tree backed up, then changed: files edited, added and deleted.
    func prepareMedia() throws -> [String: Data] {
        let media = dir + "/media"
        for i in 0..<40 { try TestSupport.writeRandom(20_000 + i, to: "\(media)/d\(i % 4)/f\(i).bin", seed: UInt64(i)) }
        try TestSupport.write("MEDIA_ROOT\n", to: media + "/README")
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=media
        TARGET_MEDIA_KIND=rsync
        TARGET_MEDIA_SOURCE=media
        """, to: config)
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        for i in stride(from: 0, to: 40, by: 5) { try TestSupport.write("edited \(i)\n", to: "\(media)/d\(i % 4)/f\(i).bin") }
        for i in stride(from: 1, to: 40, by: 7) { unlink("\(media)/d\(i % 4)/f\(i).bin") }
        try TestSupport.write("written after the backup\n", to: media + "/new/after.txt")
        return try TestSupport.snapshot(media)
    }

    func testRsyncRestoreFailingMidwayPutsTheSafetyCopyBack() throws {
        let before = try prepareMedia()
        // Stopped after rsync's fifth change (rsync itself is stopped), and after rsync finished.
        for fault in ["restore-rsync-entry@5", "restore-rsync"] {
            let run = try backstop(["restore", "media", "--yes"], fault: fault)
            XCTAssertEqual(run.status, 1, "\(fault): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("injected fault at \(fault.split(separator: "@")[0])"), "\(fault): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("failed and was rolled back"), "\(fault): \(run.stderr)")
            XCTAssertFalse(run.stderr.contains("ROLLBACK FAILED"), "\(fault): \(run.stderr)")
            XCTAssertEqual(try TestSupport.snapshot(dir + "/media"), before, "\(fault): the live tree is exactly as it was before the restore")
        }
        // Without the fault, the same restore goes through.
        let good = try backstop(["restore", "media", "--yes"])
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertNotEqual(try TestSupport.snapshot(dir + "/media"), before)
        XCTAssertFalse(FileOps.exists(dir + "/media/new/after.txt"))
    }

    /// SIGTERM while rsync is writing (the run held at rsync's first change, so the signal
    /// lands mid-restore for certain): rsync is stopped, the tree rolled back, exit 143.
    func testSIGTERMDuringAnRsyncRestoreRollsBack() throws {
        let before = try prepareMedia()
        let run = try PausedRun("backstop", ["restore", "media", "--yes", "--config", config],
                                pausingAt: "restore-rsync-entry", dir: dir + "/fault")
        XCTAssertTrue(run.waitUntilPaused(), "the restore reached rsync's first change")
        kill(run.process.processIdentifier, SIGTERM)
        let result = run.resume()
        XCTAssertEqual(result.status, 143, result.stderr)
        XCTAssertTrue(result.stderr.contains("interrupted by SIGTERM") && result.stderr.contains("rolling back"), result.stderr)
        XCTAssertEqual(try TestSupport.snapshot(dir + "/media"), before, "the live tree is exactly as it was before the restore")
    }

    func testRsyncRollbackThatFailsSaysSoAndNamesTheSafetyCopy() throws {
        let before = try prepareMedia()
        let run = try backstop(["restore", "media", "--yes"], fault: "restore-rsync,rollback")
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("ROLLBACK FAILED"), run.stderr)
        XCTAssertFalse(run.stderr.contains("was rolled back"), run.stderr)
        let safety = try safetyCopy()
        XCTAssertTrue(run.stderr.contains(safety), "names the safety copy \(safety): \(run.stderr)")
        XCTAssertEqual(try TestSupport.snapshot(safety), before, "the safety copy holds the files as they were")
    }

    // MARK: SQLite

    func sqlite(_ path: String, _ sql: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        p.arguments = [path, sql]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, sql)
        return String(decoding: data, as: UTF8.self)
    }

    /// A database backed up, then changed; returns its dump as it is now.
    func prepareDatabase() throws -> String {
        let db = dir + "/app.db"
        _ = try sqlite(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 500) INSERT INTO notes (body) SELECT hex(randomblob(20)) FROM g;")
        try TestSupport.write("BACKUP_DIR=backups\nTARGETS=db\nTARGET_DB_KIND=sqlite\nTARGET_DB_PATH=app.db\n", to: config)
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        _ = try sqlite(db, "DELETE FROM notes WHERE id > 100; INSERT INTO notes (body) VALUES ('after the backup');")
        return try sqlite(db, ".dump")
    }

    func testSQLiteRestoreFailingPutsTheOldDatabaseBack() throws {
        let before = try prepareDatabase()
        let run = try backstop(["restore", "db", "--yes"], fault: "restore-sqlite")
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("rolled back"), run.stderr)
        XCTAssertFalse(run.stderr.contains("ROLLBACK FAILED"), run.stderr)
        XCTAssertEqual(try sqlite(dir + "/app.db", ".dump"), before, "the database is as it was before the restore")
        let good = try backstop(["restore", "db", "--yes"])
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertEqual(try sqlite(dir + "/app.db", "SELECT count(*) FROM notes"), "500\n")
    }

    func testSQLiteRollbackThatFailsSaysSoAndNamesTheSafetyCopy() throws {
        let before = try prepareDatabase()
        let run = try backstop(["restore", "db", "--yes"], fault: "restore-sqlite,rollback")
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("ROLLBACK FAILED"), run.stderr)
        let safety = try safetyCopy()
        XCTAssertTrue(run.stderr.contains(safety), "names the safety copy \(safety): \(run.stderr)")
        XCTAssertEqual(try sqlite(safety, ".dump"), before, "the safety copy holds the database as it was")
    }
}
