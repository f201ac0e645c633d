import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

/// The MinIO data target: schedgen's tarball names, size threshold, read-back, hooks, zstd.
final class MinioDataTargetTests: XCTestCase {
    var dir = ""
    var data = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("minio")
        data = dir + "/minio-data"
        try TestSupport.write("{\"version\":\"1\"}", to: data + "/.minio.sys/config/config.json")
        for i in 0..<4 {
            try TestSupport.writeRandom(20_000 + i, to: "\(data)/schedgen-pdfs/timetable-\(i).pdf/xl.meta", seed: UInt64(i))
        }
        try TestSupport.writeRandom(5000, to: data + "/other-bucket/x.pdf/xl.meta", seed: 7)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func testBucketTarballIsNamedLikeSchedgensAndReadBack() throws {
        for compression in [Compression.gzip(level: 6), .zstd(level: 3, threads: 2)] {
            try? FileOps.removeTree(dir + "/repo")
            let e = TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data, bucket: "schedgen-pdfs", compression: compression)])
            let summary = try e.backup()
            XCTAssertTrue(summary.succeeded, "\(summary.targets)")
            let record = summary.targets[0]
            let file = (record.artifacts[0].path as NSString).lastPathComponent
            let suffix = compression == .gzip(level: 6) ? "tar\\.gz" : "tar\\.zst"
            XCTAssertNotNil(file.range(of: "^minio_schedgen-pdfs_[0-9]{8}_[0-9]{6}\\.\(suffix)$", options: .regularExpression), file)
            XCTAssertEqual(record.facts["readBack"], .bool(true))
            XCTAssertEqual(record.facts["files"], .number(4), "only the bucket's folder")
            XCTAssertTrue(record.warnings.contains { $0.contains("MinIO may have been running") }, "the consistency caveat is recorded")
            var st = stat()
            stat(summary.directory! + "/" + record.artifacts[0].path, &st)
            XCTAssertEqual(st.st_mode & 0o777, 0o600)
            let verify = try e.verify(e.repository.completeSets())[0]
            XCTAssertTrue(verify.ok, "\(verify.findings)")
            XCTAssertTrue(verify.findings.contains { $0.severity == .info && $0.message.contains("schedgen-pdfs/timetable-0.pdf/xl.meta") }, "\(verify.findings)")

            let out = dir + "/restored-\(compression.name)"
            _ = try e.restore(target: "minio", id: "latest", options: RestoreOptions(destination: out))
            XCTAssertEqual(try TestSupport.snapshot(out + "/schedgen-pdfs"), try TestSupport.snapshot(data + "/schedgen-pdfs"))
            XCTAssertFalse(FileOps.exists(out + "/other-bucket"))
        }
    }

    func testTarballAtOrBelowTheThresholdFails() throws {
        try FileOps.makeDirectory(data + "/empty-bucket")
        let e = TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data, bucket: "empty-bucket")])
        let summary = try e.backup()
        XCTAssertFalse(summary.succeeded)
        let error = summary.targets[0].error ?? ""
        XCTAssertTrue(error.contains("512-byte threshold (MIN_BYTES)"), error)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/daily"), [], "nothing is kept")
        // The whole data directory is well over the threshold.
        XCTAssertTrue(try TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data)]).backup().succeeded)
    }

    func testStopAndStartHooksRunAroundTheCopyEvenWhenItFails() throws {
        let log = dir + "/hooks.log"
        // The stop hook records whether the data was there; the start hook runs last.
        let stop = "echo stop >> '\(log)'"
        let start = "echo start >> '\(log)'"
        let e = TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data, bucket: "schedgen-pdfs",
                                                                   stopCommand: stop, startCommand: start)])
        let summary = try e.backup()
        XCTAssertTrue(summary.succeeded)
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "stop\nstart\n")
        XCTAssertEqual(summary.targets[0].facts["stoppedDuringCopy"], .bool(true))
        XCTAssertFalse(summary.targets[0].warnings.contains { $0.contains("MinIO may have been running") })

        // A copy that fails (threshold) still starts MinIO again.
        try FileOps.makeDirectory(data + "/empty-bucket")
        unlink(log)
        let failing = TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data, bucket: "empty-bucket",
                                                                         stopCommand: stop, startCommand: start)])
        XCTAssertFalse(try failing.backup().succeeded)
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "stop\nstart\n")

        // A failing stop command fails the target (no copy of a MinIO in an unknown state), and start still runs.
        unlink(log)
        let badStop = TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data, bucket: "schedgen-pdfs",
                                                                         stopCommand: "echo nope >&2; exit 3", startCommand: start)])
        let bad = try badStop.backup()
        XCTAssertFalse(bad.succeeded)
        XCTAssertTrue(bad.targets[0].error?.contains("stop command failed with exit 3: nope") ?? false, bad.targets[0].error ?? "")
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "start\n")
    }

    /// A restore stops MinIO before its safety copy and starts it after the restore, and after
    /// the rollback of one that failed; a failing stop restores nothing.
    func testRestoreStopsAndStartsMinIOAroundTheRestoreAndItsRollback() throws {
        let log = dir + "/hooks.log"
        let stop = "echo stop >> '\(log)'", start = "echo start >> '\(log)'"
        let e = TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data, bucket: "schedgen-pdfs",
                                                                   stopCommand: stop, startCommand: start)])
        XCTAssertTrue(try e.backup().succeeded)
        unlink(log)
        let object = data + "/schedgen-pdfs/timetable-0.pdf/xl.meta"
        let original = try TestSupport.read(object)
        try TestSupport.write("changed after the backup", to: object)

        let plan = try e.planRestore(target: "minio", id: "latest", options: RestoreOptions())
        XCTAssertEqual(plan.lines.first, "before: \(stop)")
        XCTAssertEqual(plan.lines.last, "after: \(start)")
        XCTAssertEqual(plan.safetyCopy, .tarballOfOverwritten)
        XCTAssertFalse(FileOps.exists(log), "planning runs no hook")

        // Failing part-way: rolled back, and MinIO started again after the rollback.
        setenv("BACKSTOP_FAULT", "restore-entry@2", 1)
        XCTAssertThrowsError(try e.carryOut(plan)) { XCTAssertTrue("\($0)".contains("failed and was rolled back"), "\($0)") }
        unsetenv("BACKSTOP_FAULT")
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "stop\nstart\n")
        XCTAssertEqual(try String(contentsOfFile: object, encoding: .utf8), "changed after the backup")

        unlink(log)
        let report = try e.restore(target: "minio", id: "latest", options: RestoreOptions())
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "stop\nstart\n")
        XCTAssertEqual(try TestSupport.read(object), original)
        XCTAssertNotNil(report.safetyCopy)

        // A stop command that fails: nothing restored, no safety copy, MinIO started again.
        unlink(log)
        try TestSupport.write("changed again", to: object)
        let safetyCopies = try FileManager.default.contentsOfDirectory(atPath: e.repository.safetyDirectory).count
        let badStop = TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data, bucket: "schedgen-pdfs",
                                                                         stopCommand: "echo nope >&2; exit 3", startCommand: start)])
        XCTAssertThrowsError(try badStop.restore(target: "minio", id: "latest", options: RestoreOptions())) {
            XCTAssertTrue("\($0)".contains("nope"), "\($0)")
        }
        XCTAssertEqual(try String(contentsOfFile: object, encoding: .utf8), "changed again")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: e.repository.safetyDirectory).count, safetyCopies)
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "start\n")
    }

    func testConfigKeysAndErrors() throws {
        try TestSupport.write("", to: dir + "/b.env")
        let base = ["TARGETS": "objects", "TARGET_OBJECTS_KIND": "minio"]
        let cases: [([String: String], String)] = [
            ([:], "missing required key TARGET_OBJECTS_DATA_DIR"),
            (["TARGET_OBJECTS_DATA_DIR": "d", "TARGET_OBJECTS_BUCKET": "a/b"], "invalid value for TARGET_OBJECTS_BUCKET"),
            (["TARGET_OBJECTS_DATA_DIR": "d", "TARGET_OBJECTS_MIN_BYTES": "-1"], "invalid value for TARGET_OBJECTS_MIN_BYTES"),
            (["TARGET_OBJECTS_DATA_DIR": "d", "TARGET_OBJECTS_COMPRESSION": "xz"], "invalid value for TARGET_OBJECTS_COMPRESSION"),
            (["TARGET_OBJECTS_DATA_DIR": "d", "TARGET_OBJECTS_STOP": "x"], "unknown key TARGET_OBJECTS_STOP"),
        ]
        for (values, expected) in cases {
            let config = Config(file: dir + "/b.env", values: base.merging(values) { a, _ in a })
            XCTAssertThrowsError(try TargetRegistry.buildAll(config: config)) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
                XCTAssertEqual("\(error)".split(separator: "\n").count, 1)
            }
        }
        let ok = Config(file: dir + "/b.env", values: base.merging(["TARGET_OBJECTS_DATA_DIR": "minio-data", "TARGET_OBJECTS_BUCKET": "schedgen-pdfs",
                                                                    "TARGET_OBJECTS_COMPRESSION": "zstd", "TARGET_OBJECTS_STOP_CMD": "true",
                                                                    "TARGET_OBJECTS_START_CMD": "true", "TARGET_OBJECTS_MIN_BYTES": "1024"]) { a, _ in a })
        let t = try XCTUnwrap(try TargetRegistry.buildAll(config: ok).first as? MinioDataTarget)
        XCTAssertEqual(t.source, .volume(dataDirectory: dir + "/minio-data", bucket: "schedgen-pdfs"))
        XCTAssertEqual(t.minimumBytes, 1024)
        XCTAssertEqual(t.archive.compression.name, "zstd")
    }
}

