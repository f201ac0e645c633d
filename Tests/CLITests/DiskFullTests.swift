import BackupCore
import Foundation
import TestSupport
import XCTest

/// A full disk fails the target with a clear line and leaves nothing that looks complete.
final class DiskFullTests: XCTestCase {
    func testFullDiskLeavesNoCompleteBackup() throws {
        let dir = try TestSupport.scratch("diskfull")
        defer { try? FileOps.removeTree(dir) }
        let mountPoint = dir + "/small"
        try FileOps.makeDirectory(mountPoint)
        let (mounted, _) = try ChildProcess("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint]).capture()
        guard mounted.status == 0 else { throw XCTSkip("cannot mount a small tmpfs here: \(mounted.lastErrorLine)") }
        defer { _ = try? ChildProcess("umount", [mountPoint]).run() }

        try TestSupport.write("small\n", to: dir + "/conf/app.conf")
        try TestSupport.writeRandom(3_000_000, to: dir + "/data/big.bin")
        let config = dir + "/b.env"
        try TestSupport.write("""
        BACKUP_DIR=small/backups
        TARGETS=conf data
        TARGET_CONF_KIND=archive
        TARGET_CONF_PATHS=conf
        TARGET_DATA_KIND=archive
        TARGET_DATA_PATHS=data
        """, to: config)
        let run = try TestSupport.run("backstop", ["backup", "--config", config])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("[data] failed: write") && run.stderr.contains("No space left on device"), run.stderr)
        // The small target's backup is kept in a partial set; the failed one left no file behind.
        let list = try TestSupport.run("backstop", ["list", "--json", "--config", config])
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.count, 1)
        let row = try XCTUnwrap(rows.first)
        XCTAssertEqual(row["status"] as? String, "partial")
        XCTAssertEqual(row["failedTargets"] as? [String], ["data"])
        let set = mountPoint + "/backups/daily/" + (try XCTUnwrap(row["id"] as? String))
        XCTAssertFalse(FileOps.exists(set + "/data"))
        XCTAssertEqual(try TestSupport.run("backstop", ["verify", "--config", config]).status, 0)
        XCTAssertEqual(try TestSupport.run("backstop", ["restore", "data", "--to", dir + "/x", "--yes", "--config", config]).status, 1,
                       "there is no good backup of data to restore")
    }
}
