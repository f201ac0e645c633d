import BackupCore
import Foundation
import TestSupport
import XCTest

/// `backstop` with PostgreSQL targets, as an administrator runs it, against a real server.
final class PostgresCLITests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""
    var config = ""
    var db = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("pgcli")
        db = "app_\(UInt32.random(in: 0...UInt32.max))"
        try pg.createDatabase(db)
        try pg.psql("CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) SELECT md5(g::text) FROM generate_series(1, 1000) g", database: db)
        config = dir + "/backstop.env"
        try writeConfig(password: PostgresCluster.password)
    }

    override func tearDown() {
        XCTAssertNoThrow(try pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)"), "cleanup")
        try? FileOps.removeTree(dir)
    }

    func writeConfig(password: String, user: String = "postgres", extra: String = "") throws {
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db
        TARGET_DB_KIND=pg_dump
        TARGET_DB_HOST=127.0.0.1
        TARGET_DB_PORT=\(pg.port)
        TARGET_DB_USER=\(user)
        TARGET_DB_PASSWORD=\(password)
        TARGET_DB_DATABASE=\(db)
        \(extra)
        """, to: config, mode: 0o600)
    }

    func backstop(_ args: [String], env: [String: String] = [:]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config], environment: env)
    }

    func testBackupRestoreDrillAndThePasswordIsNeverOnACommandLine() throws {
        let trace = dir + "/argv.log"
        let env = ["BACKSTOP_TRACE_CHILDREN": trace]
        let backup = try backstop(["backup"], env: env)
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let verify = try backstop(["verify"], env: env)
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        try pg.psql("DELETE FROM notes", database: db)
        let restore = try backstop(["restore", "db", "--yes"], env: env)
        XCTAssertEqual(restore.status, 0, restore.stderr)
        XCTAssertTrue(restore.stdout.contains("every count matches the manifest"), restore.stdout)
        let safety = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: dir + "/backups/pre-restore").first { $0.hasSuffix(".dump") })
        XCTAssertEqual((restore.stdout + restore.stderr).components(separatedBy: safety).count - 1, 1, "the safety dump's path, once: " + restore.stdout + restore.stderr)
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM notes", database: db), "1000")
        let drill = try backstop(["verify", "--restore-test"], env: env)
        XCTAssertEqual(drill.status, 0, drill.stdout + drill.stderr)
        XCTAssertTrue(drill.stdout.hasPrefix("PASS"), drill.stdout)

        // Every child that ran (pg_dump, pg_restore) is in the trace, and none got the password.
        let argv = try String(contentsOfFile: trace, encoding: .utf8)
        XCTAssertTrue(argv.contains("/pg_dump ") && argv.contains("/pg_restore "), argv)
        XCTAssertFalse(argv.contains(PostgresCluster.password), argv)
        let logs = dir + "/backups/logs"
        for name in try FileManager.default.contentsOfDirectory(atPath: logs) {
            XCTAssertFalse(try String(contentsOfFile: logs + "/" + name, encoding: .utf8).contains(PostgresCluster.password))
        }
        XCTAssertFalse((backup.stderr + restore.stdout + restore.stderr + drill.stdout).contains(PostgresCluster.password))
    }

    func testWrongPasswordIsOneClearLine() throws {
        let wrong = "Wr0ng-Passw0rd-xyz"
        try writeConfig(password: wrong)
        let run = try backstop(["backup"])
        XCTAssertEqual(run.status, 1)
        let lines = run.stderr.split(separator: "\n").filter { $0.contains("password authentication failed") }
        XCTAssertGreaterThanOrEqual(lines.count, 1, run.stderr)
        XCTAssertTrue(lines[0].contains("postgres@127.0.0.1:\(pg.port)/\(db)"), String(lines[0]))
        XCTAssertFalse(run.stderr.contains(wrong), run.stderr)
        // A run that kept nothing still shows up in stats as the target's last failure.
        let stats = try backstop(["stats", "--json"])
        XCTAssertTrue(stats.stdout.contains("password authentication failed"), stats.stdout)
        let check = try backstop(["check"])
        XCTAssertNotEqual(check.status, 0)
        XCTAssertTrue(check.stdout.contains("password authentication failed") || check.stderr.contains("password authentication failed"), check.stdout + check.stderr)
    }

    func testKilledDumpLeavesNothingThatLooksComplete() throws {
        try pg.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS payload FROM generate_series(1, 1500000) g", database: db)
        try writeConfig(password: PostgresCluster.password, extra: "TARGET_DB_LEVEL=9")
        let p = try TestSupport.start("backstop", ["backup", "--config", config])
        let daily = dir + "/backups/daily"
        let started = TestSupport.waitFor(60) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: daily)) ?? []
            guard let staging = names.first(where: { $0.hasSuffix(".partial") }) else { return false }
            return (FileOps.size("\(daily)/\(staging)/db/\(self.db).dump") ?? 0) > 100_000
        }
        XCTAssertTrue(started, "the dump started streaming")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let list = try backstop(["list", "--json"])
        XCTAssertFalse(list.stdout.contains("\"complete\""), list.stdout)
        XCTAssertTrue(list.stdout.contains("\"incomplete\""), "the crashed run's leftovers are listed: \(list.stdout)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: daily).filter { $0.hasSuffix(".partial") }.count, 1)

        try writeConfig(password: PostgresCluster.password, extra: "TARGET_DB_FORMAT=custom-zstd")
        let next = try backstop(["backup"])
        XCTAssertEqual(next.status, 0, next.stderr)
        XCTAssertTrue(next.stderr.contains("removed incomplete backup"), next.stderr)
        let sets = try FileManager.default.contentsOfDirectory(atPath: daily)
        XCTAssertEqual(sets.count, 1, "only the new, complete set remains: \(sets)")
        XCTAssertTrue(FileOps.exists("\(daily)/\(sets[0])/manifest.json"))
    }

    func testJournalBackupInPostgreSQLMode() throws {
        let journal = dir + "/journal.env"
        try TestSupport.write("print('journal')\n", to: dir + "/app/app.py")
        try TestSupport.write("""
        DATABASE_TYPE=postgresql
        DATABASE_URL=postgresql://postgres:\(PostgresCluster.password)@127.0.0.1:\(pg.port)/\(db)?sslmode=disable
        CODEBASE_DIR=app
        BACKUP_DIR=backups
        """, to: journal, mode: 0o600)
        let trace = dir + "/argv.log"
        let env = ["BACKSTOP_TRACE_CHILDREN": trace]
        let backup = try TestSupport.run("journal-backup", ["backup", "--db-only", "--config", journal], environment: env)
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let daily = dir + "/backups/daily"
        let sets = try FileManager.default.contentsOfDirectory(atPath: daily)
        XCTAssertEqual(sets.count, 1)
        XCTAssertTrue(FileOps.exists("\(daily)/\(sets[0])/db/postgresql_\(db).dump"), "the seed's file name")
        XCTAssertFalse(FileOps.exists("\(daily)/\(sets[0])/codebase"), "--db-only")
        try pg.psql("UPDATE notes SET body = 'overwritten'", database: db)
        let restore = try TestSupport.run("journal-backup", ["restore", "db", "--timestamp", sets[0], "--yes", "--config", journal], environment: env)
        XCTAssertEqual(restore.status, 0, restore.stderr)
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM notes WHERE body = 'overwritten'", database: db), "0")
        XCTAssertFalse(try String(contentsOfFile: trace, encoding: .utf8).contains(PostgresCluster.password))
        XCTAssertFalse((backup.stderr + restore.stdout + restore.stderr).contains(PostgresCluster.password))
    }

    /// SIGTERM while pg_restore is loading: the restore stops, the database is rolled back to
    /// its state just before the restore (including rows newer than the backup), exit 143.
    func testSIGTERMDuringRestoreRollsBackTheDatabase() throws {
        try pg.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 1500000) g", database: db)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        try pg.psql("INSERT INTO notes (body) VALUES ('written after the backup')", database: db)
        let p = try TestSupport.start("backstop", ["restore", "db", "--yes", "--config", config])
        let loading = TestSupport.waitFor(60) {
            (try? self.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '\(self.db)' AND query LIKE 'COPY public.big % FROM stdin%'")) == "1"
        }
        XCTAssertTrue(loading, "pg_restore started loading the big table")
        XCTAssertEqual(try pg.psql("SELECT datconnlimit FROM pg_database WHERE datname = '\(db)'"), "0",
                       "applications are kept out of the half-restored database")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 143)
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM notes", database: db), "1001", "the newer row is back: rolled back, not restored")
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM big", database: db), "1500000")
        XCTAssertEqual(try pg.psql("SELECT datconnlimit FROM pg_database WHERE datname = '\(db)'"), "-1", "and let back in after the rollback")
        let safety = try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/pre-restore")
        XCTAssertEqual(safety.count, 1, "the safety dump is kept: \(safety)")
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/logs")
        XCTAssertTrue(try String(contentsOfFile: dir + "/backups/logs/" + logs[0], encoding: .utf8).contains("interrupted by SIGTERM"), "the daily log says so")
    }

    /// restore --all --to DIR is for files: a database target must never fall through to the
    /// live database.
    func testRestoreAllToAFolderNeverReplacesTheLiveDatabase() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        try pg.psql("INSERT INTO notes (body) VALUES ('live only')", database: db)
        let run = try backstop(["restore", "--all", "--to", dir + "/out", "--yes"])
        XCTAssertEqual(run.status, 2, run.stdout + run.stderr)
        XCTAssertTrue(run.stderr.contains("--into"), run.stderr)
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM notes WHERE body = 'live only'", database: db), "1")
    }

    /// A table locked by another session: the backup gives up after LOCK_TIMEOUT with a clear
    /// line instead of hanging.
    func testLockedTableFailsAfterTheLockTimeoutInsteadOfHanging() throws {
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: PostgresCluster.bin + "/psql")
        holder.arguments = ["-X", "-q", "-h", pg.root, "-p", "\(pg.port)", "-U", "postgres", "-d", db,
                            "-c", "BEGIN; LOCK TABLE notes IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);"]
        holder.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try holder.run()
        defer { holder.terminate(); holder.waitUntilExit() }
        XCTAssertTrue(TestSupport.waitFor(10) {
            (try? self.pg.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'notes' AND l.mode = 'AccessExclusiveLock' AND l.granted", database: self.db)) == "1"
        })
        try writeConfig(password: PostgresCluster.password, extra: "TARGET_DB_LOCK_TIMEOUT=2")
        let started = Date()
        let run = try backstop(["backup"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 30, "it gave up instead of waiting for the lock")
        XCTAssertTrue(run.stderr.contains("stayed locked by another session for longer than LOCK_TIMEOUT=2s"), run.stderr)
    }

    /// The app's own role owns its database but cannot create databases: a restore must refuse
    /// before it drops anything (it could not create the database again).
    func testARoleWithoutCreatedbIsRefusedBeforeAnythingIsDropped() throws {
        let role = "app_\(UInt32.random(in: 0...UInt32.max))"
        try pg.psql("CREATE ROLE \(role) LOGIN PASSWORD 'app-pw-123'; ALTER DATABASE \"\(db)\" OWNER TO \(role)")
        try pg.psql("ALTER TABLE notes OWNER TO \(role); ALTER SEQUENCE notes_id_seq OWNER TO \(role)", database: db)
        defer { XCTAssertNoThrow(try pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)"), "cleanup"); XCTAssertNoThrow(try pg.psql("DROP ROLE IF EXISTS \(role)"), "cleanup") }
        try writeConfig(password: "app-pw-123", user: role)
        let check = try backstop(["check"])
        XCTAssertTrue(check.stdout.contains("cannot CREATE DATABASE"), check.stdout)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let restore = try backstop(["restore", "db", "--yes"])
        XCTAssertEqual(restore.status, 1, restore.stderr)
        XCTAssertTrue(restore.stderr.contains("cannot CREATE DATABASE") && restore.stderr.contains("nothing was changed"), restore.stderr)
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM notes", database: db), "1000", "the database is still there")
    }
}
