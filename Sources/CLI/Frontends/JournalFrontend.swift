import ArgumentParser
import BackupCore
import Foundation
import Targets

/// `journal-backup --db-only` / `--code-only`, as the journal scripts spell them.
public struct JournalBackupFlags: ParsableArguments {
    @Flag(name: .long, help: "Back up the database only.")
    var dbOnly = false

    @Flag(name: .long, help: "Back up the codebase only.")
    var codeOnly = false

    public init() {}

    public func validate() throws {
        if dbOnly && codeOnly { throw ValidationError("--db-only and --code-only exclude each other") }
    }
}

/// The journal application's backups (seed document 002): the database (SQLite or
/// PostgreSQL) and a codebase tarball without `.git`, with the git commit and branch recorded.
public enum JournalFrontend: Frontend {
    public typealias BackupFlags = JournalBackupFlags
    public static let commandName = "journal-backup"
    public static let abstract = "Back up the journal application: its database and its codebase."
    /// The journal's own keys, declared once (read by `deployment(config:)` and `postgres`).
    public static let journalKeys = GlobalKeys.Section(title: "journal", keys: [
        ConfigKey("BACKUP_DIR", .path, default: "backups/ beside the config file", help: "where backups go"),
        ConfigKey("DEPLOYMENT_NAME", .string, default: "journal-backup", help: "names the deployment in alerts and metrics"),
        ConfigKey("DATABASE_TYPE", .choice(["sqlite", "postgresql"]), default: "sqlite", help: "which database the journal uses"),
        ConfigKey("SQLITE_PATH", .path, help: "the SQLite database file (required with sqlite)"),
        ConfigKey("DATABASE_URL", .secret, help: "postgresql://USER:PASSWORD@HOST:PORT/DB (or the POSTGRES_* keys)"),
        ConfigKey("POSTGRES_HOST", .string, default: "libpq's", help: "the PostgreSQL server"),
        ConfigKey("POSTGRES_PORT", .int, default: "5432", help: "its port"),
        ConfigKey("POSTGRES_USER", .string, default: "libpq's", help: "the role to connect as"),
        ConfigKey("POSTGRES_PASSWORD", .secret, help: "its password"),
        ConfigKey("POSTGRES_DB", .string, help: "the database (required without DATABASE_URL)"),
        ConfigKey("PG_DUMP_FORMAT", .choice(PgDumpTarget.DumpFormat.allCases.map(\.rawValue)), default: "custom", help: "the dump format"),
        ConfigKey("PG_BIN_DIR", .path, help: "where pg_dump and pg_restore are, if not the system's"),
        ConfigKey("CODEBASE_DIR", .path, default: "the config file's directory", help: "the codebase to archive"),
        ConfigKey("CODEBASE_EXCLUDE", .list, help: "extra globs (.git, __pycache__, *.pyc, node_modules, .venv, the backup dir: always)"),
        ConfigKey("CODEBASE_COMPRESSION", .choice(["gzip", "zstd"]), default: "gzip", help: "how the codebase tarball is compressed"),
    ])

    /// The journal's keys, then the shared ones except the deployment section (`TARGETS` is
    /// not read: the targets are fixed).
    public static var keySections: [GlobalKeys.Section] {
        [journalKeys] + GlobalKeys.sections.filter { $0.title != GlobalKeys.deployment.title }
    }

    /// The targets are fixed (db, codebase): no `TARGET_<NAME>_KIND`.
    public static var targetKinds: [any TargetKind.Type] { [] }

    /// Generated from the declarations.
    public static var configHelp: String {
        ConfigKeysHelp.summary(sections: keySections, kinds: targetKinds) + """

        Targets: db, codebase. Tiers: backup --tier daily|weekly|monthly.
        Default schedules: daily 02:00 --db-only, weekly Sun 03:00, monthly 1st
        04:00. Retention unless KEEP_* keys say otherwise: daily 7 days, weekly
        28 days, monthly 183 days.
        """
    }

    /// Globs the codebase tarball always leaves out.
    public static let defaultExcludes = [".git", "__pycache__", "*.pyc", "node_modules", ".venv"]

