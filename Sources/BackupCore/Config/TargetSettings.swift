import Foundation

/// The keys of one target in a config file: `TARGET_<NAME>_<KEY>`. Tracks which keys the
/// target read, so a misspelt key is reported instead of silently ignored.
public final class TargetSettings: @unchecked Sendable {
    /// The target's name as written in `TARGETS` (lowercase).
    public let name: String
    /// The config it reads from.
    public let config: Config
    /// The key prefix, e.g. `TARGET_DB_`.
    public let prefix: String
    private var used: Set<String> = []

    /// Creates the view of `config` for target `name`.
    public init(name: String, config: Config, prefix: String? = nil) {
        self.name = name
        self.config = config
        self.prefix = prefix ?? "TARGET_" + name.uppercased().replacingOccurrences(of: "-", with: "_") + "_"
    }

    /// The full key for a short key, e.g. `PATH` -> `TARGET_DB_PATH`.
    public func key(_ short: String) -> String {
        used.insert(prefix + short)
        return prefix + short
    }

    /// A non-empty string, or nil.
    public func string(_ short: String) -> String? { config.string(key(short)) }
    /// A required string.
    public func require(_ short: String) throws -> String { try config.require(key(short)) }
    /// A path resolved against the config file's directory, or nil.
    public func path(_ short: String) throws -> String? { try config.path(key(short)) }
    /// A required path.
    public func requirePath(_ short: String) throws -> String { try config.requirePath(key(short)) }
    /// A list split on commas and white space.
    public func list(_ short: String) -> [String] { config.list(key(short)) }
    /// An integer in `range`.
    public func int(_ short: String, default d: Int, range: ClosedRange<Int>) throws -> Int { try config.int(key(short), default: d, range: range) }
    /// A number in `range`.
    public func double(_ short: String, default d: Double, range: ClosedRange<Double>) throws -> Double { try config.double(key(short), default: d, range: range) }
    /// A boolean.
    public func bool(_ short: String, default d: Bool) throws -> Bool { try config.bool(key(short), default: d) }
    /// One of `allowed`.
    public func choice(_ short: String, _ allowed: [String], default d: String) throws -> String { try config.choice(key(short), allowed, default: d) }

    /// Throws for any key with this target's prefix that the target never read (a typo).
    public func rejectUnknownKeys() throws {
        // Keys the engine reads for every kind (health thresholds) are never unknown.
        for k in config.keys(withPrefix: prefix) where !used.contains(k) && !HealthSettings.targetKeys.contains(String(k.dropFirst(prefix.count))) {
            let known = used.sorted().map { String($0.dropFirst(prefix.count)) }.joined(separator: ", ")
            throw ConfigError.unknownKey(key: k, file: config.file, hint: "keys for this target: \(known)")
        }
    }
}
