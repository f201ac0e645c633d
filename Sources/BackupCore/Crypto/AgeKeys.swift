@preconcurrency import Crypto
import Foundation

/// An age X25519 recipient: the public key files are encrypted to, written `age1...`.
public struct AgeRecipient: Sendable, Hashable, CustomStringConvertible {
    /// The 32-byte X25519 public key.
    public let publicKey: [UInt8]

    /// Parses an `age1...` recipient; anything else (another recipient type, a bad checksum)
    /// is refused with one line naming it.
    public init(parsing text: String) throws {
        guard let (hrp, data) = Bech32.decode(text), hrp == "age" else {
            let shown = text.count > 24 ? String(text.prefix(20)) + "..." : text
            if text.hasPrefix("age1") {
                throw AgeError.key("'\(shown)' is not a valid age X25519 recipient (only age1... X25519 recipients are supported; check for a typo)")
            }
            throw AgeError.key("'\(shown)' is not an age recipient (expected age1...)")
        }
        guard data.count == 32 else { throw AgeError.key("'\(text)' is not an age X25519 recipient (wrong key length)") }
        publicKey = data
    }

    init(publicKey: [UInt8]) { self.publicKey = publicKey }

    /// The `age1...` encoding.
    public var description: String { Bech32.encode(hrp: "age", data: publicKey) }

    /// Wraps `fileKey` for this recipient in an `X25519` stanza with a fresh ephemeral key.
    func wrap(fileKey: [UInt8]) throws -> AgeStanza {
        let ephemeral = Curve25519.KeyAgreement.PrivateKey()
        let share = Array(ephemeral.publicKey.rawRepresentation)
        let theirs: Curve25519.KeyAgreement.PublicKey
        let secret: SharedSecret
        do {
            theirs = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKey)
            secret = try ephemeral.sharedSecretFromKeyAgreement(with: theirs)
        } catch {
            throw AgeError.key("age recipient \(self) is not a usable X25519 public key")
        }
        guard secret.withUnsafeBytes({ $0.contains { $0 != 0 } }) else {
            throw AgeError.key("age recipient \(self) is a low-order point; refusing to encrypt to it")
        }
        let wrapKey = AgeFormat.hkdf(secret, salt: share + publicKey, info: "age-encryption.org/v1/X25519")
        let box = try ChaChaPoly.seal(fileKey, using: wrapKey, nonce: try ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12)))
        return AgeStanza(arguments: ["X25519", AgeFormat.base64(share)], body: Array(box.ciphertext) + Array(box.tag))
    }

    /// Parses recipients separated by white space (the `ENCRYPT_TO` form).
    public static func parseList(_ text: String) throws -> [AgeRecipient] {
        try text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "," })
            .map { try AgeRecipient(parsing: String($0)) }
    }

    /// Parses a recipients file as `age -R` reads it: one recipient per line, blank lines and
    /// `#` comments ignored. Errors name the file and line.
    public static func parseFile(contents: String, name: String) throws -> [AgeRecipient] {
        var out: [AgeRecipient] = []
        for (number, rawLine) in contents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            do { out.append(try AgeRecipient(parsing: line)) } catch let error as AgeError {
                throw AgeError.key("\(name):\(number + 1): \(error.message)")
            }
        }
        guard !out.isEmpty else { throw AgeError.key("\(name): holds no age recipients") }
        return out
    }
}

/// An age X25519 identity: the secret key that decrypts, written `AGE-SECRET-KEY-1...`.
/// Its description never shows the secret.
public struct AgeIdentity: Sendable, CustomStringConvertible {
    private let privateKey: Curve25519.KeyAgreement.PrivateKey

    /// A new random identity.
    public static func generate() -> AgeIdentity { AgeIdentity(privateKey: .init()) }

    private init(privateKey: Curve25519.KeyAgreement.PrivateKey) { self.privateKey = privateKey }

