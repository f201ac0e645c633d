import BackupCore
import Foundation
import TestSupport
import XCTest

/// `health` and `check --health`: exit codes in the Monitoring Plugins convention, the
/// one-line summary with perfdata, and the CEP document's status JSON, for real backups.
final class HealthTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("health")
        try TestSupport.writeRandom(200_000, to: dir + "/src/data.bin")
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func config(_ extra: String = "", paths: String = "src") throws -> String {
        let path = dir + "/b.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=files
        TARGET_FILES_KIND=archive
        TARGET_FILES_PATHS=\(paths)
        TARGET_FILES_COMPRESSION=none
        DISK_USAGE_WARN=100
        DISK_USAGE_CRITICAL=100
        \(extra)
        """, to: path, mode: 0o600)
        return path
    }

    func backup(_ cfg: String) throws {
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
    }

    func health(_ cfg: String, _ extra: [String] = []) throws -> (TestSupport.Run, [String: Any]) {
        let run = try TestSupport.run("backstop", ["health", "--json", "--config", cfg] + extra)
        let json = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] ?? [:]
        return (run, json)
    }

    var newestSet: String {
        let daily = dir + "/backups/daily"
        let ids = ((try? FileManager.default.contentsOfDirectory(atPath: daily)) ?? []).filter { Repository.isSetID($0) }.sorted()
        return daily + "/" + (ids.last ?? "none")
    }

    func testFreshBackupIsOKWithSummaryPerfdataAndStatusJSON() throws {
        let cfg = try config("TARGET_FILES_MAX_AGE=26h")
        try backup(cfg)
        let text = try TestSupport.run("backstop", ["health", "--config", cfg, "--status-file", dir + "/status.json"])
        XCTAssertEqual(text.status, 0, text.stdout + text.stderr)
        let first = text.stdout.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertTrue(first.hasPrefix("BACKSTOP OK - 1 target healthy"), first)
        XCTAssertNotNil(first.range(of: #"\| age_files=[0-9]+s;93600;187200;0 size_files=[0-9]+B;;;0 disk_used="#, options: .regularExpression), first)
        XCTAssertTrue(text.stdout.contains("files       OK"), text.stdout)

        let status = try JSONSerialization.jsonObject(with: TestSupport.read(dir + "/status.json")) as? [String: Any] ?? [:]
        XCTAssertEqual(status["overall_status"] as? String, "OK")
        XCTAssertEqual(status["critical_issues"] as? Int, 0)
        XCTAssertEqual(status["warnings"] as? Int, 0)
        XCTAssertEqual(status["checks"] as? [String: String], ["files": "OK", "disk_space": "OK"])
        XCTAssertNotNil(Format.parseISO8601(status["timestamp"] as? String ?? ""))
        let target = try XCTUnwrap((status["targets"] as? [[String: Any]])?.first)
        XCTAssertNotNil(Format.parseISO8601(target["last_success"] as? String ?? ""))
        XCTAssertEqual(target["max_age_seconds"] as? Int, 93600)

        // check --health is the same check.
        let check = try TestSupport.run("backstop", ["check", "--health", "--config", cfg, "--status-file", dir + "/check.json"])
        XCTAssertEqual(check.status, 0, check.stdout)
        XCTAssertTrue(check.stdout.hasPrefix("BACKSTOP OK"), check.stdout)
        XCTAssertTrue(FileOps.exists(dir + "/check.json"))
    }

    func testStaleBackupIsWarningThenCritical() throws {
        let cfg = try config("MAX_AGE=26h")
        try backup(cfg)
        try TestSupport.age(set: newestSet, by: 30 * 3600)
        var (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 1, run.stdout)
        XCTAssertEqual(json["overall_status"] as? String, "WARNING")
        XCTAssertEqual(json["warnings"] as? Int, 1)
        XCTAssertEqual((json["checks"] as? [String: String])?["files"], "WARNING")
        XCTAssertTrue(run.stdout.contains("30.0 h old (max 26h)"), run.stdout)

        try TestSupport.age(set: newestSet, by: 30 * 3600)
        (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 2, run.stdout)
        XCTAssertEqual(json["overall_status"] as? String, "CRITICAL")
        XCTAssertEqual(json["critical_issues"] as? Int, 1)
        let plain = try TestSupport.run("backstop", ["health", "--config", cfg])
        XCTAssertTrue(plain.stdout.hasPrefix("BACKSTOP CRITICAL - files: last good backup"), plain.stdout)
    }

    func testShrunkAndTooSmallBackups() throws {
        let cfg = try config()
        try backup(cfg)
        try TestSupport.write("tiny\n", to: dir + "/src/data.bin")
        try backup(cfg)
        var (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 1, run.stdout)
        let issues = json["issues"] as? [[String: Any]] ?? []
        XCTAssertEqual(issues.map { $0["aspect"] as? String }, ["size"], "\(issues)")
        XCTAssertTrue((issues.first?["message"] as? String ?? "").contains("shrank by"), "\(issues)")

        _ = try config("MIN_SIZE=1M")
        (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 2, run.stdout)
        XCTAssertTrue(run.stdout.contains("below the minimum 1.0 MiB"), run.stdout)
    }

    func testCorruptedSidecarIsCriticalAndCorruptedArtifactNeedsVerify() throws {
        let cfg = try config()
        try backup(cfg)
        let artifact = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: newestSet + "/files").first { $0.hasSuffix(".tar") })
        let path = newestSet + "/files/" + artifact
        try TestSupport.flipByte(path, at: 5000)
        // A change a second after the backup ended (not within the file system's timestamp
        // granularity of the backup's end, which a fast machine can reach).
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 1)], ofItemAtPath: path)
        var (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 1, "the cheap check sees the artifact changed after the backup: \(run.stdout)")
        XCTAssertTrue(run.stdout.contains("modified after the backup ended"), run.stdout)
        (run, json) = try health(cfg, ["--verify"])
        XCTAssertEqual(run.status, 2, run.stdout)
        XCTAssertEqual(json["overall_status"] as? String, "CRITICAL")
        XCTAssertTrue(run.stdout.contains("checksum mismatch"), run.stdout)

        // The sidecar alone: the manifest and the .sha256 file disagree.
        try TestSupport.flipByte(path, at: 5000)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)], ofItemAtPath: path)
        (run, _) = try health(cfg)
        XCTAssertEqual(run.status, 0, run.stdout)
        try TestSupport.flipByte(path + ".sha256", at: 0, mask: 0x01)
        (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 2, run.stdout)
        XCTAssertTrue(run.stdout.contains(".sha256 does not match the manifest"), run.stdout)

        // The right checksum naming another file: `sha256sum -c` fails on it, so health does too
        // (the same parser as verify, not only the first 64 bytes).
        try TestSupport.flipByte(path + ".sha256", at: 0, mask: 0x01)
        (run, _) = try health(cfg)
        XCTAssertEqual(run.status, 0, run.stdout)
        let sidecar = String(decoding: try TestSupport.read(path + ".sha256"), as: UTF8.self)
        try TestSupport.write(sidecar.replacingOccurrences(of: artifact, with: "other.tar"), to: path + ".sha256", mode: 0o600)
        (run, _) = try health(cfg)
        XCTAssertEqual(run.status, 2, run.stdout)
        XCTAssertTrue(run.stdout.contains("not \(artifact)"), run.stdout)
    }

    func testRunWithWarningsExitsZeroButHealthWarns() throws {
        let cfg = try config(paths: "src missing-folder")
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg])
        XCTAssertEqual(run.status, 0, "warnings keep exit 0 for cron: \(run.stderr)")
        let (h, json) = try health(cfg)
        XCTAssertEqual(h.status, 1, h.stdout)
        let issue = try XCTUnwrap((json["issues"] as? [[String: Any]])?.first)
        XCTAssertEqual(issue["aspect"] as? String, "last_run")
        XCTAssertTrue((issue["message"] as? String ?? "").contains("missing-folder"), "\(issue)")
    }

    func testFailedRunAndNoBackupAreCritical() throws {
        let cfg = try config(paths: "nothing-here")
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", cfg]).status, 1)
        let (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 2, run.stdout)
        let aspects = Set((json["issues"] as? [[String: Any]] ?? []).compactMap { $0["aspect"] as? String })
        XCTAssertEqual(aspects, ["last_run", "freshness"])
    }

    func testDiskUsageThreshold() throws {
        let cfg = try config()
        try backup(cfg)
        // Any real disk is more than 1% used.
        let path = dir + "/b.env"
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "DISK_USAGE_WARN=100", with: "DISK_USAGE_WARN=1")
        try TestSupport.write(text, to: path, mode: 0o600)
        let (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 1, run.stdout)
        XCTAssertEqual((json["checks"] as? [String: String])?["disk_space"], "WARNING")
    }

    func testUnreadableOrBadConfigIsUnknown() throws {
        let missing = try TestSupport.run("backstop", ["health", "--config", dir + "/nope.env", "--status-file", dir + "/status.json"])
        XCTAssertEqual(missing.status, 3, missing.stdout + missing.stderr)
        XCTAssertTrue(missing.stdout.hasPrefix("BACKSTOP UNKNOWN - health: config: cannot read"), missing.stdout)
        let status = try JSONSerialization.jsonObject(with: TestSupport.read(dir + "/status.json")) as? [String: Any] ?? [:]
        XCTAssertEqual(status["overall_status"] as? String, "UNKNOWN")
        let flag = try TestSupport.run("backstop", ["health", "--no-such-flag"])
        XCTAssertEqual(flag.status, 3, "a bad flag is UNKNOWN to a monitor, not CRITICAL")
        XCTAssertEqual(flag.stdout, "BACKSTOP UNKNOWN - usage: Unknown option '--no-such-flag'\n")

        try TestSupport.write("BACKUP_DIR=x\nTARGETS=a\nTARGET_A_KIND=archive\nTARGET_A_PATHS=src\nMAX_AGE=26\n", to: dir + "/bad.env", mode: 0o600)
        let bad = try TestSupport.run("backstop", ["health", "--json", "--config", dir + "/bad.env"])
        XCTAssertEqual(bad.status, 3, bad.stdout)
        XCTAssertTrue(bad.stdout.contains("invalid value for MAX_AGE"), bad.stdout)
        // The same key stops a backup with the usual config error (exit 2), one line naming it.
        let backup = try TestSupport.run("backstop", ["backup", "--config", dir + "/bad.env"])
        XCTAssertEqual(backup.status, 2)
        XCTAssertEqual(backup.stderr, "backstop: error: config: invalid value for MAX_AGE in \(dir)/bad.env: '26' (expected a duration such as 30s, 90m, 26h or 7d)\n")
    }

    func testWalArchiveGapsAndAgeAndMetrics() throws {
        // The WAL archive is read from disk (what `stats` shows); no server is needed for that.
        for n in [1, 3, 4] {
            let seg = dir + "/wal/00000001000000000000000\(n)"
            try TestSupport.write("x", to: seg)
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -10 * 3600)], ofItemAtPath: seg)
        }
        try FileManager.default.createDirectory(atPath: dir + "/textfile", withIntermediateDirectories: true)
        let cfg = dir + "/b.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=cluster
        TARGET_CLUSTER_KIND=pg_basebackup
        TARGET_CLUSTER_HOST=127.0.0.1
        TARGET_CLUSTER_WAL_ARCHIVE=wal
        WAL_MAX_AGE=6h
        METRICS_FILE=textfile/b.prom
        """, to: cfg, mode: 0o600)
        let (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 2, run.stdout)
        let wal = (json["issues"] as? [[String: Any]] ?? []).filter { $0["aspect"] as? String == "wal" }
        XCTAssertEqual(wal.map { $0["status"] as? String }, ["WARNING", "CRITICAL"], "\(wal)")
        XCTAssertTrue((wal[1]["message"] as? String ?? "").contains("gaps (000000010000000000000002)"), "\(wal)")
        let metrics = String(decoding: try TestSupport.read(dir + "/textfile/b.prom"), as: UTF8.self)
        XCTAssertNotNil(metrics.range(of: #"backstop_wal_newest_age_seconds\{deployment="backstop",target="cluster"\} 3600[0-9]\n"#, options: .regularExpression), metrics)
    }

    func testLastRestoreDrillResultAndAge() throws {
        let cfg = try config("METRICS_FILE=b.prom")
        try backup(cfg)
        // Drill results as `verify --restore-test` records them (only pg_dump targets drill,
        // and this test needs no server): one that failed.
        let drill = DrillReport(target: "files", setID: "x", passed: false, restoreSeconds: 1.5, at: Date(), lines: ["row count of t: 3, manifest says 4"])
        try TestSupport.write(try BackstopJSON.string([drill]), to: dir + "/backups/state/drills.json")
        var (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 2, run.stdout)
        XCTAssertTrue(run.stdout.contains("FAILED: row count of t: 3, manifest says 4"), run.stdout)
        let metrics = String(decoding: try TestSupport.read(dir + "/b.prom"), as: UTF8.self)
        XCTAssertTrue(metrics.contains(#"backstop_last_drill_success{deployment="backstop",target="files"} 0"#), metrics)
        XCTAssertTrue(metrics.contains(#"backstop_last_drill_restore_seconds{deployment="backstop",target="files"} 1.5"#), metrics)

        let old = DrillReport(target: "files", setID: "x", passed: true, restoreSeconds: 2, at: Date(timeIntervalSinceNow: -9 * 86400), lines: [])
        try TestSupport.write(try BackstopJSON.string([drill, old]), to: dir + "/backups/state/drills.json")
        (run, json) = try health(cfg)
        XCTAssertEqual(run.status, 1, run.stdout)
        XCTAssertEqual((json["issues"] as? [[String: Any]])?.first?["aspect"] as? String, "drill")
    }

    func testAConfigOrBackupDirectoryTheMonitorCannotReadIsUnknown() throws {
        // Run as another user (the postgres account the test cluster uses): root reads anything.
        let cfg = try config()
        try backup(cfg)
        chmod(dir, 0o755)
        // A copy the other user can execute: the build folder may sit below a 0700 home (/root).
        let exec = try TemporaryDirectory(prefix: "backstop-exec")
        defer { exec.remove() }
        chmod(exec.path, 0o755)
        let backstop = exec.path + "/backstop"
        XCTAssertEqual(copyfile(TestSupport.binDirectory + "/backstop", to: backstop), true)
        chmod(backstop, 0o755)
        var run = try TestSupport.runProgram("runuser", ["-u", "postgres", "--", backstop, "health", "--config", cfg])
        XCTAssertEqual(run.status, 3, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.hasPrefix("BACKSTOP UNKNOWN - health: config: cannot read \(cfg)"), run.stdout)
        chmod(cfg, 0o644)
        run = try TestSupport.runProgram("runuser", ["-u", "postgres", "--", backstop, "health", "--config", cfg])
        XCTAssertEqual(run.status, 3, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.hasPrefix("BACKSTOP UNKNOWN - health: cannot read the backup directory \(dir)/backups: Permission denied"), run.stdout)
    }

    /// Copies a file byte for byte; false if it cannot.
    private func copyfile(_ from: String, to: String) -> Bool {
        (try? FileManager.default.copyItem(atPath: from, toPath: to)) != nil
    }
}
