import BackupCore
import Foundation
import TestSupport
import XCTest

/// Symbolic links inside BACKUP_DIR never lead Backstop outside it: an artifact replaced by a
/// link is an error (not read through), and links/, tmp/, state/ or pre-restore/ being a link
/// stops every writing command with one line before it writes there.
final class RepositoryLinkTests: XCTestCase {
    var dir = ""
    var config = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("repo-links")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        try FileOps.makeDirectory(dir + "/outside")
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=\(dir)/backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=\(dir)/src
        TARGET_CODE_BASE=\(dir)/src
        """, to: config)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    func testAnArtifactThatIsASymlinkIsNotReadThrough() throws {
        let daily = dir + "/backups/daily"
        let id = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: daily).first { !$0.hasPrefix(".") })
        let code = daily + "/" + id + "/code"
        let tarball = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: code).first { $0.contains(".tar") && !$0.hasSuffix(".sha256") && !$0.contains("members") })
        // The same bytes, outside: only the link is wrong.
        XCTAssertEqual(rename(code + "/" + tarball, dir + "/outside/" + tarball), 0)
        XCTAssertEqual(symlink(dir + "/outside/" + tarball, code + "/" + tarball), 0)
        let verify = try backstop(["verify"])
        XCTAssertEqual(verify.status, 1, verify.stdout + verify.stderr)
        XCTAssertTrue((verify.stdout + verify.stderr).contains("symbolic link"), verify.stdout + verify.stderr)
        let restore = try backstop(["restore", "code", "--to", dir + "/out", "--yes"])
        XCTAssertEqual(restore.status, 1, restore.stdout + restore.stderr)
        XCTAssertFalse(FileOps.exists(dir + "/out/app.py"))
    }

    func testWorkingFoldersThatAreSymlinksStopWritingCommands() throws {
        for folder in ["links", "tmp", "state", "pre-restore", "logs"] {
            let path = dir + "/backups/" + folder
            try? FileOps.removeTree(path)
            XCTAssertEqual(symlink(dir + "/outside", path), 0)
            for args in [["backup"], ["verify", "--restore-test"], ["restore", "code", "--to", dir + "/out-\(folder)", "--yes"]] {
                let run = try backstop(args)
                XCTAssertNotEqual(run.status, 0, "\(folder) \(args): \(run.stdout)")
                XCTAssertTrue(run.stderr.contains(path) && run.stderr.contains("symbolic link"), "\(folder) \(args): \(run.stderr)")
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/outside"), [], "nothing written outside through \(folder)")
            XCTAssertEqual(unlink(path), 0)
        }
        // links/<target> too.
        try FileOps.makeDirectory(dir + "/backups/links")
        XCTAssertEqual(symlink(dir + "/outside", dir + "/backups/links/code"), 0)
        let run = try backstop(["backup"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("links/code") && run.stderr.contains("symbolic link"), run.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/outside"), [])
    }
}
