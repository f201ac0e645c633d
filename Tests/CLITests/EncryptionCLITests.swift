import BackupCore
import Foundation
import TestSupport
import XCTest

/// Encryption at rest end to end: `ENCRYPT_TO` makes every artifact an age file that Debian's
/// age opens by hand; verify works without the key (ciphertext checks) and with it (content);
/// restore needs `DECRYPT_IDENTITY_FILE` and refuses a wrong key or a damaged file.
final class EncryptionCLITests: XCTestCase {
    var dir = ""
    var config = ""
    var key = ""
    var recipient = ""

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/age") else {
            XCTFail("age is not installed (scripts/install-deps --test installs it)")
            throw XCTSkip("no age")
        }
        dir = try TestSupport.scratch("encrypt")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        try TestSupport.write("DB_PASSWORD=hunter2\n", to: dir + "/src/.env")
        try TestSupport.writeRandom(300_000, to: dir + "/src/data/blob.bin")
        let made = try sh("sqlite3 '\(dir)/app.db' \"create table t(x); insert into t values (1),(2),(3);\"")
        XCTAssertEqual(made.status, 0, made.stderr)
        key = dir + "/key.txt"
        let keygen = try sh("age-keygen -o '\(key)'")
        XCTAssertEqual(keygen.status, 0, keygen.stderr)
        recipient = keygen.stderr.components(separatedBy: "Public key: ").last!.trimmingCharacters(in: .whitespacesAndNewlines)
        // A second recipient, made by Backstop.
        let other = try TestSupport.run("backstop", ["keygen", "-o", dir + "/other.txt"])
        XCTAssertEqual(other.status, 0, other.stderr)
        let otherRecipient = other.stderr.replacingOccurrences(of: "Public key: ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db code
        TARGET_DB_KIND=sqlite
        TARGET_DB_PATH=app.db
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=src
        TARGET_CODE_COMPRESSION=zstd
        ENCRYPT_TO="\(recipient) \(otherRecipient)"
        """, to: config, mode: 0o600)
    }

    override func tearDown() { try? FileOps.removeTree(dir) }

    struct Ran { let status: Int32; let stdout: String; let stderr: String }

    /// Runs a shell command line (age, zstd, tar, sqlite3); stdout and stderr are captured.
    func sh(_ command: String) throws -> Ran {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " 2>'\(dir)/sh.err'"]
        let out = Pipe()
        p.standardOutput = out
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let err = (try? TestSupport.read(dir + "/sh.err")) ?? Data()
        return Ran(status: p.terminationStatus, stdout: String(decoding: data, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    func backstop(_ args: [String], env: [String: String] = [:]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config], environment: env)
    }

    func setDirectory() throws -> String {
        let daily = dir + "/backups/daily"
        let ids = try FileManager.default.contentsOfDirectory(atPath: daily).filter { !$0.hasPrefix(".") }.sorted()
        return daily + "/" + ids.last!
    }

    func testEncryptedBackupVerifyRestoreCycle() throws {
        let backup = try backstop(["backup"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let set = try setDirectory()

        // Every artifact is an age file; nothing of the data is stored in clear.
        let manifest = String(decoding: try TestSupport.read(set + "/manifest.json"), as: UTF8.self)
        let files = try FileManager.default.subpathsOfDirectory(atPath: set).filter { !$0.hasSuffix(".sha256") && $0 != "manifest.json" && $0 != "db" && $0 != "code" }
        // The SQLite copy, the tarball and its member list.
        XCTAssertEqual(files.count, 3, "\(files)")
        for file in files {
            XCTAssertTrue(file.hasSuffix(".age"), file)
            XCTAssertTrue(manifest.contains("\"\(file)\""), "the manifest names the stored file \(file)")
            XCTAssertEqual(TestSupport.readStart(RawPath(set + "/" + file), max: 22), "age-encryption.org/v1\n")
            let bytes = try TestSupport.read(set + "/" + file)
            XCTAssertNil(bytes.firstRange(of: Data("hunter2".utf8)), file)
        }
        XCTAssertFalse(manifest.contains("hunter2"))
        let sums = try sh("cd '\(set)/code' && sha256sum -c *.sha256 && cd ../db && sha256sum -c *.sha256")
        XCTAssertEqual(sums.status, 0, sums.stdout + sums.stderr)

        // Any administrator opens them with Debian's age and the usual tools.
        let code = files.first { $0.hasPrefix("code/") && $0.hasSuffix(".tar.zst.age") }
        XCTAssertNotNil(code, "\(files)")
        let listed = try sh("age -d -i '\(key)' '\(set)/\(code ?? "")' | zstd -d | tar -t")
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("app.py") && listed.stdout.contains("data/blob.bin"), listed.stdout)
        let db = files.first { $0.hasPrefix("db/") } ?? ""
        let opened = try sh("age -d -i '\(key)' '\(set)/\(db)' | gzip -d > '\(dir)/byhand.db' && sqlite3 '\(dir)/byhand.db' 'select count(*) from t'")
        XCTAssertEqual(opened.stdout, "3\n", opened.stderr)

        // verify without the key: ciphertext sizes and checksums, content checks skipped.
        let plain = try backstop(["verify"])
        XCTAssertEqual(plain.status, 0, plain.stdout + plain.stderr)
        XCTAssertTrue(plain.stdout.contains("content checks skipped"), plain.stdout)

        // With the key: the content too.
        let keyed = try backstop(["verify"], env: ["DECRYPT_IDENTITY_FILE": key])
        XCTAssertEqual(keyed.status, 0, keyed.stdout + keyed.stderr)
        XCTAssertFalse(keyed.stdout.contains("skipped"), keyed.stdout)

        // An identity file others may read is refused, naming the key.
        chmod(key, 0o644)
        let loose = try backstop(["verify"], env: ["DECRYPT_IDENTITY_FILE": key])
        XCTAssertEqual(loose.status, 2)
        XCTAssertTrue(loose.stderr.contains("DECRYPT_IDENTITY_FILE") && loose.stderr.contains("chmod 600"), loose.stderr)
        XCTAssertEqual(loose.stderr.split(separator: "\n").count, 1, loose.stderr)
        chmod(key, 0o600)

        // Restore needs the key, and says so before touching anything.
        let out = dir + "/restored"
        let refused = try backstop(["restore", "code", "--to", out, "--yes"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("DECRYPT_IDENTITY_FILE"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))

        // A wrong key: one clear line, nothing restored.
        let wrongKey = dir + "/wrong.txt"
        XCTAssertEqual(try sh("age-keygen -o '\(wrongKey)'").status, 0)
        let wrong = try backstop(["restore", "code", "--to", out, "--yes"], env: ["DECRYPT_IDENTITY_FILE": wrongKey])
        XCTAssertEqual(wrong.status, 1, wrong.stderr)
        XCTAssertTrue(wrong.stderr.contains("wrong key"), wrong.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/app.py"))
        let wrongVerify = try backstop(["verify"], env: ["DECRYPT_IDENTITY_FILE": wrongKey])
        XCTAssertEqual(wrongVerify.status, 1)
        XCTAssertTrue(wrongVerify.stdout.contains("wrong key"), wrongVerify.stdout)

        // The right key (Backstop's own or age-keygen's) restores both targets.
        let restored = try backstop(["restore", "code", "--to", out, "--yes"], env: ["DECRYPT_IDENTITY_FILE": dir + "/other.txt"])
        XCTAssertEqual(restored.status, 0, restored.stderr)
        XCTAssertEqual(try TestSupport.snapshot(out), try TestSupport.snapshot(dir + "/src"))
        let dbOut = dir + "/restored-db/app.db"
        try FileOps.makeDirectory(dir + "/restored-db")
        let restoredDB = try backstop(["restore", "db", "--to", dbOut, "--yes"], env: ["DECRYPT_IDENTITY_FILE": key])
        XCTAssertEqual(restoredDB.status, 0, restoredDB.stderr)
        XCTAssertEqual(try sh("sqlite3 '\(dbOut)' 'select sum(x) from t'").stdout, "6\n")
    }

    /// The restore drill of an encrypted archive backup reads its encrypted member list
    /// through the decrypting reader, as verify and restore do.
    func testEncryptedArchiveDrillPasses() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let drill = try backstop(["verify", "--restore-test"], env: ["DECRYPT_IDENTITY_FILE": key])
        XCTAssertEqual(drill.status, 0, drill.stdout + drill.stderr)
        XCTAssertFalse((drill.stdout + drill.stderr).contains("unknown format"), drill.stdout + drill.stderr)
        XCTAssertTrue(drill.stdout.contains("code"), drill.stdout)
    }

    /// A damaged encrypted artifact is refused by verify and by restore, which leaves the
    /// destination as it was.
    func testDamagedEncryptedArtifactIsRefused() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let set = try setDirectory()
        let artifact = try FileManager.default.contentsOfDirectory(atPath: set + "/code").first { $0.hasSuffix(".age") }!
        let size = try TestSupport.read(set + "/code/" + artifact).count
        try TestSupport.flipByte(set + "/code/" + artifact, at: UInt64(size - 5))
        let env = ["DECRYPT_IDENTITY_FILE": key]
        let verify = try backstop(["verify"], env: env)
        XCTAssertEqual(verify.status, 1, verify.stdout)
        XCTAssertTrue(verify.stdout.contains("checksum mismatch") || verify.stdout.contains("fails authentication"), verify.stdout)
        let out = dir + "/restored"
        try TestSupport.write("keep me\n", to: out + "/app.py")
        let restore = try backstop(["restore", "code", "--to", out, "--yes"], env: env)
        XCTAssertEqual(restore.status, 1, restore.stderr)
        XCTAssertEqual(String(decoding: try TestSupport.read(out + "/app.py"), as: UTF8.self), "keep me\n")
    }

    func testCheckReportsEncryption() throws {
        let check = try backstop(["check"], env: ["DECRYPT_IDENTITY_FILE": key])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.contains("encrypted (age) to 2 recipient(s): \(recipient)"), check.stdout)
        try TestSupport.write(AgeIdentity.generate().keyFileText(), to: dir + "/stranger.txt", mode: 0o600)
        let stranger = try backstop(["check"], env: ["DECRYPT_IDENTITY_FILE": dir + "/stranger.txt"])
        XCTAssertEqual(stranger.status, 0, stranger.stdout + stranger.stderr)
        XCTAssertTrue(stranger.stdout.contains("WARN  encryption") && stranger.stdout.contains("cannot read new backups"), stranger.stdout)
    }

    func testBadRecipientIsOneLineNamingTheKey() throws {
        let bad = try backstop(["backup"], env: ["ENCRYPT_TO": "age1notarealkey"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("ENCRYPT_TO"), bad.stderr)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/backups/daily"))

        // A recipients file works like age -R.
        try TestSupport.write("# ops team\n\(recipient)\n", to: dir + "/recipients.txt")
        let fromFile = try backstop(["backup"], env: ["ENCRYPT_TO": "", "ENCRYPT_TO_FILE": dir + "/recipients.txt"])
        XCTAssertEqual(fromFile.status, 0, fromFile.stderr)
        let keyed = try backstop(["verify"], env: ["DECRYPT_IDENTITY_FILE": key])
        XCTAssertEqual(keyed.status, 0, keyed.stdout)
    }
}

/// pg_dump targets with encryption on, in each dump format: backup, verify with and without
/// the key, restore into the live database, and the restore drill.
final class EncryptedPostgresCLITests: XCTestCase {
    var pg: PostgresCluster!
    var dir = ""
    var db = ""

    override func setUpWithError() throws {
        pg = try PostgresCluster.shared()
        dir = try TestSupport.scratch("encpg")
        db = "enc_\(UInt32.random(in: 0...UInt32.max))"
        try pg.createDatabase(db)
        try pg.psql("CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) SELECT md5(g::text) FROM generate_series(1, 500) g", database: db)
    }

    override func tearDown() {
        _ = try? pg.psql("DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)")
        try? FileOps.removeTree(dir)
    }

    func testEveryDumpFormatEncryptedBackupVerifyRestoreDrill() throws {
        let identity = AgeIdentity.generate()
        let key = dir + "/key.txt"
        try TestSupport.write(identity.keyFileText(), to: key, mode: 0o600)
        for format in ["custom", "custom-zstd", "sql-gzip"] {
            let config = dir + "/\(format).env"
            try TestSupport.write("""
            BACKUP_DIR=backups-\(format)
            TARGETS=db
            TARGET_DB_KIND=pg_dump
            TARGET_DB_HOST=127.0.0.1
            TARGET_DB_PORT=\(pg.port)
            TARGET_DB_USER=postgres
            TARGET_DB_PASSWORD=\(PostgresCluster.password)
            TARGET_DB_DATABASE=\(db)
            TARGET_DB_FORMAT=\(format)
            ENCRYPT_TO=\(identity.recipient)
            """, to: config, mode: 0o600)
            func backstop(_ args: [String], key: Bool) throws -> TestSupport.Run {
                try TestSupport.run("backstop", args + ["--config", config], environment: key ? ["DECRYPT_IDENTITY_FILE": dir + "/key.txt"] : [:])
            }
            let backup = try backstop(["backup"], key: false)
            XCTAssertEqual(backup.status, 0, "\(format): \(backup.stderr)")
            let manifest = try FileManager.default.subpathsOfDirectory(atPath: dir + "/backups-\(format)/daily").filter { $0.hasSuffix(".age") }
            // The dump and the globals dump (roles), both encrypted.
            XCTAssertEqual(manifest.count, 2, "\(format): \(manifest)")
            XCTAssertTrue(manifest.contains { $0.hasSuffix("/globals.sql.gz.age") }, "\(format): \(manifest)")
            let unkeyed = try backstop(["verify"], key: false)
            XCTAssertEqual(unkeyed.status, 0, unkeyed.stdout)
            XCTAssertTrue(unkeyed.stdout.contains("content checks skipped"), unkeyed.stdout)
            let keyed = try backstop(["verify"], key: true)
            XCTAssertEqual(keyed.status, 0, keyed.stdout + keyed.stderr)
            try pg.psql("DELETE FROM notes WHERE id > 100", database: db)
            let restore = try backstop(["restore", "db", "--yes"], key: true)
            XCTAssertEqual(restore.status, 0, "\(format): \(restore.stderr)")
            XCTAssertEqual(try pg.psql("SELECT count(*) FROM notes", database: db), "500", format)
            let drill = try backstop(["verify", "--restore-test"], key: true)
            XCTAssertEqual(drill.status, 0, "\(format): \(drill.stdout) \(drill.stderr)")
            XCTAssertTrue(drill.stdout.hasPrefix("PASS"), drill.stdout)
            let noKeyDrill = try backstop(["verify", "--restore-test"], key: false)
            XCTAssertEqual(noKeyDrill.status, 2, noKeyDrill.stdout)
            XCTAssertTrue(noKeyDrill.stderr.contains("DECRYPT_IDENTITY_FILE"), noKeyDrill.stderr)
        }
    }
}
