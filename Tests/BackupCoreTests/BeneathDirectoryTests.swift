@testable import BackupCore
import Foundation
import TestSupport
import XCTest

/// `BeneathDirectory` never follows a symlink and never leaves its directory, with `openat2`
/// and with the component-by-component walk used where the kernel lacks it.
final class BeneathDirectoryTests: XCTestCase {
    func testNamesAreSplitAndCheckedAsBytes() {
        XCTAssertNil(BeneathDirectory.components(of: RawPath("../x")))
        XCTAssertNil(BeneathDirectory.components(of: RawPath("a/../../x")))
        XCTAssertNil(BeneathDirectory.components(of: RawPath("/etc/passwd")))
        XCTAssertEqual(BeneathDirectory.components(of: RawPath("./a//b/.")), [Array("a".utf8), Array("b".utf8)])
        XCTAssertEqual(BeneathDirectory.components(of: RawPath(".")), [])
        XCTAssertEqual(BeneathDirectory.components(of: RawPath(bytes: [0x61, 0xFF, 0x2F, 0x62])), [[0x61, 0xFF], [0x62]])
    }

    func testLinksAreNeverFollowedWithAndWithoutOpenat2() throws {
        let dir = try TestSupport.scratch("beneath")
        defer { try? FileOps.removeTree(dir) }
        try TestSupport.write("secret\n", to: dir + "/outside/secret.txt")
        try TestSupport.write("in\n", to: dir + "/root/real/file.txt")
        symlink(dir + "/outside", dir + "/root/abs")
        symlink("real", dir + "/root/rel")
        for useOpenat2 in [true, false] {
            let root = try BeneathDirectory(dir + "/root", useOpenat2: useOpenat2)
            for name in ["abs", "rel"] {
                XCTAssertThrowsError(try root.folder([Array(name.utf8)])) { error in
                    XCTAssertEqual((error as? BeneathError)?.reason, .symbolicLink, "\(useOpenat2) \(name): \(error)")
                }
                XCTAssertThrowsError(try root.status([Array(name.utf8), Array("secret.txt".utf8)]))
                XCTAssertThrowsError(try root.folder([Array(name.utf8), Array("new".utf8)], create: true))
            }
            XCTAssertFalse(FileOps.exists(dir + "/outside/new"))
            XCTAssertThrowsError(try root.folder([Array("real".utf8), Array("file.txt".utf8)])) { error in
                XCTAssertEqual((error as? BeneathError)?.reason, .notAFolder, "\(error)")
            }
            XCTAssertNil(try root.status([Array("missing".utf8), Array("x".utf8)]))
            XCTAssertEqual(try root.status([Array("abs".utf8)]).map { $0.st_mode & S_IFMT }, S_IFLNK, "the link itself")

            // Missing folders are made and reported with their identity, outermost first.
            var made: [String] = []
            let deep = try root.folder(["n", "e", "w"].map { Array($0.utf8) }[...], create: true) { parts, identity in
                var st = stat()
                XCTAssertEqual(lstat(dir + "/root/" + parts.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/"), &st), 0)
                XCTAssertEqual(FileIdentity(st), identity)
                made.append(parts.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/"))
            }
            XCTAssertEqual(made, ["n", "n/e", "n/e/w"])
            // Removal only of what still has the recorded identity.
            let (tmp, fd) = try deep.makeTemporaryFile()
            close(fd)
            let identity = FileIdentity(try XCTUnwrap(try deep.status(tmp)))
            try deep.rename(tmp, to: Array("f".utf8))
            let other = FileIdentity(try XCTUnwrap(try root.status([Array("real".utf8), Array("file.txt".utf8)])))
            XCTAssertFalse(try deep.remove(Array("f".utf8), ifStill: other))
            XCTAssertTrue(try deep.remove(Array("f".utf8), ifStill: identity))
            try FileOps.removeTree(dir + "/root/n")
        }
    }

    func testTheRootItselfMayNotBeALink() throws {
        let dir = try TestSupport.scratch("beneath-root")
        defer { try? FileOps.removeTree(dir) }
        try FileOps.makeDirectory(dir + "/real")
        symlink(dir + "/real", dir + "/link")
        XCTAssertThrowsError(try BeneathDirectory(dir + "/link")) { error in
            XCTAssertEqual((error as? BeneathError)?.reason, .symbolicLink, "\(error)")
        }
    }
}
