import BackupCore
import Foundation
import TestSupport
import XCTest

/// `backstop keygen` writes identities that Debian's age reads, and reads age-keygen's.
final class KeygenTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("keygen") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    /// Runs a shell command line (for age and age-keygen); stdout and stderr are captured.
    struct Ran { let status: Int32; let stdout: String; let stderr: String }

    func sh(_ command: String) throws -> Ran {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " 2>'\(dir)/sh.err'"]
        let out = Pipe()
        p.standardOutput = out
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let err = (try? TestSupport.read(dir + "/sh.err")) ?? Data()
        return Ran(status: p.terminationStatus, stdout: String(decoding: data, as: UTF8.self),
                   stderr: String(decoding: err, as: UTF8.self))
    }

    func testKeygenToFileWorksWithAge() throws {
        let key = dir + "/key.txt"
        let ran = try TestSupport.run("backstop", ["keygen", "-o", key])
        XCTAssertEqual(ran.status, 0, ran.stderr)
        XCTAssertEqual(ran.stdout, "")
        var st = stat()
        XCTAssertEqual(stat(key, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let lines = String(decoding: try TestSupport.read(key), as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines[0].hasPrefix("# created: "), "\(lines)")
        XCTAssertTrue(lines[1].hasPrefix("# public key: age1"), "\(lines)")
        XCTAssertTrue(lines[2].hasPrefix("AGE-SECRET-KEY-1"), "\(lines)")
        let publicKey = String(lines[1].dropFirst("# public key: ".count))
        XCTAssertEqual(ran.stderr, "Public key: \(publicKey)\n")

        // age-keygen -y derives the same public key from Backstop's identity file,
        // and age decrypts with it what it encrypted to that public key.
        let derived = try sh("age-keygen -y '\(key)'")
        XCTAssertEqual(derived.status, 0, derived.stderr)
        XCTAssertEqual(derived.stdout, publicKey + "\n")
        try TestSupport.writeRandom(100_000, to: dir + "/plain")
        let trip = try sh("age -e -r \(publicKey) -o '\(dir)/x.age' '\(dir)/plain' && age -d -i '\(key)' '\(dir)/x.age' | cmp - '\(dir)/plain'")
        XCTAssertEqual(trip.status, 0, trip.stderr + trip.stdout)

        // Never overwrites a key.
        let again = try TestSupport.run("backstop", ["keygen", "-o", key])
        XCTAssertEqual(again.status, 2)
        XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)
        XCTAssertEqual(again.stderr.split(separator: "\n").count, 1, again.stderr)
        XCTAssertEqual(try TestSupport.read(key).count, lines.joined(separator: "\n").utf8.count + 1)
    }

    func testKeygenToStdoutIsAnIdentityAgeReads() throws {
        let ran = try TestSupport.run("backstop", ["keygen"])
        XCTAssertEqual(ran.status, 0, ran.stderr)
        let identities = try AgeIdentity.parseFile(contents: ran.stdout, name: "stdout")
        XCTAssertEqual(identities.count, 1)
        XCTAssertTrue(ran.stdout.contains("# public key: \(identities[0].recipient)\n"), ran.stdout)
        try TestSupport.write(ran.stdout, to: dir + "/k.txt", mode: 0o600)
        let derived = try sh("age-keygen -y '\(dir)/k.txt'")
        XCTAssertEqual(derived.stdout, "\(identities[0].recipient)\n", derived.stderr)
    }
}
