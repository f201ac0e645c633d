import BackupCore
import Foundation
import TestSupport
import Targets
import XCTest

/// An rsync restore (`rsync -a --numeric-ids` both ways) puts back the mode and owner each file
/// and folder had when it was backed up, over the live tree and into a new folder alike.
final class RsyncRestoreOwnershipTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("rsync-owner") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func testRestoredFilesKeepTheirModeAndOwner() throws {
        try XCTSkipUnless(geteuid() == 0, "giving files to other owners needs root")
        let src = dir + "/src"
        try TestSupport.write("hello\n", to: src + "/a.txt", mode: 0o640)
        try TestSupport.write("data\n", to: src + "/sub/b.bin", mode: 0o604)
        XCTAssertEqual(chown(src + "/a.txt", 65534, 65534), 0)
        XCTAssertEqual(chown(src + "/sub", 33, 33), 0)
        XCTAssertEqual(chmod(src + "/sub", 0o750), 0)
        XCTAssertEqual(chown(src + "/sub/b.bin", 33, 33), 0)
        let expected = [
            "a.txt": FileOwnership(mode: 0o640, uid: 65534, gid: 65534),
            "sub": FileOwnership(mode: 0o750, uid: 33, gid: 33),
            "sub/b.bin": FileOwnership(mode: 0o604, uid: 33, gid: 33),
        ]
        let e = TestSupport.engine(dir + "/repo", [RsyncSnapshotTarget(name: "media", source: src)])
        XCTAssertTrue(try e.backup().succeeded)

        _ = try e.restore(target: "media", id: "latest", options: RestoreOptions(destination: dir + "/new"))
        for (path, ownership) in expected { XCTAssertEqual(FileOwnership(of: dir + "/new/" + path), ownership, "new/\(path)") }

        try TestSupport.write("changed\n", to: src + "/a.txt", mode: 0o640)
        XCTAssertEqual(chown(src + "/a.txt", 65534, 65534), 0)
        _ = try e.restore(target: "media", id: "latest", options: RestoreOptions())
        XCTAssertEqual(try String(contentsOfFile: src + "/a.txt", encoding: .utf8), "hello\n")
        for (path, ownership) in expected { XCTAssertEqual(FileOwnership(of: src + "/" + path), ownership, "src/\(path)") }
    }
}
