import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

/// Encryption at rest through the engine for the kinds not covered by the CLI tests: MinIO
/// tarballs and base backups become age files; rsync snapshot trees stay plain.
final class EncryptedTargetsTests: XCTestCase {
    var dir = ""
    let identity = AgeIdentity.generate()

    override func setUpWithError() throws {
        dir = try TestSupport.scratch("encrypted")
        ArtifactEncryption.shared.set(recipients: [identity.recipient, AgeIdentity.generate().recipient], identities: nil)
    }

    override func tearDown() {
        ArtifactEncryption.shared.set(recipients: [], identities: nil)
        try? FileOps.removeTree(dir)
    }

    func testMinioTarballIsEncryptedAndRestoresOnlyWithTheKey() throws {
        let data = dir + "/minio-data"
        for i in 0..<3 { try TestSupport.writeRandom(30_000 + i, to: "\(data)/bucket/f\(i).pdf/xl.meta", seed: UInt64(i)) }
        let e = TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data, bucket: "bucket", compression: .gzip(level: 6))])
        // Backing up needs no identity: the read-back checks the ciphertext's checksum.
        let summary = try e.backup()
        XCTAssertTrue(summary.succeeded, "\(summary.targets)")
        let artifact = summary.targets[0].artifacts[0]
        XCTAssertTrue(artifact.path.hasSuffix(".tar.gz.age"), artifact.path)
        XCTAssertTrue(FileOps.exists(summary.directory! + "/" + artifact.path))
        XCTAssertTrue(FileOps.exists(summary.directory! + "/" + artifact.path + ".sha256"))
        let unkeyed = try e.verify(e.repository.completeSets())[0]
        XCTAssertTrue(unkeyed.ok, "\(unkeyed.findings)")
        XCTAssertTrue(unkeyed.findings.contains { $0.severity == .info && $0.message.contains("content checks skipped") }, "\(unkeyed.findings)")
        let out = dir + "/restored"
        XCTAssertThrowsError(try e.restore(target: "minio", id: "latest", options: RestoreOptions(destination: out))) {
            XCTAssertTrue("\($0)".contains("DECRYPT_IDENTITY_FILE"), "\($0)")
        }
        XCTAssertFalse(FileOps.exists(out))

        ArtifactEncryption.shared.set(recipients: [identity.recipient], identities: [identity])
        let keyed = try e.verify(e.repository.completeSets())[0]
        XCTAssertTrue(keyed.ok, "\(keyed.findings)")
        XCTAssertTrue(keyed.findings.contains { $0.message.contains("bucket/f0.pdf/xl.meta") }, "the content was read: \(keyed.findings)")
        _ = try e.restore(target: "minio", id: "latest", options: RestoreOptions(destination: out))
        XCTAssertEqual(try TestSupport.snapshot(out + "/bucket"), try TestSupport.snapshot(data + "/bucket"))
        // With the identity at hand, the backup's read-back opens the tarball and counts entries.
        let again = try e.backup()
        XCTAssertTrue(again.succeeded, "\(again.targets)")
    }

    func testRsyncSnapshotTreesStayPlain() throws {
        let src = dir + "/src"
        try TestSupport.writeRandom(10_000, to: src + "/a.bin")
        try TestSupport.write("hello\n", to: src + "/b/c.txt")
        let e = TestSupport.engine(dir + "/repo", [RsyncSnapshotTarget(name: "media", source: src)])
        let summary = try e.backup()
        XCTAssertTrue(summary.succeeded, "\(summary.targets)")
        let stored = try FileManager.default.subpathsOfDirectory(atPath: summary.directory!)
        XCTAssertFalse(stored.contains { $0.hasSuffix(".age") }, "\(stored)")
        let verified = try e.verify(e.repository.completeSets(), deep: true)[0]
        XCTAssertTrue(verified.ok, "\(verified.findings)")
        XCTAssertFalse(verified.findings.contains { $0.message.contains("skipped") }, "\(verified.findings)")
        let out = dir + "/restored"
        _ = try e.restore(target: "media", id: "latest", options: RestoreOptions(destination: out))
        XCTAssertEqual(try TestSupport.snapshot(out), try TestSupport.snapshot(src))
    }

    func testBaseBackupIsEncryptedAndRestoresWithTheKey() throws {
        let pg = try PostgresCluster.shared()
        let server = PostgresServer(host: "127.0.0.1", port: pg.port, user: "postgres", password: PostgresCluster.password)
        let target = PgBaseBackupTarget(name: "cluster", server: server, walArchive: pg.archiveDirectory, workers: 2)
        let e = TestSupport.engine(dir + "/repo", [target])
        let run = try e.backup()
        XCTAssertTrue(run.succeeded, "\(run.targets.map { $0.error ?? "" })")
        let artifact = try XCTUnwrap(run.targets.first?.artifacts.first)
        XCTAssertEqual(artifact.path, "cluster/base.tar.zst.age")
        XCTAssertEqual(TestSupport.readStart(RawPath(run.directory! + "/" + artifact.path), max: 21), "age-encryption.org/v1")
        XCTAssertTrue(try e.verify(e.repository.completeSets())[0].ok)

        ArtifactEncryption.shared.set(recipients: [identity.recipient], identities: [identity])
        let keyed = try e.verify(e.repository.completeSets())[0]
        XCTAssertTrue(keyed.ok, "\(keyed.findings)")
        XCTAssertFalse(keyed.findings.contains { $0.message.contains("skipped") }, "\(keyed.findings)")
        let restored = pg.root + "/restored-enc-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileOps.removeTree(restored) }
        _ = try e.restore(target: "cluster", id: "latest", options: RestoreOptions(destination: restored))
        XCTAssertTrue(FileOps.exists(restored + "/PG_VERSION"))
        XCTAssertTrue(FileOps.exists(restored + "/global/pg_control"))

        // A wrong identity is refused before anything is written.
        let stranger = AgeIdentity.generate()
        ArtifactEncryption.shared.set(recipients: [], identities: [stranger])
        let other = pg.root + "/never-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertThrowsError(try e.restore(target: "cluster", id: "latest", options: RestoreOptions(destination: other))) {
            XCTAssertTrue("\($0)".contains("wrong key"), "\($0)")
        }
        XCTAssertFalse(FileOps.exists(other + "/PG_VERSION"))
    }
}
