import BackupCore
import Foundation

/// Builds targets from config: `TARGETS` names them, `TARGET_<NAME>_KIND` picks the kind, and
/// the kind reads its own `TARGET_<NAME>_…` keys. New kinds register a builder here.
public enum TargetRegistry {
    /// A function that builds one kind of target from its settings.
    public typealias Builder = @Sendable (TargetSettings) throws -> any BackupTarget

    /// The kinds this build knows.
    public static let builders: [String: Builder] = [
        "sqlite": { try SQLiteTarget(settings: $0) },
        "pg_dump": { try PgDumpTarget(settings: $0) },
        "pg_basebackup": { try PgBaseBackupTarget(settings: $0) },
        "archive": { try ArchiveTarget(settings: $0) },
        "rsync": { try RsyncSnapshotTarget(settings: $0) },
        "minio": { try MinioDataTarget(settings: $0) },
    ]

    /// The type of each kind (the same keys as `builders`).
    public static let types: [String: any BackupTarget.Type] = [
        "sqlite": SQLiteTarget.self,
        "pg_dump": PgDumpTarget.self,
        "pg_basebackup": PgBaseBackupTarget.self,
        "archive": ArchiveTarget.self,
        "rsync": RsyncSnapshotTarget.self,
        "minio": MinioDataTarget.self,
    ]

    /// The kinds that have a restore drill (`verify --restore-test`), sorted.
    public static var kindsWithRestoreDrill: [String] { types.filter { $0.value.hasRestoreDrill }.keys.sorted() }

    /// Builds the target `name` from `config`; every key of it must be known to its kind.
    public static func build(name: String, config: Config) throws -> any BackupTarget {
        let settings = TargetSettings(name: name, config: config)
        let kind = try settings.choice("KIND", builders.keys.sorted(), default: "")
        guard let builder = builders[kind] else { throw ConfigError.missingKey(key: settings.key("KIND"), file: config.file) }
        let target = try builder(settings)
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
