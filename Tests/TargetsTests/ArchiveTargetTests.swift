import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

final class ArchiveTargetTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("archive") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func engine(_ targets: [any BackupTarget]) -> BackupEngine { TestSupport.engine(dir + "/repo", targets) }

    func makeTree() throws -> String {
        let src = dir + "/src"
        try TestSupport.write("print('hi')\n", to: src + "/app/main.py")
        try TestSupport.write("secret=1\n", to: src + "/app/.env", mode: 0o600)
        try TestSupport.write("x", to: src + "/app/cache/x.pyc")
        try TestSupport.write("[core]\n", to: src + "/.git/config")
        try TestSupport.writeRandom(300_000, to: src + "/data/blob.bin")
        try TestSupport.write("spaces", to: src + "/data/a file with spaces.txt")
        symlink("app/main.py", src + "/link-to-main")
        return src
    }

    func testRoundTripBytesModesAndExcludes() throws {
        for compression in [Compression.gzip(level: 6), .zstd(level: 3, threads: 2)] {
            try? FileOps.removeTree(dir + "/repo")
            let src = try makeTree()
            let target = ArchiveTarget(name: "code", paths: [src], base: src, exclude: [".git", "*.pyc"], compression: compression)
            let e = engine([target])
            let summary = try e.backup()
            XCTAssertTrue(summary.succeeded, "\(summary.targets)")
            let record = try XCTUnwrap(summary.targets.first)
            XCTAssertTrue(record.artifacts[0].path.hasSuffix(compression == .gzip(level: 6) ? ".tar.gz" : ".tar.zst"))
            XCTAssertTrue(try e.verify(e.repository.completeSets())[0].ok)

            let out = dir + "/restored-\(compression.name)"
            let report = try e.restore(target: "code", id: "latest", options: RestoreOptions(destination: out))
            XCTAssertNil(report.safetyCopy, "nothing was overwritten, so no safety copy")
            var expected = try TestSupport.snapshot(src)
            expected = expected.filter { !$0.key.hasPrefix(".git/") && !$0.key.hasSuffix(".pyc") }
            XCTAssertEqual(try TestSupport.snapshot(out), expected)
            var st = stat()
            stat(out + "/app/.env", &st)
            XCTAssertEqual(st.st_mode & 0o777, 0o600, "modes are kept")
            var buf = [CChar](repeating: 0, count: 256)
            XCTAssertEqual(readlink(out + "/link-to-main", &buf, 255), 11, "symlinks are kept as links")
        }
    }

    func testMissingPathsAreSkippedAndListed() throws {
        let src = try makeTree()
        let target = ArchiveTarget(name: "conf", paths: [src + "/app/main.py", src + "/nope.conf"])
        let summary = try engine([target]).backup()
        let record = try XCTUnwrap(summary.targets.first)
        XCTAssertEqual(record.status, .ok)
        XCTAssertEqual(record.facts["skippedMissing"], .array([.string(src + "/nope.conf")]))
        XCTAssertTrue(record.warnings.contains { $0.contains("nope.conf") })
        // Entries are relative: the base defaults to /, so the leading slash is dropped.
        let members = record.facts["members"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertEqual(members, [String((src + "/app/main.py").dropFirst())])
    }

    func testGitCommitAndBranchAreRecorded() throws {
        let src = try makeTree()
        try? FileOps.removeTree(src + "/.git")
        let env = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"]
        for args in [["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]] {
            XCTAssertEqual(try ChildProcess("git", ["-C", src] + args, environment: env).run().status, 0)
        }
        let (_, head) = try ChildProcess("git", ["-C", src, "rev-parse", "HEAD"]).capture()
        let summary = try engine([ArchiveTarget(name: "code", paths: [src], base: src, exclude: [".git"])]).backup()
        let git = try XCTUnwrap(summary.targets[0].facts["git"]?.objectValue)
        XCTAssertEqual(git["commit"]?.stringValue, head.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertEqual(git["branch"]?.stringValue, "main")
    }

    func testSidecarsPassSha256sum() throws {
        let src = try makeTree()
        let summary = try engine([ArchiveTarget(name: "code", paths: [src], base: src)]).backup()
        let folder = summary.directory! + "/code"
        let sidecar = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: folder).first { $0.hasSuffix(".sha256") })
        let (outcome, text) = try ChildProcess("sha256sum", ["-c", sidecar], workingDirectory: folder).capture()
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(text.hasSuffix(": OK\n"), text)
    }

    func testRestoreOverExistingFilesTakesSafetyCopy() throws {
        let src = try makeTree()
        let target = ArchiveTarget(name: "code", paths: [src], base: src, exclude: [".git"])
        let e = engine([target])
        _ = try e.backup()
        try TestSupport.write("changed\n", to: src + "/app/main.py")
        let report = try e.restore(target: "code", id: "latest", options: RestoreOptions())
        XCTAssertEqual(try String(contentsOfFile: src + "/app/main.py", encoding: .utf8), "print('hi')\n")
        let safety = try XCTUnwrap(report.safetyCopy)
        // The safety tarball holds the version that was overwritten.
        let check = dir + "/check"
        try FileOps.makeDirectory(check)
        try ArchiveTarget.extractAll(safety, into: check)
        XCTAssertEqual(try String(contentsOfFile: check + "/app/main.py", encoding: .utf8), "changed\n")
    }

    /// A backup whose tarball holds `../` and absolute entries (with a valid checksum) is refused,
    /// and nothing is written anywhere.
    func testHostileArchiveIsRefusedAndWritesNothing() throws {
        let src = try makeTree()
        let e = engine([ArchiveTarget(name: "code", paths: [src + "/app/main.py"], base: src)])
        let summary = try e.backup()
        let set = summary.directory!
        var manifest = try XCTUnwrap(e.repository.completeSets().first?.manifest)
        let artifactPath = set + "/" + manifest.targets[0].artifacts[0].path
        unlink(artifactPath)
        let w = try HashingFileWriter(path: artifactPath)
        let a = try ArchiveWriter(sink: w, format: .tar, compression: .gzip(level: 1))
        for name in ["ok.txt", "../escaped.txt", dir + "/absolute.txt", "sub/../../escaped2.txt"] {
            try a.addStream(name: name, size: 4) { write in try Data("evil".utf8).withUnsafeBytes { try write($0) } }
        }
        try a.close()
        let (bytes, sha) = try w.finish()
        manifest.targets[0].artifacts[0].bytes = bytes
        manifest.targets[0].artifacts[0].sha256 = sha
        manifest.targets[0].facts["entries"] = .number(4)
        try e.repository.writeManifest(manifest, in: set)

        let out = dir + "/out/inner"
        try FileOps.makeDirectory(out)
        XCTAssertThrowsError(try e.restore(target: "code", id: "latest", options: RestoreOptions(destination: out))) { error in
            XCTAssertTrue("\(error)".contains("would write outside"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out), [], "not even the safe entry is written")
        XCTAssertFalse(FileOps.exists(dir + "/out/escaped.txt"))
        XCTAssertFalse(FileOps.exists(dir + "/out/escaped2.txt"))
        XCTAssertFalse(FileOps.exists(dir + "/absolute.txt"))
    }

    func testConfigErrorsNameTheKey() throws {
        try TestSupport.write("", to: dir + "/b.env")
        let config = Config(file: dir + "/b.env", values: ["TARGET_CODE_PATHS": "/srv/app", "TARGET_CODE_COMPRESSION": "lz4"])
        XCTAssertThrowsError(try ArchiveTarget(settings: TargetSettings(name: "code", config: config))) { error in
            XCTAssertTrue("\(error)".hasPrefix("config: invalid value for TARGET_CODE_COMPRESSION in \(self.dir)/b.env: 'lz4'"), "\(error)")
        }
        let missing = Config(file: dir + "/b.env", values: ["TARGETS": "code", "TARGET_CODE_KIND": "archive"])
        XCTAssertThrowsError(try TargetRegistry.buildAll(config: missing)) { error in
            XCTAssertEqual("\(error)", "config: missing required key TARGET_CODE_PATHS in \(self.dir)/b.env")
        }
    }
}

extension ArchiveTargetTests {
    /// Names with spaces, newlines, leading dashes and invalid UTF-8 survive the round trip.
    func testOddFileNamesRoundTrip() throws {
        let src = RawPath(dir + "/odd")
        try FileOps.makeDirectory(src.display)
        let names: [[UInt8]] = [
            Array("with space.txt".utf8), Array("new\nline.txt".utf8), Array("-leading-dash".utf8),
            Array("caf".utf8) + [0xE9] + Array(".txt".utf8), [0xFF, 0xFE, 0x41], Array("ünïcödé ✓".utf8),
        ]
        for (i, name) in names.enumerated() {
            let fd = src.appending(name).withCString { open($0, O_WRONLY | O_CREAT | O_EXCL, 0o644) }
            XCTAssertGreaterThanOrEqual(fd, 0)
            _ = "content \(i)".withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        let e = engine([ArchiveTarget(name: "odd", paths: [src.display], base: src.display)])
        let summary = try e.backup()
        XCTAssertEqual(summary.targets[0].facts["files"], .number(Double(names.count)), "no file is skipped")
        XCTAssertTrue(try e.verify(e.repository.completeSets())[0].ok)
        let out = RawPath(dir + "/odd-out")
        _ = try e.restore(target: "odd", id: "latest", options: RestoreOptions(destination: out.display))
        XCTAssertEqual(out.children(), src.children())
        for (i, name) in names.enumerated() {
            XCTAssertEqual(TestSupport.readStart(out.appending(name)), "content \(i)", RawPath(bytes: name).display)
        }
        // Restoring again over them takes a safety copy of every one (the names are found).
        let again = try e.restore(target: "odd", id: "latest", options: RestoreOptions(destination: out.display))
        XCTAssertTrue(again.lines.contains { $0.contains("(\(names.count) existing file(s) overwritten)") }, "\(again.lines)")
    }
}

extension ArchiveTargetTests {
    /// A backup directory inside the archived tree is never archived into itself.
    func testBackupDirectoryInsideTheSourceIsLeftOut() throws {
        let src = try makeTree()
        let e = TestSupport.engine(src + "/backups", [ArchiveTarget(name: "all", paths: [src], base: src)])
        XCTAssertTrue(try e.backup().succeeded)
        let second = try e.backup()
        XCTAssertTrue(second.succeeded)
        let members = second.targets[0].facts["members"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertFalse(members.contains { $0.hasPrefix("backups") }, "\(members)")
        XCTAssertTrue(members.contains("app/main.py"))
    }
}
