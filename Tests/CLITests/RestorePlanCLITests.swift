import BackupCore
import Foundation
import TestSupport
import XCTest

/// `restore` through the built executable: the plan is made once and the confirmed plan is
/// what is carried out.
final class RestorePlanCLITests: XCTestCase {
    var dir = ""
    var config = ""

    override func setUpWithError() throws {
        dir = try TestSupport.scratch("restore-plan")
        config = dir + "/backstop.env"
        for i in 0..<8 { try TestSupport.writeRandom(3000 + i, to: "\(dir)/media/d\(i % 2)/f\(i).bin", seed: UInt64(i)) }
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=media,code
        TARGET_MEDIA_KIND=rsync
        TARGET_MEDIA_SOURCE=media
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=media/d0
        TARGET_CODE_BASE=media
        """, to: config)
        let backup = try TestSupport.run("backstop", ["backup", "--config", config])
        XCTAssertEqual(backup.status, 0, backup.stderr)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    /// The `restore-plan` step is reached once per target: a fault at its second time never
    /// fires for one target, and at its third never for two (`--all`). At its first it fires,
    /// so the checks can fail. Before plans, the command ran every restore twice (a dry run,
    /// then the real one, which worked the plan out again).
    func testEachRestoreIsPlannedOnce() throws {
        let once = try FaultSupport.run("backstop", ["restore", "media", "--to", dir + "/out1", "--yes", "--config", config],
                                        fault: "restore-plan@2")
        XCTAssertEqual(once.status, 0, once.stderr)
        XCTAssertEqual(try TestSupport.snapshot(dir + "/out1"), try TestSupport.snapshot(dir + "/media"))

        let first = try FaultSupport.run("backstop", ["restore", "media", "--to", dir + "/out2", "--yes", "--config", config],
                                         fault: "restore-plan@1")
        XCTAssertNotEqual(first.status, 0)
        XCTAssertTrue(first.stderr.contains("injected fault at restore-plan"), first.stderr)
        XCTAssertFalse(FileOps.exists(dir + "/out2"))

        let all = try FaultSupport.run("backstop", ["restore", "--all", "--to", dir + "/out3", "--yes", "--config", config],
                                       fault: "restore-plan@3")
        XCTAssertEqual(all.status, 0, all.stderr)
        XCTAssertEqual(try TestSupport.snapshot(dir + "/out3/media"), try TestSupport.snapshot(dir + "/media"))
        XCTAssertTrue(all.stdout.contains("Restore plan for media:") && all.stdout.contains("Restore plan for code:"), all.stdout)
        XCTAssertTrue(all.stdout.contains("Restore report for media:") && all.stdout.contains("Restore report for code:"), all.stdout)
    }

    /// The run is held after the plan was shown and confirmed (`--yes`), just before it is
    /// carried out; a file appears in the folder the plan saw empty (so it planned no safety
    /// copy). The restore refuses, exits 1, and the file is untouched.
    func testADestinationChangedAfterTheConfirmationIsNotRestoredOver() throws {
        let out = dir + "/out"
        try FileOps.makeDirectory(out)
        let run = try PausedRun("backstop", ["restore", "media", "--to", out, "--yes", "--config", config],
                                pausingAt: "restore", dir: dir + "/fault")
        XCTAssertTrue(run.waitUntilPaused(), "the restore reached the confirmed plan")
        try TestSupport.write("not in any backup\n", to: out + "/d0/f0.bin")
        let result = run.resume()
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stdout.contains("the destination is empty: no safety copy needed"), result.stdout)
        XCTAssertTrue(result.stderr.contains("changed after the restore plan was made"), result.stderr)
        XCTAssertEqual(try TestSupport.snapshot(out), ["d0/f0.bin": Data("not in any backup\n".utf8)])
        XCTAssertFalse(FileOps.exists(dir + "/backups/pre-restore"))
    }

    /// `--dry-run --json` prints the plan, with its safety copy method, and changes nothing.
    func testDryRunJSONIsThePlan() throws {
        let dry = try TestSupport.run("backstop", ["restore", "media", "--dry-run", "--json", "--config", config])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["safetyCopyMethod"] as? String, "hardLinkTree")
        XCTAssertEqual(json["target"] as? String, "media")
        XCTAssertNotNil(json["destinationState"])
        XCTAssertFalse(FileOps.exists(dir + "/backups/pre-restore"))
    }
}
