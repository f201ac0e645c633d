import BackupCore
import Foundation
import TestSupport
import Targets
import XCTest

/// journal-backup as its seed document describes it: --db-only, --code-only, list --size,
/// verify --timestamp, stats, remove.
final class JournalTests: XCTestCase {
    var dir = ""
    var config = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("journal")
        try TestSupport.write("from flask import Flask\n", to: dir + "/app/journal/app.py")
        try TestSupport.write("x", to: dir + "/app/journal/__pycache__/app.cpython-311.pyc")
        try TestSupport.write("[core]\n", to: dir + "/app/.git/config")
        let db = try SQLiteDatabase(path: dir + "/app/journal.db", readOnly: false, create: true)
        try db.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, title TEXT); INSERT INTO entries (title) VALUES ('a'), ('b')")
        config = dir + "/app/.env"
        try TestSupport.write("DATABASE_TYPE=sqlite\nSQLITE_PATH=journal.db\n", to: config)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func journal(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("journal-backup", args + ["--config", config])
    }

    func testSeedCommands() throws {
        let db = try journal(["backup", "--db-only"])
        XCTAssertEqual(db.status, 0, db.stderr)
        let code = try journal(["backup", "--code-only", "--tier", "weekly"])
        XCTAssertEqual(code.status, 0, code.stderr)
        let full = try journal(["backup"])
        XCTAssertEqual(full.status, 0, full.stderr)

        // Backups live in backups/ beside the config; the codebase tarball excludes .git,
        // caches and the backup folder itself, and records the layout the seed uses.
        let sets = try TestSupport.run("journal-backup", ["list", "--json", "--config", config])
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(sets.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.count, 3)
        XCTAssertEqual(Set(rows.map { $0["tier"] as? String }), ["daily", "weekly"])
        let weekly = try XCTUnwrap(rows.first { $0["tier"] as? String == "weekly" })
        XCTAssertEqual(weekly["targets"] as? [String], ["codebase"])
        let weeklyID = try XCTUnwrap(weekly["id"] as? String)
        let tarball = dir + "/app/backups/weekly/\(weeklyID)/codebase/codebase_\(weeklyID).tar.gz"
        XCTAssertTrue(FileOps.exists(tarball), tarball)

        let restoreDir = dir + "/restored"
        let r = try journal(["restore", "codebase", "--timestamp", weeklyID, "--to", restoreDir, "--yes"])
        XCTAssertEqual(r.status, 0, r.stderr)
        // The config file belongs to the application and is kept (the artifact is 0600). The
        // database is not: it has its own target, and raw database files in the codebase would
        // restore over it without its safety copy.
        XCTAssertEqual(try TestSupport.snapshot(restoreDir).keys.sorted(), [".env", "journal/app.py"])

        let size = try journal(["list", "--size"])
        XCTAssertTrue(size.stdout.contains("DATA") && size.stdout.contains("ON DISK"), size.stdout)
        let verify = try journal(["verify", "--timestamp", weeklyID])
        XCTAssertEqual(verify.status, 0, verify.stdout)
        let all = try journal(["verify", "--all"])
        XCTAssertEqual(all.status, 0, all.stdout)
        XCTAssertEqual(all.stdout.split(separator: "\n").filter { $0.hasPrefix("OK") }.count, 3)

        let stats = try journal(["stats"])
        XCTAssertEqual(stats.status, 0)
        XCTAssertTrue(stats.stdout.contains("backups: 3 (daily: 2, weekly: 1)"), stats.stdout)
        XCTAssertTrue(stats.stdout.contains("target db (sqlite): last good backup"), stats.stdout)

        // The codebase is also in the newest daily set, so the weekly set may go; the newest
        // full set holds the only other codebase backup, so it may not.
        let rm = try journal(["remove", weeklyID])
        XCTAssertEqual(rm.status, 0, rm.stderr)
        XCTAssertFalse(FileOps.exists(dir + "/app/backups/weekly/\(weeklyID)"))
        let fullID = try XCTUnwrap(rows.first { ($0["targets"] as? [String]) == ["db", "codebase"] }?["id"] as? String)
        let refused = try journal(["remove", fullID])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("only good backup of target 'codebase'"), refused.stderr)
    }

    func testFlagsExcludeEachOther() throws {
        let run = try journal(["backup", "--db-only", "--code-only"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("exclude each other"), run.stderr)
    }
}

extension JournalTests {
    /// A set (database and codebase from one run) restores together.
    func testWholeSetRestoresTogether() throws {
        XCTAssertEqual(try journal(["backup"]).status, 0)
        let out = dir + "/dr"
        let dry = try journal(["restore", "--all", "--to", out, "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("Restore plan for db") && dry.stdout.contains("Restore plan for codebase"), dry.stdout)
        XCTAssertFalse(FileOps.exists(out), "a dry run writes nothing")
        let run = try journal(["restore", "--all", "--to", out, "--yes"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try SQLiteDatabase(path: out + "/db/journal.db", readOnly: true).tableRowCounts(), ["entries": 2])
        XCTAssertEqual(try TestSupport.read(out + "/codebase/journal/app.py"), try TestSupport.read(dir + "/app/journal/app.py"))
        let both = try journal(["restore", "db", "--all"])
        XCTAssertEqual(both.status, 2, both.stderr)
    }
}
