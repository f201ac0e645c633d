@preconcurrency import Crypto
import Foundation

/// Decrypts an age v1 stream, handing out plaintext one authenticated chunk at a time.
///
/// `init` reads and checks the header (its syntax, the identities' stanzas, the MAC) and the
/// payload nonce; `read()` then returns each 64 KiB chunk only after its Poly1305 tag checked
/// out. A stream that ends without a chunk marked final (a truncated file, even one cut at a
/// chunk boundary), a chunk that fails authentication, an empty final chunk after others, or
/// bytes after the final chunk are each refused with one line. Memory stays at two chunks.
public final class AgeDecryptingReader {
    /// Fills the buffer with the next ciphertext bytes and returns how many; 0 at the end.
    public typealias Source = (UnsafeMutableRawBufferPointer) throws -> Int

    private let source: Source
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var atEnd = false
    private var payloadKey = SymmetricKey(size: .bits256)
    private var counter: UInt64 = 0
    private var done = false
    /// An error found after authentic plaintext that is still handed out first (the age test
    /// kit requires releasing it); the next `read()` throws it.
    private var deferredError: AgeError?

    private static let encryptedChunk = AgeFormat.chunkSize + AgeFormat.tagSize

    /// Reads the header from `source` and unwraps the file key with one of `identities`.
    public init(identities: [AgeIdentity], source: @escaping Source) throws {
        self.source = source
        buffer = [UInt8](repeating: 0, count: 2 * Self.encryptedChunk + 1)
        let (header, stanzas, mac) = try readHeader()
        if stanzas.contains(where: { $0.arguments.first == "scrypt" }) {
            throw AgeError.header(stanzas.count == 1
                ? "the file is passphrase-encrypted (scrypt), which Backstop does not support"
                : "an scrypt stanza is mixed with other stanzas")
        }
        var fileKey: [UInt8]?
        search: for stanza in stanzas {
            for identity in identities {
                if let key = try identity.unwrap(stanza) { fileKey = key; break search }
            }
        }
        guard let fileKey else {
            let x25519 = stanzas.filter { $0.arguments.first == "X25519" }.count
            throw AgeError.noMatch(x25519 == 0
                ? "the file has no X25519 recipient stanza (it was encrypted to another kind of recipient)"
                : identities.count == 1
                ? "wrong key: the identity opens none of the file's \(x25519) recipient stanzas"
                : "wrong key: none of the \(identities.count) identities opens any of the file's \(x25519) recipient stanzas")
        }
        let macKey = AgeFormat.hkdf(fileKey, salt: [], info: "header")
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: header, using: macKey) else {
            throw AgeError.headerMAC
        }
        try ensure(AgeFormat.nonceSize)
        guard end - start >= AgeFormat.nonceSize else {
            throw AgeError.header("the file ends before the payload nonce (truncated)")
        }
        let nonce = Array(buffer[start..<start + AgeFormat.nonceSize])
        start += AgeFormat.nonceSize
        payloadKey = AgeFormat.hkdf(fileKey, salt: nonce, info: "payload")
    }

    /// The next plaintext chunk (never empty, except once for an empty file), or nil after
    /// the final chunk.
    public func read() throws -> Data? {
        if let deferredError { throw deferredError }
        if done { return nil }
        try ensure(Self.encryptedChunk + 1)
        let available = end - start
        if available > Self.encryptedChunk {
            let sealed = buffer[start..<start + Self.encryptedChunk]
            if let plain = open(sealed, last: false) {
                start += Self.encryptedChunk
                counter += 1
                return plain
            }
            if let plain = open(sealed, last: true) {
                start += Self.encryptedChunk
                deferredError = .payload("data after the final chunk (chunk \(counter)): the file was altered")
                return plain
            }
            throw AgeError.payload("chunk \(counter) fails authentication: the file was altered or is corrupt")
        }
        if available == 0 {
            throw AgeError.payload(counter == 0
                ? "the file is truncated: no payload after the header"
                : "the file is truncated: it ends after chunk \(counter - 1), which is not marked final")
        }
        guard available >= AgeFormat.tagSize else {
            throw AgeError.payload("the file is truncated: chunk \(counter) is only \(available) bytes")
        }
        let sealed = buffer[start..<end]
        guard let plain = open(sealed, last: true) else {
            if available == Self.encryptedChunk, let plain = open(sealed, last: false) {
                deferredError = .payload("the file is truncated: it ends after chunk \(counter), which is not marked final")
                start = end
                return plain
            }
            throw AgeError.payload("chunk \(counter) fails authentication: the file was altered, corrupt or truncated")
        }
        if plain.isEmpty && counter > 0 {
            throw AgeError.payload("the final chunk is empty, which only an empty file may have")
        }
        start = end
        done = true
        return plain
    }

    /// Reads to the end, checking every chunk; returns the plaintext byte count.
    @discardableResult
    public func drain() throws -> Int64 {
        var total: Int64 = 0
        while let chunk = try read() { total += Int64(chunk.count) }
        return total
    }

    private func open(_ sealed: ArraySlice<UInt8>, last: Bool) -> Data? {
        let split = sealed.endIndex - AgeFormat.tagSize
        guard let box = try? ChaChaPoly.SealedBox(nonce: AgeFormat.streamNonce(counter: counter, last: last),
                                                  ciphertext: sealed[sealed.startIndex..<split], tag: sealed[split...])
        else { return nil }
        return try? ChaChaPoly.open(box, using: payloadKey)
    }

    /// Reads until at least `count` bytes are buffered or the source ends.
    private func ensure(_ count: Int) throws {
        while end - start < count && !atEnd {
            if start > 0 && buffer.count - end < count {
                buffer.withUnsafeMutableBytes { raw in
                    let base = raw.baseAddress!
                    memmove(base, base + start, end - start)
                }
                end -= start
                start = 0
            }
            let n = try buffer.withUnsafeMutableBytes { raw in
                try source(UnsafeMutableRawBufferPointer(rebasing: raw[end...]))
            }
            if n == 0 { atEnd = true } else { end += n }
        }
    }

    /// The next line without its LF; throws if the stream ends first or the line is too long.
    private func readLine() throws -> ArraySlice<UInt8> {
        var scanned = 0
        while true {
            if let newline = buffer[(start + scanned)..<end].firstIndex(of: 0x0A) {
                let line = buffer[start..<newline]
                start = newline + 1
                return line
            }
            scanned = end - start
            guard scanned < AgeFormat.maxLineLength else { throw AgeError.header("a header line is longer than \(AgeFormat.maxLineLength) bytes") }
            if atEnd {
                if start == end && scanned == 0 { throw AgeError.header("the file is empty or truncated inside its header") }
                throw AgeError.header("the file is truncated inside its header")
            }
            try ensure(scanned + 1)
        }
    }

    /// Parses the header up to its MAC line. Returns the bytes the MAC covers, the stanzas
    /// and the MAC.
    private func readHeader() throws -> ([UInt8], [AgeStanza], [UInt8]) {
        let first = try readLine()
        guard first.elementsEqual(AgeFormat.versionLine.utf8) else {
            if first.starts(with: "-----BEGIN AGE ENCRYPTED FILE-----".utf8) {
                throw AgeError.header("the file is ASCII-armored, which Backstop does not read (run age -d on it)")
            }
            if first.starts(with: "age-encryption.org/".utf8) {
                throw AgeError.header("unsupported age version '\(String(decoding: first.prefix(60), as: UTF8.self))'")
            }
            throw AgeError.header("not an age file (no age-encryption.org/v1 line)")
        }
        var header = Array(first) + [0x0A]
        var stanzas: [AgeStanza] = []
        while true {
            let line = try readLine()
            if line.starts(with: "---".utf8) {
                header += Array("---".utf8)
                let rest = line.dropFirst(3)
                guard rest.first == 0x20, rest.count == 44,
                      let mac = AgeFormat.decodeBase64(rest.dropFirst()), mac.count == 32 else {
                    throw AgeError.header("the MAC line is malformed")
                }
                guard !stanzas.isEmpty else { throw AgeError.header("the header has no recipient stanza") }
                return (header, stanzas, mac)
            }
            guard line.starts(with: "-> ".utf8) else {
                throw AgeError.header("expected a recipient stanza (-> ...) or the MAC line (--- ...)")
            }
            guard stanzas.count < AgeFormat.maxStanzas else { throw AgeError.header("more than \(AgeFormat.maxStanzas) stanzas") }
            let arguments = line.dropFirst(3).split(separator: 0x20, omittingEmptySubsequences: false)
            guard !arguments.isEmpty, arguments.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0 >= 0x21 && $0 <= 0x7E } }) else {
                throw AgeError.header("a stanza has an empty or invalid argument")
            }
            header += Array(line) + [0x0A]
            var text: [UInt8] = []
            while true {
                let bodyLine = try readLine()
                guard bodyLine.count <= 64, bodyLine.allSatisfy(AgeFormat.isBase64Character) else {
                    throw AgeError.header("a stanza body line is not base64 of at most 64 columns (every stanza ends with a short line)")
                }
                header += Array(bodyLine) + [0x0A]
                text += bodyLine
                if bodyLine.count < 64 { break }
            }
            guard let body = AgeFormat.decodeBase64(text) else {
                throw AgeError.header("a stanza body is not canonical base64")
            }
            stanzas.append(AgeStanza(arguments: arguments.map { String(decoding: $0, as: UTF8.self) }, body: body))
        }
    }
}
