import Foundation

/// Encryption of artifacts at rest, set once per process from config: `ENCRYPT_TO` or
/// `ENCRYPT_TO_FILE` (the recipients every new artifact is encrypted to) and
/// `DECRYPT_IDENTITY_FILE` (the identities that read encrypted artifacts back).
///
/// It is process-wide on purpose: artifacts are written only through
/// `BackupContext.createArtifact` and read through `HashingFileReader`, so encryption lives in
/// that layer and no target has to know about it. An encrypted artifact is an age v1 file
/// whose name ends in `.age`; the manifest records the ciphertext's size and SHA-256.
public final class ArtifactEncryption: @unchecked Sendable {
    /// The settings of this process.
    public static let shared = ArtifactEncryption()
    /// Appended to the name of every encrypted artifact.
    public static let suffix = ".age"

    private let lock = NSLock()
    private var recipientList: [AgeRecipient] = []
    private var identityList: [AgeIdentity]?

    /// Recipients new artifacts are encrypted to; empty: artifacts are written in clear.
    public var recipients: [AgeRecipient] { lock.withLock { recipientList } }

    /// Whether encrypted artifacts can be read (an identity file was given).
    public var canDecrypt: Bool { lock.withLock { identityList != nil } }

    /// Sets the recipients and identities directly (tests, and `configure(config:)`).
    public func set(recipients: [AgeRecipient], identities: [AgeIdentity]?) {
        lock.withLock {
            recipientList = recipients
            identityList = identities
        }
    }

    /// Reads `ENCRYPT_TO`, `ENCRYPT_TO_FILE` and `DECRYPT_IDENTITY_FILE`. Every problem is one
    /// line naming the key: a malformed recipient, an unreadable file, an identity file that
    /// group or others may read.
    public func configure(config: Config) throws {
        var recipients: [AgeRecipient] = []
        if let raw = config.string("ENCRYPT_TO") {
            for word in config.list("ENCRYPT_TO") {
                do { recipients.append(try AgeRecipient(parsing: word)) } catch {
                    throw ConfigError.invalidValue(key: "ENCRYPT_TO", file: config.origin("ENCRYPT_TO"),
                                                   value: word.count > 24 ? String(word.prefix(20)) + "..." : word,
                                                   expected: "age X25519 recipients (age1...) separated by spaces")
                }
            }
            if recipients.isEmpty { throw ConfigError.invalidValue(key: "ENCRYPT_TO", file: config.origin("ENCRYPT_TO"), value: raw, expected: "age1... recipients") }
        }
        if let path = try config.path("ENCRYPT_TO_FILE") {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw UsageError("config: ENCRYPT_TO_FILE in \(config.origin("ENCRYPT_TO_FILE")): cannot read \(path)")
            }
            do {
                recipients += try AgeRecipient.parseFile(contents: String(decoding: data, as: UTF8.self), name: path)
            } catch let error as AgeError {
                throw UsageError("config: ENCRYPT_TO_FILE: \(error.message)")
            }
        }
        var identities: [AgeIdentity]?
        if let path = try config.path("DECRYPT_IDENTITY_FILE") {
            do { identities = try AgeIdentity.load(file: path) } catch let error as AgeError {
                throw UsageError("config: DECRYPT_IDENTITY_FILE: \(error.message)")
            }
        }
        set(recipients: recipients, identities: identities)
    }

    /// What `check` says about encryption: nothing when it is off; an info line with the
    /// recipients; a warning when the identity file opens none of them.
    public func findings() -> [Finding] {
        let (recipients, identities) = lock.withLock { (recipientList, identityList) }
        var out: [Finding] = []
        if !recipients.isEmpty {
            out.append(Finding(.info, target: "-", "new artifacts are encrypted (age) to \(recipients.count) recipient(s): \(recipients.map(\.description).joined(separator: " "))"))
        }
        if let identities {
            let mine = Set(identities.map(\.recipient))
            if !recipients.isEmpty && !recipients.contains(where: mine.contains) {
                out.append(Finding(.warning, target: "-", "DECRYPT_IDENTITY_FILE holds no identity of any ENCRYPT_TO recipient: it cannot read new backups"))
            } else {
                out.append(Finding(.info, target: "-", "DECRYPT_IDENTITY_FILE: \(identities.count) identity(ies) for reading encrypted backups"))
            }
        }
        return out
    }

    /// The identities for reading the encrypted artifact `path`; without an identity file, a
    /// usage error saying which key to set.
    public func identities(forReading path: String) throws -> [AgeIdentity] {
        guard let identities = lock.withLock({ identityList }) else {
            throw UsageError("\((path as NSString).lastPathComponent) is encrypted (age): set DECRYPT_IDENTITY_FILE to the identity file of one of its recipients to read it")
        }
        return identities
    }

    /// Refuses up front, with one line, to restore or drill an encrypted backup without an
    /// identity, before anything is touched.
    public func requireIdentity(for record: TargetRecord, setID: String) throws {
        guard record.artifacts.contains(where: { $0.path.hasSuffix(Self.suffix) }), !canDecrypt else { return }
        throw UsageError("backup \(setID) of '\(record.name)' is encrypted (age): set DECRYPT_IDENTITY_FILE to the identity file of one of its recipients")
    }
}

/// The names of the artifacts a target's backup wrote encrypted (shared by the copies of its
/// `BackupContext`), so the engine records their stored names.
public final class EncryptedArtifactNames: @unchecked Sendable {
    private let lock = NSLock()
    private var names: Set<String> = []

    /// An empty record.
    public init() {}

    func insert(_ name: String) { lock.withLock { _ = names.insert(name) } }

    /// Whether `name` (as the target named it) was written encrypted.
    public func contains(_ name: String) -> Bool { lock.withLock { names.contains(name) } }
}
