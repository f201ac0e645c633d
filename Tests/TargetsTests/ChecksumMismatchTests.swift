import BackupCore
import Foundation
@testable import Targets
import TestSupport
import XCTest

/// One error, one message, wherever an artifact is read and checked.
final class ChecksumMismatchTests: XCTestCase {
    func testTheMessageNamesTheFileAndBothHashes() throws {
        XCTAssertNoThrow(try ChecksumMismatch.check("a.gz", actual: "ABC", expected: "abc"))
        XCTAssertThrowsError(try ChecksumMismatch.check("db/app.db.gz", actual: "11", expected: "22", consequence: "not restoring")) { error in
            XCTAssertEqual(error as? ChecksumMismatch, ChecksumMismatch(path: "db/app.db.gz", expected: "22", actual: "11", consequence: "not restoring"))
            XCTAssertEqual("\(error)", "db/app.db.gz: checksum mismatch (SHA-256 11, manifest says 22); not restoring")
            XCTAssertEqual((error as? UserFacingError)?.exitStatus, .failure)
        }
    }

    func testAFlippedByteInAMemberListIsAChecksumMismatch() throws {
        let dir = try TestSupport.scratch("checksum")
        defer { try? FileOps.removeTree(dir) }
        let path = dir + "/members.list"
        try TestSupport.write("some member list\n", to: path)
        let good = try sha256OfFile(path).hex
        try TestSupport.flipByte(path, at: 3)
        XCTAssertThrowsError(try MemberList.load(path, sha256: good)) { error in
            let mismatch = error as? ChecksumMismatch
            XCTAssertEqual(mismatch?.path, path)
            XCTAssertEqual(mismatch?.expected, good)
            XCTAssertNotEqual(mismatch?.actual, good)
        }
    }
}
