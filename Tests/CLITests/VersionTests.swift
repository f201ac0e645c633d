import BackupCore
import Foundation
import TestSupport
import XCTest

/// `--version` on every executable: Backstop's version, the build commit, and the versions of
/// the C libraries it runs with, checked against what pkg-config says is installed.
final class VersionTests: XCTestCase {
    func installed(_ module: String) throws -> String {
        let run = try TestSupport.runProgram("pkg-config", ["--modversion", module])
        XCTAssertEqual(run.status, 0, run.stderr)
        return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testVersionNamesBuildAndLibraries() throws {
        let libpq = try installed("libpq"), libarchive = try installed("libarchive")
        let libcurl = try installed("libcurl"), sqlite = try installed("sqlite3")
        for exe in ["backstop", "journal-backup"] {
            let run = try TestSupport.run(exe, ["--version"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let lines = run.stdout.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.count, 5, run.stdout)
            guard lines.count == 5 else { continue }
            // A test build is a plain `swift build`: no commit was linked in (scripts/package
            // links one and checks it).
            XCTAssertEqual(lines[0], "\(exe) \(backstopVersion) (commit unknown)")
            XCTAssertEqual(lines[1], "libpq \(libpq)")
            XCTAssertTrue(lines[2].hasPrefix("libarchive \(libarchive) "), lines[2])
            XCTAssertEqual(lines[3], "libcurl \(libcurl)")
            XCTAssertEqual(lines[4], "SQLite \(sqlite)")
        }
    }

    /// `backstop` is a multi-call binary: started as `journal-backup` (the package installs
    /// that name as a link to it) it is journal-backup, with its own flags.
    func testBackstopStartedUnderADeploymentNameIsThatFrontend() throws {
        let dir = try TestSupport.scratch("multicall")
        defer { try? FileOps.removeTree(dir) }
        try FileManager.default.createSymbolicLink(atPath: dir + "/journal-backup",
                                                   withDestinationPath: TestSupport.binDirectory + "/backstop")
        for args in [["--version"], ["backup", "--help"]] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: dir + "/journal-backup")
            p.arguments = args
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, text)
            if args == ["--version"] {
                XCTAssertTrue(text.hasPrefix("journal-backup \(backstopVersion) "), text)
            } else {
                XCTAssertTrue(text.contains("--db-only"), text)
            }
        }
        let plain = try TestSupport.run("backstop", ["backup", "--help"])
        XCTAssertFalse(plain.stdout.contains("--db-only"), plain.stdout)
    }
}
