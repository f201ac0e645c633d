import Foundation

/// A file written once, front to back, whose SHA-256 is computed from the same bytes in the
/// same pass. Created 0600 with O_EXCL; `finish()` fsyncs it and returns the artifact.
public final class HashingFileWriter {
    /// The absolute path being written.
    public let path: String
    private var fd: Int32
    private var hash = StreamingSHA256()
    private let progress: Progress?

    /// Creates `path` exclusively (it must not exist) with mode 0600.
    public init(path: String, progress: Progress? = nil) throws {
        self.path = path
        self.progress = progress
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FileOps.fileMode)
        guard fd >= 0 else { throw SystemError("create", path) }
    }

    deinit { if fd >= 0 { Foundation.close(fd) } }

    /// Bytes written so far.
    public var bytesWritten: Int64 { hash.count }

    /// Appends bytes, hashing them on the way.
    public func write(_ buffer: UnsafeRawBufferPointer) throws {
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
public final class HashingFileReader {
    /// The path being read.
    public let path: String
    private var fd: Int32
    private var hash = StreamingSHA256()
    private let progress: Progress?
    /// The buffer `read()` fills; valid until the next call.
    public private(set) var buffer: UnsafeMutableRawBufferPointer

    /// Opens `path` for reading.
    public init(path: String, bufferSize: Int = 1 << 20, progress: Progress? = nil) throws {
        self.path = path
        self.progress = progress
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path) }
        buffer = .allocate(byteCount: bufferSize, alignment: 16)
    }

    deinit {
        if fd >= 0 { Foundation.close(fd) }
        buffer.deallocate()
    }

    /// Bytes read so far.
    public var bytesRead: Int64 { hash.count }

    /// Reads the next chunk into `buffer` and returns its length; 0 at end of file.
    public func read() throws -> Int {
        while true {
            let n = Foundation.read(fd, buffer.baseAddress!, buffer.count)
            if n < 0 { if errno == EINTR { continue }; throw SystemError("read", path) }
            if n > 0 {
                hash.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                progress?.advance(by: Int64(n))
            }
            return n
        }
    }

    /// Reads whatever is left, so the digest covers the whole file.
    public func drain() throws {
        while try read() > 0 {}
    }

    /// The digest of the bytes read so far.
    public func hexDigest() -> String { hash.hexDigest() }

    /// Closes the file.
    public func close() {
        if fd >= 0 { Foundation.close(fd); fd = -1 }
    }
}
