import BackupCore
import Foundation
import TestSupport
import XCTest

/// Crashes and failures at every step of a backup's commit (through the `BACKSTOP_FAULT` test
/// hook), and what they must leave: nothing that looks complete, the last good backup and the
/// live data untouched, and a next run that cleans up.
final class FaultInjectionTests: XCTestCase {
    var dir = ""
    var config = ""
    var daily: String { dir + "/backups/daily" }

    override func setUpWithError() throws {
        dir = try TestSupport.scratch("faults")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        try TestSupport.writeRandom(300_000, to: dir + "/src/data.bin")
        try TestSupport.write("notes\n", to: dir + "/notes/a.txt")
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code notes
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=src
        TARGET_NOTES_KIND=archive
        TARGET_NOTES_PATHS=notes
        TARGET_NOTES_BASE=notes
        KEEP_DAILY=1
        """, to: config)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String], fault: String? = nil) throws -> TestSupport.Run {
        if let fault { return try FaultSupport.run("backstop", args + ["--config", config], fault: fault) }
        return try TestSupport.run("backstop", args + ["--config", config])
    }

    /// `list --json` rows as (id, status).
    func listed() throws -> [(id: String, status: String)] {
        let run = try backstop(["list", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]], run.stdout)
        return rows.map { (($0["id"] as? String) ?? "?", ($0["status"] as? String) ?? "?") }
    }

    /// Every file under the backup directory whose name says it is a temporary file.
    func temporaryFiles() -> [String] {
        FaultSupport.listing(dir + "/backups").keys.filter { $0.contains(".tmp-") }.sorted()
    }

    func testCrashOrFailureAtEveryCommitStepLeavesNothingThatLooksComplete() throws {
        let first = try backstop(["backup"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let good = try listed()
        XCTAssertEqual(good.map(\.status), ["complete"])
        let goodListing = FaultSupport.listing(daily + "/" + (good.first?.id ?? "?"))
        let source = try TestSupport.snapshot(dir + "/src")

        let cases: [(point: String, action: String, status: Int32)] = [
            ("backup-code", "kill", 137), ("before-rename", "kill", 137), ("before-manifest", "kill", 137),
            ("write-manifest.json", "kill", 137), ("backup-committed", "kill", 137),
            ("before-rename", "fail", 1), ("before-manifest", "fail", 1), ("write-manifest.json", "fail", 1),
        ]
        var complete = good.map(\.id)
        for c in cases {
            let what = "\(c.point):\(c.action)"
            let run = try backstop(["backup"], fault: what)
            XCTAssertEqual(run.status, c.status, "\(what): \(run.stderr)")
            if c.action == "fail" { XCTAssertTrue(run.stderr.contains("injected fault at \(c.point)"), "\(what): \(run.stderr)") }
            let rows = try listed()
            if c.point == "backup-committed" {
                // Killed after the manifest was written: that set is complete, and it is whole.
                XCTAssertEqual(rows.filter { $0.status != "incomplete" }.count, complete.count + 1, "\(what): \(rows)")
                complete = rows.filter { $0.status == "complete" }.map(\.id)
                let verify = try backstop(["verify", "--all"])
                XCTAssertEqual(verify.status, 0, "\(what): \(verify.stdout)")
            } else {
                XCTAssertEqual(rows.filter { $0.status != "incomplete" }.map(\.id), complete, "\(what): nothing new looks complete: \(rows)")
                XCTAssertEqual(rows.filter { $0.status == "incomplete" }.count, 1, "\(what): the leftover is shown as incomplete: \(rows)")
            }
            XCTAssertEqual(FaultSupport.listing(daily + "/" + (good.first?.id ?? "?")), goodListing, "\(what): the last good backup is untouched")
            XCTAssertEqual(try TestSupport.snapshot(dir + "/src"), source, "\(what): live data untouched")

            // The next run removes what the crashed one left and commits a complete set.
            let next = try backstop(["backup"])
            XCTAssertEqual(next.status, 0, "\(what): \(next.stderr)")
            let after = try listed()
            XCTAssertEqual(after.filter { $0.status != "complete" }.map(\.id), [], "\(what): the next run cleaned up: \(after)")
            XCTAssertEqual(after.count, complete.count + 1, "\(what): \(after)")
            complete = after.map(\.id)
            let names = try FileManager.default.contentsOfDirectory(atPath: daily)
            XCTAssertEqual(names.filter { $0.hasPrefix(".") }, [], "\(what): no staging folder left")
            for name in names {
                XCTAssertTrue(FileOps.exists("\(daily)/\(name)/manifest.json"), "\(what): \(name) has a manifest")
            }
            XCTAssertEqual(temporaryFiles().filter { !$0.hasPrefix("state/") }, [], "\(what): no temporary file left in a set")
        }
        let verify = try backstop(["verify", "--all"])
        XCTAssertEqual(verify.status, 0, verify.stdout)
    }

    /// A state file being rewritten when the process dies keeps its old contents: it is
    /// written to a temporary file and renamed, never rewritten in place.
    func testKillWhileWritingAStateFileKeepsTheOldOne() throws {
        try TestSupport.write("BACKUP_DIR=backups\nTARGETS=code\nTARGET_CODE_KIND=archive\nTARGET_CODE_PATHS=no-such-folder\n", to: config)
        let failed = try backstop(["backup"])
        XCTAssertEqual(failed.status, 1, failed.stderr)
        let path = dir + "/backups/state/failures.json"
        let before = try TestSupport.read(path)
        let old = try XCTUnwrap(try JSONSerialization.jsonObject(with: before) as? [Any])
        XCTAssertEqual(old.count, 1)

        let killed = try backstop(["backup"], fault: "write-failures.json:kill")
        XCTAssertEqual(killed.status, 137, killed.stderr)
        XCTAssertEqual(try TestSupport.read(path), before, "the old state file is intact")

        let next = try backstop(["backup"])
        XCTAssertEqual(next.status, 1)
        let now = try XCTUnwrap(try JSONSerialization.jsonObject(with: TestSupport.read(path)) as? [Any])
        XCTAssertEqual(now.count, 2, "the next run appends to the intact file")
    }

    /// One target fails, the other succeeds: a `partial` set, exit 1, the failure named.
    func testPartialSetExitsOne() throws {
        let run = try backstop(["backup", "--json"], fault: "backup-notes:fail")
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("injected fault at backup-notes"), run.stderr)
        let rows = try listed()
        XCTAssertEqual(rows.map(\.status), ["partial"])
        let set = try XCTUnwrap(rows.first).id
        let manifest = try XCTUnwrap(try JSONSerialization.jsonObject(with: TestSupport.read("\(daily)/\(set)/manifest.json")) as? [String: Any])
        XCTAssertEqual(manifest["status"] as? String, "partial")
        XCTAssertFalse(FileOps.exists("\(daily)/\(set)/notes"), "the failed target left nothing in the set")
        XCTAssertTrue(FileOps.exists("\(daily)/\(set)/code"))
        // The good target of a partial set can be restored.
        let restored = try backstop(["restore", "code", "--to", dir + "/out", "--yes"])
        XCTAssertEqual(restored.status, 0, restored.stderr)
        XCTAssertEqual(try TestSupport.snapshot(dir + "/out"), try TestSupport.snapshot(dir + "/src"))
    }

    /// `backup --prune` after a failed target prunes nothing; after a good run it prunes.
    func testBackupPruneSkipsPruningAfterAFailedTarget() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let before = FaultSupport.listing(daily)
        let sets = try listed().map(\.id)
        XCTAssertEqual(sets.count, 2)

        let failed = try backstop(["backup", "--prune"], fault: "backup-notes:fail")
        XCTAssertEqual(failed.status, 1, failed.stderr)
        let after = try listed()
        XCTAssertEqual(after.count, 3, "nothing pruned after a failed target: \(after)")
        for (path, entry) in before { XCTAssertEqual(FaultSupport.listing(daily)[path], entry, "\(path) untouched") }

        let good = try backstop(["backup", "--prune"])
        XCTAssertEqual(good.status, 0, good.stderr)
        let pruned = try listed()
        XCTAssertEqual(pruned.count, 1, "KEEP_DAILY=1 after a good run: \(pruned)")
        XCTAssertEqual(pruned.first?.status, "complete")
        XCTAssertFalse(sets.contains(pruned.first?.id ?? ""), "the new set is the one kept")
    }
}
