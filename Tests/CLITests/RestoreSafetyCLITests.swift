import BackupCore
import Foundation
import TestSupport
import XCTest

/// The archive restore's safety as an administrator sees it through `backstop restore`: names
/// kept as bytes, set-ID bits, a rolled-back failure, and a failed rollback that says so.
final class RestoreSafetyCLITests: XCTestCase {
    var dir = ""
    var config = ""

    override func setUpWithError() throws {
        dir = try TestSupport.scratch("restore-safety")
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=src
        """, to: dir + "/backstop.env")
        config = dir + "/backstop.env"
    }

    override func tearDown() { try? FileOps.removeTree(dir) }

    private func backstop(_ args: [String], env: [String: String] = [:]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config], environment: env)
    }

    private let nfc = Array("caf\u{E9}.txt".utf8), nfd = Array("cafe\u{301}.txt".utf8)

    private func makeSource() throws -> RawPath {
        let src = RawPath(dir + "/src")
        try TestSupport.write("#!/bin/sh\n", to: dir + "/src/bin/tool", mode: 0o4755)
        for (name, text) in [(nfc, "nfc"), (nfd, "nfd")] {
            let fd = src.appending(name).withCString { open($0, O_WRONLY | O_CREAT | O_EXCL, 0o644) }
            XCTAssertGreaterThanOrEqual(fd, 0)
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        symlink("bin/tool", dir + "/src/link")
        return src
    }

    func testNamesSetIDBitsAndRollbackThroughTheCLI() throws {
        let src = try makeSource()
        XCTAssertEqual(try backstop(["backup"]).status, 0)

        // Into another folder: both names, the link, and no set-user-ID bit unless asked.
        let out = RawPath(dir + "/out")
        let restored = try backstop(["restore", "code", "--to", out.display, "--yes"])
        XCTAssertEqual(restored.status, 0, restored.stderr)
        XCTAssertEqual(out.children(), src.children())
        XCTAssertEqual(TestSupport.readStart(out.appending(nfc)), "nfc")
        XCTAssertEqual(TestSupport.readStart(out.appending(nfd)), "nfd")
        XCTAssertTrue(restored.stdout.contains("set-user-ID/set-group-ID bits removed from 1 file(s) (--keep-setuid keeps them): bin/tool"), restored.stdout)
        var st = stat()
        lstat(out.display + "/bin/tool", &st)
        XCTAssertEqual(st.st_mode & 0o7777, 0o755)
        lstat(out.display + "/link", &st)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFLNK)
        let kept = try backstop(["restore", "code", "--to", out.display, "--yes", "--keep-setuid"])
        XCTAssertEqual(kept.status, 0, kept.stderr)
        lstat(out.display + "/bin/tool", &st)
        XCTAssertEqual(st.st_mode & 0o7777, 0o4755)

        // A failure part-way: exit 1, rolled back, the changed file as it was.
        try TestSupport.write("changed", to: dir + "/src/bin/tool")
        let failed = try backstop(["restore", "code", "--yes"], env: ["BACKSTOP_FAULT": "restore-entry@4"])
        XCTAssertEqual(failed.status, 1)
        XCTAssertTrue(failed.stderr.contains("failed and was rolled back"), failed.stderr)
        XCTAssertEqual(TestSupport.readStart(RawPath(dir + "/src/bin/tool")), "changed")

        // The rollback failing too: exit 1, in capitals, naming the safety copy.
        let loud = try backstop(["restore", "code", "--yes"], env: ["BACKSTOP_FAULT": "restore-entry@4,rollback"])
        XCTAssertEqual(loud.status, 1)
        XCTAssertTrue(loud.stderr.contains("ROLLBACK FAILED"), loud.stderr)
        XCTAssertTrue(loud.stderr.contains("the overwritten files are in the safety copy \(dir)/backups/pre-restore/code-"), loud.stderr)
    }
}
