@testable import BackupCore
import Foundation
import TestSupport
import XCTest

/// Off-site copies against moto (authentication enforced) on 127.0.0.1: push after backup,
/// incremental uploads of snapshot trees, remote verify, kills during a push, and a restore
/// from the bucket after the whole backup directory is gone.
final class OffsiteCLITests: XCTestCase {
    var dir = ""
    var config = ""
    var server: S3TestServer!

    override func setUpWithError() throws {
        server = try S3TestServer.moto()
        dir = try TestSupport.scratch("offsitecli")
        let db = dir + "/data/app.db"
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let sql = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);" + (0..<200).map { "INSERT INTO t(v) VALUES ('row \($0)');" }.joined()
        XCTAssertEqual(try TestSupport.runProgram("sqlite3", [db, sql]).status, 0)
        // 50 files of 100 KB, and one of 6 MiB (above the 5 MiB part size: multipart).
        for i in 0..<50 { try TestSupport.writeRandom(100_000, to: dir + "/media/f\(i).bin", seed: UInt64(i + 1)) }
        try TestSupport.writeRandom(6 << 20, to: dir + "/media/big/video.bin", seed: 99)
        XCTAssertEqual(symlink("f1.bin", dir + "/media/link"), 0)
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db media
        TARGET_DB_KIND=sqlite
        TARGET_DB_PATH=data/app.db
        TARGET_MEDIA_KIND=rsync
        TARGET_MEDIA_SOURCE=media
        OFFSITE=s3://\(server.bucket)/site
        OFFSITE_ENDPOINT=\(server.endpoint)
        OFFSITE_ACCESS_KEY_ID=\(server.accessKeyID)
        OFFSITE_SECRET_ACCESS_KEY=\(server.secretAccessKey)
        OFFSITE_RAW_SLASH_IN_QUERY=true
        OFFSITE_PART_SIZE_MB=5
        OFFSITE_RETRIES=2
        """, to: config, mode: 0o600)
    }

    override func tearDown() {
        server?.stop()
        try? FileOps.removeTree(dir)
    }

    func backstop(_ args: [String], env: [String: String] = [:]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config], environment: env)
    }

    func json(_ run: TestSupport.Run) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
    }

    func testPushVerifyIncrementalKillAndDisasterRecovery() throws {
        // 1. A backup pushes its set by itself.
        let first = try backstop(["backup"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("off-site: 1 set(s) pushed"), first.stderr)
        var list = try backstop(["offsite", "list", "--json"])
        XCTAssertEqual(list.status, 0, list.stderr)
        var rows = try XCTUnwrap(try json(list) as? [[String: Any]])
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows.first?["status"] as? String, "complete")
        let listed = try backstop(["list"])
        XCTAssertTrue(listed.stdout.contains("OFFSITE"), listed.stdout)
        XCTAssertTrue(listed.stdout.split(separator: "\n")[1].hasSuffix("yes"), listed.stdout)
        let stats = try backstop(["stats"])
        XCTAssertTrue(stats.stdout.contains("off-site: 1 set(s) in s3://\(server.bucket)/site/backstop/"), stats.stdout)
        let health = try backstop(["health"])
        XCTAssertEqual(health.status, 0, health.stdout)
        let client = server.client()
        let objects = try client.list(prefix: "site/backstop/objects/")
        XCTAssertEqual(objects.count, 52, "50 files, the big one and the link's target text")
        let verify = try backstop(["verify", "--remote", "--deep"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        XCTAssertTrue(verify.stdout.contains("OK  "), verify.stdout)

        // 2. A 2 % change (one file of fifty rewritten): only it goes up as an object.
        try TestSupport.writeRandom(100_000, to: dir + "/media/f7.bin", seed: 1234)
        XCTAssertEqual(try backstop(["backup"], env: ["OFFSITE_AUTO": "false"]).status, 0)
        let push = try backstop(["offsite", "push", "--json"])
        XCTAssertEqual(push.status, 0, push.stderr)
        let report = try XCTUnwrap(try json(push) as? [String: Any])
        XCTAssertEqual(report["objectsUploaded"] as? Int, 1, push.stdout)
        let sets = try OffsiteStoreProbe.remoteSets(client)
        let newest = try XCTUnwrap(sets.first)
        let sent = try XCTUnwrap(report["bytesSent"] as? Int)
        // Everything sent beyond the set's own files (manifest, database copy, file list, sidecars) is the changed file.
        let treeBytes = Int64(sent) - newest.bytes
        XCTAssertGreaterThanOrEqual(treeBytes, 95_000, "sent \(sent), set files \(newest.bytes)")
        XCTAssertLessThanOrEqual(treeBytes, 105_000, "sent \(sent), set files \(newest.bytes)")

        // 3. Killed pushes: after the first new object, and (another set) before the manifest;
        // the remote set is incomplete, and the next push finishes it.
        for i in 60..<64 { try TestSupport.writeRandom(50_000, to: dir + "/media/new\(i).bin", seed: UInt64(i)) }
        XCTAssertEqual(try backstop(["backup"], env: ["OFFSITE_AUTO": "false"]).status, 0)
        XCTAssertEqual(try backstop(["offsite", "push"], env: ["BACKSTOP_FAULT": "offsite-object:kill@2"]).status, 137)
        var finish = try backstop(["offsite", "push", "--json"])
        XCTAssertEqual(finish.status, 0, finish.stderr)
        XCTAssertEqual((try json(finish) as? [String: Any])?["objectsUploaded"] as? Int, 3, "the first new file went up before the kill")
        try TestSupport.writeRandom(50_000, to: dir + "/media/new99.bin", seed: 99_99)
        XCTAssertEqual(try backstop(["backup"], env: ["OFFSITE_AUTO": "false"]).status, 0)
        XCTAssertEqual(try backstop(["offsite", "push"], env: ["BACKSTOP_FAULT": "offsite-before-manifest:kill"]).status, 137)
        list = try backstop(["offsite", "list", "--json"])
        rows = try XCTUnwrap(try json(list) as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["status"] as? String }, ["INCOMPLETE", "complete", "complete", "complete"], list.stdout)
        let incomplete = try backstop(["verify", "--remote", "--all"])
        XCTAssertEqual(incomplete.status, 1)
        XCTAssertTrue(incomplete.stdout.contains("incomplete:"), incomplete.stdout)
        finish = try backstop(["offsite", "push", "--json"])
        XCTAssertEqual(finish.status, 0, finish.stderr)
        XCTAssertEqual((try json(finish) as? [String: Any])?["objectsUploaded"] as? Int, 0, finish.stdout)
        list = try backstop(["offsite", "list", "--json"])
        rows = try XCTUnwrap(try json(list) as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["status"] as? String }, ["complete", "complete", "complete", "complete"], list.stdout)
        XCTAssertEqual(try backstop(["verify", "--remote", "--all"]).status, 0)

        // 4. Disaster: the backup directory is gone; the config is all there is.
        let liveMedia = try TestSupport.snapshot(dir + "/media")
        try FileOps.removeTree(dir + "/backups")
        let db = try backstop(["restore", "db", "--from", "offsite", "--to", dir + "/restored/app.db", "--yes"])
        XCTAssertEqual(db.status, 0, db.stdout + db.stderr)
        let count = try TestSupport.runProgram("sqlite3", [dir + "/restored/app.db", "PRAGMA integrity_check; SELECT count(*) FROM t;"])
        XCTAssertEqual(count.stdout, "ok\n200\n")
        let media = try backstop(["restore", "media", "--from", "offsite", "--to", dir + "/restored/media", "--yes"])
        XCTAssertEqual(media.status, 0, media.stdout + media.stderr)
        XCTAssertEqual(try TestSupport.snapshot(dir + "/restored/media"), liveMedia)
        var st = stat()
        XCTAssertEqual(lstat(dir + "/restored/media/link", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFLNK)

        // 5. An object changed in the bucket is named by verify --remote; a deleted one too.
        let victim = try XCTUnwrap(try client.list(prefix: "site/backstop/objects/").first?.key)
        try client.putData(Data("tampered".utf8), key: victim)
        let setFile = try XCTUnwrap(try client.list(prefix: "site/backstop/sets/").first { $0.key.hasSuffix(".sha256") }?.key)
        try client.delete(key: setFile)
        let bad = try backstop(["verify", "--remote", "--all"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stdout.contains("changed: \(victim)"), bad.stdout)
        XCTAssertTrue(bad.stdout.contains("missing: \(setFile)"), bad.stdout)
    }

    func testProbeOnMoto() throws {
        let run = try backstop(["offsite", "probe", "--json"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let lines = try XCTUnwrap(try json(run) as? [[String: Any]])
        let result = Dictionary(uniqueKeysWithValues: lines.map { ($0["check"] as! String, $0["result"] as! String) })
        XCTAssertEqual(result["auth"], "yes")
        XCTAssertEqual(result["multipart"], "yes")
        XCTAssertEqual(result["multi-object delete"], "yes")
        XCTAssertEqual(result["checksum validation"], "no", "moto does not check x-amz-checksum-sha256")
        XCTAssertEqual(try server.client().list(prefix: "site/backstop/probe/").count, 0, "the probe cleans up")
    }

    func testRemoteRetentionKeepsTheFloorAndCollectsUnreferencedObjects() throws {
        try TestSupport.write(try String(contentsOfFile: config, encoding: .utf8) + "\nKEEP_DAILY=1\nOFFSITE_GC_GRACE=0s\n", to: config, mode: 0o600)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        // f3.bin is only in the first set.
        try FileManager.default.removeItem(atPath: dir + "/media/f3.bin")
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let client = server.client()
        XCTAssertEqual(try client.list(prefix: "site/backstop/objects/").count, 52)
        let dry = try backstop(["offsite", "prune", "--dry-run", "--json"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        let dryReport = try XCTUnwrap(try json(dry) as? [String: Any])
        XCTAssertEqual((dryReport["objectsRemoved"] as? [String])?.count, 1, dry.stdout)
        XCTAssertEqual(try client.list(prefix: "site/backstop/objects/").count, 52)
        let run = try backstop(["offsite", "prune", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try XCTUnwrap(try json(run) as? [String: Any])
        let lines = try XCTUnwrap(report["sets"] as? [[String: Any]])
        XCTAssertEqual(lines.map { $0["remove"] as? Bool }, [false, true], run.stdout)
        XCTAssertEqual((report["objectsRemoved"] as? [String])?.count, 1, run.stdout)
        XCTAssertEqual(try client.list(prefix: "site/backstop/objects/").count, 51)
        let list = try XCTUnwrap(try json(try backstop(["offsite", "list", "--json"])) as? [[String: Any]])
        XCTAssertEqual(list.count, 1)
        XCTAssertEqual(try backstop(["verify", "--remote", "--all"]).status, 0, "nothing missing, nothing extra")
        // The next push rebuilds the object index from the bucket and re-uploads f3.bin if it comes back.
        try TestSupport.writeRandom(100_000, to: dir + "/media/f3.bin", seed: 4)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        XCTAssertEqual(try client.list(prefix: "site/backstop/objects/").count, 52)
        XCTAssertEqual(try backstop(["verify", "--remote", "--all"]).status, 0)
    }

    func testFetchRefusesAManifestWhoseArtifactLeavesTheSet() throws {
        let backup = try backstop(["backup", "--json"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let id = try XCTUnwrap((try json(backup) as? [String: Any])?["setID"] as? String)
        let client = server.client()
        var text = String(decoding: try client.getData(key: "site/backstop/sets/daily/\(id)/manifest.json"), as: UTF8.self)
        let fake = "20990101_000000"
        text = text.replacingOccurrences(of: id, with: fake).replacingOccurrences(of: "media/files.manifest", with: "../../../escape/files.manifest")
        try client.putData(Data(text.utf8), key: "site/backstop/sets/daily/\(fake)/manifest.json")
        let run = try backstop(["restore", "media", "--from", "offsite", "--backup", fake, "--to", dir + "/restored", "--yes"])
        XCTAssertEqual(run.status, 1, run.stdout + run.stderr)
        XCTAssertTrue(run.stderr.contains("is not a plain relative name"), run.stderr)
        XCTAssertFalse(FileOps.exists(dir + "/backups/escape") || FileOps.exists(dir + "/escape"))
        XCTAssertFalse(FileOps.exists(dir + "/backups/daily/\(fake)"))
    }

    func testWrongSecretGivesOneLineAndNeverShowsIt() throws {
        let secret = "definitely-wrong-secret-123"
        let run = try backstop(["offsite", "list"], env: ["OFFSITE_SECRET_ACCESS_KEY": secret])
        XCTAssertEqual(run.status, 1)
        let lines = run.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("403 SignatureDoesNotMatch"), run.stderr)
        XCTAssertTrue(run.stderr.contains("OFFSITE_SECRET_ACCESS_KEY"), run.stderr)
        XCTAssertFalse(run.stderr.contains(secret) || run.stdout.contains(secret))
        // A backup whose push fails keeps its set, alerts and exits 1; the log never holds the secret.
        let backup = try backstop(["backup"], env: ["OFFSITE_SECRET_ACCESS_KEY": secret])
        XCTAssertEqual(backup.status, 1)
        XCTAssertTrue(backup.stderr.contains("is good locally, but its off-site copy failed"), backup.stderr)
        // Nothing is off-site: health says so (CRITICAL).
        let health = try backstop(["health"])
        XCTAssertEqual(health.status, 2, health.stdout)
        XCTAssertTrue(health.stdout.contains("no set has been copied off-site yet"), health.stdout)
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/logs")
        for name in logs {
            XCTAssertFalse(try String(contentsOfFile: dir + "/backups/logs/" + name, encoding: .utf8).contains(secret))
        }
        // Shared credentials file: the keys come from it when config and environment have none.
        try TestSupport.write("[default]\naws_access_key_id = \(server.accessKeyID)\naws_secret_access_key = \(server.secretAccessKey)\n",
                              to: dir + "/aws-credentials", mode: 0o600)
        var text = try String(contentsOfFile: config, encoding: .utf8)
        text = text.split(separator: "\n").filter { !$0.hasPrefix("OFFSITE_ACCESS_KEY_ID") && !$0.hasPrefix("OFFSITE_SECRET") }.joined(separator: "\n")
        try TestSupport.write(text, to: config, mode: 0o600)
        let shared = try backstop(["offsite", "list"], env: ["AWS_SHARED_CREDENTIALS_FILE": dir + "/aws-credentials", "AWS_ACCESS_KEY_ID": ""])
        XCTAssertEqual(shared.status, 0, shared.stderr)
    }
}

/// Reads the bucket the way the store does, for assertions.
enum OffsiteStoreProbe {
    static func remoteSets(_ client: S3Client) throws -> [RemoteSet] {
        var s = OffsiteSettings(s3: client.settings, root: "site/backstop/", auto: false)
        s.auto = false
        let (logger, _) = TestSupport.logger()
        return try OffsiteStore(settings: s, repository: Repository(root: "/nonexistent"), codecs: [:], logger: logger).remoteSets()
    }
}

/// The same push and restore against SeaweedFS, which checks every `x-amz-checksum-sha256`
/// (moto does not): the whole path, multipart included, sends the right ones.
final class OffsiteSeaweedCLITests: XCTestCase {
    func testPushDeepVerifyAndRestoreOnSeaweed() throws {
        let server = try S3TestServer.seaweed()
        defer { server.stop() }
        let dir = try TestSupport.scratch("offsiteweed")
        defer { try? FileOps.removeTree(dir) }
        for i in 0..<10 { try TestSupport.writeRandom(70_000, to: dir + "/media/d\(i % 3)/f\(i).bin", seed: UInt64(i + 5)) }
        try TestSupport.writeRandom(6 << 20, to: dir + "/media/big.bin", seed: 5)
        let config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=media
        TARGET_MEDIA_KIND=rsync
        TARGET_MEDIA_SOURCE=media
        OFFSITE=s3://\(server.bucket)
        OFFSITE_ENDPOINT=\(server.endpoint)
        OFFSITE_NAME=weed-site
        OFFSITE_ACCESS_KEY_ID=\(server.accessKeyID)
        OFFSITE_SECRET_ACCESS_KEY=\(server.secretAccessKey)
        OFFSITE_PART_SIZE_MB=5
        """, to: config, mode: 0o600)
        func backstop(_ args: [String]) throws -> TestSupport.Run { try TestSupport.run("backstop", args + ["--config", config]) }
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        XCTAssertTrue(backup.stderr.contains("off-site: 1 set(s) pushed"), backup.stderr)
        XCTAssertEqual(try server.client().list(prefix: "weed-site/objects/").count, 11)
        let verify = try backstop(["verify", "--remote", "--deep"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        let live = try TestSupport.snapshot(dir + "/media")
        try FileOps.removeTree(dir + "/backups")
        let probe = try backstop(["offsite", "probe"])
        XCTAssertEqual(probe.status, 0, probe.stdout + probe.stderr)
        XCTAssertTrue(probe.stdout.contains("checksum validation  yes"), probe.stdout)
        let restore = try backstop(["restore", "media", "--from", "offsite", "--to", dir + "/restored", "--yes"])
        XCTAssertEqual(restore.status, 0, restore.stdout + restore.stderr)
        XCTAssertEqual(try TestSupport.snapshot(dir + "/restored"), live)
    }
}
