@testable import BackupCore
import Foundation
import TestSupport
import XCTest

/// A target that writes given bytes as one artifact, or fails, for engine tests.
struct BytesTarget: BackupTarget {
    let name: String
    let kind = "bytes"
    let content: Data
    var fail = false
    var summary: String { "\(content.count) bytes" }

    func preflight(_ context: PreflightContext) -> [Finding] { [] }

    func backup(_ context: BackupContext) throws -> TargetOutput {
        if fail { throw OperationError("source exploded") }
        let w = try context.createArtifact("data.bin")
        try w.write(content)
        let (bytes, sha) = try w.finish()
        var out = TargetOutput()
        out.artifacts = [Artifact(path: "data.bin", bytes: bytes, sha256: sha, format: "raw")]
        return out
    }

    func restore(_ record: TargetRecord, context: RestoreContext) throws -> RestoreReport {
        RestoreReport(target: name, destination: "-", dryRun: context.options.dryRun)
    }
}

final class EngineTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("engine") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func engine(_ targets: [any BackupTarget]) -> BackupEngine { TestSupport.engine(dir + "/repo", targets) }

    func testStreamingDigestMatchesKnownVector() throws {
        let w = try HashingFileWriter(path: dir + "/abc")
        try w.write(Data("ab".utf8))
        try w.write(Data("c".utf8))
        let (bytes, sha) = try w.finish()
        XCTAssertEqual(bytes, 3)
        XCTAssertEqual(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var st = stat()
        stat(dir + "/abc", &st)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
    }

    func testSetHasManifestSidecarsAndPrivateModes() throws {
        let e = engine([BytesTarget(name: "a", content: Data("hello".utf8))])
        let summary = try e.backup()
        let set = try XCTUnwrap(summary.directory)
        let manifest = try XCTUnwrap(e.repository.completeSets().first?.manifest)
        XCTAssertEqual(manifest.status, .complete)
        let artifact = try XCTUnwrap(manifest.targets.first?.artifacts.first)
        XCTAssertEqual(artifact.path, "a/data.bin")
        XCTAssertEqual(artifact.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        XCTAssertEqual(try String(contentsOfFile: set + "/a/data.bin.sha256", encoding: .utf8),
                       "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  data.bin\n")
        for path in [set, set + "/a", dir + "/repo"] {
            var st = stat(); stat(path, &st)
            XCTAssertEqual(st.st_mode & 0o777, 0o700, path)
        }
        for path in [set + "/manifest.json", set + "/a/data.bin", set + "/a/data.bin.sha256"] {
            var st = stat(); stat(path, &st)
            XCTAssertEqual(st.st_mode & 0o777, 0o600, path)
        }
    }

    func testOneFailingTargetMakesAPartialSetAndAllFailingMakesNone() throws {
        let e = engine([BytesTarget(name: "good", content: Data("x".utf8)), BytesTarget(name: "bad", content: Data(), fail: true)])
        let summary = try e.backup()
        XCTAssertFalse(summary.succeeded)
        let set = try XCTUnwrap(e.repository.completeSets().first?.manifest)
        XCTAssertEqual(set.status, .partial)
        XCTAssertEqual(set.record(for: "bad")?.error, "source exploded")
        XCTAssertFalse(FileOps.exists(summary.directory! + "/bad"))

        let none = try e.backup(only: ["bad"])
        XCTAssertNil(none.setID)
        XCTAssertEqual(e.repository.allSets().count, 1, "a run where every target failed leaves no set")
    }

    func testIncompleteSetsAreNeverListedAndAreCleanedUp() throws {
        let e = engine([BytesTarget(name: "a", content: Data("1".utf8))])
        _ = try e.backup()
        // A crashed run: a staging folder and a renamed set without manifest.
        try FileOps.makeDirectory(dir + "/repo/daily/.20200101_000000.partial/a")
        try FileOps.makeDirectory(dir + "/repo/daily/20200102_000000/a")
        // Something that is not ours must never be removed.
        try FileOps.makeDirectory(dir + "/repo/daily/my-notes")
        XCTAssertEqual(e.repository.completeSets().count, 1)
        // Both are listed as incomplete (so an admin sees a crash's leftovers); neither is usable.
        let incomplete = e.repository.allSets().filter { $0.manifest == nil }
        XCTAssertEqual(incomplete.map(\.id), ["20200102_000000", "20200101_000000"])
        XCTAssertEqual(incomplete.last?.problem, Repository.stagingProblem)
        XCTAssertThrowsError(try e.repository.find("20200101_000000")) { XCTAssertTrue("\($0)".contains("incomplete")) }
        XCTAssertThrowsError(try e.repository.find("20200102_000000")) { XCTAssertTrue("\($0)".contains("incomplete")) }
        let summary = try e.backup()
        XCTAssertEqual(summary.cleanedUp.count, 2)
        XCTAssertFalse(FileOps.exists(dir + "/repo/daily/20200102_000000"))
        XCTAssertTrue(FileOps.exists(dir + "/repo/daily/my-notes"))
        XCTAssertEqual(e.repository.completeSets().count, 2)
    }

    func testLockIsExclusiveAndNamesTheHolder() throws {
        let e = engine([BytesTarget(name: "a", content: Data("1".utf8))])
        let held = try e.lock()
        XCTAssertThrowsError(try e.backup()) { error in
            XCTAssertEqual((error as? UserFacingError)?.exitStatus, .lockHeld)
            XCTAssertTrue("\(error)".contains("pid \(getpid())"), "\(error)")
        }
        held.release()
        XCTAssertNoThrow(try e.backup())
    }

    func testRemoveKeepsTheLastGoodBackupOfEveryTarget() throws {
        let e = engine([BytesTarget(name: "a", content: Data("1".utf8))])
        let first = try XCTUnwrap(try e.backup().setID)
        XCTAssertThrowsError(try e.remove(id: first, force: false, dryRun: false)) {
            XCTAssertTrue("\($0)".contains("only good backup of target 'a'"), "\($0)")
        }
        let second = try XCTUnwrap(try e.backup().setID)
        XCTAssertNotEqual(first, second)
        let plan = try e.remove(id: first, force: false, dryRun: true)
        XCTAssertFalse(plan.removed)
        XCTAssertEqual(e.repository.completeSets().count, 2, "dry run removes nothing")
        _ = try e.remove(id: first, force: false, dryRun: false)
        XCTAssertEqual(e.repository.completeSets().map(\.id), [second])
    }

    func testVerifyNamesTheCorruptFile() throws {
        let e = engine([BytesTarget(name: "a", content: Data(repeating: 7, count: 4096))])
        let path = try XCTUnwrap(try e.backup().directory) + "/a/data.bin"
        XCTAssertEqual(try e.verify(e.repository.completeSets()).map(\.ok), [true])
        let h = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        h.seek(toFileOffset: 100)
        h.write(Data([8]))
        try h.close()
        let result = try XCTUnwrap(try e.verify(e.repository.completeSets()).first)
        XCTAssertFalse(result.ok)
        let finding = try XCTUnwrap(result.findings.first, "a corrupt artifact must give a finding")
        XCTAssertTrue(finding.message.contains("a/data.bin: checksum mismatch"), finding.message)
    }

    func testChildProcessStreamsStdoutAndKeepsStderr() throws {
        var bytes = 0
        let outcome = try ChildProcess("/bin/sh", ["-c", "head -c 3000000 /dev/zero; echo oops >&2; exit 3"]).run { bytes += $0.count }
        XCTAssertEqual(bytes, 3_000_000)
        XCTAssertEqual(outcome.status, 3)
        XCTAssertEqual(outcome.lastErrorLine, "oops")
        let fed = try ChildProcess("/bin/sh", ["-c", "wc -c"], input: .producer { write in
            let chunk = [UInt8](repeating: 1, count: 65536)
            for _ in 0..<40 { try chunk.withUnsafeBytes { try write($0) } }
        }).capture()
        XCTAssertEqual(fed.1.trimmingCharacters(in: .whitespacesAndNewlines), "2621440")
    }
}
