import BackupCore
import Foundation
@testable import Targets
import TestSupport
import XCTest

/// `verify --restore-test` for every kind: each drill passes on a good backup and fails on one
/// whose checksums are all valid but whose content no longer matches what the manifest recorded.
final class RestoreDrillTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("drill") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    /// Rewrites the set's manifest through `change` (the manifest is the root of trust: nothing
    /// checksums it, so this is a consistent, checksum-valid edit).
    func editManifest(_ setDir: String, _ change: (inout SetManifest) throws -> Void) throws {
        let path = setDir + "/manifest.json"
        var manifest = try BackstopJSON.decoder().decode(SetManifest.self, from: try TestSupport.read(path))
        try change(&manifest)
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(manifest), to: path)
    }

    /// Replaces artifact `index` of the first target with `data` and records its new checksum.
    func replaceArtifact(_ setDir: String, index: Int, with data: Data) throws {
        var path = ""
        try editManifest(setDir) { m in
            path = setDir + "/" + m.targets[0].artifacts[index].path
            try FileOps.writeAtomically(data, to: path)
            let (sha, bytes) = try sha256OfFile(path)
            m.targets[0].artifacts[index].sha256 = sha
            m.targets[0].artifacts[index].bytes = bytes
            // The `sha256sum -c` sidecar too, so only the drill can tell.
            try FileOps.writeAtomically(Data("\(sha)  \((path as NSString).lastPathComponent)\n".utf8), to: path + ".sha256")
        }
    }

    func assertScratchRemoved(_ engine: BackupEngine, file: StaticString = #filePath, line: UInt = #line) {
        let left = (try? FileManager.default.contentsOfDirectory(atPath: engine.repository.scratchDirectory)) ?? []
        XCTAssertEqual(left, [], "the drill's scratch folder is always removed", file: file, line: line)
    }

    // MARK: sqlite

    func testSQLiteDrillComparesEveryTablesRowCount() throws {
        let live = dir + "/live/app.db"
        try FileOps.makeDirectory(dir + "/live")
        let db = try SQLiteDatabase(path: live, readOnly: false, create: true)
        try db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); CREATE TABLE \"odd \"\"name\" (x);")
        try db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) INSERT INTO notes (body) SELECT 'note ' || i FROM n")
        try db.execute("INSERT INTO \"odd \"\"name\" VALUES (1), (2)")
        let engine = TestSupport.engine(dir + "/repo", [SQLiteTarget(name: "db", path: live)])
        let run = try engine.backup()
        XCTAssertTrue(run.succeeded)
        let before = try TestSupport.read(live)

        let reports = try engine.drill()
        XCTAssertEqual(reports.count, 1)
        XCTAssertTrue(reports[0].passed, "\(reports[0].lines)")
        XCTAssertTrue(reports[0].lines.contains("integrity_check: ok"), "\(reports[0].lines)")
        XCTAssertTrue(reports[0].lines.contains { $0.contains("2 tables, 302 rows: every count matches") }, "\(reports[0].lines)")
        XCTAssertGreaterThan(reports[0].restoreSeconds, 0)
        XCTAssertEqual(try TestSupport.read(live), before, "the live database is not touched")
        XCTAssertFalse(FileOps.exists(engine.repository.safetyDirectory), "no safety copy: nothing live was restored over")
        assertScratchRemoved(engine)

        // The counts recorded at backup time no longer match the (intact) backup: the drill fails.
        let setDir = try XCTUnwrap(run.directory)
        try editManifest(setDir) { $0.targets[0].facts["tables"] = .object(["notes": .number(299), "odd \"name": .number(2)]) }
        let failed = try engine.drill()
        XCTAssertFalse(failed[0].passed)
        XCTAssertTrue(failed[0].lines.joined(separator: "\n").contains("notes: 300 rows, manifest says 299"), "\(failed[0].lines)")
        assertScratchRemoved(engine)

        // A valid gzip of another database, with its checksum fixed up: caught by the counts.
        try editManifest(setDir) { $0.targets[0].facts["tables"] = .object(["notes": .number(300), "odd \"name": .number(2)]) }
        XCTAssertTrue(try engine.drill()[0].passed)
        try db.execute("DELETE FROM notes WHERE id > 10")
        let other = dir + "/other.db"
        try db.backup(to: other)
        let (gz, _) = try ChildProcess("/bin/sh", ["-c", "gzip -c < '\(other)' > '\(other).gz'"]).capture()
        XCTAssertEqual(gz.status, 0)
        try replaceArtifact(setDir, index: 0, with: try TestSupport.read(other + ".gz"))
        XCTAssertTrue(try engine.verify(engine.repository.completeSets())[0].ok, "checksums and integrity are fine")
        let swapped = try engine.drill()
        XCTAssertFalse(swapped[0].passed)
        XCTAssertTrue(swapped[0].lines.joined(separator: "\n").contains("notes: 10 rows, manifest says 300"), "\(swapped[0].lines)")
        XCTAssertEqual(engine.drillHistory().map(\.passed), [true, false, true, false])
    }

    // MARK: rsync

    func testRsyncDrillRestoresWithRsyncAndHashesEveryFile() throws {
        let source = dir + "/media"
        try TestSupport.writeRandom(200_000, to: source + "/a/big.bin", seed: 1)
        try TestSupport.write("hello\n", to: source + "/b/c/note.txt")
        try TestSupport.write("x", to: source + "/name with space %.txt")
        symlink("b/c/note.txt", source + "/link")
        let engine = TestSupport.engine(dir + "/repo", [RsyncSnapshotTarget(name: "media", source: source)])
        let run = try engine.backup()
        XCTAssertTrue(run.succeeded, "\(run.targets.map { $0.error ?? "" })")

        let reports = try engine.drill()
        XCTAssertTrue(reports[0].passed, "\(reports[0].lines)")
        XCTAssertTrue(reports[0].lines.contains { $0.contains("4 file(s)") && $0.contains("every file's SHA-256 matches") }, "\(reports[0].lines)")
        assertScratchRemoved(engine)
        XCTAssertEqual(try TestSupport.read(source + "/b/c/note.txt"), Data("hello\n".utf8))

        // Bit rot in the snapshot: same size, so only the hashes can tell.
        let snapshot = try XCTUnwrap(run.directory) + "/media/tree"
        try TestSupport.flipByte(snapshot + "/a/big.bin", at: 1234, mask: 0x01)
        XCTAssertTrue(try engine.verify(engine.repository.completeSets())[0].ok, "a plain verify checks sizes only")
        let failed = try engine.drill()
        XCTAssertFalse(failed[0].passed)
        XCTAssertTrue(failed[0].lines.joined(separator: "\n").contains("a/big.bin: SHA-256"), "\(failed[0].lines)")

        // A file in the snapshot that the manifest does not list fails too.
        try TestSupport.flipByte(snapshot + "/a/big.bin", at: 1234, mask: 0x01)
        try TestSupport.write("stray", to: snapshot + "/stray.txt")
        let extra = try engine.drill()
        XCTAssertFalse(extra[0].passed)
        XCTAssertTrue(extra[0].lines.joined(separator: "\n").contains("stray.txt: restored, but not in the manifest"), "\(extra[0].lines)")
        assertScratchRemoved(engine)
    }

    // MARK: archive and minio

    func testArchiveMemberListIsRecordedAndDrilled() throws {
        let base = dir + "/site"
        try TestSupport.writeRandom(150_000, to: base + "/etc/data.bin", seed: 3)
        try TestSupport.write("server {}\n", to: base + "/etc/nginx.conf")
        try TestSupport.write("", to: base + "/etc/empty")
        try TestSupport.write("%", to: base + "/etc/100% sure")
        let odd = RawPath(base + "/etc").appending(RawPath(bytes: [0x66, 0xFF, 0x0A, 0x67]))
        let fd = odd.withCString { open($0, O_WRONLY | O_CREAT, 0o600) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = write(fd, "odd", 3)
        close(fd)
        let target = ArchiveTarget(name: "conf", paths: [base + "/etc"], base: base, compression: .zstd(level: 3, threads: 1))
        let engine = TestSupport.engine(dir + "/repo", [target])
        let run = try engine.backup()
        XCTAssertTrue(run.succeeded, "\(run.targets.map { $0.error ?? "" })")
        let record = run.targets[0]
        XCTAssertEqual(record.artifacts.count, 2)
        let list = try XCTUnwrap(record.artifacts.last)
        XCTAssertEqual(list.format, "backstop-members/1")
        XCTAssertEqual(list.path, "conf/conf_\(run.setID!).members")
        let setDir = try XCTUnwrap(run.directory)
        var st = stat()
        XCTAssertEqual(lstat(setDir + "/" + list.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let text = String(decoding: try TestSupport.read(setDir + "/" + list.path), as: UTF8.self)
        let expected = [
            "# backstop-members/1",
            "1 \(try sha256OfFile(base + "/etc/100% sure").hex) etc/100%25%20sure",
            "150000 \(try sha256OfFile(base + "/etc/data.bin").hex) etc/data.bin",
            "0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 etc/empty",
            "3 \(try FileTreeManifest.hash(odd, isLink: false)) etc/f%FF%0Ag",
            "10 \(try sha256OfFile(base + "/etc/nginx.conf").hex) etc/nginx.conf",
        ]
        XCTAssertEqual(text.split(separator: "\n").map(String.init), expected, "sorted by the names' raw bytes, names escaped")
        XCTAssertTrue(try engine.verify(engine.repository.completeSets())[0].ok)

        let reports = try engine.drill()
        XCTAssertTrue(reports[0].passed, "\(reports[0].lines)")
        XCTAssertTrue(reports[0].lines.contains { $0.contains("5 file(s)") && $0.contains("size and SHA-256 match the member list") }, "\(reports[0].lines)")
        assertScratchRemoved(engine)

        // A member's recorded hash changed, the list's own checksum fixed up: the drill fails.
        let tampered = text.replacingOccurrences(of: try sha256OfFile(base + "/etc/nginx.conf").hex, with: String(repeating: "0", count: 64))
        try replaceArtifact(setDir, index: 1, with: Data(tampered.utf8))
        XCTAssertTrue(try engine.verify(engine.repository.completeSets())[0].ok)
        let failed = try engine.drill()
        XCTAssertFalse(failed[0].passed)
        XCTAssertTrue(failed[0].lines.joined(separator: "\n").contains("etc/nginx.conf: SHA-256"), "\(failed[0].lines)")

        // The list edited without fixing its checksum: refused before extracting.
        try TestSupport.flipByte(setDir + "/" + list.path, at: 5)
        let broken = try engine.drill()
        XCTAssertFalse(broken[0].passed)
        XCTAssertTrue(broken[0].lines.joined().contains("checksum mismatch"), "\(broken[0].lines)")

        // A backup from before member lists: compared with the archive's own entries, and said so.
        try editManifest(setDir) { $0.targets[0].artifacts.removeLast() }
        let legacy = try engine.drill()
        XCTAssertTrue(legacy[0].passed, "\(legacy[0].lines)")
        XCTAssertTrue(legacy[0].lines.contains { $0.contains("has no member list") }, "\(legacy[0].lines)")
        assertScratchRemoved(engine)
    }

    func testMinioDrillChecksEveryObjectFile() throws {
        let data = dir + "/minio"
        for i in 0..<5 { try TestSupport.writeRandom(20_000 + i, to: data + "/pdfs/doc\(i).pdf/part.1", seed: UInt64(i)) }
        try TestSupport.write("{}", to: data + "/pdfs/doc0.pdf/xl.meta")
        let engine = TestSupport.engine(dir + "/repo", [MinioDataTarget(name: "minio", dataDirectory: data, bucket: "pdfs",
                                                                      stopCommand: "touch \(dir)/stopped")])
        let run = try engine.backup()
        XCTAssertTrue(run.succeeded, "\(run.targets.map { $0.error ?? "" })")
        XCTAssertEqual(run.targets[0].artifacts.map(\.format).last, "backstop-members/1")
        unlink(dir + "/stopped")
        let reports = try engine.drill()
        XCTAssertTrue(reports[0].passed, "\(reports[0].lines)")
        XCTAssertTrue(reports[0].lines.contains { $0.contains("6 file(s)") }, "\(reports[0].lines)")
        XCTAssertFalse(FileOps.exists(dir + "/stopped"), "a drill never stops MinIO: it does not touch it")

        let setDir = try XCTUnwrap(run.directory)
        let listPath = setDir + "/" + run.targets[0].artifacts[1].path
        let text = String(decoding: try TestSupport.read(listPath), as: UTF8.self)
        // A wrong size recorded for one object.
        let tampered = text.replacingOccurrences(of: "20003 ", with: "20004 ")
        XCTAssertNotEqual(tampered, text)
        try replaceArtifact(setDir, index: 1, with: Data(tampered.utf8))
        let failed = try engine.drill()
        XCTAssertFalse(failed[0].passed)
        XCTAssertTrue(failed[0].lines.joined(separator: "\n").contains("pdfs/doc3.pdf/part.1: size 20003, member list says 20004"), "\(failed[0].lines)")
        assertScratchRemoved(engine)
    }

    // MARK: kinds without a drill

    struct NoDrillTarget: BackupTarget {
        let name: String
        let kind = "plain"
        var summary: String { "a file" }
        func preflight(_ context: PreflightContext) -> [Finding] { [] }
        func backup(_ context: BackupContext) throws -> TargetOutput {
            let w = try context.createArtifact("x.txt")
            try w.write(Data("x".utf8))
            let (bytes, sha) = try w.finish()
            var out = TargetOutput()
            out.artifacts = [Artifact(path: "x.txt", bytes: bytes, sha256: sha, format: "text")]
            return out
        }
        func restore(_ record: TargetRecord, context: RestoreContext) throws -> RestoreReport {
            RestoreReport(target: name, destination: "-", dryRun: true)
        }
    }

    func testMessagesWhenNothingCanBeDrilled() throws {
        let plain = TestSupport.engine(dir + "/plain", [NoDrillTarget(name: "notes")])
        // A kind without a drill is named as such, with or without a backup, and so are the kinds that have one.
        XCTAssertThrowsError(try plain.drill(kindsWithDrill: ["archive", "sqlite"])) { error in
            XCTAssertTrue(error is UsageError)
            XCTAssertTrue("\(error)".contains("no restore drill for notes (plain): its kind has none; kinds with one: archive, sqlite"), "\(error)")
        }
        XCTAssertTrue(try plain.backup().succeeded)
        XCTAssertThrowsError(try plain.drill(kindsWithDrill: ["archive"])) { error in
            XCTAssertTrue(error is UsageError)
            XCTAssertTrue("\(error)".contains("no restore drill for notes (plain): its kind has none; kinds with one: archive"), "\(error)")
        }
        // A kind with a drill but no good backup yet: exit 1's error, not a usage error.
        let waiting = TestSupport.engine(dir + "/waiting", [ArchiveTarget(name: "tree", paths: [dir + "/none"], base: dir)])
        XCTAssertThrowsError(try waiting.drill()) { error in
            XCTAssertFalse(error is UsageError)
            XCTAssertTrue("\(error)".contains("no good backup to drill yet of tree"), "\(error)")
        }
        // Built-in kinds have drills: with one beside the plain target, it is drilled and the plain one skipped.
        try TestSupport.write("x", to: dir + "/tree/x")
        let mixed = TestSupport.engine(dir + "/mixed", [NoDrillTarget(name: "notes"), ArchiveTarget(name: "tree", paths: [dir + "/tree"], base: dir)])
        XCTAssertTrue(try mixed.backup().succeeded)
        let reports = try mixed.drill()
        XCTAssertEqual(reports.map(\.target), ["tree"])
        XCTAssertTrue(reports[0].passed, "\(reports[0].lines)")
    }
}