    public static func deployment(config: Config) throws -> Deployment {
        let backupDir = try config.path("BACKUP_DIR") ?? config.resolve("backups")
        var targets: [any BackupTarget] = []
        let dbType = try config.choice("DATABASE_TYPE", ["sqlite", "postgresql"], default: "sqlite")
        switch dbType {
        case "sqlite":
            targets.append(SQLiteTarget(name: "db", path: try config.requirePath("SQLITE_PATH")))
        default:
            let (server, database) = try postgres(config: config)
            let format = try config.choice("PG_DUMP_FORMAT", PgDumpTarget.DumpFormat.allCases.map(\.rawValue), default: "custom")
            targets.append(PgDumpTarget(name: "db", server: server, databases: [database],
                                        format: PgDumpTarget.DumpFormat(rawValue: format)!,
                                        threads: ProcessInfo.processInfo.activeProcessorCount,
                                        jobs: ProcessInfo.processInfo.activeProcessorCount,
                                        artifactPrefix: "postgresql_"))
        }
        let codebase = try config.path("CODEBASE_DIR") ?? config.resolve(".")
        var exclude = defaultExcludes + config.list("CODEBASE_EXCLUDE")
        if backupDir.hasPrefix(codebase + "/") { exclude.append(String(backupDir.dropFirst(codebase.count + 1))) }
        // The database has its own target with a consistent copy; raw database files (and a
        // live -wal/-shm) in the codebase tarball would restore over it behind its back.
        if dbType == "sqlite", let db = try config.path("SQLITE_PATH"), db.hasPrefix(codebase + "/") {
            let rel = String(db.dropFirst(codebase.count + 1))
            exclude += [rel, rel + "-wal", rel + "-shm", rel + "-journal"]
        }
        let compressionName = try config.choice("CODEBASE_COMPRESSION", ["gzip", "zstd"], default: "gzip")
        targets.append(ArchiveTarget(name: "codebase", paths: [codebase], base: codebase, exclude: exclude,
                                     compression: Compression.parse(compressionName, level: nil,
                                                                    threads: ProcessInfo.processInfo.activeProcessorCount)!))
        // The seed's retention: daily 7 days, weekly 4 weeks, monthly 6 months; KEEP_<TIER>* keys
        // override a tier; RETENTION=gfs (or KEEP_LAST, KEEP_WITHIN, ...) replaces them all.
        let seedDefaults = RetentionPolicy(limits: ["daily": .init(days: 7), "weekly": .init(days: 28), "monthly": .init(days: 183)])
        let configured = try RetentionPolicy.from(config: config)
        var retention = seedDefaults
        if let configured, configured.mode == .gfs {
            retention = configured   // grandfather-father-son rules replace the seed's tiers
        } else if let configured {
            retention.limits.merge(configured.limits) { $1 }
            retention.minimumGood = configured.minimumGood
        }
        return Deployment(backupDirectory: backupDir, targets: targets, retention: retention)
    }

    /// The PostgreSQL connection: `DATABASE_URL` (`postgresql://user:password@host:port/db`, as
    /// the Flask app reads it) or the `POSTGRES_*` keys; `PG_BIN_DIR` for the client programs.
    static func postgres(config: Config) throws -> (PostgresServer, String) {
        var server = PostgresServer(binDir: try config.path("PG_BIN_DIR"))
        if let url = config.string("DATABASE_URL") {
            guard let c = URLComponents(string: url), ["postgres", "postgresql"].contains(c.scheme ?? ""),
                  let db = c.path.split(separator: "/").first.map(String.init), !db.isEmpty else {
                throw ConfigError.invalidValue(key: "DATABASE_URL", file: config.file, value: "(hidden: it may hold a password)",
                                               expected: "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
            }
            server.host = c.host.flatMap { $0.isEmpty ? nil : $0 }
            server.port = c.port
            // URLComponents decodes `user`, `password` and `path` once already: decoding again
            // would turn a password `100%25` (100%) into nothing and `pct%2541x` into `pctAx`.
            server.user = c.user
            server.password = c.password
            server.credentialSource = "the password in DATABASE_URL in \(config.origin("DATABASE_URL")) (percent-encoded: % as %25, @ as %40)"
            for item in c.queryItems ?? [] {
                switch item.name {
                case "sslmode": server.sslmode = item.value
                case "host": server.host = item.value   // postgresql:///db?host=/var/run/postgresql
                case "port": server.port = item.value.flatMap { Int($0) }
                default:
                    throw ConfigError.invalidValue(key: "DATABASE_URL", file: config.file, value: "(hidden: it may hold a password)",
                                                   expected: "a URL whose query parameters are among sslmode, host, port (found \(item.name))")
                }
            }
            return (server, db)
        }
        server.host = config.string("POSTGRES_HOST")
        server.port = try config.string("POSTGRES_PORT") == nil ? nil : config.int("POSTGRES_PORT", default: 5432, range: 1...65535)
        server.user = config.string("POSTGRES_USER")
        server.password = config.string("POSTGRES_PASSWORD")
        server.credentialSource = server.password != nil ? "POSTGRES_PASSWORD in \(config.origin("POSTGRES_PASSWORD"))"
            : "no POSTGRES_PASSWORD in \(config.file): set it (or PGPASSFILE, ~/.pgpass)"
        guard let db = config.string("POSTGRES_DB") else {
            throw ConfigError.missingKey(key: "DATABASE_URL or POSTGRES_DB", file: config.file)
        }
        return (server, db)
    }

    /// The seed's three schedules: the database daily at 02:00, everything weekly on Sunday at
    /// 03:00 and monthly on the 1st at 04:00; each prunes afterwards (the seed pruned monthly).
    public static func defaultSchedules(config: Config) -> [(name: String, cron: String, arguments: [String])] {
        [("daily", "0 2 * * *", ["backup", "--db-only", "--prune"]),
         ("weekly", "0 3 * * 0", ["backup", "--tier", "weekly", "--prune"]),
         ("monthly", "0 4 1 * *", ["backup", "--tier", "monthly", "--prune"])]
    }

    public static func selection(_ flags: JournalBackupFlags) -> [String] {
        flags.dbOnly ? ["db"] : flags.codeOnly ? ["codebase"] : []
    }
}
