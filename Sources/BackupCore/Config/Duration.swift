import Foundation

/// Durations and sizes as config writes them: `30s`, `90m`, `26h`, `7d`, `2w` (combinable:
/// `1h30m`); sizes `512`, `10K`, `5M`, `2G` (powers of 1024).
public enum ConfigUnits {
    /// The longest duration accepted: 100 years.
    public static let maxDuration: TimeInterval = 100 * 366 * 86400
    /// The largest size accepted: 2^60 bytes.
    public static let maxBytes: Double = 1_152_921_504_606_846_976

    /// Seconds in `text`, or nil if it is not a duration. A bare number is refused: `60` could
    /// mean seconds or minutes, and a wrong guess silences an alarm.
    public static func duration(_ text: String) -> TimeInterval? {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !s.isEmpty else { return nil }
        var total: Double = 0
        var number = ""
        var sawUnit = false
        for c in s {
            if c.isASCII && (c.isNumber || c == ".") {
                number.append(c)
                continue
            }
            let unit: Double
            switch c {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86400
            case "w": unit = 7 * 86400
            default: return nil
            }
            guard let n = Double(number), n >= 0 else { return nil }
            total += n * unit
            number = ""
            sawUnit = true
        }
        // Over 100 years is a typo, and would overflow the date arithmetic that uses it.
        guard number.isEmpty, sawUnit, total.isFinite, total <= maxDuration else { return nil }
        return total
    }

    /// Bytes in `text` (`512`, `10K`, `5M`, `2G`, `1T`, optional `B`/`iB`), or nil.
    public static func bytes(_ text: String) -> Int64? {
        var s = text.trimmingCharacters(in: .whitespaces).uppercased()
        if s.hasSuffix("IB") { s.removeLast(2) } else if s.hasSuffix("B") { s.removeLast() }
        let units: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024, "T": 1024 * 1024 * 1024 * 1024]
        var factor: Double = 1
        if let last = s.last, let u = units[last] { factor = u; s.removeLast() }
        // Digits only (no inf, nan or exponent), and at most 2^60 bytes (1 EiB): more is a typo.
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let n = Double(s), n >= 0, (n * factor).isFinite, n * factor <= maxBytes else { return nil }
        return Int64(n * factor)
    }

    /// A duration for messages, in the config's own notation: `26h`, `90m`, `7d`, `45s`.
    public static func format(_ seconds: TimeInterval) -> String {
        let s = Int(seconds.rounded())
        if s != 0 && s % 86400 == 0 { return "\(s / 86400)d" }
        if s != 0 && s % 3600 == 0 { return "\(s / 3600)h" }
        if s != 0 && s % 60 == 0 { return "\(s / 60)m" }
        return "\(s)s"
    }
}

extension Config {
    /// A duration (`30s`, `90m`, `26h`, `7d`) in seconds, or `defaultValue` when absent.
    public func duration(_ key: String, default defaultValue: TimeInterval?) throws -> TimeInterval? {
        guard let raw = string(key) else { return defaultValue }
        guard let seconds = ConfigUnits.duration(raw) else {
            throw ConfigError.invalidValue(key: key, file: origin(key), value: raw, expected: "a duration such as 30s, 90m, 26h or 7d")
        }
        return seconds
    }

    /// A size in bytes (`512`, `10K`, `5M`, `2G`), or `defaultValue` when absent.
    public func byteSize(_ key: String, default defaultValue: Int64?) throws -> Int64? {
        guard let raw = string(key) else { return defaultValue }
        guard let n = ConfigUnits.bytes(raw) else {
            throw ConfigError.invalidValue(key: key, file: origin(key), value: raw, expected: "a size such as 512, 10K, 5M or 2G")
        }
        return n
    }
}
