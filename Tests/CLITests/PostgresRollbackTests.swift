import BackupCore
import Foundation
import TestSupport
import XCTest

/// The PostgreSQL kinds' rollbacks run for real against the test cluster: a restore that fails
/// after loading (the `BACKSTOP_FAULT` hook, or a dump whose rows differ from its manifest)
/// leaves the database as it was; a rollback that itself fails says so in capitals and names
/// the safety copy. Also: a state file being rewritten when the process dies stays intact.
final class PostgresRollbackTests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""
    var config = ""
    var db = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("pgrollback")
        db = "rb_\(UInt32.random(in: 0...UInt32.max))"
        try pg.createDatabase(db)
        try pg.psql("CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) SELECT md5(g::text) FROM generate_series(1, 1000) g", database: db)
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db
        TARGET_DB_KIND=pg_dump
        TARGET_DB_HOST=127.0.0.1
        TARGET_DB_PORT=\(pg.port)
        TARGET_DB_USER=postgres
        TARGET_DB_PASSWORD=\(PostgresCluster.password)
        TARGET_DB_DATABASE=\(db)
        """, to: config, mode: 0o600)
    }

    override func tearDown() {
        _ = try? pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)")
        try? FileOps.removeTree(dir)
    }

    func backstop(_ args: [String], fault: String? = nil) throws -> TestSupport.Run {
        if let fault { return try FaultSupport.run("backstop", args + ["--config", config], fault: fault) }
        return try TestSupport.run("backstop", args + ["--config", config])
    }

    /// The table's row count and a hash of its contents.
    func state() throws -> String {
        try pg.psql("SELECT count(*) || ' ' || md5(coalesce(string_agg(id || ':' || body, ',' ORDER BY id), '')) FROM notes", database: db)
    }

    /// Backs up, then changes the live database; returns its state now.
    func backupThenDrift() throws -> String {
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        try pg.psql("DELETE FROM notes WHERE id > 600; INSERT INTO notes (body) VALUES ('written after the backup')", database: db)
        return try state()
    }

    func safetyDumps() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/pre-restore").map { dir + "/backups/pre-restore/" + $0 }
    }

    func testPgDumpRestoreFailingAfterTheLoadRollsBack() throws {
        let before = try backupThenDrift()
        let run = try backstop(["restore", "db", "--yes"], fault: "restore-pg-dump")
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("rolled back"), run.stderr)
        XCTAssertFalse(run.stderr.contains("ROLLBACK FAILED"), run.stderr)
        XCTAssertEqual(try state(), before, "the database is as it was before the restore")
        let good = try backstop(["restore", "db", "--yes"])
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertEqual(try pg.psql("SELECT count(*) FROM notes", database: db), "1000")
    }

    func testPgDumpRollbackThatFailsSaysSoAndNamesTheSafetyDump() throws {
        _ = try backupThenDrift()
        let run = try backstop(["restore", "db", "--yes"], fault: "restore-pg-dump,rollback")
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("ROLLBACK FAILED"), run.stderr)
        let dumps = try safetyDumps()
        XCTAssertEqual(dumps.count, 1, "\(dumps)")
        let dump = try XCTUnwrap(dumps.first)
        XCTAssertTrue(run.stderr.contains(dump), "names the safety dump \(dump): \(run.stderr)")
        XCTAssertGreaterThan(FileOps.size(dump) ?? 0, 0)
    }

    /// A dump that loads without error but holds other rows than its manifest records (here:
    /// a valid dump of fewer rows, with its checksum fixed up so that only the row counts can
    /// tell) must not count as restored: the restore fails and the database is put back.
    func testRowCountMismatchFailsTheRestoreAndRollsBack() throws {
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let daily = dir + "/backups/daily"
        let set = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: daily).first)
        let artifact = "\(daily)/\(set)/db/\(db).dump"
        XCTAssertTrue(FileOps.exists(artifact), artifact)
        try pg.psql("DELETE FROM notes WHERE id > 10", database: db)
        unlink(artifact)
        let (dumped, _) = try ChildProcess(PostgresCluster.bin + "/pg_dump",
                                           ["-Fc", "-h", "127.0.0.1", "-p", "\(pg.port)", "-U", "postgres", "-f", artifact, db],
                                           environment: ["PGPASSWORD": PostgresCluster.password]).capture()
        XCTAssertEqual(dumped.status, 0)
        let reader = try HashingFileReader(path: artifact)
        try reader.drain()
        let sha = reader.hexDigest()
        let manifestPath = "\(daily)/\(set)/manifest.json"
        var manifest = try BackstopJSON.decoder().decode(SetManifest.self, from: try TestSupport.read(manifestPath))
        var record = try XCTUnwrap(manifest.targets.first)
        var stored = try XCTUnwrap(record.artifacts.first)
        stored.sha256 = sha
        stored.bytes = try XCTUnwrap(FileOps.size(artifact))
        record.artifacts = [stored]
        manifest.targets = [record]
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(manifest), to: manifestPath)
        try TestSupport.write("\(sha)  \(db).dump\n", to: artifact + ".sha256")

        try pg.psql("INSERT INTO notes (body) VALUES ('written after the backup')", database: db)
        let before = try state()
        let run = try backstop(["restore", "db", "--yes"])
        XCTAssertEqual(run.status, 1, run.stdout + run.stderr)
        XCTAssertTrue(run.stderr.contains("row counts differ from the manifest"), run.stderr)
        XCTAssertTrue(run.stderr.contains("public.notes: 10 rows, manifest says 1000"), run.stderr)
        XCTAssertTrue(run.stderr.contains("rolled back"), run.stderr)
        XCTAssertEqual(try state(), before, "the database is as it was before the restore")
    }

    /// drills.json is rewritten after every drill; a kill halfway through writing it keeps the
    /// old file whole.
    func testKillWhileWritingDrillsJsonKeepsTheOldFile() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let drill = try backstop(["verify", "--restore-test"])
        XCTAssertEqual(drill.status, 0, drill.stdout + drill.stderr)
        let path = dir + "/backups/state/drills.json"
        let before = try TestSupport.read(path)
        let killed = try backstop(["verify", "--restore-test"], fault: "write-drills.json:kill")
        XCTAssertEqual(killed.status, 137, killed.stderr)
        XCTAssertEqual(try TestSupport.read(path), before, "the old drills.json is intact")
        let again = try backstop(["verify", "--restore-test"])
        XCTAssertEqual(again.status, 0, again.stdout + again.stderr)
        let history = try XCTUnwrap(try JSONSerialization.jsonObject(with: TestSupport.read(path)) as? [Any])
        XCTAssertEqual(history.count, 2)
    }

    // MARK: base backups

    func writeClusterConfig() throws {
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=cluster
        TARGET_CLUSTER_KIND=pg_basebackup
        TARGET_CLUSTER_HOST=127.0.0.1
        TARGET_CLUSTER_PORT=\(pg.port)
        TARGET_CLUSTER_USER=postgres
        TARGET_CLUSTER_PASSWORD=\(PostgresCluster.password)
        TARGET_CLUSTER_WAL_ARCHIVE=\(pg.archiveDirectory)
        """, to: config, mode: 0o600)
    }

    func testBaseBackupRestoreFailingPutsTheOldDirectoryBackAndAFailedRollbackSaysSo() throws {
        try writeClusterConfig()
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let occupied = dir + "/data"
        try TestSupport.write("keep me\n", to: occupied + "/PG_VERSION")
        try TestSupport.write("old\n", to: occupied + "/base/1/1234")
        let before = try TestSupport.snapshot(occupied)

        let run = try backstop(["restore", "cluster", "--to", occupied, "--force", "--yes"], fault: "restore-pg-basebackup")
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("rolled back"), run.stderr)
        XCTAssertEqual(try TestSupport.snapshot(occupied), before, "the old data directory is back")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("pre-restore") }, [])

        let failed = try backstop(["restore", "cluster", "--to", occupied, "--force", "--yes"], fault: "restore-pg-basebackup,rollback")
        XCTAssertEqual(failed.status, 1, failed.stderr)
        XCTAssertTrue(failed.stderr.contains("ROLLBACK FAILED"), failed.stderr)
        let aside = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasPrefix("data.pre-restore-") })
        XCTAssertTrue(failed.stderr.contains(dir + "/" + aside), "names where the old directory is: \(failed.stderr)")
        XCTAssertEqual(try TestSupport.snapshot(dir + "/" + aside), before, "the old directory is whole where the message says")
    }
}
