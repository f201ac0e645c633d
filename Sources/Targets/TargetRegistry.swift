import BackupCore
import Foundation

/// Builds targets from config: `TARGETS` names them, `TARGET_<NAME>_KIND` picks the kind, and
/// the kind reads its own `TARGET_<NAME>_…` keys. A new kind is one line in `kinds`.
public enum TargetRegistry {
    /// Every kind this build knows, in the order `--help` lists them. Each declares its name
    /// and keys once (`TargetKind`); everything below is derived from this list.
    public static let kinds: [any TargetKind.Type] = [
        SQLiteTarget.self,
        ArchiveTarget.self,
        PgDumpTarget.self,
        PgBaseBackupTarget.self,
        RsyncSnapshotTarget.self,
        MinioDataTarget.self,
    ]

    /// A function that builds one kind of target from its settings.
    public typealias Builder = @Sendable (TargetSettings) throws -> any BackupTarget

    /// The builder of each kind, by name.
    public static var builders: [String: Builder] {
        Dictionary(uniqueKeysWithValues: kinds.map { kind in (kind.kindName, { try kind.make(settings: $0) } as Builder) })
    }

    /// The type of each kind, by name (the same names as `builders`).
    public static var types: [String: any TargetKind.Type] {
        Dictionary(uniqueKeysWithValues: kinds.map { ($0.kindName, $0) })
    }

    /// The kinds that have a restore drill (`verify --restore-test`), sorted.
    public static var kindsWithRestoreDrill: [String] { types.filter { $0.value.hasRestoreDrill }.keys.sorted() }

    /// Every key a target of `kind` accepts: the kind's own and the common ones.
    public static func keys(of kind: any TargetKind.Type) -> [ConfigKey] { TargetSettings.merged(kind.configKeys) }

    /// Builds the target `name` from `config`; every key of it must be declared by its kind.
    public static func build(name: String, config: Config) throws -> any BackupTarget {
        let probe = TargetSettings(name: name, config: config)
        let kindName = try probe.choice("KIND", kinds.map { $0.kindName }, default: "")
        guard let kind = types[kindName] else { throw ConfigError.missingKey(key: probe.key("KIND"), file: config.file) }
        let settings = TargetSettings(name: name, config: config, declared: kind.configKeys)
        let target = try kind.make(settings: settings)
        try settings.rejectUnknownKeys()
        return target
    }

    /// Builds every target listed in `TARGETS`.
    public static func buildAll(config: Config) throws -> [any BackupTarget] {
        let names = config.list("TARGETS")
        guard !names.isEmpty else { throw ConfigError.missingKey(key: "TARGETS", file: config.file) }
        var seen = Set<String>()
        return try names.map { name in
            guard name.range(of: "^[a-z][a-z0-9-]*$", options: .regularExpression) != nil else {
                throw ConfigError.invalidValue(key: "TARGETS", file: config.file, value: name,
                                               expected: "names of lowercase letters, digits and dashes")
            }
            guard seen.insert(name).inserted else {
                throw ConfigError.invalidValue(key: "TARGETS", file: config.file, value: name, expected: "each name once")
            }
            return try build(name: name, config: config)
        }
    }
}
