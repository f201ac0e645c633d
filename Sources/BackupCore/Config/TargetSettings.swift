import Foundation

/// The keys of one target in a config file: `TARGET_<NAME>_<KEY>`. A key its kind does not
/// declare is reported (with a "did you mean" for a near miss) instead of silently ignored.
public final class TargetSettings: @unchecked Sendable {
    /// The target's name as written in `TARGETS` (lowercase).
    public let name: String
    /// The config it reads from.
    public let config: Config
    /// The key prefix, e.g. `TARGET_DB_`.
    public let prefix: String
    /// The keys the target's kind declares (nil: whatever it reads is known).
    public let declared: [ConfigKey]?
    private var used: Set<String> = []
    private var undeclared: Set<String> = []

    /// Keys every target has whatever its kind: `KIND` and the health check's thresholds.
    public static let commonKeys: [ConfigKey] =
        [ConfigKey("KIND", .string, help: "the target's kind (required)")] + HealthSettings.targetConfigKeys

    /// Creates the view of `config` for target `name`. With `declared`, the kind's keys (the
    /// common keys are added), a key outside them is unknown.
    public init(name: String, config: Config, prefix: String? = nil, declared: [ConfigKey]? = nil) {
        self.name = name
        self.config = config
        self.prefix = prefix ?? "TARGET_" + name.uppercased().replacingOccurrences(of: "-", with: "_") + "_"
        self.declared = declared.map { TargetSettings.merged($0) }
    }

    /// `keys` followed by the common keys they do not already declare.
    public static func merged(_ keys: [ConfigKey]) -> [ConfigKey] {
        keys + commonKeys.filter { common in !keys.contains { $0.name == common.name } }
    }

    /// The full key for a short key, e.g. `PATH` -> `TARGET_DB_PATH`.
    public func key(_ short: String) -> String {
        used.insert(prefix + short)
        if let declared, !declared.contains(where: { $0.name == short }) { undeclared.insert(short) }
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

    /// The short names of the keys this target knows: its declaration, or (without one) the
    /// keys it read and the common keys.
    public var knownKeys: [String] {
        if let declared { return declared.map(\.name) }
        return Array(Set(used.map { String($0.dropFirst(prefix.count)) } + TargetSettings.commonKeys.map(\.name))).sorted()
    }

    /// Throws for any key with this target's prefix that its kind does not know (a typo), with
    /// the nearest known key when one is within two edits. Throws too when the kind read a key
    /// it does not declare: the declaration is the one list of its keys, so that is a defect.
    public func rejectUnknownKeys() throws {
        if let missing = undeclared.sorted().first {
            throw OperationError("internal error: target \(name) read \(prefix + missing), which its kind does not declare")
        }
        let known = knownKeys
        for k in config.keys(withPrefix: prefix) where !known.contains(String(k.dropFirst(prefix.count))) {
            if let near = ConfigKey.nearest(to: k, among: known.map { prefix + $0 }) {
                throw ConfigError.unknownKey(key: k, file: config.origin(k), hint: "did you mean \(k) → \(near)?")
            }
            throw ConfigError.unknownKey(key: k, file: config.origin(k), hint: "keys for this target: \(known.joined(separator: ", "))")
        }
    }
}
