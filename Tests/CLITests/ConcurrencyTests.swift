import BackupCore
import Foundation
import TestSupport
import XCTest

/// Two real processes at once on one backup directory. The first is held at a step late in
/// its command (the `pause` fault action), so the test knows it is mid-run without timing
/// anything; every second command must exit 3 naming the holder, and change nothing.
final class ConcurrencyTests: XCTestCase {
    var dir = ""
    var config = ""
    var daily: String { dir + "/backups/daily" }

    override func setUpWithError() throws {
        dir = try TestSupport.scratch("concurrency")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=src
        KEEP_DAILY=1
        """, to: config)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    func sets() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: daily)) ?? []).sorted()
    }

    /// Starts `args` paused at `point`, runs every command in `others` while it is held there
    /// (each must be refused with exit 3 and change nothing), then lets it finish.
    func holding(_ args: [String], at point: String, others: [[String]], file: StaticString = #filePath, line: UInt = #line) throws -> TestSupport.Run {
        let first = try PausedRun("backstop", args + ["--config", config], pausingAt: point, dir: dir + "/fault-\(point)")
        guard first.waitUntilPaused() else {
            let run = first.resume()
            XCTFail("\(args) never reached \(point): exit \(run.status) \(run.stderr)", file: file, line: line)
            return run
        }
        let pid = first.process.processIdentifier
        for other in others {
            let before = FaultSupport.listing(dir + "/backups")
            let second = try backstop(other)
            XCTAssertEqual(second.status, ExitStatus.lockHeld.rawValue, "\(other) while \(args) is at \(point): \(second.stderr)", file: file, line: line)
            XCTAssertTrue(second.stderr.contains("pid \(pid)"), "names the holder: \(second.stderr)", file: file, line: line)
            let after = FaultSupport.listing(dir + "/backups")
            let changed = Set(before.keys).symmetricDifference(after.keys).union(before.keys.filter { after[$0] != nil && after[$0] != before[$0] })
            XCTAssertEqual(changed.filter { !$0.hasPrefix("logs") && !$0.hasPrefix("fault-") }.sorted(), [],
                           "\(other) changed nothing while refused", file: file, line: line)
        }
        return first.resume()
    }

    func testEveryCommandIsRefusedWhileABackupHoldsTheLock() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let existing = sets()
        guard existing.count == 2 else { return XCTFail("two sets expected: \(existing)") }
        let others = [["backup"], ["prune"], ["remove", existing[0]], ["restore", "code", "--to", dir + "/out", "--yes"]]
        // Held after the set is committed, and held before the rename: the lock spans the run.
        for point in ["backup-committed", "before-rename"] {
            let run = try holding(["backup"], at: point, others: others)
            XCTAssertEqual(run.status, 0, "\(point): \(run.stderr)")
        }
        XCTAssertFalse(FileOps.exists(dir + "/out"), "the refused restore wrote nothing")
        let now = sets()
        XCTAssertEqual(now.count, 4, "two sets from the held runs, none from the refused ones: \(now)")
        XCTAssertTrue(Set(existing).isSubset(of: now), "neither prune nor remove removed anything")
    }

    func testBackupIsRefusedWhileRestorePruneOrRemoveHoldTheLock() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let existing = sets()
        guard existing.count == 3 else { return XCTFail("three sets expected: \(existing)") }

        let restore = try holding(["restore", "code", "--to", dir + "/out", "--yes"], at: "restore", others: [["backup"], ["prune"]])
        XCTAssertEqual(restore.status, 0, restore.stderr)
        XCTAssertEqual(try TestSupport.snapshot(dir + "/out"), try TestSupport.snapshot(dir + "/src"))

        let remove = try holding(["remove", existing[0]], at: "remove", others: [["backup"], ["remove", existing[1]]])
        XCTAssertEqual(remove.status, 0, remove.stderr)
        XCTAssertEqual(sets(), Array(existing.dropFirst()))

        let prune = try holding(["prune"], at: "prune", others: [["backup"], ["restore", "code", "--to", dir + "/out2", "--yes"]])
        XCTAssertEqual(prune.status, 0, prune.stderr)
        XCTAssertEqual(sets(), [existing[2]], "KEEP_DAILY=1 kept the newest; the refused backup added nothing")
        XCTAssertFalse(FileOps.exists(dir + "/out2"))
    }
}
