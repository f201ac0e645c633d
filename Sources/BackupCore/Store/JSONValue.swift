import Foundation

/// A JSON value, for the free-form facts a target records about its source (row counts, git
/// commit, member lists) without the engine knowing their shape.
public enum JSONValue: Codable, Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .string(s): try c.encode(s)
        case let .number(n):
            if n == n.rounded(), abs(n) < 1e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
        case let .bool(b): try c.encode(b)
        case let .array(a): try c.encode(a)
        case let .object(o): try c.encode(o)
        case .null: try c.encodeNil()
        }
    }

    /// The string value, if this is a string.
    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    /// The boolean value, if this is a boolean.
    public var boolValue: Bool? { if case let .bool(b) = self { return b }; return nil }
    /// The numeric value, if this is a number.
    public var numberValue: Double? { if case let .number(n) = self { return n }; return nil }
    /// The number as a size or count: nil unless it is finite and within 0...2^60. Every
    /// whole number read from a manifest or state file goes through this, never `Int64(Double)`
    /// (which traps on 1e300, NaN or infinity), and a negative size never shows.
    public var sizeValue: Int64? {
        guard case let .number(n) = self, n.isFinite, n >= 0, n <= Artifact.maxBytesDouble else { return nil }
        return Int64(n)
    }
    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    /// The members, if this is an object.
    public var objectValue: [String: JSONValue]? { if case let .object(o) = self { return o }; return nil }
}

/// The JSON coders every Backstop file and `--json` output uses: sorted keys, ISO 8601 dates.
public enum BackstopJSON {
    /// A pretty, sorted encoder with ISO 8601 dates.
    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(Format.iso8601(date))
        }
        return e
    }

    /// A decoder matching `encoder()`.
    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { dec in
            let c = try dec.singleValueContainer()
            let s = try c.decode(String.self)
            guard let date = Format.parseISO8601(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "bad date \(s)")
            }
            return date
        }
        return d
    }

    /// Encodes `value` as a UTF-8 string with a trailing newline.
    public static func string<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder().encode(value), as: UTF8.self) + "\n"
    }
}
