import Foundation

/// A file written once, front to back, whose SHA-256 is computed from the same bytes in the
/// same pass. Created 0600 with O_EXCL; `finish()` fsyncs it and returns the artifact.
///
/// With recipients, what is written is encrypted to them in the age format on the way: the
/// file, its size and its SHA-256 are those of the ciphertext, still in one pass.
public final class HashingFileWriter {
    /// The absolute path being written.
    public let path: String
    private var fd: Int32
    private var hash = StreamingSHA256()
    private let progress: Progress?
    private var age: AgeEncryptingWriter?

    /// Creates `path` exclusively (it must not exist) with mode 0600; with `recipients`, the
    /// data is encrypted to them (age) as it streams.
    public init(path: String, progress: Progress? = nil, encryptTo recipients: [AgeRecipient] = []) throws {
        self.path = path
        self.progress = progress
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FileOps.fileMode)
        guard fd >= 0 else { throw SystemError("create", path) }
        if !recipients.isEmpty {
            age = try AgeEncryptingWriter(recipients: recipients) { [unowned self] in try self.writeStored($0) }
        }
    }

    deinit { if fd >= 0 { Foundation.close(fd) } }

    /// Bytes written to the file so far (ciphertext when encrypting).
    public var bytesWritten: Int64 { hash.count }

    /// Appends bytes, hashing them on the way (encrypting them first, with recipients).
    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        guard buffer.count > 0 else { return }
        if let age { return try age.write(buffer) }
        try writeStored(buffer)
    }

    /// Hashes and writes bytes as they go to disk.
    private func writeStored(_ buffer: UnsafeRawBufferPointer) throws {
        guard buffer.count > 0 else { return }
        hash.update(buffer)
        var offset = 0
        while offset < buffer.count {
            let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", path)
            }
            offset += n
        }
        progress?.advance(by: Int64(buffer.count))
    }

    /// Appends `data`.
    public func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }

    /// fsyncs and closes the file and returns its size and digest.
    public func finish() throws -> (bytes: Int64, sha256: String) {
        guard fd >= 0 else { throw OperationError("internal: \(path) finished twice") }
        try age?.finish()
        if fsync(fd) != 0 { throw SystemError("fsync", path) }
        Foundation.close(fd)
        fd = -1
        progress?.finish()
        return (hash.count, hash.hexDigest())
    }

    /// Closes without fsync (used on failure; the caller removes the file).
    public func abandon() {
        progress?.finish()
        if fd >= 0 { Foundation.close(fd); fd = -1 }
    }
}

/// Reads a file front to back, hashing every byte handed out.
///
/// An encrypted artifact (a name ending in `.age`) is decrypted on the way with the identities
/// of `ArtifactEncryption.shared`: `read()` hands out plaintext, each chunk only once it is
/// authenticated, while the hash, `bytesRead` and `drain()` concern the file as stored.
public final class HashingFileReader {
    /// The path being read.
    public let path: String
    private var fd: Int32
    private var hash = StreamingSHA256()
    private let progress: Progress?
    /// The buffer `read()` fills; valid until the next call.
    public private(set) var buffer: UnsafeMutableRawBufferPointer
    private var age: AgeDecryptingReader?
    private var plain = Data()
    private var plainOffset = 0

    /// Opens `path` for reading; a symbolic link is refused (`O_NOFOLLOW`). With `decrypt` (the default), a `.age` file that begins with
    /// the age header is decrypted: this reads and checks its header, and fails with one line
    /// when no identity opens it.
    public init(path: String, bufferSize: Int = 1 << 20, progress: Progress? = nil, decrypt: Bool = true) throws {
        self.path = path
        self.progress = progress
        // Never through a symbolic link: an artifact replaced by a link would read (and restore
        // from) a file outside the backup directory.
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ELOOP { throw OperationError("\(path) is a symbolic link, not a file Backstop wrote; refusing to read through it") }
            throw SystemError("open", path)
        }
        buffer = .allocate(byteCount: bufferSize, alignment: 16)
        if decrypt && path.hasSuffix(ArtifactEncryption.suffix) && Self.startsWithAgeHeader(fd) {
            let identities = try ArtifactEncryption.shared.identities(forReading: path)
            do {
                age = try AgeDecryptingReader(identities: identities) { [unowned self] in try self.readStored(into: $0) }
            } catch let error as AgeError {
                throw OperationError("\((path as NSString).lastPathComponent): \(error.message)")
            }
        }
    }

    /// Whether the open file begins with the age v1 version line (read without moving the
    /// offset), so a plain file that merely has a `.age` name is read as it is.
    private static func startsWithAgeHeader(_ fd: Int32) -> Bool {
        let magic = Array((AgeFormat.versionLine + "\n").utf8)
        var start = [UInt8](repeating: 0, count: magic.count)
        return pread(fd, &start, magic.count, 0) == magic.count && start == magic
    }

    /// Whether `read()` hands out decrypted bytes.
    public var isDecrypting: Bool { age != nil }

    deinit {
        if fd >= 0 { Foundation.close(fd) }
        buffer.deallocate()
    }

    /// Bytes read from the file so far (ciphertext when decrypting).
    public var bytesRead: Int64 { hash.count }

    /// Reads the next chunk into `buffer` and returns its length; 0 at end of file (for an
    /// encrypted file: after its final chunk checked out).
    public func read() throws -> Int {
        guard let age else { return try readStored(into: buffer) }
        while plainOffset == plain.count {
            do {
                guard let next = try age.read() else { return 0 }
                plain = next
                plainOffset = 0
            } catch let error as AgeError {
                throw OperationError("\((path as NSString).lastPathComponent): \(error.message)")
            }
        }
        let n = min(buffer.count, plain.count - plainOffset)
        plain.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + plainOffset, byteCount: n)
        }
        plainOffset += n
        return n
    }

    /// Reads the rest of the content through `read()`: for an encrypted file, this checks
    /// every remaining chunk and the final-chunk mark.
    public func readToEnd() throws {
        while try read() > 0 {}
    }

    /// Reads stored bytes into `target`, hashing them.
    private func readStored(into target: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Foundation.read(fd, target.baseAddress!, target.count)
            if n < 0 { if errno == EINTR { continue }; throw SystemError("read", path) }
            if n > 0 {
                hash.update(UnsafeRawBufferPointer(rebasing: target[0..<n]))
                progress?.advance(by: Int64(n))
            }
            return n
        }
    }

    /// Reads whatever is left of the file as stored, so the digest covers the whole file.
    public func drain() throws {
        while try readStored(into: buffer) > 0 {}
    }

    /// The digest of the bytes read so far.
    public func hexDigest() -> String { hash.hexDigest() }

    /// Closes the file.
    public func close() {
        if fd >= 0 { Foundation.close(fd); fd = -1 }
    }
}
