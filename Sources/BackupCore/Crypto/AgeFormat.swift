@preconcurrency import Crypto
import Foundation

/// Why an age file, key or recipient was refused: one line each.
///
/// The cases follow the failure classes of the age test kit: a malformed header, no identity
/// opening any stanza, a header MAC mismatch, and a payload that fails part way.
public enum AgeError: UserFacingError, Equatable {
    /// The header is malformed, truncated or of an unsupported kind.
    case header(String)
    /// None of the identities opens any recipient stanza.
    case noMatch(String)
    /// A file key was unwrapped but the header MAC does not match it.
    case headerMAC
    /// The encrypted payload is truncated, altered, or has data after its final chunk.
    case payload(String)
    /// A recipient, identity or key file is malformed.
    case key(String)

    public var message: String {
        switch self {
        case let .header(reason): return "age: bad header: \(reason)"
        case let .noMatch(reason): return "age: \(reason)"
        case .headerMAC: return "age: the header MAC does not match: the header was altered or the file is corrupt"
        case let .payload(reason): return "age: \(reason)"
        case let .key(reason): return reason
        }
    }

    public var exitStatus: ExitStatus {
        if case .key = self { return .usage }
        return .failure
    }
}

/// Constants and small codecs of the age v1 format (https://age-encryption.org/v1).
enum AgeFormat {
    static let versionLine = "age-encryption.org/v1"
    /// Plaintext bytes per STREAM chunk.
    static let chunkSize = 64 * 1024
    /// The Poly1305 tag that follows every chunk.
    static let tagSize = 16
    /// The random nonce between the header and the first chunk.
    static let nonceSize = 16
    static let fileKeySize = 16
    /// Longest header line accepted; real lines are far shorter.
    static let maxLineLength = 64 * 1024
    /// Most stanzas accepted in one header.
    static let maxStanzas = 1024

    /// HKDF-SHA-256 with a 32-byte output, as every age derivation uses it.
    static func hkdf(_ inputKeyMaterial: some ContiguousBytes, salt: [UInt8], info: String) -> SymmetricKey {
        let ikm = inputKeyMaterial.withUnsafeBytes { SymmetricKey(data: $0) }
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: Array(info.utf8), outputByteCount: 32)
    }

    /// The 12-byte STREAM nonce: an 11-byte big-endian chunk counter and the final-chunk flag.
    static func streamNonce(counter: UInt64, last: Bool) -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { bytes[3 + i] = UInt8(truncatingIfNeeded: counter >> UInt64(8 * (7 - i))) }
        bytes[11] = last ? 1 : 0
        return try! ChaChaPoly.Nonce(data: bytes)
    }

    /// Encodes as standard base64 without `=` padding.
    static func base64(_ bytes: some DataProtocol) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    private static let base64Values: [Int8] = {
        var table = [Int8](repeating: -1, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(c)] = Int8(i)
        }
        return table
    }()

    /// Whether `byte` is one of the 64 base64 characters (never `=`).
    static func isBase64Character(_ byte: UInt8) -> Bool { base64Values[Int(byte)] >= 0 }

    /// Decodes unpadded, canonical base64 (unused trailing bits zero); nil otherwise.
    static func decodeBase64(_ text: some Collection<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var accumulator: UInt32 = 0, bits = 0
        for c in text {
            let value = base64Values[Int(c)]
            guard value >= 0 else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        // A single leftover character (6 bits) is never valid; leftover bits must be zero.
        guard bits < 6, accumulator == 0 else { return nil }
        return out
    }
}

/// One recipient stanza of an age header: its arguments and its body.
struct AgeStanza {
    /// The arguments; the first names the recipient type (e.g. `X25519`).
    var arguments: [String]
    /// The decoded body.
    var body: [UInt8]

    /// The stanza as it appears in a header: the argument line, then the body in base64
    /// wrapped at 64 columns, always ending with a line shorter than 64 (possibly empty).
    func encoded() -> [UInt8] {
        var out = Array(("-> " + arguments.joined(separator: " ") + "\n").utf8)
        let text = Array(AgeFormat.base64(body).utf8)
        var offset = 0
        while true {
            let line = text[offset..<min(offset + 64, text.count)]
            out += line
            out.append(0x0A)
            offset += line.count
            if line.count < 64 { break }
        }
        return out
    }
}
