@preconcurrency import Crypto
import Foundation

/// A running SHA-256, fed while data streams.
public struct StreamingSHA256: Sendable {
    private var hasher = SHA256()
    /// Bytes fed so far.
    public private(set) var count: Int64 = 0

    /// Creates an empty hash.
    public init() {}

    /// Feeds bytes.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: buffer)
        count += Int64(buffer.count)
    }

    /// The lowercase hex digest of everything fed.
    public func hexDigest() -> String {
        hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// Hashes a whole file by reading it once; used by verify, never by backup.
public func sha256OfFile(_ path: String, progress: Progress? = nil) throws -> (hex: String, bytes: Int64) {
    let reader = try HashingFileReader(path: path, progress: progress, decrypt: false)
    defer { reader.close() }
    try reader.drain()
    return (reader.hexDigest(), reader.bytesRead)
}
