import BackupCore
import Foundation
import TestSupport
import XCTest

/// `prune`, `prune --dry-run`, `verify --all` and `verify --deep` as an administrator runs them.
final class PruneVerifyCLITests: XCTestCase {
    var dir = ""
    var config = ""
    var daily: String { dir + "/backups/daily" }

    override func setUpWithError() throws {
        dir = try TestSupport.scratch("prune-verify")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=src
        KEEP_DAILY=2
        """, to: config)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    func sets() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: daily)) ?? []).sorted()
    }

    func testPruneDryRunChangesNothingAndPruneKeepsTheNewest() throws {
        for i in 0..<4 {
            try TestSupport.write("version \(i)\n", to: dir + "/src/app.py")
            XCTAssertEqual(try backstop(["backup"]).status, 0)
        }
        let all = sets()
        XCTAssertEqual(all.count, 4)
        let before = FaultSupport.listing(dir + "/backups")

        let dry = try backstop(["prune", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertEqual(dry.stdout.components(separatedBy: "would remove").count - 1, 2, dry.stdout)
        XCTAssertTrue(dry.stdout.contains("would free"), dry.stdout)
        XCTAssertEqual(FaultSupport.listing(dir + "/backups"), before, "--dry-run changed nothing in the backup directory")

        let json = try backstop(["prune", "--dry-run", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let decisions = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(Set(decisions.filter { $0["remove"] as? Bool == true }.compactMap { $0["id"] as? String }), Set(all.prefix(2)))
        XCTAssertEqual(FaultSupport.listing(dir + "/backups"), before)

        let prune = try backstop(["prune"])
        XCTAssertEqual(prune.status, 0, prune.stderr)
        XCTAssertEqual(sets(), Array(all.suffix(2)), "KEEP_DAILY=2 keeps the two newest")
        XCTAssertEqual(prune.stdout.components(separatedBy: "removed ").count - 1, 2, prune.stdout)
        let verify = try backstop(["verify", "--all"])
        XCTAssertEqual(verify.status, 0, verify.stdout)

        // Nothing left to prune: a second prune removes nothing.
        let again = try backstop(["prune"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(sets(), Array(all.suffix(2)))
    }

    func testVerifyAllFailsWhenOneSetAmongGoodOnesIsBad() throws {
        for _ in 0..<3 { XCTAssertEqual(try backstop(["backup"]).status, 0) }
        let all = sets()
        guard all.count == 3 else { return XCTFail("three sets expected: \(all)") }
        XCTAssertEqual(try backstop(["verify", "--all"]).status, 0)
        let middle = all[1]
        let artifact = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: "\(daily)/\(middle)/code").first { $0.hasSuffix(".tar.gz") })
        let path = "\(daily)/\(middle)/code/\(artifact)"
        try TestSupport.flipByte(path, at: UInt64((FileOps.size(path) ?? 2) / 2))

        let run = try backstop(["verify", "--all"])
        XCTAssertEqual(run.status, 1, run.stdout)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { $0.hasPrefix("FAIL") }.count, 1, run.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("FAIL") && $0.contains(middle) }, run.stdout)
        XCTAssertEqual(lines.filter { $0.hasPrefix("OK") }.count, 2, run.stdout)
        // The newest alone is good.
        XCTAssertEqual(try backstop(["verify"]).status, 0)
    }

    func testVerifyDeepFindsASameSizeCorruptionThatPlainVerifyCannot() throws {
        try TestSupport.writeRandom(100_000, to: dir + "/media/a/photo.jpg")
        try TestSupport.write("text\n", to: dir + "/media/b.txt")
        try TestSupport.write("BACKUP_DIR=backups\nTARGETS=media\nTARGET_MEDIA_KIND=rsync\nTARGET_MEDIA_SOURCE=media\n", to: config)
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let set = try XCTUnwrap(sets().first)
        let file = "\(daily)/\(set)/media/tree/a/photo.jpg"
        XCTAssertEqual(FileOps.size(file), 100_000)
        try TestSupport.flipByte(file, at: 50_000, mask: 0x01)
        XCTAssertEqual(FileOps.size(file), 100_000, "same size")

        let plain = try backstop(["verify"])
        XCTAssertEqual(plain.status, 0, "sizes still match: \(plain.stdout)")
        let deep = try backstop(["verify", "--deep"])
        XCTAssertEqual(deep.status, 1, deep.stdout)
        XCTAssertTrue(deep.stdout.contains("a/photo.jpg"), deep.stdout)
        let deepAll = try backstop(["verify", "--all", "--deep"])
        XCTAssertEqual(deepAll.status, 1, deepAll.stdout)
    }
}
