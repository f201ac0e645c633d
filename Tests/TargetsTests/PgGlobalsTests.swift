import BackupCore
import Foundation
@testable import Targets
import TestSupport
import XCTest

/// Bare-metal recovery of PostgreSQL: a pg_dump target keeps the cluster's roles and
/// memberships, and restoring onto a new server creates the missing roles first.
final class PgGlobalsTests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""
    var db = ""
    var owner = ""
    var reader = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("pgglobals")
        let tag = UInt32.random(in: 0...UInt32.max)
        db = "bare_\(tag)"
        owner = "app_owner_\(tag)"
        reader = "Odd Reader \(tag)"
        try pg.psql("""
            CREATE ROLE \(owner) LOGIN PASSWORD 'S3cret-\(tag)';
            CREATE ROLE "\(reader)" NOLOGIN;
            ALTER ROLE \(owner) SET work_mem = '8MB';
            GRANT "\(reader)" TO \(owner);
            """)
        try pg.psql("CREATE DATABASE \(db) OWNER \(owner)")
        try pg.psql("""
            SET ROLE \(owner);
            CREATE TABLE items (id int PRIMARY KEY);
            INSERT INTO items SELECT generate_series(1, 50);
            GRANT SELECT ON items TO "\(reader)";
            """, database: db)
    }

    override func tearDown() {
        _ = try? pg.psql("DROP DATABASE IF EXISTS \(db) WITH (FORCE)")
        _ = try? pg.psql("DROP ROLE IF EXISTS \(owner)")
        _ = try? pg.psql("DROP ROLE IF EXISTS \"\(reader)\"")
        try? FileOps.removeTree(dir)
    }

    func server(_ cluster: PostgresCluster) -> PostgresServer {
        PostgresServer(host: "127.0.0.1", port: cluster.port, user: "postgres", password: PostgresCluster.password)
    }

    func testRolesAreKeptAndCreatedFirstOnANewServer() throws {
        let repo = dir + "/repo"
        let run = try TestSupport.engine(repo, [PgDumpTarget(name: "db", server: server(pg), databases: [db])]).backup()
        XCTAssertTrue(run.succeeded, "\(run.targets.map { $0.error ?? "" })")
        let record = run.targets[0]
        let globals = try XCTUnwrap(record.artifacts.first { $0.path == "db/globals.sql.gz" })
        XCTAssertEqual(globals.format, "pg_dumpall+globals+gzip")
        let roles = record.facts["globals"]?.objectValue?["roles"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertTrue(roles.contains(owner) && roles.contains(reader), "\(roles)")
        XCTAssertEqual(record.facts["globals"]?.objectValue?["passwords"], .bool(false))
        let (unzipped, sql) = try ChildProcess("/bin/sh", ["-c", "gzip -dc '\(run.directory!)/db/globals.sql.gz'"]).capture()
        XCTAssertEqual(unzipped.status, 0)
        XCTAssertFalse(sql.contains("SCRAM-SHA-256"), "no password hashes unless GLOBALS=with-passwords")
        XCTAssertTrue(try TestSupport.engine(repo, [PgDumpTarget(name: "db", server: server(pg), databases: [db])])
            .verify(TestSupport.engine(repo, []).repository.completeSets())[0].ok)

        // A second, empty server: the roles do not exist there.
        let fresh = try PostgresCluster()
        defer { fresh.destroy() }
        let onFresh = TestSupport.engine(repo, [PgDumpTarget(name: "db", server: server(fresh), databases: [db])])
        let plan = try onFresh.restore(target: "db", id: "latest", options: RestoreOptions(dryRun: true))
        XCTAssertTrue(plan.lines.contains { $0.contains("roles in the backup that this server lacks") && $0.contains(owner) && $0.contains(reader) }, "\(plan.lines)")
        XCTAssertEqual(try fresh.psql("SELECT count(*) FROM pg_roles WHERE rolname = '\(owner)'"), "0", "a dry run creates nothing")

        let report = try onFresh.restore(target: "db", id: "latest", options: RestoreOptions())
        let text = report.lines.joined(separator: "\n")
        XCTAssertTrue(text.contains("created role \(owner) without a password"), text)
        XCTAssertTrue(text.contains("created role \(reader)\n"), text)
        XCTAssertTrue(text.contains("membership: GRANT \"\(reader)\" TO \(owner)"), text)
        XCTAssertLessThan(text.range(of: "created role \(owner)")!.lowerBound, text.range(of: "restored \(db)")!.lowerBound, "roles first")
        XCTAssertEqual(try fresh.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '\(db)'"), owner)
        XCTAssertEqual(try fresh.psql("SELECT count(*) FROM items", database: db), "50")
        XCTAssertEqual(try fresh.psql("SELECT has_table_privilege('\(reader)', 'items', 'SELECT')", database: db), "t", "grants to the created role came back")
        XCTAssertEqual(try fresh.psql("SELECT pg_has_role('\(owner)', '\(reader)', 'MEMBER')"), "t")
        XCTAssertEqual(try fresh.psql("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = '\(owner)'"), "t")
        XCTAssertEqual(try fresh.psql("SELECT array_to_string(rolconfig, ',') FROM pg_roles WHERE rolname = '\(owner)'"), "work_mem=8MB")

        // Onto a server that has the roles: nothing to create, and the plan says nothing about roles.
        let again = try onFresh.restore(target: "db", id: "latest", options: RestoreOptions(dryRun: true))
        XCTAssertFalse(again.lines.contains { $0.contains("roles in the backup") }, "\(again.lines)")

        // With passwords: the hash comes along.
        let repo2 = dir + "/repo2"
        let withPasswords = PgDumpTarget(name: "db", server: server(pg), databases: [db], globals: .withPasswords)
        XCTAssertTrue(try TestSupport.engine(repo2, [withPasswords]).backup().succeeded)
        try fresh.psql("DROP DATABASE \(db) WITH (FORCE)")
        try fresh.psql("DROP ROLE \(owner); DROP ROLE \"\(reader)\"")
        let second = try TestSupport.engine(repo2, [PgDumpTarget(name: "db", server: server(fresh), databases: [db])])
            .restore(target: "db", id: "latest", options: RestoreOptions())
        XCTAssertTrue(second.lines.contains("created role \(owner) with its password from the backup"), "\(second.lines)")
        let hash = "SELECT rolpassword FROM pg_authid WHERE rolname = '\(owner)'"
        XCTAssertEqual(try fresh.psql(hash), try pg.psql(hash))
        XCTAssertTrue(try fresh.psql(hash).hasPrefix("SCRAM-SHA-256"))
    }

    func testRolesThatCannotBeKeptAreAWarningNotAFailedBackup() throws {
        // The database's owner may dump it, but not read password hashes.
        let tag = owner.dropFirst("app_owner_".count)
        let asOwner = PostgresServer(host: "127.0.0.1", port: pg.port, user: owner, password: "S3cret-\(tag)")
        let run = try TestSupport.engine(dir + "/repo", [PgDumpTarget(name: "db", server: asOwner, databases: [db], globals: .withPasswords)]).backup()
        XCTAssertTrue(run.succeeded, "\(run.targets.map { $0.error ?? "" })")
        XCTAssertEqual(run.targets[0].artifacts.map(\.path), ["db/\(db).dump"])
        XCTAssertTrue(run.targets[0].warnings.contains { $0.contains("roles were not kept") && $0.contains("needs a superuser") }, "\(run.targets[0].warnings)")
        XCTAssertFalse(FileOps.exists(run.directory! + "/db/globals.sql.gz"), "no partial file is left")
        // Without passwords, the same role can keep them.
        let plain = try TestSupport.engine(dir + "/repo2", [PgDumpTarget(name: "db", server: asOwner, databases: [db])]).backup()
        XCTAssertEqual(plain.targets[0].artifacts.map(\.path), ["db/\(db).dump", "db/globals.sql.gz"], "\(plain.targets[0].warnings)")
    }

    func testGlobalsParsingTakesOnlyOneStatementLinesOfKnownShapes() {
        let text = """
        CREATE ROLE plain;
        ALTER ROLE plain WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:a;b$c:d';
        CREATE ROLE "We""ird; Name";
        ALTER ROLE "We""ird; Name" SET search_path TO 'x';
        ALTER ROLE plain WITH LOGIN; DROP DATABASE important;
        ALTER ROLE unknown WITH LOGIN;
        GRANT "We""ird; Name" TO plain GRANTED BY postgres;
        CREATE TABLESPACE t OWNER plain LOCATION '/x';
        """
        let (roles, grants) = PgDumpTarget.parseGlobals(text)
        XCTAssertEqual(roles.map(\.name), ["plain", "We\"ird; Name"])
        XCTAssertEqual(roles[0].statements.count, 2, "the two-statement line is left out: \(roles[0].statements)")
        XCTAssertEqual(roles[1].statements, ["CREATE ROLE \"We\"\"ird; Name\";", "ALTER ROLE \"We\"\"ird; Name\" SET search_path TO 'x';"])
        XCTAssertEqual(grants.map(\.role), ["We\"ird; Name"])
        XCTAssertEqual(grants.map(\.member), ["plain"])
    }
}
