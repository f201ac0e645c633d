import BackupCore
import Foundation
import TestSupport
import XCTest

/// PostgreSQL failures as an administrator meets them, against a real server: a refused
/// password, a restore that fails for a reason pg_restore prints early, and restores and drills
/// killed with -9.
final class PostgresRecoveryTests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""
    var config = ""
    var db = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("pgrecovery")
        db = "rec_\(UInt32.random(in: 0...UInt32.max))"
        try pg.createDatabase(db)
        try pg.psql("CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) SELECT md5(g::text) FROM generate_series(1, 1000) g", database: db)
        config = dir + "/backstop.env"
        try writeConfig()
    }

    override func tearDown() {
        _ = try? pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)")
        try? FileOps.removeTree(dir)
    }

    func writeConfig(password: String = PostgresCluster.password, extra: String = "") throws {
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db
        TARGET_DB_KIND=pg_dump
        TARGET_DB_HOST=127.0.0.1
        TARGET_DB_PORT=\(pg.port)
        TARGET_DB_USER=postgres
        TARGET_DB_PASSWORD=\(password)
        TARGET_DB_DATABASE=\(db)
        \(extra)
        """, to: config, mode: 0o600)
    }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    func log() throws -> String {
        let logs = dir + "/backups/logs"
        return try FileManager.default.contentsOfDirectory(atPath: logs).map { try String(contentsOfFile: logs + "/" + $0, encoding: .utf8) }.joined()
    }

    /// A wrong password: one line, which names the key to fix, and nothing saying "started".
    func testAWrongPasswordIsOneLineNamingTheKeyToFix() throws {
        try writeConfig(password: "Wr0ng-Passw0rd-xyz")
        let run = try backstop(["backup"])
        XCTAssertEqual(run.status, 1)
        let lines = run.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, run.stderr)
        XCTAssertTrue(lines[0].contains("password authentication failed"), run.stderr)
        XCTAssertTrue(lines[0].contains("TARGET_DB_PASSWORD in \(config)"), run.stderr)
        XCTAssertFalse(run.stderr.contains("started"), run.stderr)
        XCTAssertFalse(run.stderr.contains("Wr0ng-Passw0rd-xyz"), run.stderr)

        // journal-backup names DATABASE_URL.
        let journal = dir + "/journal.env"
        try TestSupport.write("""
        DATABASE_TYPE=postgresql
        DATABASE_URL=postgresql://postgres:Wr0ng-Passw0rd-xyz@127.0.0.1:\(pg.port)/\(db)
        CODEBASE_DIR=.
        """, to: journal, mode: 0o600)
        let jrun = try TestSupport.run("journal-backup", ["backup", "--db-only", "--config", journal])
        XCTAssertEqual(jrun.status, 1)
        XCTAssertEqual(jrun.stderr.split(separator: "\n").count, 1, jrun.stderr)
        XCTAssertTrue(jrun.stderr.contains("DATABASE_URL in \(journal)"), jrun.stderr)
    }

    /// DATABASE_URL is percent-decoded once: `100%25` is the password `100%`, `pct%2541x` is
    /// `pct%41x` (it was decoded twice: `100%25` failed, `pct%2541x` was sent as `pctAx`), and
    /// the redactor hides the decoded password actually sent.
    func testJournalDatabaseURLPasswordIsDecodedOnce() throws {
        for (encoded, password) in [("100%25", "100%"), ("pct%2541x", "pct%41x")] {
            let role = "pct_\(UInt32.random(in: 0...UInt32.max))"
            try pg.psql("CREATE ROLE \(role) LOGIN SUPERUSER PASSWORD '\(password)'")
            defer { _ = try? pg.psql("DROP ROLE IF EXISTS \(role)") }
            let journal = dir + "/journal-\(role).env"
            try TestSupport.write("""
            DATABASE_TYPE=postgresql
            DATABASE_URL=postgresql://\(role):\(encoded)@127.0.0.1:\(pg.port)/\(db)
            CODEBASE_DIR=.
            BACKUP_DIR=backups-\(role)
            """, to: journal, mode: 0o600)
            let run = try TestSupport.run("journal-backup", ["backup", "--db-only", "--config", journal])
            XCTAssertEqual(run.status, 0, "\(encoded): \(run.stderr)")

            let config = try Config.load(path: journal, required: true, environment: [:])
            XCTAssertTrue(config.secretValues.contains(password), "\(encoded): the decoded password is redacted")
            let redacted = Redactor(secrets: config.secretValues).redact("server said: \(password) was wrong")
            XCTAssertFalse(redacted.contains(password), redacted)
        }
    }

    /// pg_restore -j fails in a worker on a role the dump names but the server no longer has
    /// (a row-level security policy for it, restored in parallel after the data): the restore
    /// fails, rolls back, and says why (the role), not only "a worker process died".
    func testAFailedParallelRestoreSaysWhy() throws {
        let role = "gone_\(UInt32.random(in: 0...UInt32.max))"
        try pg.psql("CREATE ROLE \(role)")
        try pg.psql("CREATE POLICY readers ON notes TO \(role) USING (true)", database: db)
        // Without the globals dump, which would create the missing role again before the load.
        try writeConfig(extra: "TARGET_DB_JOBS=2\nTARGET_DB_GLOBALS=none")
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        try pg.psql("DROP POLICY readers ON notes", database: db)
        try pg.psql("DROP ROLE \(role)")
        try pg.psql("INSERT INTO notes (body) VALUES ('after the backup')", database: db)

        let run = try backstop(["restore", "db", "--yes"])
        XCTAssertEqual(run.status, 1, run.stdout + run.stderr)
        XCTAssertTrue(run.stderr.contains("role \"\(role)\" does not exist"), run.stderr)
        XCTAssertTrue(run.stderr.contains("rolled back"), run.stderr)
        XCTAssertTrue(try log().contains("role \"\(role)\" does not exist"), "the daily log says why too")
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM notes", database: db), "1001", "rolled back")
    }

    /// kill -9 of Backstop while pg_restore -j works: pg_restore and its parallel workers die
    /// with it (they kept loading unchecked), the restore's journal stays, every command says
    /// so in one line, `check` fails, a new restore refuses, and `restore --resume-rollback`
    /// puts the database back as it was before the restore: rows, connection limit, settings
    /// and privileges.
    func testKill9DuringARestoreIsFoundAndRolledBack() throws {
        // An index that takes 50 s to build while the table slow_marker exists, which only the
        // backup has: a pg_restore worker is busy building it when Backstop is killed (and the
        // rollback, from a safety dump without the marker, is quick).
        try pg.psql("""
            CREATE FUNCTION public.slow_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
            BEGIN IF to_regclass('public.slow_marker') IS NOT NULL THEN PERFORM pg_sleep(0.05); END IF; RETURN i; END $$;
            CREATE INDEX notes_slow ON notes (public.slow_key(id));
            CREATE TABLE slow_marker ();
            """, database: db)
        try pg.psql("ALTER DATABASE \"\(db)\" SET work_mem = '3MB'; ALTER DATABASE \"\(db)\" CONNECTION LIMIT 40")
        try pg.psql("CREATE ROLE reader_\(db); GRANT CONNECT ON DATABASE \"\(db)\" TO reader_\(db)")
        defer { _ = try? pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)"); _ = try? pg.psql("DROP ROLE IF EXISTS reader_\(db)") }
        try writeConfig(extra: "TARGET_DB_JOBS=2")
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        try pg.psql("DROP TABLE slow_marker; INSERT INTO notes (body) VALUES ('written after the backup')", database: db)

        let p = try TestSupport.start("backstop", ["restore", "db", "--yes", "--config", config])
        let building = TestSupport.waitFor(60) {
            (try? self.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '\(self.db)' AND query LIKE 'CREATE INDEX notes_slow%'")) == "1"
        }
        XCTAssertTrue(building, "a pg_restore worker started building the slow index")
        XCTAssertEqual(try pg.psql("SELECT datconnlimit FROM pg_database WHERE datname = '\(db)'"), "0", "the half-restored database is locked out")
        kill(p.processIdentifier, SIGKILL)
        // Not Process.waitUntilExit: here it also waited for the orphans (minutes, before the fix).
        XCTAssertTrue(TestSupport.waitFor(5) { !processIsLive(p.processIdentifier) })

        // Its children died with it, pg_restore's parallel workers too: nothing keeps loading.
        let pgrep = ["-f", "pg_restore.*\(dir)/"]
        XCTAssertTrue(TestSupport.waitFor(3) { (try? ChildProcess("pgrep", pgrep).capture().0.status) == 1 },
                      "an orphaned pg_restore is still running: \((try? ChildProcess("pgrep", ["-a"] + pgrep).capture().1) ?? "")")

        let list = try backstop(["list"])
        XCTAssertEqual(list.status, 0)
        let warnings = list.stderr.split(separator: "\n").filter { $0.contains("interrupted restore of db") }
        XCTAssertEqual(warnings.count, 1, list.stderr)
        XCTAssertTrue(warnings.first.map { $0.contains("--resume-rollback") && $0.contains("CONNECTION LIMIT 0") } ?? false, list.stderr)
        let check = try backstop(["check"])
        XCTAssertEqual(check.status, 1, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.contains("interrupted restore of db"), check.stdout)
        let again = try backstop(["restore", "db", "--yes"])
        XCTAssertEqual(again.status, 1, again.stderr)
        XCTAssertTrue(again.stderr.contains("--resume-rollback"), again.stderr)

        let rollback = try backstop(["restore", "db", "--resume-rollback", "--yes"])
        XCTAssertEqual(rollback.status, 0, rollback.stdout + rollback.stderr)
        XCTAssertTrue(rollback.stdout.contains("rolled back"), rollback.stdout)
        XCTAssertFalse(rollback.stderr.contains("an interrupted restore"), "no warning about what is being rolled back: \(rollback.stderr)")
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM notes", database: db), "1001", "the state before the restore, newer row included")
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'notes_slow'", database: db), "1")
        XCTAssertEqual(try pg.psql("SELECT datconnlimit FROM pg_database WHERE datname = '\(db)'"), "40")
        XCTAssertEqual(try pg.psql("SELECT has_database_privilege('reader_\(db)', '\(db)', 'CONNECT')"), "t")
        XCTAssertTrue(try pg.psql("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = '\(db)') AND setrole = 0").contains("work_mem=3MB"))
        XCTAssertFalse(FileOps.exists(dir + "/backups/state/restore-in-progress-db.json"))
        XCTAssertFalse(try backstop(["list"]).stderr.contains("an interrupted restore"))
    }

    /// kill -9 during a restore drill: its scratch database stays, `stats` shows it, and the
    /// next `prune` drops it; killed again, the next drill drops it.
    func testKill9DuringADrillLeavesAScratchDatabaseThatPruneOrTheNextDrillRemoves() throws {
        try pg.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 1500000) g", database: db)
        try writeConfig(extra: "KEEP_DAILY=5")
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let scratchQuery = "SELECT datname FROM pg_database WHERE datname LIKE 'backstop\\_drill\\_%'"
        let before = Set(try pg.psql(scratchQuery).split(separator: "\n").map(String.init))

        /// Starts a drill, kills it with -9 while it loads, and returns the scratch database it left.
        func killedDrill() throws -> String {
            let p = try TestSupport.start("backstop", ["verify", "--restore-test", "--config", config])
            XCTAssertTrue(TestSupport.waitFor(60) {
                (try? self.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'backstop\\_drill\\_\(p.processIdentifier)\\_%' AND query LIKE 'COPY public.big % FROM stdin%'")) == "1"
            }, "the drill started loading")
            kill(p.processIdentifier, SIGKILL)
            // Not Process.waitUntilExit: here it also waited for the orphans (minutes, before the fix).
            XCTAssertTrue(TestSupport.waitFor(5) { !processIsLive(p.processIdentifier) })
            return try XCTUnwrap(Set(try pg.psql(scratchQuery).split(separator: "\n").map(String.init)).subtracting(before).first)
        }

        let scratch = try killedDrill()
        let stats = try backstop(["stats"])
        XCTAssertTrue(stats.stdout.contains("leftover: [db] scratch database \(scratch)"), stats.stdout)
        let prune = try backstop(["prune"])
        XCTAssertEqual(prune.status, 0, prune.stderr)
        XCTAssertTrue(prune.stderr.contains("removed scratch database \(scratch)"), prune.stderr)
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM pg_database WHERE datname = '\(scratch)'"), "0")
        XCTAssertFalse(try backstop(["stats"]).stdout.contains("leftover"))

        let second = try killedDrill()
        let drill = try backstop(["verify", "--restore-test"])
        XCTAssertEqual(drill.status, 0, drill.stdout + drill.stderr)
        XCTAssertTrue(drill.stderr.contains("removed scratch database \(second)"), drill.stderr)
        XCTAssertEqual(try pg.psql(scratchQuery).split(separator: "\n").map(String.init).filter { !before.contains($0) }, [],
                       "no scratch database is left, neither the killed drill's nor the new one's")
    }
}
