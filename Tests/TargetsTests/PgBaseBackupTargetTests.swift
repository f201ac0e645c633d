import BackupCore
import Foundation
@testable import Targets
import TestSupport
import XCTest

/// Base backups, the WAL archive and point-in-time recovery against a real PostgreSQL 15.
final class PgBaseBackupTargetTests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("pgbase")
    }

    override func tearDown() { try? FileOps.removeTree(dir) }

    var server: PostgresServer {
        PostgresServer(host: "127.0.0.1", port: pg.port, user: "postgres", password: PostgresCluster.password)
    }

    func target() -> PgBaseBackupTarget {
        PgBaseBackupTarget(name: "cluster", server: server, walArchive: pg.archiveDirectory, workers: 2)
    }

    /// Switches to a new WAL segment and waits until the finished one is in the archive.
    func switchAndWaitForArchive() throws {
        let segment = try pg.psql("SELECT pg_walfile_name(pg_switch_wal())")
        XCTAssertTrue(TestSupport.waitFor(30) { FileOps.exists(self.pg.archiveDirectory + "/" + segment) }, "segment \(segment) never archived")
    }

    func testBaseBackupVerifiesAndReportsTheWalArchive() throws {
        let engine = TestSupport.engine(dir + "/repo", [target()])
        let findings = target().preflight(PreflightContext(logger: TestSupport.logger().0))
        XCTAssertEqual(findings.filter { $0.severity != .info }, [], "\(findings)")
        try switchAndWaitForArchive()
        let run = try engine.backup()
        XCTAssertTrue(run.succeeded, "\(run.targets.map { $0.error ?? "" })")
        let record = try XCTUnwrap(run.targets.first)
        XCTAssertEqual(record.artifacts.first?.path, "cluster/base.tar.zst")
        XCTAssertEqual(record.facts["compression"]?.stringValue, "server-zstd")
        XCTAssertNotNil(WalSegment(name: record.facts["walStart"]?.stringValue ?? ""))
        let wal = try XCTUnwrap(record.facts["walArchive"]?.objectValue)
        XCTAssertGreaterThan(wal["segments"]?.numberValue ?? 0, 0)
        XCTAssertNotNil(wal["newestAgeSeconds"]?.numberValue)
        XCTAssertEqual(wal["gaps"]?.arrayValue?.count, 0)
        let verified = try engine.verify(engine.repository.completeSets())
        XCTAssertEqual(try XCTUnwrap(verified.first).findings.filter { $0.severity == .error }, [])

        // A byte flipped in the tarball fails verify, naming the file.
        let path = try XCTUnwrap(run.directory) + "/cluster/base.tar.zst"
        try TestSupport.flipByte(path, at: 1000, mask: 0x55)
        let bad = try engine.verify(engine.repository.completeSets())
        XCTAssertTrue(try XCTUnwrap(bad.first).findings.contains { $0.severity == .error && $0.message.contains("base.tar.zst") }, "\(bad.first?.findings ?? [])")
    }

    func testPointInTimeRecovery() throws {
        let db = "pitr_\(UInt32.random(in: 0...UInt32.max))"
        try pg.createDatabase(db)
        defer { XCTAssertNoThrow(try pg.psql("DROP DATABASE IF EXISTS \(db) WITH (FORCE)"), "cleanup") }
        try pg.psql("CREATE TABLE events (phase text); INSERT INTO events SELECT 'a' FROM generate_series(1, 100)", database: db)
        let engine = TestSupport.engine(dir + "/repo", [target()])
        let first = try engine.backup()
        XCTAssertTrue(first.succeeded, "\(first.targets.map { $0.error ?? "" })")
        try pg.psql("INSERT INTO events SELECT 'b' FROM generate_series(1, 50)", database: db)
        sleep(1)
        let targetTime = Date()
        sleep(1)
        try pg.psql("INSERT INTO events SELECT 'c' FROM generate_series(1, 25)", database: db)
        // A second base backup after the target time: recovery must start from the first one.
        let second = try engine.backup()
        XCTAssertTrue(second.succeeded)
        try switchAndWaitForArchive()

        // A target time before the oldest base backup is refused.
        XCTAssertThrowsError(try engine.restore(target: "cluster", id: "latest",
                                                options: RestoreOptions(destination: pg.root + "/never", targetTime: Date(timeIntervalSinceNow: -86400)))) {
            XCTAssertTrue("\($0)".contains("is before any good backup of 'cluster' finished"), "\($0)")
            // Both time refusals are bad arguments: the same documented exit code, 2.
            XCTAssertEqual(($0 as? UserFacingError)?.exitStatus, .usage, "\($0)")
        }
        XCTAssertThrowsError(try engine.restore(target: "cluster", id: try XCTUnwrap(second.setID),
                                                options: RestoreOptions(destination: pg.root + "/never", targetTime: targetTime))) {
            XCTAssertTrue("\($0)".contains("is before this base backup finished"), "\($0)")
        }
        XCTAssertFalse(FileOps.exists(pg.root + "/never"))

        // A target time past the newest archived WAL could never be reached: refused.
        XCTAssertThrowsError(try engine.restore(target: "cluster", id: "latest",
                                                options: RestoreOptions(destination: pg.root + "/never", targetTime: Date(timeIntervalSinceNow: 86400)))) {
            XCTAssertTrue("\($0)".contains("after the newest archived WAL") && "\($0)".contains("--to-latest"), "\($0)")
            XCTAssertEqual(($0 as? UserFacingError)?.exitStatus, .usage, "\($0)")
        }
        let restored = pg.root + "/restored-\(UInt32.random(in: 0...UInt32.max))"
        let plan = try engine.restore(target: "cluster", id: "latest", options: RestoreOptions(destination: restored, dryRun: true, targetTime: targetTime))
        XCTAssertTrue(try XCTUnwrap(plan.lines.first).contains(try XCTUnwrap(first.setID)), "the newest backup before the target is chosen: \(plan.lines)")
        XCTAssertTrue(plan.lines.contains { $0.hasPrefix("WAL: from ") }, "\(plan.lines)")
        XCTAssertFalse(FileOps.exists(restored), "a dry run writes nothing")

        let report = try engine.restore(target: "cluster", id: "latest", options: RestoreOptions(destination: restored, targetTime: targetTime))
        XCTAssertTrue(FileOps.exists(restored + "/recovery.signal"), "\(report.lines)")
        let auto = try String(contentsOfFile: restored + "/postgresql.auto.conf", encoding: .utf8)
        XCTAssertTrue(auto.contains("recovery_target_time") && auto.contains("archive_mode = off") && auto.contains("recovery_target_action = 'promote'"), auto)

        // Start the recovered cluster beside the live one and wait for it to promote.
        let port = try PostgresCluster.freePort()
        try PostgresCluster.asPostgres("\(PostgresCluster.bin)/pg_ctl -D \(restored) -l \(restored).log -w -t 60 -o \"-p \(port) -c listen_addresses=''\" start >/dev/null")
        defer {
            _ = try? PostgresCluster.asPostgres("\(PostgresCluster.bin)/pg_ctl -D \(restored) -m immediate -w stop >/dev/null 2>&1")
            try? FileOps.removeTree(restored)
            unlink(restored + ".log")
        }
        XCTAssertTrue(TestSupport.waitFor(60) {
            (try? PostgresCluster.psql("SELECT pg_is_in_recovery()", socket: self.pg.root, port: port, database: "postgres")) == "f"
        }, "the recovered server never promoted")
        let phases = try PostgresCluster.psql("SELECT phase || '=' || count(*) FROM events GROUP BY phase ORDER BY phase", socket: pg.root, port: port, database: db)
        XCTAssertEqual(phases.split(separator: "\n"), ["a=100", "b=50"], "rows before the target exist, rows after it do not")
    }

    func testRetentionRemovesWalOlderThanTheOldestKeptBaseBackup() throws {
        let engine = TestSupport.engine(dir + "/repo", [target()])
        XCTAssertTrue(try engine.backup().succeeded)
        try switchAndWaitForArchive()
        try switchAndWaitForArchive()
        sleep(1) // a new set ID
        let second = try engine.backup()
        XCTAssertTrue(second.succeeded)
        try switchAndWaitForArchive()
        let start = try XCTUnwrap(WalSegment(name: try XCTUnwrap(second.targets.first).facts["walStart"]?.stringValue ?? ""))
        let before = WalArchive(directory: pg.archiveDirectory).segments().map(\.segment)
        XCTAssertTrue(before.contains { $0 < start }, "there is old WAL to remove")

        let policy = RetentionPolicy(limits: ["daily": .init(count: 1)])
        let planned = try engine.prune(policy, dryRun: true)
        XCTAssertEqual(WalArchive(directory: pg.archiveDirectory).segments().map(\.segment), before, "a dry run removes nothing")
        XCTAssertTrue(planned.contains { $0.target == "cluster" && $0.remove }, "\(planned)")
        let done = try engine.prune(policy, dryRun: false)
        XCTAssertEqual(done.filter { $0.remove && $0.target == nil }.count, 1, "the older set goes")
        let after = WalArchive(directory: pg.archiveDirectory).segments().map(\.segment)
        XCTAssertFalse(after.contains { $0 < start }, "no WAL older than the kept base backup remains")
        XCTAssertEqual(after, before.filter { $0 >= start }, "every segment the kept backup needs is still there")
    }

    /// A base backup taken from a server that still carries an earlier recovery's settings:
    /// --to-latest must not inherit a stale recovery_target_time.
    func testToLatestDropsStaleRecoverySettings() throws {
        try pg.psql("ALTER SYSTEM SET recovery_target_time = '2000-01-01 00:00:00+00'")
        defer { XCTAssertNoThrow(try pg.psql("ALTER SYSTEM RESET recovery_target_time"), "cleanup") }
        let engine = TestSupport.engine(dir + "/repo", [target()])
        XCTAssertTrue(try engine.backup().succeeded)
        try switchAndWaitForArchive()
        let restored = dir + "/latest"
        _ = try engine.restore(target: "cluster", id: "latest", options: RestoreOptions(destination: restored, toLatest: true, owner: "root"))
        let auto = try String(contentsOfFile: restored + "/postgresql.auto.conf", encoding: .utf8)
        XCTAssertFalse(auto.contains("2000-01-01"), auto)
        XCTAssertFalse(auto.contains("recovery_target_time"), auto)
        XCTAssertTrue(auto.contains("restore_command") && auto.contains("archive_mode = off"), auto)
    }

    func testRestoreRefusesARunningOrNonEmptyDataDirectory() throws {
        let engine = TestSupport.engine(dir + "/repo", [target()])
        XCTAssertTrue(try engine.backup().succeeded)
        // The live cluster's own data directory: running, so refused even with --force.
        XCTAssertThrowsError(try engine.restore(target: "cluster", id: "latest", options: RestoreOptions(destination: pg.dataDirectory, force: true))) {
            XCTAssertTrue("\($0)".contains("is running"), "\($0)")
        }
        let occupied = dir + "/occupied"
        try TestSupport.write("keep me\n", to: occupied + "/PG_VERSION")
        XCTAssertThrowsError(try engine.restore(target: "cluster", id: "latest", options: RestoreOptions(destination: occupied))) {
            XCTAssertTrue("\($0)".contains("is not empty") && "\($0)".contains("--force"), "\($0)")
        }
        XCTAssertEqual(try String(contentsOfFile: occupied + "/PG_VERSION", encoding: .utf8), "keep me\n")
        // A restore that fails after the old directory was moved aside puts it back.
        XCTAssertThrowsError(try engine.restore(target: "cluster", id: "latest",
                                                options: RestoreOptions(destination: occupied, force: true, owner: "no-such-user-backstop"))) {
            XCTAssertTrue("\($0)".contains("failed and was rolled back"), "\($0)")
        }
        XCTAssertEqual(try String(contentsOfFile: occupied + "/PG_VERSION", encoding: .utf8), "keep me\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: occupied), ["PG_VERSION"], "nothing of the failed restore is left")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("pre-restore") }, [], "the old directory is back in place")
        // An empty directory (a mount point, say) is emptied again, not removed.
        let empty = dir + "/empty-mount"
        try FileOps.makeDirectory(empty)
        XCTAssertThrowsError(try engine.restore(target: "cluster", id: "latest",
                                                options: RestoreOptions(destination: empty, owner: "no-such-user-backstop")))
        XCTAssertTrue(FileOps.isDirectory(empty))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: empty), [])
        let report = try engine.restore(target: "cluster", id: "latest", options: RestoreOptions(destination: occupied, force: true))
        let aside = try XCTUnwrap(report.safetyCopy)
        XCTAssertEqual(try String(contentsOfFile: aside + "/PG_VERSION", encoding: .utf8), "keep me\n", "the old directory is moved aside, not deleted")
        XCTAssertEqual(try String(contentsOfFile: occupied + "/PG_VERSION", encoding: .utf8), "15\n")
        XCTAssertTrue(FileOps.exists(occupied + "/global/pg_control"))
        var st = stat()
        XCTAssertEqual(stat(occupied, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertEqual(st.st_uid, getpwnam("postgres").pointee.pw_uid)
    }

    func testWalSettingsFindingsOnAMisconfiguredServer() throws {
        let bad = try PostgresCluster(extraConfig: "wal_level = minimal\narchive_mode = off\nmax_wal_senders = 0")
        defer { bad.destroy() }
        let t = PgBaseBackupTarget(name: "cluster", server: PostgresServer(host: "127.0.0.1", port: bad.port, user: "postgres",
                                                                           password: PostgresCluster.password),
                                   walArchive: dir + "/no-such-archive")
        let findings = t.preflight(PreflightContext(logger: TestSupport.logger().0))
        let text = findings.map(\.description)
        XCTAssertTrue(text.contains { $0.hasPrefix("error") && $0.contains("wal_level is minimal") }, "\(text)")
        XCTAssertTrue(text.contains { $0.hasPrefix("warning") && $0.contains("archive_mode is off") }, "\(text)")
        XCTAssertTrue(text.contains { $0.hasPrefix("error") && $0.contains("max_wal_senders is 0") }, "\(text)")
        XCTAssertTrue(text.contains { $0.hasPrefix("error") && $0.contains("no-such-archive does not exist") }, "\(text)")
        // The engine does not run a target whose preflight found errors.
        let run = try TestSupport.engine(dir + "/repo", [t]).backup()
        XCTAssertFalse(run.succeeded)
        XCTAssertTrue(try XCTUnwrap(run.targets.first).error?.hasPrefix("preflight:") == true)
    }

    func testWalGapsAreReported() throws {
        let archive = dir + "/wal"
        for seg in ["0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000",
                    "000000010000000100000003", "000000010000000100000004", "000000010000000100000004.00000028.backup"] {
            try TestSupport.write("", to: archive + "/" + seg)
        }
        let report = WalArchive(directory: archive).report(since: WalSegment(name: "0000000100000000000000FE"))
        XCTAssertEqual(report["segments"]?.numberValue, 5)
        XCTAssertEqual(report["gaps"]?.arrayValue?.compactMap(\.stringValue), ["000000010000000100000001..000000010000000100000002"])
        XCTAssertEqual(report["newest"]?.stringValue, "000000010000000100000004")

        // After a point-in-time recovery: timeline 2 should continue at 1/05; its first segment
        // was never archived (archiving was still off), which is a gap too.
        for seg in ["000000020000000100000006", "000000020000000100000007"] { try TestSupport.write("", to: archive + "/" + seg) }
        let after = WalArchive(directory: archive).report(since: WalSegment(name: "0000000100000000000000FE"))
        XCTAssertEqual(after["gaps"]?.arrayValue?.compactMap(\.stringValue),
                       ["000000010000000100000001..000000010000000100000002", "000000020000000100000005"])

        // A recovery to an earlier point branches below the old timeline's end: its .history
        // file says where (here in segment 1/03), so 1/03..1/05 of timeline 2 are missing.
        try TestSupport.write("1\t1/03000028\tbefore transaction 900\n", to: archive + "/00000002.history")
        let branched = WalArchive(directory: archive).report(since: WalSegment(name: "0000000100000000000000FE"))
        XCTAssertEqual(branched["gaps"]?.arrayValue?.compactMap(\.stringValue),
                       ["000000010000000100000001..000000010000000100000002", "000000020000000100000003..000000020000000100000005"])
    }
}
