@preconcurrency import Crypto
import Foundation

/// Encrypts a stream into the age v1 format, handing the ciphertext to a sink as it goes.
///
/// The header (one X25519 stanza per recipient and its MAC) and the payload nonce are written
/// at creation; then every 64 KiB of plaintext becomes one ChaCha20-Poly1305 STREAM chunk.
/// A full chunk is held back until more data arrives, so `finish()` can mark the true last
/// chunk final. Memory stays at one chunk whatever the size of the stream.
public final class AgeEncryptingWriter {
    /// Receives ciphertext, in order.
    public typealias Sink = (UnsafeRawBufferPointer) throws -> Void

    private let sink: Sink
    private let payloadKey: SymmetricKey
    /// Plaintext of the chunk being filled.
    private let pending = UnsafeMutableRawBufferPointer.allocate(byteCount: AgeFormat.chunkSize, alignment: 16)
    private var pendingCount = 0
    private var counter: UInt64 = 0
    private var finished = false

    /// Writes the header for `recipients` (at least one) and the payload nonce to `sink`.
    public init(recipients: [AgeRecipient], sink: @escaping Sink) throws {
        guard !recipients.isEmpty else { throw AgeError.key("no age recipients to encrypt to") }
        self.sink = sink
        var fileKey = [UInt8](repeating: 0, count: AgeFormat.fileKeySize)
        var nonce = [UInt8](repeating: 0, count: AgeFormat.nonceSize)
        var generator = SystemRandomNumberGenerator()
        for i in fileKey.indices { fileKey[i] = generator.next() }
        for i in nonce.indices { nonce[i] = generator.next() }

        var header = Array((AgeFormat.versionLine + "\n").utf8)
        for recipient in recipients { header += try recipient.wrap(fileKey: fileKey).encoded() }
        header += Array("---".utf8)
        let macKey = AgeFormat.hkdf(fileKey, salt: [], info: "header")
        let mac = HMAC<SHA256>.authenticationCode(for: header, using: macKey)
        header += Array((" " + AgeFormat.base64(Array(mac)) + "\n").utf8)
        header += nonce
        payloadKey = AgeFormat.hkdf(fileKey, salt: nonce, info: "payload")
        try header.withUnsafeBytes { try sink($0) }
    }

    deinit { pending.deallocate() }

    /// Encrypts and passes on `buffer`.
    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        guard !finished else { throw OperationError("internal: age stream written after finish") }
        var offset = 0
        while offset < buffer.count {
            if pendingCount == AgeFormat.chunkSize { try emit(last: false) }
            let take = min(AgeFormat.chunkSize - pendingCount, buffer.count - offset)
            (pending.baseAddress! + pendingCount).copyMemory(from: buffer.baseAddress! + offset, byteCount: take)
            pendingCount += take
            offset += take
        }
    }

    /// Encrypts and passes on `data`.
    public func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }

    /// Writes the final chunk (empty only when the whole stream was).
    public func finish() throws {
        guard !finished else { return }
        try emit(last: true)
        finished = true
    }

    private func emit(last: Bool) throws {
        let plaintext = UnsafeRawBufferPointer(rebasing: pending[0..<pendingCount])
        let box = try ChaChaPoly.seal(plaintext, using: payloadKey, nonce: AgeFormat.streamNonce(counter: counter, last: last))
        let sealed = box.combined.dropFirst(12)
        try sealed.withUnsafeBytes { try sink($0) }
        pendingCount = 0
        counter += 1
    }
}
