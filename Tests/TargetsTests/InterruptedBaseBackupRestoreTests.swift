import BackupCore
import Foundation
@testable import Targets
import TestSupport
import XCTest

/// A base-backup restore keeps a journal while it changes the data directory, and a restore
/// killed midway is rolled back from it (`restore --resume-rollback`).
final class InterruptedBaseBackupRestoreTests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("pgbase-journal")
    }

    override func tearDown() { try? FileOps.removeTree(dir) }

    func target(stop: String? = nil, start: String? = nil) -> PgBaseBackupTarget {
        PgBaseBackupTarget(name: "cluster", server: PostgresServer(host: "127.0.0.1", port: pg.port, user: "postgres", password: PostgresCluster.password),
                           walArchive: pg.archiveDirectory, workers: 2, stopCommand: stop, startCommand: start)
    }

    /// The journal exists while the restore runs (STOP_CMD copies it) and is gone afterwards.
    func testTheJournalIsWrittenBeforeTheFirstChangeAndRemovedAfterwards() throws {
        let repo = dir + "/repo"
        let journal = repo + "/state/restore-in-progress-cluster.json"
        XCTAssertTrue(try TestSupport.engine(repo, [target()]).backup().succeeded)
        let engine = TestSupport.engine(repo, [target(stop: "cp \(journal) \(dir)/seen-by-stop.json")])
        let destination = dir + "/restored"
        _ = try engine.restore(target: "cluster", id: "latest", options: RestoreOptions(destination: destination))
        let seen = try String(contentsOfFile: dir + "/seen-by-stop.json", encoding: .utf8)
        XCTAssertTrue(seen.contains("\"stopping\"") && seen.contains(destination), seen)
        XCTAssertFalse(FileOps.exists(journal), "removed once the restore is done")
        XCTAssertTrue(FileOps.exists(destination + "/PG_VERSION"))
    }

    /// What a kill -9 during extraction leaves (a partial data directory, the previous one moved
    /// aside, the journal): `--resume-rollback` puts the previous one back and runs START_CMD.
    func testResumeRollbackPutsThePreviousDataDirectoryBack() throws {
        let repo = dir + "/repo"
        let destination = dir + "/data"
        let aside = destination + ".pre-restore-20240708_020000"
        try TestSupport.write("the previous cluster\n", to: aside + "/PG_VERSION")
        try TestSupport.write("partial\n", to: destination + "/base/1/1234")
        let engine = TestSupport.engine(repo, [target(start: "touch \(dir)/started")])
        let left = RestoreJournal(repository: engine.repository, target: "cluster", kind: "pg_basebackup", setID: "20240708_020000")
        try left.record(["destination": .string(destination), "existed": .bool(true), "phase": .string("replacing"), "aside": .string(aside)],
                        summary: "data directory \(destination) is partly restored")
        XCTAssertEqual(engine.interruptedRestores().map(\.target), ["cluster"], "no restore holds the lock: it was interrupted")

        // The --to of the interrupted restore, given again (no DATA_DIR is configured).
        let plan = try engine.resumeRollback(target: "cluster", options: RestoreOptions(destination: destination, dryRun: true))
        XCTAssertTrue(plan.lines.contains { $0.contains("move \(aside) back") }, "\(plan.lines)")
        XCTAssertTrue(FileOps.exists(aside), "a plan changes nothing")
        let report = try engine.resumeRollback(target: "cluster", options: RestoreOptions(destination: destination))
        XCTAssertEqual(report.lines.last, "rolled back")
        XCTAssertEqual(try String(contentsOfFile: destination + "/PG_VERSION", encoding: .utf8), "the previous cluster\n")
        XCTAssertFalse(FileOps.exists(aside))
        XCTAssertFalse(FileOps.exists(destination + "/base"))
        XCTAssertTrue(FileOps.exists(dir + "/started"), "START_CMD ran")
        XCTAssertFalse(FileOps.exists(RestoreJournal.path(repository: engine.repository, target: "cluster")))
    }

    /// A journal is read from disk: one naming paths no restore writes changes nothing.
    func testAHostileJournalChangesNothing() throws {
        let repo = dir + "/repo"
        let victim = dir + "/victim"
        try TestSupport.write("keep\n", to: victim + "/file")
        let engine = TestSupport.engine(repo, [target()])
        let left = RestoreJournal(repository: engine.repository, target: "cluster", kind: "pg_basebackup", setID: "x")
        try left.record(["destination": .string(dir + "/data"), "existed": .bool(true), "phase": .string("replacing"), "aside": .string(victim)],
                        summary: "crafted")
        XCTAssertThrowsError(try engine.resumeRollback(target: "cluster", options: RestoreOptions(destination: dir + "/data"))) {
            XCTAssertTrue("\($0)".contains("which no restore writes"), "\($0)")
        }
        XCTAssertEqual(try String(contentsOfFile: victim + "/file", encoding: .utf8), "keep\n")
        XCTAssertTrue(FileOps.exists(RestoreJournal.path(repository: engine.repository, target: "cluster")), "kept")
    }
}