    /// Parses an `AGE-SECRET-KEY-1...` identity. The error never repeats the text (it is a secret).
    public init(parsing text: String) throws {
        guard let (hrp, data) = Bech32.decode(text), hrp == "age-secret-key-", data.count == 32,
              let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: data) else {
            if text.uppercased().hasPrefix("AGE-SECRET-KEY-PQ-") || text.uppercased().hasPrefix("AGE-PLUGIN-") {
                throw AgeError.key("only X25519 identities (AGE-SECRET-KEY-1...) are supported")
            }
            throw AgeError.key("not a valid age identity (expected AGE-SECRET-KEY-1... with a correct checksum)")
        }
        privateKey = key
    }

    /// The identity's recipient (its public key).
    public var recipient: AgeRecipient { AgeRecipient(publicKey: Array(privateKey.publicKey.rawRepresentation)) }

    /// The `AGE-SECRET-KEY-1...` encoding: the secret itself. Handle with care.
    public var secretKeyString: String {
        Bech32.encode(hrp: "age-secret-key-", data: Array(privateKey.rawRepresentation)).uppercased()
    }

    public var description: String { "age identity of \(recipient)" }

    /// Unwraps the file key from `stanza` if it is an X25519 stanza addressed to this identity.
    /// Returns nil when the stanza is of another type or not for this identity; throws when
    /// the stanza is malformed, as the specification requires.
    func unwrap(_ stanza: AgeStanza) throws -> [UInt8]? {
        guard stanza.arguments.first == "X25519" else { return nil }
        guard stanza.arguments.count == 2 else {
            throw AgeError.header("an X25519 stanza has \(stanza.arguments.count - 1) arguments, expected 1")
        }
        guard let share = AgeFormat.decodeBase64(Array(stanza.arguments[1].utf8)), share.count == 32 else {
            throw AgeError.header("an X25519 stanza's share is not canonical base64 of 32 bytes")
        }
        guard stanza.body.count == AgeFormat.fileKeySize + AgeFormat.tagSize else {
            throw AgeError.header("an X25519 stanza's body is \(stanza.body.count) bytes, expected 32")
        }
        let secret: SharedSecret
        do {
            secret = try privateKey.sharedSecretFromKeyAgreement(with: try .init(rawRepresentation: share))
        } catch {
            throw AgeError.header("an X25519 stanza's share is a low-order point (all-zero shared secret)")
        }
        guard secret.withUnsafeBytes({ $0.contains { $0 != 0 } }) else {
            throw AgeError.header("an X25519 stanza's share is a low-order point (all-zero shared secret)")
        }
        let mine = Array(privateKey.publicKey.rawRepresentation)
        let wrapKey = AgeFormat.hkdf(secret, salt: share + mine, info: "age-encryption.org/v1/X25519")
        let body = stanza.body
        guard let box = try? ChaChaPoly.SealedBox(nonce: try ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12)),
                                                  ciphertext: body[0..<16], tag: body[16..<32]),
              let fileKey = try? ChaChaPoly.open(box, using: wrapKey) else { return nil }
        return Array(fileKey)
    }

    /// Parses an identity file as `age-keygen` writes it: `#` comments and blank lines
    /// ignored, one `AGE-SECRET-KEY-1...` per other line. Errors name the file and line.
    public static func parseFile(contents: String, name: String) throws -> [AgeIdentity] {
        var out: [AgeIdentity] = []
        for (number, rawLine) in contents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            do { out.append(try AgeIdentity(parsing: line)) } catch let error as AgeError {
                throw AgeError.key("\(name):\(number + 1): \(error.message)")
            }
        }
        guard !out.isEmpty else { throw AgeError.key("\(name): holds no age identity (AGE-SECRET-KEY-1...)") }
        return out
    }

    /// Reads an identity file, refusing it when group or others may read it (it holds secrets).
    public static func load(file path: String) throws -> [AgeIdentity] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw AgeError.key("cannot read the age identity file \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw AgeError.key("the age identity file \(path) is readable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); run chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgeError.key("cannot read the age identity file \(path)")
        }
        return try parseFile(contents: String(decoding: data, as: UTF8.self), name: path)
    }

    /// The text `age-keygen` writes for an identity: creation time and public key as comments,
    /// then the secret key.
    public func keyFileText(created: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone.current
        return "# created: \(formatter.string(from: created))\n# public key: \(recipient)\n\(secretKeyString)\n"
    }
}
