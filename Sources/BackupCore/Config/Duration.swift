import Foundation

/// Durations as config writes them: a number and a unit, `30s`, `90m`, `26h`, `7d`, `2w`, or
/// several in a row (`1d12h`). `m` is minutes (never months).
public enum ConfigDuration {
    /// Seconds per unit letter.
    static let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]

    /// The duration in seconds, or nil if `text` is not a duration (or is zero).
    public static func parse(_ text: String) -> TimeInterval? {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !s.isEmpty else { return nil }
        var total = 0.0
        var digits = ""
        for ch in s {
            if ch.isASCII && ch.isNumber {
                digits.append(ch)
            } else if let unit = units[ch], !digits.isEmpty, let n = Double(digits), digits.count <= 9 {
                total += n * unit
                digits = ""
            } else {
                return nil
            }
        }
        guard digits.isEmpty, total > 0 else { return nil }
        return total
    }

    /// `key` as a duration, or nil when absent; a bad value names the key.
    public static func read(_ config: Config, _ key: String) throws -> TimeInterval? {
        guard let raw = config.string(key) else { return nil }
        guard let d = parse(raw) else {
            throw ConfigError.invalidValue(key: key, file: config.origin(key), value: raw,
                                           expected: "a duration such as 30s, 90m, 26h, 7d or 2w")
        }
        return d
    }

    /// A short text for `seconds`: the largest unit up to days that divides it (`14d`, `36h`, `90m`).
    public static func format(_ seconds: TimeInterval) -> String {
        let s = Int(seconds.rounded())
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] where s % size == 0 && s >= size {
            return "\(s / size)\(unit)"
        }
        return "\(s)s"
    }
}
