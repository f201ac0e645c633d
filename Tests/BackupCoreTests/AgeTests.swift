@testable import BackupCore
import Crypto
import Foundation
import TestSupport
import XCTest

/// The age implementation against the specification's examples, the official age test kit,
/// and Debian's `age` 1.1.1 in both directions.
final class AgeTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("age") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    // MARK: helpers

    /// Encrypts in uneven pieces so chunk boundaries fall inside writes.
    func encrypt(_ data: Data, to recipients: [AgeRecipient]) throws -> Data {
        var out = Data()
        let writer = try AgeEncryptingWriter(recipients: recipients) { out.append(contentsOf: $0) }
        var offset = 0, step = 1
        while offset < data.count {
            let n = min(step, data.count - offset)
            try data[offset..<offset + n].withUnsafeBytes { try writer.write($0) }
            offset += n
            step = step * 7 % 100_003 + 1
        }
        try writer.finish()
        return out
    }

    /// Decrypts, reading the ciphertext in small uneven pieces; `released` gets every
    /// plaintext byte handed out, even when decryption fails later.
    func decrypt(_ data: Data, with identities: [AgeIdentity], released: inout Data) throws {
        var offset = 0, step = 3
        let reader = try AgeDecryptingReader(identities: identities) { buffer in
            let n = min(buffer.count, data.count - offset, step)
            step = step * 5 % 70_001 + 1
            data.copyBytes(to: buffer.bindMemory(to: UInt8.self), from: offset..<offset + n)
            offset += n
            return n
        }
        while let chunk = try reader.read() { released.append(chunk) }
    }

    func decrypt(_ data: Data, with identities: [AgeIdentity]) throws -> Data {
        var out = Data()
        try decrypt(data, with: identities, released: &out)
        return out
    }

    struct Ran { let status: Int32; let stdout: Data; let stderr: String }

    /// Runs a system tool (age, age-keygen, python3) with stdin from `input`.
    func tool(_ arguments: [String], input: Data? = nil) throws -> Ran {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        let group = DispatchGroup()
        let box = Collected()
        group.enter()
        DispatchQueue.global().async { box.out = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { box.err = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        if let input { inp.fileHandleForWriting.write(input) }
        try inp.fileHandleForWriting.close()
        p.waitUntilExit()
        group.wait()
        return Ran(status: p.terminationStatus, stdout: box.out, stderr: String(decoding: box.err, as: UTF8.self))
    }

    func requireAge() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/age") else {
            XCTFail("age is not installed (scripts/install-deps --test installs it)")
            throw XCTSkip("no age")
        }
    }

    /// A fresh identity from Debian's age-keygen, written to `name` in the scratch folder.
    func ageKeygen(_ name: String) throws -> (path: String, identity: AgeIdentity, recipient: String) {
        let path = dir + "/" + name
        let ran = try tool(["age-keygen", "-o", path])
        XCTAssertEqual(ran.status, 0, ran.stderr)
        let identities = try AgeIdentity.parseFile(contents: String(decoding: try TestSupport.read(path), as: UTF8.self), name: path)
        XCTAssertEqual(identities.count, 1)
        let recipient = ran.stderr.components(separatedBy: "Public key: ").last!.trimmingCharacters(in: .whitespacesAndNewlines)
        return (path, identities[0], recipient)
    }

    func random(_ count: Int, seed: UInt64 = 7) throws -> Data {
        let path = dir + "/random-\(count)-\(seed)"
        try TestSupport.writeRandom(count, to: path, seed: seed)
        return try TestSupport.read(path)
    }

    func write(_ data: Data, _ name: String) throws -> String {
        let path = dir + "/" + name
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    let sizes = [0, 1, 65_536, 65_537, 131_072, 3 * 1_048_576 + 11]

    // MARK: keys

    /// The specification's example identity and recipient.
    func testSpecificationExampleKeys() throws {
        let identity = try AgeIdentity(parsing: "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX")
        XCTAssertEqual(identity.recipient.description, "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj")
        XCTAssertEqual(identity.secretKeyString, "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX")
        XCTAssertEqual(try AgeRecipient(parsing: "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"), identity.recipient)
        XCTAssertFalse(identity.description.contains("SECRET"), "the description must not show the secret")
        // One changed character breaks the checksum; mixed case is not Bech32.
        XCTAssertThrowsError(try AgeRecipient(parsing: "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwk"))
        XCTAssertThrowsError(try AgeRecipient(parsing: "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwJ"))
        XCTAssertThrowsError(try AgeIdentity(parsing: "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEY")) { error in
            XCTAssertFalse("\(error)".contains("GFPYY"), "an identity error must not repeat the secret: \(error)")
        }
        XCTAssertThrowsError(try AgeRecipient(parsing: "ssh-ed25519 AAAA")) { error in
            XCTAssertTrue("\(error)".contains("not an age recipient"), "\(error)")
        }
        XCTAssertEqual(try AgeRecipient.parseList(" \(identity.recipient)  \(AgeIdentity.generate().recipient)\n").count, 2)
        XCTAssertThrowsError(try AgeRecipient.parseFile(contents: "# none\n\n", name: "r.txt")) { error in
            XCTAssertTrue("\(error)".contains("r.txt"), "\(error)")
        }
    }

    func testIdentityFileModeIsChecked() throws {
        let identity = AgeIdentity.generate()
        let path = dir + "/key.txt"
        try TestSupport.write(identity.keyFileText(), to: path, mode: 0o640)
        XCTAssertThrowsError(try AgeIdentity.load(file: path)) { error in
            XCTAssertTrue("\(error)".contains("readable by group or others"), "\(error)")
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
        chmod(path, 0o600)
        XCTAssertEqual(try AgeIdentity.load(file: path).first?.recipient, identity.recipient)
        try TestSupport.write("# created: now\nAGE-SECRET-KEY-1NOPE\n", to: path, mode: 0o600)
        XCTAssertThrowsError(try AgeIdentity.load(file: path)) { error in
            XCTAssertTrue("\(error)".contains("\(path):2:"), "\(error)")
        }
    }

    // MARK: round trips

    func testRoundTripSizesAndSeveralRecipients() throws {
        let a = AgeIdentity.generate(), b = AgeIdentity.generate(), stranger = AgeIdentity.generate()
        for size in sizes {
            let plain = try random(size)
            let sealed = try encrypt(plain, to: [a.recipient, b.recipient])
            let chunks = max(1, (size + 65_535) / 65_536)
            XCTAssertEqual(sealed.count - (sealed.firstRange(of: Data("\n--- ".utf8))!.upperBound + 44 + 16), size + 16 * chunks,
                           "size \(size): one 16-byte tag per 64 KiB chunk")
            XCTAssertEqual(try decrypt(sealed, with: [a]), plain, "size \(size)")
            XCTAssertEqual(try decrypt(sealed, with: [stranger, b]), plain, "size \(size)")
            XCTAssertThrowsError(try decrypt(sealed, with: [stranger])) { error in
                guard case AgeError.noMatch = error else { return XCTFail("\(error)") }
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }

    // MARK: interoperability with Debian's age

    func testBackstopEncryptsAgeDecrypts() throws {
        try requireAge()
        let key = try ageKeygen("key.txt")
        let other = AgeIdentity.generate()
        let recipient = try AgeRecipient(parsing: key.recipient)
        for size in sizes {
            let plain = try random(size, seed: UInt64(size))
            let file = try write(try encrypt(plain, to: [other.recipient, recipient]), "b-\(size).age")
            let ran = try tool(["age", "-d", "-i", key.path, file])
            XCTAssertEqual(ran.status, 0, "size \(size): \(ran.stderr)")
            XCTAssertEqual(ran.stdout, plain, "size \(size)")
        }
    }

    func testAgeEncryptsBackstopDecrypts() throws {
        try requireAge()
        let first = try ageKeygen("one.txt"), second = try ageKeygen("two.txt")
        for size in sizes {
            let plain = try random(size, seed: UInt64(size) + 1)
            let input = try write(plain, "plain-\(size)")
            let out = dir + "/a-\(size).age"
            let ran = try tool(["age", "-e", "-r", first.recipient, "-r", second.recipient, "-o", out, input])
            XCTAssertEqual(ran.status, 0, ran.stderr)
            let sealed = try TestSupport.read(out)
            XCTAssertEqual(try decrypt(sealed, with: [second.identity]), plain, "size \(size)")
            XCTAssertEqual(try decrypt(sealed, with: [first.identity]), plain, "size \(size)")
            XCTAssertThrowsError(try decrypt(sealed, with: [AgeIdentity.generate()])) { error in
                XCTAssertEqual("\(error)", "age: wrong key: the identity opens none of the file's 2 recipient stanzas")
            }
        }
    }

    /// Truncations (also exactly at a chunk boundary, where only the final flag tells) and
    /// alterations are refused by Backstop, and by age too.
    func testTruncatedAndAlteredFilesAreRefused() throws {
        try requireAge()
        let key = try ageKeygen("key.txt")
        let plain = try random(2 * 65_536)  // two full chunks: the last one is full
        let sealed = try encrypt(plain, to: [key.identity.recipient])
        let payloadStart = sealed.firstRange(of: Data("\n--- ".utf8))!.upperBound + 44
        let chunk = 65_536 + 16
        var cases: [(String, Data, String)] = [
            ("inside the header", sealed.prefix(40), "bad header"),
            ("inside the nonce", sealed.prefix(payloadStart + 8), "payload nonce"),
            ("after the nonce", sealed.prefix(payloadStart + 16), "no payload"),
            ("at the chunk boundary", sealed.prefix(payloadStart + 16 + chunk), "not marked final"),
            ("inside the last chunk", sealed.prefix(sealed.count - 1), "fails authentication"),
            ("inside a tag", sealed.prefix(payloadStart + 16 + chunk + 10), "truncated"),
        ]
        var flipped = sealed
        flipped[payloadStart + 16 + 100] ^= 1
        cases.append(("a payload byte flipped", flipped, "chunk 0 fails authentication"))
        var macFlipped = sealed
        macFlipped[payloadStart - 3] = macFlipped[payloadStart - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        cases.append(("the MAC altered", macFlipped, "the header MAC does not match"))
        var lastFlipped = sealed
        lastFlipped[sealed.count - 1] ^= 0x80
        cases.append(("the last tag altered", lastFlipped, "chunk 1 fails authentication"))
        cases.append(("data appended", sealed + Data([0]), "data after the final chunk"))
        cases.append(("a chunk appended", sealed + sealed.suffix(chunk), "data after the final chunk"))

        for (what, data, expected) in cases {
            var released = Data()
            XCTAssertThrowsError(try decrypt(data, with: [key.identity], released: &released), what) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(what): \(error)")
                XCTAssertFalse("\(error)".contains("\n"), what)
                XCTAssertTrue(error is AgeError, what)
            }
            XCTAssertTrue(plain.starts(with: released), "\(what): only authentic plaintext is released")
            let file = try write(data, "bad.age")
            XCTAssertNotEqual(try tool(["age", "-d", "-i", key.path, file]).status, 0, "age also refuses: \(what)")
        }
    }

    /// The hashing reader decrypts a `.age` artifact only when it is an age file: a plain file
    /// that merely has the name is read as it is, and without an identity an age file is
    /// refused with one line naming the key to set.
    func testHashingReaderDecryptsOnlyAgeFiles() throws {
        defer { ArtifactEncryption.shared.set(recipients: [], identities: nil) }
        ArtifactEncryption.shared.set(recipients: [], identities: nil)
        try TestSupport.write("just text\n", to: dir + "/notes.age")
        let plain = try HashingFileReader(path: dir + "/notes.age")
        XCTAssertFalse(plain.isDecrypting)
        XCTAssertEqual(try plain.read(), 10)

        let identity = AgeIdentity.generate()
        let payload = try random(200_000)
        let file = try write(try encrypt(payload, to: [identity.recipient]), "x.tar.age")
        XCTAssertThrowsError(try HashingFileReader(path: file)) { error in
            XCTAssertTrue("\(error)".contains("DECRYPT_IDENTITY_FILE"), "\(error)")
        }
        ArtifactEncryption.shared.set(recipients: [], identities: [identity])
        let reader = try HashingFileReader(path: file, bufferSize: 5000)
        XCTAssertTrue(reader.isDecrypting)
        var out = Data()
        while true {
            let n = try reader.read()
            if n == 0 { break }
            out.append(UnsafeRawBufferPointer(rebasing: reader.buffer[0..<n]).bindMemory(to: UInt8.self))
        }
        XCTAssertEqual(out, payload, "plaintext handed out in buffer-sized pieces")
        try reader.drain()
        XCTAssertEqual(reader.bytesRead, Int64(try TestSupport.read(file).count), "the hash covers the stored file")
        XCTAssertEqual(reader.hexDigest(), try sha256OfFile(file).hex)
    }

    // MARK: the official test kit

    func testOfficialTestVectors() throws {
        guard let folder = Bundle.module.url(forResource: "age-testkit", withExtension: nil) else {
            return XCTFail("the age-testkit resources are missing")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0 != "README.md" }.sorted()
        XCTAssertGreaterThan(names.count, 60)
        var outcomes: [String: Int] = [:]
        for name in names {
            let raw = try Data(contentsOf: folder.appendingPathComponent(name))
            guard let split = raw.firstRange(of: Data("\n\n".utf8)) else { XCTFail("\(name): no blank line"); continue }
            var fields: [(String, String)] = []
            for line in String(decoding: raw[..<split.lowerBound], as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                fields.append((parts[0], parts.count > 1 ? parts[1] : ""))
            }
            func field(_ key: String) -> String? { fields.first { $0.0 == key }?.1 }
            var body = Data(raw[split.upperBound...])
            if field("compressed") == "zlib" {
                let inflated = try tool(["python3", "-c", "import sys,zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read()))"], input: body)
                XCTAssertEqual(inflated.status, 0, inflated.stderr)
                body = inflated.stdout
            }
            let identities = try fields.filter { $0.0 == "identity" && $0.1.hasPrefix("AGE-SECRET-KEY-1") }
                .map { try AgeIdentity(parsing: $0.1) }
            XCTAssertFalse(identities.isEmpty, name)
            let expect = field("expect") ?? "?"
            var released = Data()
            var outcome = "success"
            do {
                try decrypt(body, with: identities, released: &released)
            } catch let error as AgeError {
                switch error {
                case .header: outcome = "header failure"
                case .noMatch: outcome = "no match"
                case .headerMAC: outcome = "HMAC failure"
                case .payload: outcome = "payload failure"
                case .key: outcome = "key failure"
                }
            }
            XCTAssertEqual(outcome, expect, "\(name): \(field("comment") ?? "")")
            if let payload = field("payload") {
                let digest = SHA256.hash(data: released).map { String(format: "%02x", $0) }.joined()
                XCTAssertEqual(digest, payload, "\(name): the plaintext released must match the vector's hash")
            }
            outcomes[expect, default: 0] += 1
        }
        // The kit exercises every outcome class.
        for kind in ["success", "header failure", "no match", "HMAC failure", "payload failure"] {
            XCTAssertGreaterThan(outcomes[kind] ?? 0, 0, kind)
        }
    }
}

private final class Collected: @unchecked Sendable {
    var out = Data()
    var err = Data()
}
