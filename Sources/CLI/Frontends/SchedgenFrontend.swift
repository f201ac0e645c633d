import ArgumentParser
import BackupCore
import Foundation
import Targets

/// The UP Schedule Generator's backups (seed document 004, `backup-all.sh`): the PostgreSQL
/// database as `db_schedgen_<TS>.sql.gz` and the MinIO data volume as
/// `minio_schedgen-pdfs_<TS>.tar.gz`, checked on every run (more than 1 KB and 512 bytes, a full
/// gzip and tar read), kept 7 days, alerts by webhook and e-mail, Prometheus metrics.
///
/// `schedgen-backup` with no subcommand is `backup --prune`, as the script was. Backstop's set
/// layout is kept; the seed's flat names stay reachable as links at the top of the backup
/// directory, and the files the script wrote there are legacy sets (`legacy`, `prune`).
public enum SchedgenFrontend: Frontend {
    public typealias BackupFlags = NoFlags
    public static let commandName = "schedgen-backup"
    public static let abstract = "Back up the schedule generator: its PostgreSQL database and its MinIO PDFs (backup-all.sh)."
    public static let configHelp = """
    Without a subcommand: backup --prune (backup-all.sh).
    Config keys (--config FILE, default ./.env; the environment overrides):
      BACKUP_DIR            default: backups/ beside the config file
      POSTGRES_HOST POSTGRES_PORT POSTGRES_USER POSTGRES_PASSWORD
      POSTGRES_DB           default schedgen (or DATABASE_URL)
      PG_BIN_DIR            where pg_dump/psql are, if not the system's
      BACKUP_DB_FORMAT      sql-gzip (default: db_schedgen_<TS>.sql.gz),
                            custom or custom-zstd
      MINIO_DATA_DIR        MinIO's data folder (its volume), required
      MINIO_BUCKET          default schedgen-pdfs (the tarball's name)
      MINIO_COMPRESSION     gzip (default) or zstd
      MINIO_STOP_CMD MINIO_START_CMD   run around the copy and restore
      BACKEND_STOP_CMD BACKEND_START_CMD   run around every restore
      BACKUP_RETENTION_DAYS or RETENTION_DAYS   default 7
      BACKUP_SCHEDULE       cron expression for daemon/schedule, 0 2 * * *
      BACKUP_ALERT_WEBHOOK_URL BACKUP_ALERT_EMAIL (with SMTP_URL and
      ALERT_EMAIL_FROM, or a sendmail program)   alerts on failure
      METRICS_FILE          Prometheus textfile, written after every run
      Other alert, health and metric keys: as backstop's (see the README).
    Targets: db, minio. Legacy files of backup-all.sh: legacy list|verify|restore.
    """

    /// The seed's own keys, declared once (read by `adapt(config:)` and `deployment(config:)`;
    /// the database keys are journal-backup's POSTGRES_* ones).
    public static let schedgenKeys = GlobalKeys.Section(title: "schedgen", keys: [
        ConfigKey("BACKUP_DB_FORMAT", .choice(PgDumpTarget.DumpFormat.allCases.map(\.rawValue)), default: "sql-gzip", help: "the dump format (db_schedgen_<TS>.sql.gz by default)"),
        ConfigKey("BACKUP_RETENTION_DAYS", .int, default: "7", help: "the seed's name for RETENTION_DAYS"),
        ConfigKey("MINIO_DATA_DIR", .path, help: "MinIO's data folder (required)"),
        ConfigKey("MINIO_BUCKET", .string, default: "schedgen-pdfs", help: "names the tarball minio_<bucket>_<TS>.tar.gz"),
        ConfigKey("MINIO_COMPRESSION", .choice(["gzip", "zstd"]), default: "gzip", help: "how the MinIO tarball is compressed"),
        ConfigKey("MINIO_STOP_CMD", .command, help: "stops MinIO before its data folder is copied or restored"),
        ConfigKey("MINIO_START_CMD", .command, help: "starts it again, whatever happened"),
        ConfigKey("BACKEND_STOP_CMD", .command, help: "stops the backend (and pdf worker) around every restore"),
        ConfigKey("BACKEND_START_CMD", .command, help: "starts them again after a restore"),
        ConfigKey("MINIO_ROOT_USER", .string, help: "MinIO's own key: not used (one warning)"),
        ConfigKey("MINIO_ROOT_PASSWORD", .secret, help: "MinIO's own key: not used (one warning)"),
        ConfigKey("MINIO_ACCESS_KEY", .string, help: "MinIO's own key: not used (one warning)"),
        ConfigKey("MINIO_SECRET_KEY", .secret, help: "MinIO's own key: not used (one warning)"),
        ConfigKey("MINIO_ENDPOINT", .url, help: "MinIO's own key: not used (one warning)"),
    ])

    /// The seed's names; a link at the top of the backup directory points at each new one.
    static let flatNames = #"^(db|minio)_.+_[0-9]{8}_[0-9]{6}(_[0-9]+)?\.(sql\.gz|dump|dump\.zst|tar\.gz|tar\.zst)(\.age)?$"#

    /// Keys of the seed's `.env` that Backstop reads under another name.
    static let renamed = ["BACKUP_RETENTION_DAYS": "RETENTION_DAYS"]

    /// MinIO's own keys, often in the same `.env`: not needed to copy its data folder.
    static let unused = ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_ENDPOINT"]

    /// The seed's keys, then the shared ones (`check` warns of near misses of any of them).
    public static var keySections: [GlobalKeys.Section] { [schedgenKeys] + GlobalKeys.sections }

