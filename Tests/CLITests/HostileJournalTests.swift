import BackupCore
import Foundation
import TestSupport
import XCTest

/// `restore TARGET --resume-rollback` treats the journal as hostile: it may name only the
/// target's own data directory or databases (or the --to / --into given again), and safety
/// copies where a restore writes them. Anything else: one line naming the journal, exit 2,
/// nothing changed. No PostgreSQL is needed: the journal is refused before any connection.
final class HostileJournalTests: XCTestCase {
    var dir = ""
    var config = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("hostile-journal")
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=\(dir)/backups
        TARGETS=cluster pg
        TARGET_CLUSTER_KIND=pg_basebackup
        TARGET_CLUSTER_HOST=127.0.0.1
        TARGET_CLUSTER_PORT=1
        TARGET_CLUSTER_DATA_DIR=\(dir)/data
        TARGET_PG_KIND=pg_dump
        TARGET_PG_HOST=127.0.0.1
        TARGET_PG_PORT=1
        TARGET_PG_DATABASE=app
        """, to: config, mode: 0o600)
        try TestSupport.write("keep me\n", to: dir + "/victim/precious.txt")
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    func writeJournal(_ target: String, kind: String, changes: String) throws -> String {
        let path = "\(dir)/backups/state/restore-in-progress-\(target).json"
        try TestSupport.write("""
        {"target":"\(target)","kind":"\(kind)","setID":"20260101T020000Z","pid":999999,
         "startedAt":"2026-01-01T02:00:00Z","updatedAt":"2026-01-01T02:00:00Z",
         "summary":"partly restored","changes":\(changes)}
        """, to: path)
        return path
    }

    func assertRefused(_ args: [String], journal: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try backstop(args)
        XCTAssertEqual(run.status, 2, run.stdout + run.stderr, file: file, line: line)
        let lines = run.stderr.split(separator: "\n").filter { $0.contains(journal) }
        XCTAssertEqual(lines.count, 1, run.stderr, file: file, line: line)
        XCTAssertTrue(run.stderr.contains("nothing was changed"), run.stderr, file: file, line: line)
        XCTAssertEqual(try TestSupport.read(dir + "/victim/precious.txt"), Data("keep me\n".utf8), "the victim is untouched", file: file, line: line)
        XCTAssertTrue(FileOps.exists(journal), "the journal stays", file: file, line: line)
    }

    func testABaseBackupJournalNamingAnotherDirectoryIsRefused() throws {
        for existed in [false, true] {
            let journal = try writeJournal("cluster", kind: "pg_basebackup",
                                           changes: #"{"destination":"\#(dir)/victim","phase":"replacing","existed":\#(existed),"aside":null}"#)
            try assertRefused(["restore", "cluster", "--resume-rollback", "--yes"], journal: journal)
            try assertRefused(["restore", "cluster", "--resume-rollback", "--dry-run"], journal: journal)
        }
        // The moved-aside directory must be beside the destination, named as a restore names it.
        let journal = try writeJournal("cluster", kind: "pg_basebackup",
                                       changes: #"{"destination":"\#(dir)/data","phase":"replacing","existed":true,"aside":"\#(dir)/data.pre-restore-x/../../victim"}"#)
        try assertRefused(["restore", "cluster", "--resume-rollback", "--yes"], journal: journal)
    }

    func testABaseBackupJournalNamingTheToGivenAgainIsRolledBack() throws {
        try TestSupport.write("partial\n", to: dir + "/restored/PG_VERSION")
        let journal = try writeJournal("cluster", kind: "pg_basebackup",
                                       changes: #"{"destination":"\#(dir)/restored","phase":"replacing","existed":false,"aside":null}"#)
        try assertRefused(["restore", "cluster", "--resume-rollback", "--yes"], journal: journal)
        XCTAssertTrue(FileOps.exists(dir + "/restored/PG_VERSION"))
        let run = try backstop(["restore", "cluster", "--resume-rollback", "--yes", "--to", dir + "/restored/"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertFalse(FileOps.exists(dir + "/restored"), "the partial restore named by the same --to is removed")
        XCTAssertFalse(FileOps.exists(journal))
    }

    func testADumpJournalNamingAnotherDatabaseOrAnOutsideDumpIsRefused() throws {
        var journal = try writeJournal("pg", kind: "pg_dump",
                                       changes: #"{"server":"x","databases":[{"name":"precious","existed":false,"phase":"replacing"}]}"#)
        try assertRefused(["restore", "pg", "--resume-rollback", "--yes"], journal: journal)
        try assertRefused(["restore", "pg", "--resume-rollback", "--yes", "--into", "other"], journal: journal)
        journal = try writeJournal("pg", kind: "pg_dump",
                                   changes: #"{"server":"x","databases":[{"name":"app","existed":true,"phase":"replacing","safetyDump":"\#(dir)/victim/precious.txt","meta":{}}]}"#)
        try assertRefused(["restore", "pg", "--resume-rollback", "--yes"], journal: journal)
        journal = try writeJournal("pg", kind: "pg_dump",
                                   changes: #"{"server":"x","databases":[{"name":"app","existed":true,"phase":"replacing","safetyDump":"\#(dir)/backups/pre-restore/pg-20260101_020000-app.dump/../../../victim/precious.txt","meta":{}}]}"#)
        try assertRefused(["restore", "pg", "--resume-rollback", "--yes"], journal: journal)
    }
}
