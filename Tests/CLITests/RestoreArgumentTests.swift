import BackupCore
import Foundation
import TestSupport
import XCTest

/// Restore arguments that would write somewhere unintended are refused before anything is
/// read or changed: one line naming the flag, exit 2.
final class RestoreArgumentTests: XCTestCase {
    var dir = ""
    var config = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("restore-args")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
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

    func assertUsage(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try backstop(args)
        XCTAssertEqual(run.status, 2, run.stdout + run.stderr, file: file, line: line)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr, file: file, line: line)
        for word in mentions { XCTAssertTrue(run.stderr.contains(word), "\(word): \(run.stderr)", file: file, line: line) }
    }

    func testEmptyToIntoOrPathIsRefused() throws {
        let before = try FileManager.default.contentsOfDirectory(atPath: FileManager.default.currentDirectoryPath).sorted()
        try assertUsage(["restore", "code", "--to", "", "--yes"], mentions: ["--to"])
        try assertUsage(["restore", "code", "--to", dir + "/out", "--path", "", "--yes"], mentions: ["--path"])
        try assertUsage(["restore", "code", "--into", "", "--yes"], mentions: ["--into"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: FileManager.default.currentDirectoryPath).sorted(), before,
                       "nothing was restored into the current directory")
        XCTAssertFalse(FileOps.exists(dir + "/out"))
    }

    func testIntoOnAKindWithoutDatabasesIsRefused() throws {
        try TestSupport.write("""
        BACKUP_DIR=\(dir)/backups
        TARGETS=code db
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=\(dir)/src
        TARGET_CODE_BASE=\(dir)/src
        TARGET_DB_KIND=sqlite
        TARGET_DB_PATH=\(dir)/app.db
        """, to: config)
        let made = try TestSupport.runProgram("sqlite3", [dir + "/live.db", "create table t(x); insert into t values (1);"])
        XCTAssertEqual(made.status, 0, made.stderr)
        XCTAssertEqual(rename(dir + "/live.db", dir + "/app.db"), 0)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let live = try TestSupport.read(dir + "/app.db")
        try assertUsage(["restore", "db", "--into", "x", "--yes"], mentions: ["--into", "sqlite"])
        try assertUsage(["restore", "code", "--into", "x", "--yes"], mentions: ["--into", "archive"])
        XCTAssertEqual(try TestSupport.read(dir + "/app.db"), live, "the live file is untouched")
    }

    func testToInsideTheBackupDirectoryIsRefused() throws {
        let daily = dir + "/backups/daily"
        let id = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: daily).first { !$0.hasPrefix(".") })
        let before = try FileManager.default.subpathsOfDirectory(atPath: daily + "/" + id).sorted()
        try assertUsage(["restore", "code", "--to", daily + "/" + id, "--yes"], mentions: ["--to", "backup directory"])
        try assertUsage(["restore", "code", "--to", dir + "/backups", "--yes"], mentions: ["--to", "backup directory"])
        try assertUsage(["restore", "code", "--to", dir + "/src/../backups/new", "--yes"], mentions: ["--to", "backup directory"])
        // Through a symbolic link to it, too.
        XCTAssertEqual(symlink(dir + "/backups", dir + "/link"), 0)
        try assertUsage(["restore", "code", "--to", dir + "/link/daily/x", "--yes"], mentions: ["--to", "backup directory"])
        try assertUsage(["restore", "--all", "--to", daily, "--yes"], mentions: ["--to", "backup directory"])
        XCTAssertEqual(try FileManager.default.subpathsOfDirectory(atPath: daily + "/" + id).sorted(), before)
        XCTAssertFalse(FileOps.exists(dir + "/backups/new"))
        XCTAssertFalse(FileOps.exists(daily + "/x"))
    }
}