    public static var defaultSubcommand: [String]? { ["backup", "--prune"] }

    public static func adapt(config: Config) throws -> Config {
        var file = config.fileValues, environment = config.environment
        var warnings = config.warnings
        for (seed, ours) in renamed.sorted(by: { $0.key < $1.key }) {
            for values in [config.fileValues, config.environment] where values[seed] != nil && values[ours] != nil && values[seed] != values[ours] {
                throw ConfigError.invalidValue(key: seed, file: config.origin(seed), value: values[seed]!,
                                               expected: "nothing besides \(ours)=\(values[ours]!): \(ours) replaces it (remove one)")
            }
            if let v = config.fileValues[seed], config.fileValues[ours] == nil { file[ours] = v }
            if let v = config.environment[seed], config.environment[ours] == nil { environment[ours] = v }
        }
        for key in unused where config.string(key) != nil {
            warnings.append("\(key) is not used by \(commandName): MinIO is backed up from its data folder (MINIO_DATA_DIR), with MinIO stopped by MINIO_STOP_CMD")
        }
        let retentionKeys = ["RETENTION", "RETENTION_DAYS", "RETENTION_WEEKS", "KEEP_WITHIN", "KEEP_LAST"]
        if !retentionKeys.contains(where: { file[$0] != nil || environment[$0] != nil }) && config.keys(withPrefix: "KEEP_").isEmpty {
            file["RETENTION_DAYS"] = "7"   // the seed's 7-day policy
        }
        if file["POSTGRES_DB"] == nil && environment["POSTGRES_DB"] == nil && config.string("DATABASE_URL") == nil {
            file["POSTGRES_DB"] = "schedgen"
        }
        return Config(file: config.file, values: file, environment: environment, warnings: warnings)
    }

    public static func deployment(config: Config) throws -> Deployment {
        let backupDir = try config.path("BACKUP_DIR") ?? config.resolve("backups")
        let (server, database) = try JournalFrontend.postgres(config: config)
        let format = try config.choice("BACKUP_DB_FORMAT", PgDumpTarget.DumpFormat.allCases.map(\.rawValue), default: "sql-gzip")
        var db = PgDumpTarget(name: "db", server: server, databases: [database], format: PgDumpTarget.DumpFormat(rawValue: format)!,
                              threads: ProcessInfo.processInfo.activeProcessorCount, jobs: ProcessInfo.processInfo.activeProcessorCount,
                              minimumBytes: 1025, artifactPrefix: "db_")
        db.timestampedNames = true
        let bucket = config.string("MINIO_BUCKET") ?? "schedgen-pdfs"
        guard bucket.range(of: "^[a-z0-9][a-z0-9.-]{1,62}$", options: .regularExpression) != nil else {
            throw ConfigError.invalidValue(key: "MINIO_BUCKET", file: config.origin("MINIO_BUCKET"), value: bucket,
                                           expected: "an S3 bucket name (lowercase letters, digits, dots, dashes)")
        }
        let compression = try config.choice("MINIO_COMPRESSION", ["gzip", "zstd"], default: "gzip")
        var minio = MinioDataTarget(name: "minio", dataDirectory: try config.requirePath("MINIO_DATA_DIR"),
                                    compression: Compression.parse(compression, level: nil, threads: ProcessInfo.processInfo.activeProcessorCount)!,
                                    minimumBytes: 512, stopCommand: config.string("MINIO_STOP_CMD"), startCommand: config.string("MINIO_START_CMD"))
        minio.artifactStem = "minio_" + bucket   // the whole volume, named after the bucket as the seed names it
        // The seed's restore sections stop the backend (and the PDF worker) while data is replaced.
        let stop = config.string("BACKEND_STOP_CMD"), start = config.string("BACKEND_START_CMD")
        let targets: [any BackupTarget] = [db as any BackupTarget, minio].map {
            FlatLinkedTarget(RestoreHookedTarget($0, stopCommand: stop, startCommand: start), linking: flatNames)
        }
        return Deployment(backupDirectory: backupDir, targets: targets, retention: try RetentionPolicy.from(config: config))
    }

    /// The files `backup-all.sh` wrote into `./backups/`, by their names' timestamps (written by
    /// `date` in the zone of `TZ`, or the system's).
    public static func legacyLayout(config: Config) throws -> (any LegacyLayout)? {
        let backupDir = try config.path("BACKUP_DIR") ?? config.resolve("backups")
        let database = (try? JournalFrontend.postgres(config: config).1) ?? "schedgen"
        let bucket = config.string("MINIO_BUCKET") ?? "schedgen-pdfs"
        return FlatFileLayout(directory: backupDir, patterns: [
            .init(target: "db", prefix: "db_\(database)_", suffix: ".sql.gz", format: "pg_dump+sql-gzip", minimumBytes: 1024) { name in
                ["databases": .array([.object(["name": .string(database), "artifact": .string(name)])]), "rowCounts": .string("unknown")]
            },
            .init(target: "minio", prefix: "minio_\(bucket)_", suffix: ".tar.gz", format: "tar+gzip", minimumBytes: 512),
        ], timeZone: try RetentionPolicy.timeZone(config))
    }

    /// `BACKUP_SCHEDULE` (default 02:00 daily): `backup --prune`, as the seed's service ran it.
    public static func defaultSchedules(config: Config) -> [(name: String, cron: String, arguments: [String])] {
        [("daily", "0 2 * * *", ["backup", "--prune"])]
    }

    public static func selection(_ flags: NoFlags) -> [String] { [] }
}
