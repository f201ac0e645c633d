import BackupCore
import Foundation
@testable import Targets
import TestSupport
import XCTest

/// The pg_dump target against a real PostgreSQL 15 server started by the tests.
final class PgDumpTargetTests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""
    var db = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("pgdump")
        db = "shop_\(UInt32.random(in: 0...UInt32.max))"
        try pg.createDatabase(db)
        try pg.psql("""
            CREATE TABLE customers (id int PRIMARY KEY, name text);
            CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers, doc jsonb);
            CREATE SCHEMA audit;
            CREATE TABLE audit."Log Entries" (at timestamptz DEFAULT now(), what text);
            INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 500) g;
            INSERT INTO orders (customer, doc) SELECT 1 + g % 500, jsonb_build_object('n', g) FROM generate_series(1, 2000) g;
            INSERT INTO audit."Log Entries" (what) VALUES ('created');
            """, database: db)
    }

    override func tearDown() {
        XCTAssertNoThrow(try pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)"), "cleanup")
        try? FileOps.removeTree(dir)
    }

    var server: PostgresServer {
        PostgresServer(host: "127.0.0.1", port: pg.port, user: "postgres", password: PostgresCluster.password)
    }

    func target(_ format: PgDumpTarget.DumpFormat = .custom) -> PgDumpTarget {
        PgDumpTarget(name: "db", server: server, databases: [db], format: format, jobs: 2)
    }

    func count(_ table: String, _ database: String? = nil) throws -> Int {
        Int(try pg.psql("SELECT count(*) FROM \(table)", database: database ?? db)) ?? -1
    }

    func testDumpVerifyRestoreEveryFormat() throws {
        for format in PgDumpTarget.DumpFormat.allCases {
            let t = target(format)
            let engine = TestSupport.engine(dir + "/repo-\(format.rawValue)", [t])
            XCTAssertTrue(t.preflight(PreflightContext(logger: TestSupport.logger().0)).allSatisfy { $0.severity != .error })
            let run = try engine.backup()
            XCTAssertTrue(run.succeeded, "\(format): \(run.targets.map { $0.error ?? "" })")
            let record = try XCTUnwrap(run.targets.first)
            XCTAssertEqual(record.artifacts.first?.path, "db/\(db)\(format.suffix)")
            let tables = record.facts["tables"]?.objectValue?[db]?.objectValue
            XCTAssertEqual(tables?["public.customers"]?.numberValue, 500)
            XCTAssertEqual(tables?["public.orders"]?.numberValue, 2000)
            XCTAssertEqual(tables?["audit.Log Entries"]?.numberValue, 1)
            XCTAssertEqual(record.facts["serverVersion"]?.stringValue?.hasPrefix("15."), true)
            let sets = engine.repository.completeSets()
            XCTAssertEqual(try engine.verify(sets).first?.findings.filter { $0.severity == .error }, [])

            // Damage the live data, then restore: every row is back, and a safety dump was taken.
            try pg.psql("DELETE FROM orders WHERE id > 100; DROP TABLE audit.\"Log Entries\"", database: db)
            let report = try engine.restore(target: "db", id: "latest", options: RestoreOptions())
            XCTAssertEqual(try count("orders"), 2000, "\(format)")
            XCTAssertEqual(try count("audit.\"Log Entries\""), 1, "\(format)")
            let safety = try XCTUnwrap(report.safetyCopy)
            XCTAssertTrue(FileOps.exists(safety))
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: safety)[.posixPermissions] as? Int, 0o600)
            XCTAssertTrue(report.lines.contains { $0.contains("every count matches the manifest") }, "\(report.lines)")
            XCTAssertEqual(try pg.psql("SELECT datconnlimit FROM pg_database WHERE datname = '\(db)'"), "-1", "open to applications again")
        }
    }

    func testSidecarAndManifestOfDumpAcceptedBySha256sum() throws {
        let engine = TestSupport.engine(dir + "/repo", [target()])
        let run = try engine.backup()
        let setDir = try XCTUnwrap(run.directory)
        let (outcome, _) = try ChildProcess("/bin/sh", ["-c", "cd \(setDir)/db && sha256sum -c \(db).dump.sha256"]).capture()
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
    }

    /// The worst day: the database is gone. It comes back with its own properties too, which
    /// a dump carries only for pg_restore --create: settings (also per role) and privileges.
    func testADroppedDatabaseComesBackWithItsSettingsAndPrivileges() throws {
        let role = "app_\(UInt32.random(in: 0...UInt32.max))"
        try pg.psql("CREATE ROLE \(role) LOGIN")
        defer {
            XCTAssertNoThrow(try pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)"), "cleanup")
            XCTAssertNoThrow(try pg.psql("DROP ROLE IF EXISTS \(role)"), "cleanup")
        }
        try pg.psql("ALTER DATABASE \"\(db)\" SET search_path = audit, public")
        try pg.psql("ALTER DATABASE \"\(db)\" SET work_mem = '8MB'")
        try pg.psql("ALTER ROLE \(role) IN DATABASE \"\(db)\" SET statement_timeout = '5s'")
        try pg.psql("REVOKE CONNECT ON DATABASE \"\(db)\" FROM PUBLIC")
        try pg.psql("GRANT CONNECT ON DATABASE \"\(db)\" TO \(role)")
        func properties() throws -> [String] {
            [try pg.psql("SELECT string_agg(coalesce(r.rolname, '-') || ':' || array_to_string(s.setconfig, ';'), ' | ' ORDER BY 1) FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = '\(db)')"),
             try pg.psql("SELECT has_database_privilege('\(role)', '\(db)', 'CONNECT')::text || ' ' || has_database_privilege('public', '\(db)', 'CONNECT')::text")]
        }
        let before = try properties()
        XCTAssertEqual(before[1], "true false")
        let engine = TestSupport.engine(dir + "/repo", [target()])
        XCTAssertTrue(try engine.backup().succeeded)
        try pg.psql("DROP DATABASE \"\(db)\" WITH (FORCE)")

        let report = try engine.restore(target: "db", id: "latest", options: RestoreOptions())
        XCTAssertFalse(report.lines.contains { $0.hasPrefix("warning") }, "\(report.lines)")
        XCTAssertEqual(try count("orders"), 2000)
        XCTAssertEqual(try properties(), before)
        XCTAssertTrue(before[0].contains("search_path=audit, public") && before[0].contains("statement_timeout=5s"), before[0])
    }

    func testIntoLeavesOriginalUntouched() throws {
        let engine = TestSupport.engine(dir + "/repo", [target(.customZstd)])
        XCTAssertTrue(try engine.backup().succeeded)
        try pg.psql("INSERT INTO customers VALUES (9999, 'new since the backup')", database: db)
        let copy = db + "_copy"
        defer { XCTAssertNoThrow(try pg.psql("DROP DATABASE IF EXISTS \"\(copy)\" WITH (FORCE)"), "cleanup") }
        let report = try engine.restore(target: "db", id: "latest", options: RestoreOptions(intoDatabase: copy))
        XCTAssertNil(report.safetyCopy)
        XCTAssertEqual(try count("customers", copy), 500)
        XCTAssertEqual(try count("customers"), 501, "the original keeps its newer row")
        // A second --into the same name refuses without --force.
        XCTAssertThrowsError(try engine.restore(target: "db", id: "latest", options: RestoreOptions(intoDatabase: copy))) {
            XCTAssertTrue("\($0)".contains("already exists"), "\($0)")
        }
    }

    /// Creates `table` with `rows` rows in a new tablespace; returns the tablespace's name.
    func tableInOwnTablespace(_ table: String, rows: Int, database: String) throws -> String {
        let ts = "ts_\(UInt32.random(in: 0...UInt32.max))"
        try PostgresCluster.asPostgres("mkdir -p \(pg.root)/\(ts)")
        try pg.psql("CREATE TABLESPACE \(ts) LOCATION '\(pg.root)/\(ts)'")
        try pg.psql("CREATE TABLE \(table) (v int) TABLESPACE \(ts); INSERT INTO \(table) SELECT generate_series(1, \(rows))", database: database)
        return ts
    }

    /// The tablespace's disk is gone: the table moves to the default one and the tablespace is
    /// dropped, so a dump that names it can no longer be restored.
    func loseTablespace(_ ts: String, table: String, database: String) throws {
        try pg.psql("ALTER TABLE \(table) SET TABLESPACE pg_default", database: database)
        try pg.psql("DROP TABLESPACE \(ts)")
    }

    /// The target tablespace is gone (its disk broke): pg_restore fails halfway, and the database
    /// is rolled back to what it was just before the restore.
    /// The plan said the --into database does not exist (so no safety dump); someone creates
    /// it before the plan is carried out: the restore refuses and never drops it.
    func testADatabaseCreatedAfterThePlanStopsTheRestore() throws {
        let engine = TestSupport.engine(dir + "/repo", [target()])
        XCTAssertTrue(try engine.backup().succeeded)
        let other = db + "_copy"
        defer { _ = try? pg.psql("DROP DATABASE IF EXISTS \"\(other)\" WITH (FORCE)") }
        let plan = try engine.planRestore(target: "db", id: "latest", options: RestoreOptions(intoDatabase: other))
        XCTAssertEqual(plan.safetyCopy, .none)
        XCTAssertTrue(plan.lines.contains("  it does not exist yet: it is created"), "\(plan.lines)")
        try pg.createDatabase(other)
        try pg.psql("CREATE TABLE precious (x int); INSERT INTO precious VALUES (42);", database: other)
        XCTAssertThrowsError(try engine.carryOut(plan)) {
            XCTAssertTrue("\($0)".contains("was created after the restore plan was made"), "\($0)")
        }
        XCTAssertEqual(try pg.psql("SELECT x FROM precious", database: other), "42", "not dropped, not replaced")
        XCTAssertFalse(FileOps.exists(engine.repository.safetyDirectory), "no safety dump either: nothing was started")
    }

    func testRestoreThatFailsHalfwayRollsBack() throws {
        let ts = try tableInOwnTablespace("zz_on_disk2", rows: 2, database: db)
        let engine = TestSupport.engine(dir + "/repo", [target()])
        XCTAssertTrue(try engine.backup().succeeded)
        try loseTablespace(ts, table: "zz_on_disk2", database: db)
        try pg.psql("INSERT INTO customers VALUES (7777, 'written after the backup')", database: db)

        XCTAssertThrowsError(try engine.restore(target: "db", id: "latest", options: RestoreOptions())) { error in
            XCTAssertTrue("\(error)".contains("rolled back"), "\(error)")
        }
        XCTAssertEqual(try count("customers"), 501, "the live data, including the newer row, is back")
        XCTAssertEqual(try count("orders"), 2000)
        XCTAssertEqual(try count("zz_on_disk2"), 2)
    }

    /// Two databases in one target; the second one's restore fails: the first, already
    /// replaced, is rolled back too.
    func testAFailedDatabaseRollsBackEveryDatabaseTheRestoreTouched() throws {
        let second = db + "_b"
        try pg.createDatabase(second)
        defer { XCTAssertNoThrow(try pg.psql("DROP DATABASE IF EXISTS \"\(second)\" WITH (FORCE)"), "cleanup") }
        let ts = try tableInOwnTablespace("on_disk", rows: 1, database: second)
        let both = PgDumpTarget(name: "db", server: server, databases: [db, second], jobs: 2)
        let engine = TestSupport.engine(dir + "/repo", [both])
        XCTAssertTrue(try engine.backup().succeeded)
        try loseTablespace(ts, table: "on_disk", database: second)
        try pg.psql("INSERT INTO customers VALUES (8888, 'after the backup')", database: db)

        XCTAssertThrowsError(try engine.restore(target: "db", id: "latest", options: RestoreOptions())) { error in
            XCTAssertTrue("\(error)".contains("\(db) rolled back"), "\(error)")
        }
        XCTAssertEqual(try count("customers"), 501, "the first database, restored before the failure, is back as it was")
        XCTAssertEqual(try count("on_disk", second), 1)
    }

    func testRestoreDrillPassesThenFailsOnTamperedDump() throws {
        let engine = TestSupport.engine(dir + "/repo", [target()])
        let run = try engine.backup()
        let reports = try engine.drill()
        XCTAssertEqual(reports.count, 1)
        XCTAssertTrue(reports[0].passed, "\(reports[0].lines)")
        XCTAssertGreaterThan(reports[0].restoreSeconds, 0)
        XCTAssertEqual(engine.drillHistory().count, 1)
        let leftovers = try pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'backstop_drill_%'")
        XCTAssertEqual(leftovers, "0", "the scratch database is always dropped")

        // Tamper: put a valid dump of different data in place and fix up its checksum, so only
        // the drill's row-count comparison can notice.
        try pg.psql("DELETE FROM orders WHERE id > 10", database: db)
        let setDir = try XCTUnwrap(run.directory)
        let path = "\(setDir)/db/\(db).dump"
        unlink(path)
        let (dumped, _) = try ChildProcess("/usr/lib/postgresql/15/bin/pg_dump",
                                           ["-Fc", "-h", pg.root, "-p", "\(pg.port)", "-U", "postgres", "-f", path, db]).capture()
        XCTAssertEqual(dumped.status, 0)
        let manifestPath = setDir + "/manifest.json"
        var manifest = try BackstopJSON.decoder().decode(SetManifest.self, from: try TestSupport.read(manifestPath))
        let reader = try HashingFileReader(path: path)
        try reader.drain()
        manifest.targets[0].artifacts[0].sha256 = reader.hexDigest()
        manifest.targets[0].artifacts[0].bytes = FileOps.size(path)!
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(manifest), to: manifestPath)

        let failed = try engine.drill()
        XCTAssertFalse(failed[0].passed)
        XCTAssertTrue(failed[0].lines.joined().contains("public.orders: 10 rows, manifest says 2000"), "\(failed[0].lines)")
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'backstop_drill_%'"), "0")

        // A flipped byte fails the drill on its checksum.
        try TestSupport.flipByte(path, at: 200)
        let corrupt = try engine.drill()
        XCTAssertFalse(corrupt[0].passed)
        XCTAssertTrue(corrupt[0].lines.joined().contains("checksum mismatch"), "\(corrupt[0].lines)")
    }

    func testSanityGates() throws {
        // An implausibly small dump fails the target; nothing is kept.
        let tiny = PgDumpTarget(name: "db", server: server, databases: [db], minimumBytes: 50_000_000)
        let engine = TestSupport.engine(dir + "/repo", [tiny])
        let run = try engine.backup()
        XCTAssertFalse(run.succeeded)
        XCTAssertTrue(run.targets[0].error?.contains("MIN_BYTES") == true, "\(run.targets[0].error ?? "")")
        XCTAssertNil(run.setID)

        // A dump that shrank by more than the threshold warns.
        let normal = TestSupport.engine(dir + "/repo2", [target()])
        XCTAssertTrue(try normal.backup().succeeded)
        try pg.psql("TRUNCATE orders", database: db)
        let second = try normal.backup()
        XCTAssertTrue(second.succeeded)
        XCTAssertTrue(second.targets[0].warnings.contains { $0.contains("shrank") }, "\(second.targets[0].warnings)")
    }

    func testPreflightFindings() throws {
        var wrong = server
        wrong.password = "not-the-password"
        let t = PgDumpTarget(name: "db", server: wrong, databases: [db])
        let findings = t.preflight(PreflightContext(logger: TestSupport.logger().0)).filter { $0.severity == .error }
        XCTAssertEqual(findings.count, 1)
        XCTAssertTrue(findings[0].message.contains("password authentication failed"), findings[0].message)
        XCTAssertFalse(findings[0].message.contains("not-the-password"))

        let missing = PgDumpTarget(name: "db", server: server, databases: ["no_such_db"])
        let m = missing.preflight(PreflightContext(logger: TestSupport.logger().0)).filter { $0.severity == .error }
        XCTAssertEqual(m.map(\.message), ["database no_such_db does not exist on postgres@127.0.0.1:\(pg.port)"])
    }

    /// Only PostgreSQL 15 can be installed here, so a shell script that reports version 13 stands
    /// in for an old client; the server is real.
    func testClientOlderThanServerIsRefusedWithThePackageToInstall() throws {
        let bin = dir + "/oldbin"
        try TestSupport.write("#!/bin/sh\necho 'pg_dump (PostgreSQL) 13.4'\n", to: bin + "/pg_dump", mode: 0o755)
        var old = server
        old.binDir = bin
        old.searchSystemClients = false
        let t = PgDumpTarget(name: "db", server: old, databases: [db])
        let errors = t.preflight(PreflightContext(logger: TestSupport.logger().0)).filter { $0.severity == .error }
        XCTAssertTrue(errors.contains { $0.message.contains("version 13, older than the PostgreSQL 15 server") && $0.message.contains("apt-get install postgresql-client-15") },
                      "\(errors)")
        XCTAssertEqual(PostgresMajor(versionString: "9.4.26")?.description, "9.4")
        XCTAssertLessThan(PostgresMajor(versionString: "9.6.1")!, PostgresMajor(serverVersion: 100004))
    }
}
