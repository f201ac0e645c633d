import Foundation

/// One config key, declared once where it is read: its name, the type of its value, its
/// default and a one-line help. The registry, `--help`, `check --keys`, the unknown-key check
/// (with its "did you mean") and the README test all read these declarations.
public struct ConfigKey: Sendable, Equatable {
    /// The type of a key's value, as the administrator writes it.
    public enum ValueType: Sendable, Equatable, CustomStringConvertible {
        case string, path, list, int, number, bool, duration, size, command, secret, url
        /// One of the given words.
        case choice([String])

        public var description: String {
            switch self {
            case .string: return "text"
            case .path: return "path"
            case .list: return "list"
            case .int: return "integer"
            case .number: return "number"
            case .bool: return "true/false"
            case .duration: return "duration"
            case .size: return "size"
            case .command: return "shell command"
            case .secret: return "secret"
            case .url: return "URL"
            case let .choice(words): return words.joined(separator: "|")
            }
        }
    }

    /// The key's name: for a target kind the part after `TARGET_<NAME>_` (e.g. `PATH`); for a
    /// global key the whole name (e.g. `BACKUP_DIR`). `<TIER>` or `<NAME>` stand for a family.
    public let name: String
    /// The type of its value.
    public let type: ValueType
    /// The default as written in docs (nil: none, or required).
    public let defaultValue: String?
    /// One line for `--help` and `check --keys`.
    public let help: String

    /// Declares a key.
    public init(_ name: String, _ type: ValueType, default defaultValue: String? = nil, help: String) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.help = help
    }

    /// Whether this declaration stands for a family of keys (`KEEP_<TIER>_DAYS`).
    public var isPattern: Bool { name.contains("<") }

    /// Whether `key` is this key, or one of its family when it is a pattern.
    public func matches(_ key: String) -> Bool {
        guard isPattern else { return key == name }
        let regex = "^" + NSRegularExpression.escapedPattern(for: name)
            .replacingOccurrences(of: "<TIER>", with: "[A-Z0-9_]+")
            .replacingOccurrences(of: "<NAME>", with: "[A-Z0-9_]+") + "$"
        return key.range(of: regex, options: .regularExpression) != nil
    }

    /// One line: `NAME  type, default D: help`.
    public func line(prefix: String = "", width: Int = 26) -> String {
        let full = prefix + name
        let pad = full.count < width ? String(repeating: " ", count: width - full.count) : " "
        return full + pad + "(\(type)\(defaultValue.map { ", default \($0)" } ?? "")) " + help
    }

    /// The declared key nearest to `key` within `maxDistance` edits (Levenshtein), for a
    /// "did you mean" line; nil when none is that close or two are equally close. A short
    /// candidate allows fewer edits (one per four characters), so `DB` is not taken for `TZ`.
    public static func nearest(to key: String, among candidates: [String], maxDistance: Int = 2) -> String? {
        let scored = candidates.map { ($0, editDistance(key, $0)) }
            .filter { $0.1 > 0 && $0.1 <= min(maxDistance, $0.0.count / 4) }
        guard let best = scored.map(\.1).min() else { return nil }
        let ties = scored.filter { $0.1 == best }
        return ties.count == 1 ? ties[0].0 : nil
    }

    /// The Levenshtein distance between `a` and `b` (insertions, deletions, substitutions).
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a.utf8), y = Array(b.utf8)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        var current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }

    /// Names wrapped into lines of at most `width` characters: the first starts with `indent`,
    /// the others with `continuation` (default: `indent` and four spaces).
    public static func wrapped(_ names: [String], indent: String, continuation: String? = nil, width: Int = 78) -> [String] {
        let next = continuation ?? indent + "    "
        var lines: [String] = []
        var line = indent
        var start = indent
        for name in names {
            if line.count + name.count + 1 > width && line != start {
                lines.append(line)
                line = next
                start = next
            }
            line += (line == start ? "" : " ") + name
        }
        if line != start { lines.append(line) }
        return lines
    }
}
