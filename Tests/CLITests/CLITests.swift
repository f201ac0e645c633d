import BackupCore
import Foundation
import TestSupport
import XCTest

/// The executables as an administrator runs them: exit codes, one-line errors, kills, locks.
final class CLITests: XCTestCase {
    var dir = ""
    var config = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("cli")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        try TestSupport.write("[core]\n", to: dir + "/src/.git/config")
        config = dir + "/backstop.env"
        try writeConfig()
    }

    func writeConfig() throws {
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=src
        TARGET_CODE_EXCLUDE=.git
        """, to: config)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String], env: [String: String] = [:]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config], environment: env)
    }

    func testBackupListVerifyRestoreRoundTrip() throws {
        let backup = try backstop(["backup", "--json"])
        XCTAssertEqual(backup.status, 0, backup.stderr)
        XCTAssertTrue(backup.stdout.contains("\"setID\""), backup.stdout)
        let list = try backstop(["list", "--size"])
        XCTAssertEqual(list.status, 0)
        XCTAssertTrue(list.stdout.contains("complete"), list.stdout)
        XCTAssertTrue(list.stdout.contains("total:"), list.stdout)
        let listJSON = try backstop(["list", "--json"])
        let rows = try JSONSerialization.jsonObject(with: Data(listJSON.stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(rows?.count, 1)
        let verify = try backstop(["verify"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        XCTAssertTrue(verify.stdout.hasPrefix("OK"), verify.stdout)

        // Without a terminal, restore refuses unless --yes, and writes nothing.
        let refused = try backstop(["restore", "code", "--to", dir + "/out"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("--yes"), refused.stderr)
        XCTAssertFalse(FileOps.exists(dir + "/out"))
        let restored = try backstop(["restore", "code", "--to", dir + "/out", "--yes"])
        XCTAssertEqual(restored.status, 0, restored.stderr)
        XCTAssertEqual(try TestSupport.read(dir + "/out/app.py"), try TestSupport.read(dir + "/src/app.py"))
        XCTAssertFalse(FileOps.exists(dir + "/out/.git"))
        let log = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/logs").first, "a daily log is written")
        XCTAssertTrue(try String(contentsOfFile: dir + "/backups/logs/" + log, encoding: .utf8).contains("backup"))
    }

    func testDryRunWritesNothing() throws {
        let run = try backstop(["backup", "--dry-run"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("would back up"), run.stderr)
        XCTAssertFalse(FileOps.exists(dir + "/backups"))
    }

    func testBadConfigGivesOneLineAndExit2() throws {
        let cases: [(String, String)] = [
            ("BACKUP_DIR=/tmp/x\n", "missing required key TARGETS"),
            ("TARGETS=code\n", "missing required key BACKUP_DIR"),
            ("BACKUP_DIR=b\nTARGETS=code\nTARGET_CODE_KIND=tarball\n", "invalid value for TARGET_CODE_KIND"),
            ("BACKUP_DIR=b\nTARGETS=code\nTARGET_CODE_KIND=archive\nTARGET_CODE_PATHS=/x\nTARGET_CODE_LEVEL=99\n", "invalid value for TARGET_CODE_LEVEL"),
            ("BACKUP_DIR=b\nTARGETS=code\nTARGET_CODE_KIND=archive\nTARGET_CODE_PATHS=/x\nTARGET_CODE_EXLUDE=.git\n", "unknown key TARGET_CODE_EXLUDE"),
            ("BACKUP_DIR=b\nthis line is wrong\n", ":2: expected KEY=VALUE"),
        ]
        for (text, expected) in cases {
            try TestSupport.write(text, to: config)
            let run = try backstop(["backup"])
            XCTAssertEqual(run.status, 2, text)
            XCTAssertTrue(run.stderr.contains(expected), "\(text) -> \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(config), "names the file: \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "one line: \(run.stderr)")
        }
        try writeConfig()
        let missingFile = try TestSupport.run("backstop", ["list", "--config", dir + "/nope.env"])
        XCTAssertEqual(missingFile.status, 2)
        XCTAssertTrue(missingFile.stderr.contains("nope.env"), missingFile.stderr)
        let badArg = try backstop(["verify", "--bogus"])
        XCTAssertEqual(badArg.status, 2, badArg.stderr)
        XCTAssertTrue(badArg.stderr.contains("--bogus"), badArg.stderr)
        let unknownTarget = try backstop(["backup", "--only", "nosuch"])
        XCTAssertEqual(unknownTarget.status, 2)
        XCTAssertTrue(unknownTarget.stderr.contains("unknown target 'nosuch'"), unknownTarget.stderr)
    }

    func testSecondRunIsRefusedWhileTheLockIsHeld() throws {
        try FileOps.makeDirectory(dir + "/backups")
        let lock = try RunLock(path: dir + "/backups/.backstop.lock")
        let run = try backstop(["backup"])
        XCTAssertEqual(run.status, ExitStatus.lockHeld.rawValue, run.stderr)
        XCTAssertTrue(run.stderr.contains("pid \(getpid())"), run.stderr)
        lock.release()
        XCTAssertEqual(try backstop(["backup"]).status, 0)
    }

    /// Kill -9 in the middle of a backup: nothing looks complete; the next run cleans up.
    /// SIGTERM: the run removes its partial output itself and exits 143.
    func testKilledBackupLeavesNothingThatLooksComplete() throws {
        try TestSupport.writeRandom(400_000_000, to: dir + "/src/big.bin")
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_COMPRESSION=gzip
        TARGET_CODE_LEVEL=9
        """, to: config)
        var leftover: String?
        for signal in [SIGTERM, SIGKILL] {
            let p = try TestSupport.start("backstop", ["backup", "--config", config])
            let daily = dir + "/backups/daily"
            let started = TestSupport.waitFor(30) {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: daily)) ?? []
                guard let staging = names.first(where: { $0.hasSuffix(".partial") && $0 != leftover }) else { return false }
                let files = (try? FileManager.default.contentsOfDirectory(atPath: daily + "/" + staging + "/code")) ?? []
                return files.contains { (FileOps.size(daily + "/" + staging + "/code/" + $0) ?? 0) > 1_000_000 }
            }
            XCTAssertTrue(started, "backup started writing")
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            let list = try backstop(["list", "--json"])
            XCTAssertFalse(list.stdout.contains("\"complete\""), list.stdout)
            if signal == SIGTERM {
                XCTAssertEqual(p.terminationStatus, 143)
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: daily), [], "SIGTERM removes partial output")
            } else {
                let partial = try FileManager.default.contentsOfDirectory(atPath: daily).filter { $0.hasSuffix(".partial") }
                XCTAssertEqual(partial.count, 1)
                leftover = partial.first
            }
        }
        try FileOps.removeTree(dir + "/src/big.bin")
        let next = try backstop(["backup"])
        XCTAssertEqual(next.status, 0, next.stderr)
        let sets = try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/daily")
        XCTAssertEqual(sets.count, 1, "only the new, complete set remains: \(sets)")
        XCTAssertTrue(FileOps.exists(dir + "/backups/daily/\(try XCTUnwrap(sets.first))/manifest.json"))
    }

    func testCorruptArtifactFailsVerifyNamingTheFile() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let daily = dir + "/backups/daily"
        let set = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: daily).first)
        let artifact = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: "\(daily)/\(set)/code").first { $0.hasSuffix(".tar.gz") })
        let path = "\(daily)/\(set)/code/\(artifact)"
        var data = try TestSupport.read(path)
        data[data.count / 2] ^= 0x01
        try data.write(to: URL(fileURLWithPath: path))
        let run = try backstop(["verify", set])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stdout.contains("FAIL"), run.stdout)
        XCTAssertTrue(run.stdout.contains("code/\(artifact)"), run.stdout)
    }

    func testSecretsNeverReachTheLog() throws {
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src/hunter2-is-not-a-path
        ALERT_PASSWORD=hunter2
        """, to: config, mode: 0o600)
        let run = try backstop(["backup"])
        XCTAssertEqual(run.status, 1)
        XCTAssertFalse(run.stderr.contains("hunter2"), run.stderr)
        XCTAssertTrue(run.stderr.contains("***"), run.stderr)
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/logs")
        let text = try String(contentsOfFile: dir + "/backups/logs/" + (try XCTUnwrap(logs.first)), encoding: .utf8)
        XCTAssertFalse(text.contains("hunter2"))
    }
}

/// A restore interrupted by SIGTERM rolls back before exiting: the destination ends exactly
/// as it was before the restore started.
final class InterruptedRestoreTests: XCTestCase {
    func testSIGTERMDuringRestoreRollsBack() throws {
        let dir = try TestSupport.scratch("restore-kill")
        defer { try? FileOps.removeTree(dir) }
        let src = dir + "/src"
        for i in 0..<3000 { try TestSupport.writeRandom(128 * 1024, to: "\(src)/d\(i % 30)/f\(i).bin", seed: UInt64(i)) }
        let config = dir + "/b.env"
        try TestSupport.write("BACKUP_DIR=backups\nTARGETS=data\nTARGET_DATA_KIND=archive\nTARGET_DATA_PATHS=src\nTARGET_DATA_BASE=src\nTARGET_DATA_COMPRESSION=zstd\n", to: config)
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", config]).status, 0)

        // The live tree drifts: some files change, some are deleted.
        for i in stride(from: 0, to: 3000, by: 100) { try TestSupport.write("changed \(i)", to: "\(src)/d\(i % 30)/f\(i).bin") }
        for i in stride(from: 1, to: 3000, by: 50) { unlink("\(src)/d\(i % 30)/f\(i).bin") }
        let before = try TestSupport.snapshot(src)

        let p = try TestSupport.start("backstop", ["restore", "data", "--yes", "--config", config])
        // Wait until the restore has started writing (a deleted file has come back), then stop it.
        let writing = TestSupport.waitFor(60) { FileOps.exists("\(src)/d1/f1.bin") || FileOps.exists("\(src)/d21/f51.bin") }
        XCTAssertTrue(writing)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 143, "the restore was interrupted, not finished")
        XCTAssertEqual(try TestSupport.snapshot(src), before, "rolled back to exactly the state before the restore")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/pre-restore").count, 1)
    }
}