/// The CEP document's config tarball, through the archive target: an explicit list of files
/// and globs, missing ones skipped and listed, a 0600 artifact, members shown by verify, and a
/// restore that lists what it writes, keeps modes and takes a pre-restore tarball.
final class ConfigTarballTests: XCTestCase {
    func testCEPConfigTarball() throws {
        let dir = try TestSupport.scratch("config-tarball")
        defer { try? FileOps.removeTree(dir) }
        let root = dir + "/srv"
        try TestSupport.write("DATABASE_URL=postgres://x\n", to: root + "/app/.env", mode: 0o600)
        try TestSupport.write("services: {}\n", to: root + "/app/docker-compose.yml")
        try TestSupport.write("export default {}\n", to: root + "/app/payload.config.ts")
        try TestSupport.write("server {}\n", to: root + "/nginx/sites/a.conf")
        try TestSupport.write("server {}\n", to: root + "/nginx/sites/b.conf")
        try TestSupport.write("not config\n", to: root + "/nginx/sites/readme.txt")
        let target = ArchiveTarget(name: "config", paths: [root + "/app/.env", root + "/app/docker-compose.yml", root + "/app/payload.config.ts",
                                                           root + "/app/next.config.ts", root + "/nginx/sites/*.conf", root + "/nginx/nope/*.conf"],
                                   base: root)
        let e = TestSupport.engine(dir + "/repo", [target])
        let summary = try e.backup()
        let record = summary.targets[0]
        XCTAssertEqual(record.status, .ok)
        XCTAssertEqual(record.facts["skippedMissing"], .array([.string(root + "/app/next.config.ts"), .string(root + "/nginx/nope/*.conf")]))
        XCTAssertEqual(record.warnings.count, 2)
        XCTAssertEqual(record.facts["members"]?.arrayValue?.compactMap(\.stringValue),
                       ["app/.env", "app/docker-compose.yml", "app/payload.config.ts", "nginx/sites/a.conf", "nginx/sites/b.conf"])
        var st = stat()
        stat(summary.directory! + "/" + record.artifacts[0].path, &st)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "config backups hold secrets")
        let verify = try e.verify(e.repository.completeSets())[0]
        XCTAssertTrue(verify.ok)
        XCTAssertTrue(verify.findings.contains { $0.message == "5 entries: app/.env, app/docker-compose.yml, app/payload.config.ts, nginx/sites/a.conf, nginx/sites/b.conf" }, "\(verify.findings)")

        try TestSupport.write("DATABASE_URL=broken\n", to: root + "/app/.env", mode: 0o644)
        unlink(root + "/nginx/sites/b.conf")
        let plan = try e.restore(target: "config", id: "latest", options: RestoreOptions(dryRun: true))
        XCTAssertTrue(plan.lines.contains("  overwrite app/.env"), "\(plan.lines)")
        XCTAssertTrue(plan.lines.contains("  create    nginx/sites/b.conf"), "\(plan.lines)")
        let report = try e.restore(target: "config", id: "latest", options: RestoreOptions())
        XCTAssertEqual(try String(contentsOfFile: root + "/app/.env", encoding: .utf8), "DATABASE_URL=postgres://x\n")
        stat(root + "/app/.env", &st)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "modes are kept")
        XCTAssertTrue(FileOps.exists(root + "/nginx/sites/b.conf"))
        let check = dir + "/check"
        try FileOps.makeDirectory(check)
        try ArchiveTarget.extractAll(try XCTUnwrap(report.safetyCopy), into: check)
        XCTAssertEqual(try String(contentsOfFile: check + "/app/.env", encoding: .utf8), "DATABASE_URL=broken\n", "pre-restore tarball of what was overwritten")
    }
}
