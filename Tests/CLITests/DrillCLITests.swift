import BackupCore
import Foundation
import TestSupport
import XCTest

/// `verify --restore-test` and `stats` over a config with one target of every built-in kind.
final class DrillCLITests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""
    var config = ""
    var db = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("drillcli")
        db = "drillcli_\(UInt32.random(in: 0...UInt32.max))"
        try pg.createDatabase(db)
        try pg.psql("CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) SELECT md5(g::text) FROM generate_series(1, 300) g", database: db)
        let (made, _) = try ChildProcess("sqlite3", [dir + "/app.db", "CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);"]).capture()
        XCTAssertEqual(made.status, 0)
        try TestSupport.write("print('hi')\n", to: dir + "/src/main.py")
        try TestSupport.writeRandom(50_000, to: dir + "/media/photos/1.jpg")
        try TestSupport.writeRandom(4_000, to: dir + "/minio/pdfs/a.pdf/part.1", seed: 9)
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db code media objects pg cluster
        TARGET_DB_KIND=sqlite
        TARGET_DB_PATH=app.db
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=.
        TARGET_MEDIA_KIND=rsync
        TARGET_MEDIA_SOURCE=media
        TARGET_OBJECTS_KIND=minio
        TARGET_OBJECTS_DATA_DIR=minio
        TARGET_OBJECTS_BUCKET=pdfs
        TARGET_PG_KIND=pg_dump
        \(pg.targetKeys("TARGET_PG", database: db))
        TARGET_CLUSTER_KIND=pg_basebackup
        \(pg.targetKeys("TARGET_CLUSTER", database: "postgres"))
        TARGET_CLUSTER_WAL_ARCHIVE=\(pg.archiveDirectory)
        TARGET_CLUSTER_ROW_COUNTS=exact
        """, to: config, mode: 0o600)
    }

    override func tearDown() {
        _ = try? pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)")
        try? FileOps.removeTree(dir)
    }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    func testEveryKindIsDrilledAndStatsShowsEachDrill() throws {
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let before = try backstop(["stats"])
        XCTAssertEqual(before.stdout.components(separatedBy: "last restore drill: never").count - 1, 6, before.stdout)
        // So that the base backup's drill can recover to where its row counts were taken.
        let segment = try pg.psql("SELECT pg_walfile_name(pg_switch_wal())")
        XCTAssertTrue(TestSupport.waitFor(30) { FileOps.exists(self.pg.archiveDirectory + "/" + segment) })

        let drill = try backstop(["verify", "--restore-test"])
        XCTAssertEqual(drill.status, 0, drill.stdout + drill.stderr)
        for target in ["db", "code", "media", "objects", "pg", "cluster"] {
            XCTAssertTrue(drill.stdout.contains("PASS  restore drill of \(target) from "), "\(target): \(drill.stdout)")
        }
        XCTAssertFalse(drill.stdout.contains("FAIL"), drill.stdout)
        XCTAssertFalse(drill.stderr.contains("no restore drill"), drill.stderr)

        let stats = try backstop(["stats"])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        for (target, kind) in [("db", "sqlite"), ("code", "archive"), ("media", "rsync"), ("objects", "minio"), ("pg", "pg_dump"), ("cluster", "pg_basebackup")] {
            let section = stats.stdout.components(separatedBy: "target \(target) (\(kind))").dropFirst().first ?? ""
            let next = section.components(separatedBy: "\ntarget ").first ?? ""
            XCTAssertTrue(next.contains("last restore drill: passed"), "\(target): \(stats.stdout)")
        }
        let json = try backstop(["stats", "--json"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let targets = parsed?["targets"] as? [[String: Any]] ?? []
        XCTAssertEqual(targets.filter { ($0["lastDrill"] as? [String: Any])?["passed"] as? Bool == true }.count, 6, json.stdout)

        // A drill that fails shows in stats with its reason, and verify exits 1.
        let list = try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/daily")
        let snapshot = dir + "/backups/daily/\(list.first { !$0.hasPrefix(".") }!)/media/tree/photos/1.jpg"
        try TestSupport.flipByte(snapshot, at: 10)
        let failed = try backstop(["verify", "--restore-test", "--only", "media"])
        XCTAssertEqual(failed.status, 1, failed.stdout + failed.stderr)
        XCTAssertTrue(failed.stdout.contains("FAIL  restore drill of media"), failed.stdout)
        let after = try backstop(["stats"])
        XCTAssertTrue(after.stdout.contains("last restore drill: FAILED"), after.stdout)
        XCTAssertTrue(after.stdout.contains("photos/1.jpg: SHA-256"), after.stdout)
    }
}
