import BackupCore
import Foundation
import TestSupport
import XCTest

/// A missing or unreadable BACKUP_DIR is never taken for an empty one: list, stats and verify
/// (drill included) say so in one line and exit 1, and create nothing.
final class BackupDirectoryAccessTests: XCTestCase {
    var dir = ""
    var config = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("backup-dir-access")
        chmod(dir, 0o755)
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=\(dir)/backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=\(dir)/src
        TARGET_CODE_BASE=\(dir)/src
        """, to: config, mode: 0o644)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    let commands = [["list"], ["stats"], ["verify"], ["verify", "--all"], ["verify", "--restore-test"]]

    func testAMissingBackupDirectoryIsReportedAsMissing() throws {
        for args in commands {
            let run = try TestSupport.run("backstop", args + ["--config", config])
            XCTAssertEqual(run.status, 1, "\(args): \(run.stdout) \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "\(args): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("BACKUP_DIR \(dir)/backups does not exist (not mounted?)"), "\(args): \(run.stderr)")
            XCTAssertFalse(FileOps.exists(dir + "/backups"), "\(args) created it")
        }
    }

    func testAnUnreadableBackupDirectoryIsAnError() throws {
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", config]).status, 0)
        chmod(dir + "/backups", 0o700)
        XCTAssertEqual(geteuid(), 0, "the test runs as root and runs backstop as nobody")
        for args in commands.dropLast() {
            let run = try TestSupport.runProgram("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                             TestSupport.binDirectory + "/backstop"] + args + ["--config", config])
            XCTAssertEqual(run.status, 1, "\(args): \(run.stdout) \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("cannot read BACKUP_DIR \(dir)/backups"), "\(args): \(run.stderr)")
            XCTAssertFalse(run.stdout.contains("no backups"), run.stdout)
        }
    }
}
