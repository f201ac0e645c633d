import BackupCore
import Foundation
@testable import Targets
import TestSupport
import XCTest

/// The base-backup restore drill against a real PostgreSQL 15: a throwaway server recovers the
/// backup to where the row counts were taken, and every table's count is compared.
final class PgBaseBackupDrillTests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""
    var db = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("pgbasedrill")
        db = "drill_\(UInt32.random(in: 0...UInt32.max))"
        try pg.createDatabase(db)
        try pg.psql("""
            CREATE TABLE items (id int PRIMARY KEY, name text);
            CREATE SCHEMA "Odd Schema";
            CREATE TABLE "Odd Schema"."Big Table" (n bigint);
            CREATE UNLOGGED TABLE scratchpad (x int);
            INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 700) g;
            INSERT INTO "Odd Schema"."Big Table" SELECT g FROM generate_series(1, 5000) g;
            INSERT INTO scratchpad VALUES (1), (2);
            """, database: db)
    }

    override func tearDown() {
        _ = try? pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)")
        try? FileOps.removeTree(dir)
    }

    func target(_ name: String = "cluster", walArchive: Bool = true) -> PgBaseBackupTarget {
        PgBaseBackupTarget(name: name, server: PostgresServer(host: "127.0.0.1", port: pg.port, user: "postgres", password: PostgresCluster.password),
                           walArchive: walArchive ? pg.archiveDirectory : nil, workers: 2)
    }

    /// Writes some WAL, switches segments and waits until the switched one is archived, so the
    /// point where the counts were taken is in the archive.
    func archiveCurrentWal() throws {
        try pg.psql("CREATE TABLE IF NOT EXISTS wal_filler (x int); INSERT INTO wal_filler VALUES (1)")
        let segment = try pg.psql("SELECT pg_walfile_name(pg_switch_wal())")
        XCTAssertTrue(TestSupport.waitFor(30) { FileOps.exists(self.pg.archiveDirectory + "/" + segment) }, "segment \(segment) never archived")
    }

    func leftovers(_ name: String) -> [String] {
        let tmp = ((try? FileManager.default.contentsOfDirectory(atPath: "/var/tmp")) ?? []).filter { $0.hasPrefix("backstop-drill-\(name).") }
        return tmp
    }

    func testDrillRecoversToTheCountsAndComparesEveryTable() throws {
        let name = "cl\(UInt16.random(in: 0...UInt16.max))"
        let engine = TestSupport.engine(dir + "/repo", [target(name)])
        let run = try engine.backup()
        XCTAssertTrue(run.succeeded, "\(run.targets.map { $0.error ?? "" })")
        let counts = try XCTUnwrap(run.targets[0].facts["rowCounts"]?.objectValue)
        XCTAssertEqual(counts["recorded"], .bool(true))
        XCTAssertEqual(counts["exact"], .bool(true), "the test cluster is quiet: \(counts)")
        let tables = try XCTUnwrap(counts["databases"]?.objectValue?[db]?.objectValue)
        XCTAssertEqual(tables["public.items"], .number(700))
        XCTAssertEqual(tables["Odd Schema.Big Table"], .number(5000))
        XCTAssertNil(tables["public.scratchpad"], "unlogged tables come back empty from recovery: not counted")
        XCTAssertTrue(run.targets[0].facts["databases"]?.arrayValue?.contains(.object(["name": .string(db), "rows": .number(5700)])) == true)

        // Changes after the counts were taken are in the archived WAL: recovery must stop before them.
        try pg.psql("DELETE FROM items WHERE id > 100", database: db)
        try archiveCurrentWal()
        let reports = try engine.drill()
        XCTAssertEqual(reports.count, 1)
        XCTAssertTrue(reports[0].passed, "\(reports[0].lines)")
        let text = reports[0].lines.joined(separator: "\n")
        XCTAssertTrue(text.contains("recovering to WAL position \(counts["lsn"]?.stringValue ?? "?")"), text)
        XCTAssertTrue(text.contains("every count matches the manifest"), text)
        XCTAssertGreaterThan(reports[0].restoreSeconds, 0)
        XCTAssertEqual(leftovers(name), [], "the scratch data directory is removed")
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM items", database: db), "100", "the live cluster is untouched")
        XCTAssertEqual(try pg.psql("SELECT setting FROM pg_settings WHERE name = 'archive_mode'"), "on")

        // The recorded counts edited consistently (the tarball is intact): the drill fails.
        let setDir = try XCTUnwrap(run.directory)
        let path = setDir + "/manifest.json"
        var manifest = try BackstopJSON.decoder().decode(SetManifest.self, from: try TestSupport.read(path))
        var edited = counts
        var dbs = try XCTUnwrap(edited["databases"]?.objectValue)
        var mine = tables
        mine["public.items"] = .number(699)
        dbs[db] = .object(mine)
        edited["databases"] = .object(dbs)
        manifest.targets[0].facts["rowCounts"] = .object(edited)
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(manifest), to: path)
        let failed = try engine.drill()
        XCTAssertFalse(failed[0].passed, "\(failed[0].lines)")
        XCTAssertTrue(failed[0].lines.joined(separator: "\n").contains("\(db): public.items: 700 rows, manifest says 699"), "\(failed[0].lines)")
        XCTAssertEqual(leftovers(name), [], "removed on failure too")

        // Counts marked as taken on a busy server are shown, not compared: the same edit passes.
        edited["exact"] = .bool(false)
        manifest.targets[0].facts["rowCounts"] = .object(edited)
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(manifest), to: path)
        let busy = try engine.drill()
        XCTAssertTrue(busy[0].passed, "\(busy[0].lines)")
        let busyText = busy[0].lines.joined(separator: "\n")
        XCTAssertTrue(busyText.contains("taken while the server was busy") && busyText.contains("recovering to the end of the backup"), busyText)
        XCTAssertTrue(busyText.contains("\(db): public.items: 700 rows, manifest says 699"), "the difference is shown: \(busyText)")

        // A flipped byte in the tarball: the extraction's checksum check fails the drill.
        manifest.targets[0].facts["rowCounts"] = .object(counts)
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(manifest), to: path)
        try TestSupport.flipByte(setDir + "/" + run.targets[0].artifacts[0].path, at: 3000, mask: 0x10)
        let corrupt = try engine.drill()
        XCTAssertFalse(corrupt[0].passed)
        XCTAssertEqual(engine.drillHistory().map(\.passed), [true, false, true, false])
        XCTAssertEqual(leftovers(name), [])
    }

    /// Without the WAL archive only the tarball's own WAL is at hand. Whether it reaches the point
    /// where the counts were taken depends on whether the server's background processes wrote
    /// WAL (a running-transactions record) in the moment between the backup's end and the
    /// counts, so both outcomes are checked for what each must do.
    func testWithoutTheWalArchiveOnlyTheTarballsWal() throws {
        let name = "cl\(UInt16.random(in: 0...UInt16.max))"
        let engine = TestSupport.engine(dir + "/repo", [target(name, walArchive: false)])
        let run = try engine.backup()
        XCTAssertTrue(run.succeeded, "\(run.targets.map { $0.error ?? "" })")
        try pg.psql("DELETE FROM items WHERE id > 100", database: db)
        try archiveCurrentWal()
        let reports = try engine.drill()
        XCTAssertTrue(reports[0].passed, "\(reports[0].lines)")
        let text = reports[0].lines.joined(separator: "\n")
        let lsn = run.targets[0].facts["rowCounts"]?.objectValue?["lsn"]?.stringValue ?? ""
        let startsItsSegment = lsn.hasSuffix("000028") && lsn.count >= 8
        if startsItsSegment {
            // Nothing before the counts in their segment: replaying the tarball's WAL reaches them exactly.
            XCTAssertTrue(text.contains("replaying as a standby up to"), text)
            XCTAssertTrue(text.contains("every count matches the manifest"), text)
        } else {
            XCTAssertTrue(text.contains("is not at hand (no WAL archive): recovering to the end of the backup"), text)
            XCTAssertTrue(text.contains("counts are shown, not compared"), text)
            XCTAssertTrue(text.contains("every table read in full"), text)
        }
        XCTAssertFalse(text.contains("items: 100 rows"), "the delete after the backup is never replayed: \(text)")
        XCTAssertEqual(leftovers(name), [])
    }
}
