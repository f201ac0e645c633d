import BackupCore
import Foundation
import TestSupport
import XCTest

/// schedgen-backup as seed 004 describes backup-all.sh, end to end: a real PostgreSQL 15, a
/// generated MinIO data folder, loopback webhook and SMTP listeners, promtool; the flat names
/// as links; a cutover from a flat ./backups folder the old script wrote.
final class SchedgenTests: XCTestCase {
    var dir = ""
    var config = ""
    var cluster: PostgresCluster!
    var backups: String { dir + "/backups" }

    override func setUpWithError() throws {
        cluster = try PostgresCluster.shared()
        try cluster.createDatabase("schedgen")
        try cluster.psql("CREATE TABLE timetables (id serial PRIMARY KEY, module text, slot text); "
                         + "INSERT INTO timetables (module, slot) SELECT 'COS' || g, 'Mon ' || (g % 10) FROM generate_series(1, 300) g",
                         database: "schedgen")
        dir = try TestSupport.scratch("schedgen")
        // A MinIO data folder as MinIO (xl format) lays it out: objects are folders with xl.meta.
        try TestSupport.write(#"{"version":"1","format":"xl-single"}"#, to: dir + "/minio-data/.minio.sys/format.json")
        try TestSupport.writeRandom(4096, to: dir + "/minio-data/schedgen-pdfs/timetable-1.pdf/xl.meta")
        try TestSupport.writeRandom(2048, to: dir + "/minio-data/schedgen-pdfs/timetable-2.pdf/xl.meta", seed: 7)
        try FileManager.default.createDirectory(atPath: dir + "/metrics", withIntermediateDirectories: true)   // the textfile collector's
        config = dir + "/.env"
        try writeConfig("")
    }

    override func tearDown() {
        _ = try? cluster?.psql("DROP DATABASE IF EXISTS schedgen WITH (FORCE)")
        try? FileOps.removeTree(dir)
    }

    /// The seed's .env keys, as the old script read them, plus `extra`.
    func writeConfig(_ extra: String) throws {
        try TestSupport.write("""
        POSTGRES_HOST=127.0.0.1
        POSTGRES_PORT=\(cluster.port)
        POSTGRES_USER=postgres
        POSTGRES_PASSWORD=\(PostgresCluster.password)
        POSTGRES_DB=schedgen
        MINIO_DATA_DIR=minio-data
        MINIO_STOP_CMD=echo stop >> \(dir)/hooks.log
        MINIO_START_CMD=echo start >> \(dir)/hooks.log
        BACKEND_STOP_CMD=echo backend-stop >> \(dir)/restore-hooks.log
        BACKEND_START_CMD=echo backend-start >> \(dir)/restore-hooks.log
        METRICS_FILE=metrics/schedgen.prom
        TZ=UTC
        \(extra)
        """, to: config, mode: 0o600)
    }

    func schedgen(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("schedgen-backup", args + ["--config", config])
    }

    func newestSet() throws -> String {
        let sets = try FileManager.default.contentsOfDirectory(atPath: backups + "/daily").filter { Repository.isSetID($0) }.sorted()
        return try XCTUnwrap(sets.last)
    }

    func linkDestination(_ name: String) -> String? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: backups + "/" + name))
    }

    /// The default run (no subcommand): both artifacts under the seed's names, the hooks around
    /// the copy, the links, the metrics; then a too-small dump fails the run, alerts by webhook
    /// and e-mail, and leaves the good backup and its links alone.
    func testRunChecksLinksMetricsAndAlerts() throws {
        let hook = try LoopbackServer.http()
        let smtp = try LoopbackServer.smtp()
        try writeConfig("""
        BACKUP_ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/services/T000/B000/abcdefghijklmnop
        BACKUP_ALERT_EMAIL=ops@example.com
        SMTP_URL=smtp://127.0.0.1:\(smtp.port)
        ALERT_EMAIL_FROM=backup@example.com
        """)
        let run = try schedgen([])
        XCTAssertEqual(run.status, 0, run.stderr)
        let id = try newestSet()
        let dump = "daily/\(id)/db/db_schedgen_\(id).sql.gz", tarball = "daily/\(id)/minio/minio_schedgen-pdfs_\(id).tar.gz"
        XCTAssertTrue(FileOps.exists(backups + "/" + dump), dump)
        XCTAssertTrue(FileOps.exists(backups + "/" + tarball), tarball)
        XCTAssertGreaterThan(FileOps.size(backups + "/" + dump) ?? 0, 1024)
        XCTAssertEqual(linkDestination("db_schedgen_\(id).sql.gz"), dump)
        XCTAssertEqual(linkDestination("minio_schedgen-pdfs_\(id).tar.gz"), tarball)
        // The seed's own checks through the flat names: gunzip -t and tar -tzf.
        XCTAssertEqual(try TestSupport.runProgram("gzip", ["-t", backups + "/db_schedgen_\(id).sql.gz"]).status, 0)
        let listing = try TestSupport.runProgram("tar", ["-tzf", backups + "/minio_schedgen-pdfs_\(id).tar.gz"])
        XCTAssertEqual(listing.status, 0, listing.stderr)
        XCTAssertTrue(listing.stdout.contains("schedgen-pdfs/timetable-1.pdf/xl.meta") && listing.stdout.contains(".minio.sys/format.json"), listing.stdout)
        XCTAssertEqual(String(decoding: try TestSupport.read(dir + "/hooks.log"), as: UTF8.self), "stop\nstart\n")
        XCTAssertFalse(FileOps.exists(dir + "/restore-hooks.log"), "the backend keeps running during a backup")
        let text = String(decoding: try TestSupport.read(dir + "/metrics/schedgen.prom"), as: UTF8.self)
        let check = try TestSupport.runProgram("promtool", ["check", "metrics"], stdin: Data(text.utf8))
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr + text)
        XCTAssertTrue(text.contains(#"backstop_last_run_success{deployment="schedgen-backup",target="db"} 1"#), text)
        XCTAssertTrue(text.contains(#"backstop_last_run_success{deployment="schedgen-backup",target="minio"} 1"#), text)
        XCTAssertEqual(hook.requests(timeout: 0.5).count, 0, "a good run sends no alert")

        // An (almost) empty database dumps to less than the seed's 1 KB: the run fails.
        try cluster.psql("DROP TABLE timetables", database: "schedgen")
        let small = try schedgen(["backup", "--prune"])
        XCTAssertEqual(small.status, 1, small.stderr)
        XCTAssertTrue((small.stdout + small.stderr).contains("MIN_BYTES=1025"), small.stdout + small.stderr)
        let webhook = try XCTUnwrap(hook.requests().first)
        XCTAssertTrue(webhook.hasPrefix("POST /services/T000/B000/abcdefghijklmnop"), webhook)
        XCTAssertTrue(webhook.contains("db") && webhook.contains("1025"), webhook)
        let mail = try XCTUnwrap(smtp.requests().first)
        XCTAssertTrue(mail.contains("RCPT TO:<ops@example.com>"), mail)
        XCTAssertTrue(mail.contains("1025"), mail)
        let failed = String(decoding: try TestSupport.read(dir + "/metrics/schedgen.prom"), as: UTF8.self)
        XCTAssertTrue(failed.contains(#"backstop_last_run_success{deployment="schedgen-backup",target="db"} 0"#), failed)
        XCTAssertEqual(try TestSupport.runProgram("promtool", ["check", "metrics"], stdin: Data(failed.utf8)).status, 0)
        // The good set and its links stay.
        XCTAssertEqual(linkDestination("db_schedgen_\(id).sql.gz"), dump)
        XCTAssertTrue(FileOps.exists(backups + "/" + dump))
    }

    /// A seed key renamed in Backstop is read; two names for one setting that disagree are refused.
    func testSeedKeysAreMappedOrRefused() throws {
        try writeConfig("BACKUP_RETENTION_DAYS=3\nRETENTION_DAYS=5")
        let both = try schedgen(["check"])
        XCTAssertEqual(both.status, 2, both.stderr)
        XCTAssertTrue(both.stderr.contains("BACKUP_RETENTION_DAYS") && both.stderr.contains("RETENTION_DAYS replaces it"), both.stderr)
        try writeConfig("BACKUP_RETENTION_DAYS=3\nMINIO_ROOT_PASSWORD=minio-secret-pw")
        let dry = try schedgen(["prune", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("3"), dry.stdout)
        XCTAssertTrue(dry.stderr.contains("MINIO_ROOT_PASSWORD is not used") && dry.stderr.contains("MINIO_DATA_DIR"), dry.stderr)
        XCTAssertFalse(dry.stderr.contains("minio-secret-pw"))
    }

    /// The UTC timestamp `days` ago as the old script wrote it.
    func stamp(daysAgo days: Double) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd_HHmmss"
        return f.string(from: Date().addingTimeInterval(-days * 86_400))
    }

    /// What backup-all.sh did: `pg_dump | gzip` and `tar czf` of the volume, into ./backups/.
    func writeLegacy(_ ts: String) throws {
        try FileManager.default.createDirectory(atPath: backups, withIntermediateDirectories: true)
        try PostgresCluster.sh("PGPASSWORD='\(PostgresCluster.password)' \(PostgresCluster.bin)/pg_dump -h 127.0.0.1 -p \(cluster.port) -U postgres schedgen | gzip > \(backups)/db_schedgen_\(ts).sql.gz")
        try PostgresCluster.sh("tar czf \(backups)/minio_schedgen-pdfs_\(ts).tar.gz -C \(dir)/minio-data .")
    }

    func rows() throws -> Int { Int(try cluster.psql("SELECT count(*) FROM timetables", database: "schedgen")) ?? -1 }

    /// Cutover: the old script's files are listed, verified, restored and pruned by the 7-day
    /// rule in place; then Backstop's own backups restore both ways, and retention takes the
    /// links of the sets it removes (never a link it did not make, never following one).
    func testCutoverRestoresAndRetention() throws {
        let old = stamp(daysAgo: 10), recent = stamp(daysAgo: 2)
        try writeLegacy(old)
        try cluster.psql("INSERT INTO timetables (module, slot) VALUES ('COS 301', 'Tue 2')", database: "schedgen")
        try writeLegacy(recent)   // 301 rows
        let recentDump = try TestSupport.read(backups + "/db_schedgen_\(recent).sql.gz")

        let list = try schedgen(["legacy", "list"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertEqual(list.stdout.split(separator: "\n").map { String($0.prefix(22)) }, ["legacy/\(recent)", "legacy/\(old)"], list.stdout)
        XCTAssertTrue(list.stdout.contains("db: db_schedgen_\(recent).sql.gz") && list.stdout.contains("minio: minio_schedgen-pdfs_\(recent).tar.gz"), list.stdout)
        let verify = try schedgen(["legacy", "verify"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        XCTAssertEqual(verify.stdout.split(separator: "\n").filter { $0.hasPrefix("ok") }.count, 2, verify.stdout)

        // A truncated dump fails the gzip read.
        let broken = stamp(daysAgo: 1)
        let whole = try TestSupport.read(backups + "/db_schedgen_\(recent).sql.gz")
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: backups + "/db_schedgen_\(broken).sql.gz"))
        let bad = try schedgen(["legacy", "verify", broken])
        XCTAssertEqual(bad.status, 1, bad.stdout)
        XCTAssertTrue(bad.stdout.contains("FAIL") && bad.stdout.contains("db_schedgen_\(broken).sql.gz"), bad.stdout)
        let refused = try schedgen(["legacy", "restore", "db", broken, "--yes"])
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("failed verification, not restoring"), refused.stderr)
        XCTAssertEqual(try rows(), 301, "nothing was touched")
        unlink(backups + "/db_schedgen_\(broken).sql.gz")

        // The database from the legacy dump (gunzip | psql), with a safety dump first.
        try cluster.psql("DELETE FROM timetables WHERE id > 100", database: "schedgen")
        let restoredDB = try schedgen(["legacy", "restore", "db", recent, "--yes"])
        XCTAssertEqual(restoredDB.status, 0, restoredDB.stderr)
        XCTAssertEqual(try rows(), 301)
        XCTAssertTrue(restoredDB.stdout.contains("safety copy"), restoredDB.stdout)
        let safety = try FileManager.default.contentsOfDirectory(atPath: backups + "/pre-restore")
        XCTAssertTrue(safety.contains { $0.hasPrefix("db-") && $0.hasSuffix("-schedgen.dump") }, "\(safety)")
        // MinIO from the legacy tarball, through the safe archive restore.
        try FileOps.removeTree(dir + "/minio-data/schedgen-pdfs/timetable-2.pdf")
        let restoredMinio = try schedgen(["legacy", "restore", "minio", recent, "--yes"])
        XCTAssertEqual(restoredMinio.status, 0, restoredMinio.stderr)
        XCTAssertEqual(FileOps.size(dir + "/minio-data/schedgen-pdfs/timetable-2.pdf/xl.meta"), 2048)

        // A link nobody here made, pointing out of the backup folder, under a seed name.
        try TestSupport.write("keep me", to: dir + "/outside.sql.gz")
        XCTAssertEqual(symlink(dir + "/outside.sql.gz", backups + "/db_schedgen_20200101_000000.sql.gz"), 0)

        // The first run of Backstop prunes by the 7-day rule: the 10-day-old legacy set goes,
        // the 2-day-old one stays, byte for byte.
        let first = try schedgen([])
        XCTAssertEqual(first.status, 0, first.stderr)
        let firstID = try newestSet()
        XCTAssertFalse(FileOps.exists(backups + "/db_schedgen_\(old).sql.gz"))
        XCTAssertFalse(FileOps.exists(backups + "/minio_schedgen-pdfs_\(old).tar.gz"))
        XCTAssertEqual(try TestSupport.read(backups + "/db_schedgen_\(recent).sql.gz"), recentDump)
        XCTAssertNotNil(linkDestination("db_schedgen_\(firstID).sql.gz"))
        let after = try schedgen(["legacy", "list"])
        XCTAssertEqual(after.stdout.split(separator: "\n").count, 1, "links are not legacy files: \(after.stdout)")

        // Backstop's own restores: the database (safety dump, row counts) and the MinIO folder.
        try cluster.psql("DELETE FROM timetables", database: "schedgen")
        let db = try schedgen(["restore", "db", "--yes"])
        XCTAssertEqual(db.status, 0, db.stderr)
        XCTAssertEqual(try rows(), 301)
        XCTAssertTrue(db.stdout.contains("every count matches the manifest"), db.stdout)
        try TestSupport.writeRandom(100, to: dir + "/minio-data/schedgen-pdfs/timetable-1.pdf/xl.meta", seed: 99)
        let minio = try schedgen(["restore", "minio", "--yes"])
        XCTAssertEqual(minio.status, 0, minio.stderr)
        XCTAssertEqual(FileOps.size(dir + "/minio-data/schedgen-pdfs/timetable-1.pdf/xl.meta"), 4096)
        // Every restore (two legacy, two own) ran between the backend's stop and start commands.
        XCTAssertEqual(String(decoding: try TestSupport.read(dir + "/restore-hooks.log"), as: UTF8.self),
                       String(repeating: "backend-stop\nbackend-start\n", count: 4))

        // Eight days later that set is past the rule: the next run removes it and its links.
        try TestSupport.age(set: backups + "/daily/" + firstID, by: 8 * 86_400)
        sleep(1)   // a new set ID
        let second = try schedgen([])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertFalse(FileOps.exists(backups + "/daily/" + firstID))
        XCTAssertNil(linkDestination("db_schedgen_\(firstID).sql.gz"))
        XCTAssertNil(linkDestination("minio_schedgen-pdfs_\(firstID).tar.gz"))
        XCTAssertNotNil(linkDestination("db_schedgen_\(try newestSet()).sql.gz"))
        XCTAssertEqual(linkDestination("db_schedgen_20200101_000000.sql.gz"), dir + "/outside.sql.gz", "not ours: left alone")
        XCTAssertEqual(String(decoding: try TestSupport.read(dir + "/outside.sql.gz"), as: UTF8.self), "keep me")
        XCTAssertTrue(FileOps.exists(backups + "/db_schedgen_\(recent).sql.gz"), "still within 7 days")
    }
}
