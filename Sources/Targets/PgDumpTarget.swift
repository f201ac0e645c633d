import BackupCore
import Foundation

/// Logical dumps of PostgreSQL databases with `pg_dump`, one artifact per database, hashed
/// while they stream; exact row counts taken in the dump's own snapshot; safe restore with a
/// pre-restore dump and automatic rollback; and a restore drill into a scratch database.
///
/// Config (`TARGET_<NAME>_…`): the keys declared in `configKeys`.
public struct PgDumpTarget: TargetKind {
    /// How a dump is written.
    public enum DumpFormat: String, Sendable, CaseIterable {
        /// `pg_dump -Fc`, compressed by pg_dump itself (gzip).
        case custom
        /// `pg_dump -Fc -Z0`, compressed by Backstop with zstd while it streams: much faster.
        case customZstd = "custom-zstd"
        /// Plain SQL, gzip-compressed by Backstop (`.sql.gz`, as schedgen keeps them).
        case sqlGzip = "sql-gzip"

        /// File-name suffix after the database name.
        var suffix: String {
            switch self {
            case .custom: return ".dump"
            case .customZstd: return ".dump.zst"
            case .sqlGzip: return ".sql.gz"
            }
        }
    }

    /// Whether the cluster's roles and memberships (`pg_dumpall --globals-only`) are kept too.
    public enum Globals: String, Sendable, CaseIterable {
        /// Roles without their password hashes (`--no-role-passwords`).
        case withoutPasswords = "without-passwords"
        /// Roles with their password hashes (needs a superuser).
        case withPasswords = "with-passwords"
        /// No globals.
        case none
    }

    public let name: String
    /// The kind's name in config.
    public static let kindName = "pg_dump"
    /// Every key of the kind, declared once (see `TargetKind`).
    public static let configKeys: [ConfigKey] = [
        ConfigKey("DATABASE", .string, help: "the database to dump (this or DATABASES is required)"),
        ConfigKey("DATABASES", .list, help: "several databases, one artifact each"),
        ConfigKey("FORMAT", .choice(PgDumpTarget.DumpFormat.allCases.map(\.rawValue)), default: "custom", help: "the dump format"),
        ConfigKey("LEVEL", .int, default: "pg_dump's", help: "compression level (pg_dump -Z for custom; 0-19)"),
        ConfigKey("THREADS", .int, default: "CPU count", help: "zstd threads for custom-zstd (1-64)"),
        ConfigKey("JOBS", .int, default: "CPU count", help: "pg_restore -j on restore (1-64)"),
        ConfigKey("ROW_COUNTS", .choice(["exact", "estimate"]), default: "exact", help: "row counts recorded with each dump"),
        ConfigKey("MIN_BYTES", .int, default: "256", help: "a smaller dump fails the target"),
        ConfigKey("SHRINK_WARN", .number, default: "0.5", help: "warn when a dump shrinks by more than this fraction"),
        ConfigKey("LOCK_TIMEOUT", .int, default: "300", help: "seconds to wait for a locked table before failing"),
        ConfigKey("GLOBALS", .choice(PgDumpTarget.Globals.allCases.map(\.rawValue)), default: "without-passwords", help: "also keep the cluster's roles (pg_dumpall --globals-only)"),
    ] + PostgresServer.configKeys
    /// The server.
    public let server: PostgresServer
    /// The databases, one artifact each.
    public let databases: [String]
    /// The dump format.
    public let format: DumpFormat
    /// Compression level (pg_dump's -Z for `custom`, zstd or gzip level otherwise).
    public let level: Int?
    /// zstd worker threads for `custom-zstd`.
    public let threads: Int
    /// Parallel jobs for `pg_restore -j`.
    public let jobs: Int
    /// Whether row counts are exact (`count(*)` in the dump's snapshot) or planner estimates.
    public let exactRowCounts: Bool
    /// A dump smaller than this fails the target.
    public let minimumBytes: Int64
    /// Warn when a dump is smaller than the previous one by more than this fraction.
    public let shrinkWarning: Double
    /// Put before each artifact's name (journal's seed names dumps `postgresql_<db>.dump`).
    public let artifactPrefix: String
    /// Seconds to wait for a table lock (another session's ALTER, a migration) before giving up
    /// with a clear error, instead of hanging.
    public let lockTimeout: Int
    /// Whether roles and memberships are kept beside the dumps, and with passwords or not.
    public let globals: Globals
    /// Whether each dump's name carries the set's ID, as `<prefix><db>_<ID><suffix>` (schedgen's
    /// `db_schedgen_20240708_020000.sql.gz`), so a copied-out file still says when it was taken.
    public var timestampedNames = false

    /// Creates the target.
    public init(name: String, server: PostgresServer, databases: [String], format: DumpFormat = .custom,
                level: Int? = nil, threads: Int = 2, jobs: Int = 2, exactRowCounts: Bool = true,
                minimumBytes: Int64 = 256, shrinkWarning: Double = 0.5, artifactPrefix: String = "",
                lockTimeout: Int = 300, globals: Globals = .withoutPasswords) {
        self.name = name
        self.server = server
        self.databases = databases
        self.format = format
        self.level = level
        self.threads = threads
        self.jobs = jobs
        self.exactRowCounts = exactRowCounts
        self.minimumBytes = minimumBytes
        self.shrinkWarning = shrinkWarning
        self.artifactPrefix = artifactPrefix
        self.lockTimeout = lockTimeout
        self.globals = globals
    }

    /// Builds the target from its config keys.
    public init(settings s: TargetSettings) throws {
        var dbs = s.list("DATABASES")
        if let one = s.string("DATABASE") { dbs.insert(one, at: 0) }
        guard !dbs.isEmpty else { throw ConfigError.missingKey(key: s.key("DATABASE"), file: s.config.file) }
        let format = DumpFormat(rawValue: try s.choice("FORMAT", DumpFormat.allCases.map(\.rawValue), default: "custom"))!
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        self.init(name: s.name, server: try PostgresServer(settings: s), databases: dbs, format: format,
                  level: try s.string("LEVEL") == nil ? nil : s.int("LEVEL", default: 3, range: 0...19),
                  threads: try s.int("THREADS", default: cpus, range: 1...64),
                  jobs: try s.int("JOBS", default: cpus, range: 1...64),
                  exactRowCounts: try s.choice("ROW_COUNTS", ["exact", "estimate"], default: "exact") == "exact",
                  minimumBytes: Int64(try s.int("MIN_BYTES", default: 256, range: 0...Int.max)),
                  shrinkWarning: try s.double("SHRINK_WARN", default: 0.5, range: 0...1),
                  lockTimeout: try s.int("LOCK_TIMEOUT", default: 300, range: 1...86_400),
                  globals: Globals(rawValue: try s.choice("GLOBALS", Globals.allCases.map(\.rawValue), default: "without-passwords"))!)
    }

    public var summary: String {
        "PostgreSQL \(databases.joined(separator: ", ")) on \(server.label) (pg_dump, \(format.rawValue))"
    }

    // MARK: preflight

    public func preflight(_ context: PreflightContext) -> [Finding] {
        var findings: [Finding] = []
        for (i, db) in databases.enumerated() {
            let (found, _) = server.preflight(target: name, database: db, tools: i == 0 ? ["pg_dump", format == .sqlGzip ? "psql" : "pg_restore"] : [])
            findings += found
        }
        if !findings.contains(where: { $0.severity == .error }), let conn = try? server.connect(database: databases[0]) {
            defer { conn.close() }
            if let row = try? conn.query("SELECT current_user, (rolsuper OR rolcreatedb)::text FROM pg_roles WHERE rolname = current_user").first,
               row.count == 2, row[1] == "false" {
                findings.append(Finding(.warning, target: name, "role \(row[0] ?? "?") cannot CREATE DATABASE: backups work, but a restore (which drops and recreates the database) needs a role with CREATEDB or a superuser"))
            }
        }
        if let passfile = server.passfile, !FileOps.exists(passfile) {
            findings.append(Finding(.error, target: name, "passfile \(passfile) does not exist"))
        }
        return findings
    }

    // MARK: backup

    public func backup(_ context: BackupContext) throws -> TargetOutput {
        var output = TargetOutput()
        var tables: [String: JSONValue] = [:]
        var dbFacts: [JSONValue] = []
        for db in databases {
            let conn = try server.connect(database: db)
            defer { conn.close() }
            let version = conn.serverVersion
            let major = PostgresMajor(serverVersion: version)
            let pgDump = try server.tool("pg_dump", for: major)
            output.toolVersions["pg_dump"] = pgDump.versionLine
            output.toolVersions["server"] = "PostgreSQL \(PostgresServer.versionText(version))"
            output.facts["serverVersion"] = .string(PostgresServer.versionText(version))

            // What the dump itself does not carry (it has them only for pg_restore --create).
            let meta = try databaseMeta(conn, db)
            // One snapshot for the dump and the row counts: export it, hand it to pg_dump,
            // and count in the same transaction while pg_dump runs.
            try conn.query("SET lock_timeout = '\(lockTimeout)s'")
            try conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            let snapshot = try conn.scalar("SELECT pg_export_snapshot()")
            let counting = RowCounter(conn: conn, exact: exactRowCounts)
            counting.start()
            // Whatever happens next, the counting thread is done with the connection before it closes.
            defer { _ = counting.finish() }

            let artifactName = artifactPrefix + db + (timestampedNames ? "_" + context.setID : "") + format.suffix
            var args = ["--format=custom", "--no-password", "--lock-wait-timeout=\(lockTimeout)s"]
            switch format {
            case .custom: if let level { args.append("--compress=\(level)") }
            case .customZstd: args.append("--compress=0")
            case .sqlGzip: args = ["--format=plain", "--no-password", "--lock-wait-timeout=\(lockTimeout)s"]
            }
            if let snapshot { args.append("--snapshot=\(snapshot)") }
            args.append("--dbname=\(Self.conninfo(db))")
            let child = ChildProcess(pgDump.path, args, environment: server.childEnvironment)
            let writer = try context.createArtifact(artifactName, label: "\(name): pg_dump \(db)")
            let outcome: ChildProcess.Outcome
            do {
                switch format {
                case .custom:
                    outcome = try child.run { try writer.write($0) }
                case .customZstd, .sqlGzip:
                    let compression: Compression = format == .customZstd
                        ? .zstd(level: level ?? 3, threads: threads) : .gzip(level: level ?? 6)
                    let archive = try ArchiveWriter(sink: writer, format: .raw, compression: compression)
                    var result: ChildProcess.Outcome?
                    try archive.addStream(name: artifactName, size: nil) { write in result = try child.run(onStdout: write) }
                    try archive.close()
                    outcome = result!
                }
            } catch {
                writer.abandon()
                counting.cancel()
                throw error
            }
            // A failed dump need not wait for every table to be counted.
            if outcome.status != 0 { counting.cancel() }
            let counted = counting.finish()
            _ = try? conn.query("COMMIT")
            // Killed by our own SIGINT/SIGTERM handler: let it exit 130/143 instead of reporting a failure.
            if outcome.status != 0 { try Interrupts.shared.yieldToSignal() }
            guard outcome.status == 0 else {
                writer.abandon()
                let line = outcome.relevantLines.joined(separator: " | ")
                let hint = line.contains("statement timeout") || line.contains("lock timeout")
                    ? " (a table stayed locked by another session for longer than LOCK_TIMEOUT=\(lockTimeout)s)" : ""
                throw OperationError("\(outcome.error("pg_dump of \(db)").message)\(hint)")
            }
            let (bytes, sha) = try writer.finish()
            let counts = try counted.get()
            guard bytes >= minimumBytes else {
                throw OperationError("dump of \(db) is only \(bytes) bytes (less than MIN_BYTES=\(minimumBytes)); not keeping it")
            }
            if let previous = context.previous?.record.artifacts.first(where: {
                [artifactName, artifactName + ArtifactEncryption.suffix].contains(($0.path as NSString).lastPathComponent) }),
               Double(bytes) < Double(previous.bytes) * (1 - shrinkWarning) {
                output.warnings.append("dump of \(db) shrank from \(Format.bytes(previous.bytes)) to \(Format.bytes(bytes)) since the previous backup (more than \(Int(shrinkWarning * 100))%)")
            }
            output.artifacts.append(Artifact(path: artifactName, bytes: bytes, sha256: sha, format: "pg_dump+\(format.rawValue)"))
            tables[db] = .object(counts.mapValues { .number(Double($0)) })
            var entry = meta
            entry["name"] = .string(db)
            entry["artifact"] = .string(context.storedName(artifactName))
            entry["rows"] = .number(Double(counts.values.reduce(0, +)))
            dbFacts.append(.object(entry))
            context.logger.info("dumped \(db): \(counts.count) tables, \(counts.values.reduce(0, +)) rows\(exactRowCounts ? "" : " (estimated)"), \(Format.bytes(bytes))")
        }
        if globals != .none {
            // The dumps are what matters: roles that cannot be kept are a warning, not a failed target.
            do {
                let (artifact, roles) = try dumpGlobals(context, taken: output.artifacts.map(\.path))
                output.artifacts.append(artifact)
                output.facts["globals"] = .object(["artifact": .string(artifact.path), "passwords": .bool(globals == .withPasswords),
                                                   "roles": .array(roles.map { .string($0) })])
            } catch {
                try Interrupts.shared.checkpoint()
                output.warnings.append("the cluster's roles were not kept (\(error)); a restore onto a new server will need them created by hand")
            }
        }
        output.facts["databases"] = .array(dbFacts)
        output.facts["tables"] = .object(tables)
        output.facts["rowCounts"] = .string(exactRowCounts ? "exact, in the dump's snapshot" : "estimate")
        output.facts["server"] = .string(server.label)
        output.facts["format"] = .string(format.rawValue)
        return output
    }

    // MARK: verify

    public func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding] {
        let pgRestore = try? server.tool("pg_restore", for: nil)
        return context.checkArtifacts(record) { artifact, reader in
            if artifact.format == Self.globalsFormat {
                _ = try Self.readGlobals(reader)
                return
            }
            let fmt = Self.format(of: artifact)
            switch fmt {
            case .sqlGzip:
                // A full gzip read; a complete plain dump ends with pg_dump's closing comment.
                let archive = try ArchiveReader(source: reader, raw: true)
                guard try archive.next() != nil else { throw OperationError("empty gzip stream") }
                var tail = [UInt8]()
                try archive.readData { chunk in
                    tail.append(contentsOf: chunk)
                    if tail.count > 4096 { tail.removeFirst(tail.count - 4096) }
                }
                guard String(decoding: tail, as: UTF8.self).contains("PostgreSQL database dump complete") else {
                    throw OperationError("the SQL dump is truncated: pg_dump's closing line is missing")
                }
            case .custom, .customZstd:
                guard let pgRestore else { throw OperationError("pg_restore not found; cannot check the dump's table of contents") }
                let entries = try Self.listContents(reader, format: fmt, tool: pgRestore)
                if entries == 0 { throw OperationError("pg_restore --list shows no entries") }
            }
        }
    }

    /// Streams the dump into `pg_restore --list` and returns the number of TOC entries.
    static func listContents(_ reader: HashingFileReader, format: DumpFormat, tool: PostgresTool) throws -> Int {
        let source = Unchecked(reader)
        let child = ChildProcess(tool.path, ["--list"], input: .producer { write in
            // pg_restore --list stops reading after the table of contents; the caller hashes
            // the rest of the file.
            do { try Self.stream(source.value, format: format, into: write) } catch let e as SystemError where e.code == EPIPE {}
        })
        let (outcome, text) = try child.capture()
        guard outcome.status == 0 else {
            throw outcome.error("pg_restore --list")
        }
        return text.split(separator: "\n").filter { !$0.hasPrefix(";") && !$0.isEmpty }.count
    }

    /// Hands the dump's uncompressed bytes (a custom archive or SQL) to `write`.
    static func stream(_ reader: HashingFileReader, format: DumpFormat,
                       into write: (UnsafeRawBufferPointer) throws -> Void) throws {
        switch format {
        case .custom:
            while true {
                let n = try reader.read()
                if n == 0 { break }
                try write(UnsafeRawBufferPointer(rebasing: reader.buffer[0..<n]))
            }
        case .customZstd, .sqlGzip:
            let archive = try ArchiveReader(source: reader, raw: true)
            guard try archive.next() != nil else { throw OperationError("\(reader.path) is empty") }
            try archive.readData(write)
        }
    }

    static func format(of artifact: Artifact) -> DumpFormat {
        DumpFormat(rawValue: String(artifact.format.dropFirst("pg_dump+".count))) ?? .custom
    }

    // MARK: restore

    /// One database of a stored backup.
    struct StoredDatabase {
        var name: String
        var artifact: Artifact
        var meta: [String: JSONValue]
        var tables: [String: Int64]?
    }

    func storedDatabases(_ record: TargetRecord) -> [StoredDatabase] {
        let dbs = record.facts["databases"]?.arrayValue ?? []
        return dbs.compactMap { v in
            guard let o = v.objectValue, let db = o["name"]?.stringValue, let file = o["artifact"]?.stringValue,
                  let artifact = record.artifacts.first(where: { ($0.path as NSString).lastPathComponent == file }) else { return nil }
            let counts: [String: Int64]? = record.facts["tables"]?.objectValue?[db]?.objectValue?.compactMapValues { $0.sizeValue }
            let exact = record.facts["rowCounts"]?.stringValue?.hasPrefix("exact") ?? false
            return StoredDatabase(name: db, artifact: artifact, meta: o, tables: exact ? counts : nil)
        }
    }

    /// Which databases are replaced or created, checked against the server now (this role can
    /// drop and create them; `--into` does not replace an existing database without `--force`),
    /// the roles the backup has that the server lacks, and a safety dump of every database that
    /// exists. Changes nothing.
    public func planRestore(_ record: TargetRecord, context: RestoreContext) throws -> RestorePlan {
        if context.options.targetTime != nil || context.options.toLatest {
            throw UsageError("--to-time and --to-latest need a base backup with a WAL archive (kind pg_basebackup); \(name) is a logical dump")
        }
        if context.options.destination != nil {
            // Never let a folder meant for files (restore --all --to DIR) fall through to the live database.
            throw UsageError("--to names a folder, but '\(name)' restores into a database: restore it on its own with --into NAME (or without --to to replace \(databases.joined(separator: ", ")))")
        }
        var stored = storedDatabases(record)
        if !context.options.paths.isEmpty {
            stored = stored.filter { context.options.paths.contains($0.name) }
            guard !stored.isEmpty else {
                throw UsageError("--path names no database of this backup (it has: \(storedDatabases(record).map(\.name).joined(separator: ", ")))")
            }
        }
        guard !stored.isEmpty else { throw OperationError("backup of \(name) in \(context.setID) lists no databases") }
        if context.options.intoDatabase != nil && stored.count > 1 {
            throw UsageError("this backup holds \(stored.count) databases; pick one with --path DB to use --into")
        }
        let maintenance = try maintenanceConnection(avoiding: stored.map { context.options.intoDatabase ?? $0.name })
        defer { maintenance.close() }
        var plan = RestorePlan(target: name, kind: kind, setID: context.setID, destination: server.label, safetyCopy: .none)
        var planned: [PgDumpRestoreDetails.Database] = []
        // Restoring drops and recreates: refuse before touching anything if this role could drop
        // the database but not create it again.
        let role = try maintenance.query("SELECT current_user, rolsuper::text, rolcreatedb::text FROM pg_roles WHERE rolname = current_user").first ?? []
        let roleName = role.first.flatMap { $0 } ?? "?"
        let superuser = role.count > 1 && role[1] == "true"
        if !superuser && !(role.count > 2 && role[2] == "true") {
            throw OperationError("role \(roleName) cannot CREATE DATABASE, and a restore drops and recreates the database; nothing was changed. Restore as a role with CREATEDB (ALTER ROLE \(roleName) CREATEDB) or as a superuser")
        }
        for db in stored {
            let targetName = context.options.intoDatabase ?? db.name
            let owner = try maintenance.scalar("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", parameters: [targetName])
            let exists = owner != nil
            if let owner, !superuser,
               try maintenance.scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')::text", parameters: [owner]) != "true" {
                throw OperationError("role \(roleName) does not own database \(targetName) (its owner is \(owner)) and cannot drop it; nothing was changed. Restore as \(owner) or as a superuser")
            }
            planned.append(.init(stored: db, targetName: targetName, existed: exists))
            plan.lines.append("source: backup \(context.setID), \(db.artifact.path) (\(Format.bytes(db.artifact.bytes))), database \(db.name)")
            plan.lines.append("target: database \(targetName) on \(server.label) (PostgreSQL \(PostgresServer.versionText(maintenance.serverVersion)))")
            if exists && context.options.intoDatabase != nil && !context.options.force {
                throw UsageError("database \(targetName) already exists; choose another --into name or add --force to replace it")
            }
            if exists {
                plan.lines.append("  it exists: a safety dump goes to \(context.safetyDirectory)/ first; other connections are terminated; it is dropped and recreated")
            } else {
                plan.lines.append("  it does not exist yet: it is created")
            }
            if let t = db.tables { plan.lines.append("  expected: \(t.count) tables, \(t.values.reduce(0, +)) rows (checked after the restore)") }
        }
        let roles = try missingRoles(record, setDirectory: context.setDirectory, maintenance)
        if let roles, !roles.missing.isEmpty {
            plan.lines.append("roles in the backup that this server lacks, created first\(roles.passwords ? " (with their passwords)" : " (without passwords)"): \(roles.missing.map(\.name).joined(separator: ", "))")
        }
        plan.safetyCopy = planned.contains(where: \.existed) ? .databaseDump : .none
        plan.safetyCopyHolds = "the databases as they were before the restore are"
        plan.details = PgDumpRestoreDetails(databases: planned, roles: roles)
        return plan
    }

    /// What the steps of one pg_dump restore share: the maintenance connection, the tools, the
    /// journal's entries, the safety dumps and the databases replaced so far.
    private final class PgDumpRun: @unchecked Sendable {
        let maintenance: PGConnection
        let tools: Tools
        var journaled: [[String: JSONValue]]
        var safeties: [String: (path: String, meta: [String: JSONValue])] = [:]
        var replaced: [String] = []
        init(maintenance: PGConnection, tools: Tools, journaled: [[String: JSONValue]]) {
            self.maintenance = maintenance
            self.tools = tools
            self.journaled = journaled
        }
        deinit { maintenance.close() }
    }

    /// Records in the journal what a kill -9 from here on would leave, before each change, so
    /// the next run can say so and roll it back (restore --resume-rollback).
    private func note(_ run: PgDumpRun, _ index: Int, _ fields: [String: JSONValue], _ summary: String, _ context: RestoreContext) throws {
        run.journaled[index].merge(fields) { $1 }
        try context.journal?.record(["server": .string(server.label), "databases": .array(run.journaled.map { .object($0) })], summary: summary)
    }

    /// Connects, refuses if a database appeared or went since the plan, and takes a safety dump
    /// of every database the plan replaces (all of them before anything is touched). Several
    /// dumps: returns the folder holding them.
    public func takeSafetyCopy(for plan: RestorePlan, context: RestoreContext, progress: RestoreProgress) throws -> String? {
        let details = try plan.details(as: PgDumpRestoreDetails.self)
        let maintenance = try maintenanceConnection(avoiding: details.databases.map(\.targetName))
        let major = PostgresMajor(serverVersion: maintenance.serverVersion)
        let tools: Tools
        do {
            tools = Tools(pgRestore: try server.tool("pg_restore", for: major), pgDump: try server.tool("pg_dump", for: major),
                          psql: try server.tool("psql", for: major))
        } catch {
            maintenance.close()
            throw error
        }
        let run = PgDumpRun(maintenance: maintenance, tools: tools, journaled: details.databases.map {
            ["name": .string($0.targetName), "existed": .bool($0.existed), "phase": .string("planned")]
        })
        progress.keepForRollback(run)
        for db in details.databases {
            let exists = try maintenance.scalar("SELECT 1 FROM pg_database WHERE datname = $1", parameters: [db.targetName]) != nil
            if exists != db.existed {
                throw OperationError("database \(db.targetName) \(exists ? "was created" : "was dropped") after the restore plan was made; nothing was restored: run the restore again to see a new plan")
            }
        }
        for (index, db) in details.databases.enumerated() where db.existed {
            let path = try context.safetyPath(target: name, suffix: "-\(Self.fileSafe(db.targetName)).dump")
            try note(run, index, ["phase": .string("safety-dump"), "safetyDump": .string(path)],
                     "it was taking a safety dump of database \(db.targetName) into \(path); nothing was changed yet", context)
            try dumpForSafety(database: db.targetName, to: path, tool: tools.pgDump)
            let meta = try databaseMeta(maintenance, db.targetName)
            run.safeties[db.targetName] = (path, meta)
            try note(run, index, ["phase": .string("safety-dumped"), "meta": .object(meta)],
                     "it took a safety dump of database \(db.targetName) (\(path)); nothing was changed yet", context)
            context.logger.info("safety dump of \(db.targetName): \(path)", metadata: .logFileOnly)
        }
        // One safety dump: its path; several: the folder holding them (each is listed in the report).
        let paths = run.safeties.values.map(\.path).sorted()
        return paths.count > 1 ? context.safetyDirectory : paths.first
    }

    /// Creates the missing roles, then replaces (or creates) each database in turn: locked
    /// out, loaded, row counts compared with the manifest, settings and privileges put back.
    public func applyRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                             progress: RestoreProgress) throws -> RestoreOutcome {
        let details = try plan.details(as: PgDumpRestoreDetails.self)
        guard let run = progress.keptForRollback(as: PgDumpRun.self) else { throw OperationError("no connection for the restore of \(name)") }
        let maintenance = run.maintenance
        var outcome = RestoreOutcome()
        for (name, safety) in run.safeties.sorted(by: { $0.key < $1.key }) { outcome.lines.append("safety copy of \(name): \(safety.path)") }
        if let roles = details.roles, !roles.missing.isEmpty {
            for line in try createRoles(roles, maintenance) {
                outcome.lines.append(line)
                context.logger.info("\(line)")
            }
        }
        var totalRows: Int64 = 0, totalTables = 0
        for (index, planned) in details.databases.enumerated() {
            let (db, targetName, exists) = (planned.stored, planned.targetName, planned.existed)
            progress.willChangeDestination()
            run.replaced.append(targetName)
            let meta = run.safeties[targetName]?.meta ?? db.meta
            let limit = meta["connlimit"]?.stringValue ?? "-1"
            try note(run, index, ["phase": .string("replacing")], exists
                     ? "database \(targetName) is dropped or half-restored, possibly at CONNECTION LIMIT 0 (it was \(limit)) without its settings and privileges; its state before the restore is in \(run.safeties[targetName]?.path ?? "?")"
                     : "database \(targetName) (which did not exist before) is half-restored", context)
            let ended = try recreate(maintenance, targetName, meta: meta, dropFirst: exists, lockOut: true)
            if ended > 0 { outcome.lines.append("ended \(ended) other session(s) connected to \(targetName)") }
            try load(db, into: targetName, setDirectory: context.setDirectory, scratch: context.safetyDirectory, tools: run.tools)
            try Fault.point("restore-pg-dump")
            let (tables, rows) = try compareCounts(db, database: targetName)
            for problem in applyProperties(maintenance, targetName, meta: meta) {
                outcome.lines.append("warning: could not put back \(problem)")
                context.logger.warning("\(targetName): could not put back \(problem)")
            }
            try reopen(maintenance, targetName, meta: meta)
            try note(run, index, ["phase": .string("restored")],
                     "database \(targetName) was restored from backup \(context.setID), but the restore did not finish (\(details.databases.count) database(s) in all)", context)
            totalRows += rows
            totalTables += tables
            outcome.lines.append("restored \(db.name) into \(targetName): \(tables) tables, \(rows) rows\(db.tables == nil ? " (no exact counts in the manifest to compare)" : ", every count matches the manifest")")
        }
        let stored = details.databases.map(\.stored)
        let safetyPaths = run.safeties.values.map(\.path).sorted()
        outcome.facts = ["tables": .number(Double(totalTables)), "rows": .number(Double(totalRows)),
                         "safetyCopies": .array(safetyPaths.map { .string($0) }),
                         "bytes": .number(Double(stored.reduce(0) { $0 + $1.artifact.bytes }))]
        let how = Set(stored.map { Self.format(of: $0.artifact) }).map { $0 == .sqlGzip ? "psql --single-transaction" : $0 == .customZstd && jobs == 1 ? "pg_restore" : "pg_restore -j \(jobs)" }
        outcome.lines.append("loaded with \(how.sorted().joined(separator: " and "))")
        return outcome
    }

    /// Puts back every database this restore touched, not only the one that failed.
    public func rollBackRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                                progress: RestoreProgress) throws -> [String] {
        guard let run = progress.keptForRollback(as: PgDumpRun.self) else { return [] }
        let (done, failed) = rollBack(run.replaced.map { ($0, run.safeties[$0]) }, maintenance: run.maintenance, pgRestore: run.tools.pgRestore)
        if !failed.isEmpty {
            throw OperationError("for \(failed.joined(separator: "; "))\(done.isEmpty ? "" : " (done: \(done.joined(separator: "; ")))")")
        }
        return done
    }

    /// Puts back each database: recreated from its safety dump (with its settings, privileges
    /// and connection limit), or dropped if it did not exist before. Returns what was done and
    /// what could not be (with the command that would do it by hand).
    private func rollBack(_ databases: [(name: String, safety: (path: String, meta: [String: JSONValue])?)],
                          maintenance: PGConnection, pgRestore: PostgresTool) -> (done: [String], failed: [String]) {
        var done: [String] = [], failed: [String] = []
        for (name, safety) in databases {
            if let safety {
                do {
                    try Fault.point("rollback")
                    try recreate(maintenance, name, meta: safety.meta, dropFirst: true, lockOut: true)
                    try restoreDumpFile(safety.path, into: name, tool: pgRestore, what: "pg_restore of the safety dump")
                    _ = applyProperties(maintenance, name, meta: safety.meta)
                    try reopen(maintenance, name, meta: safety.meta)
                    done.append("\(name) rolled back to \(safety.path)")
                } catch {
                    failed.append("\(name): \(error); restore it with pg_restore --dbname=\(name) \(safety.path)")
                }
            } else {
                do {
                    try Fault.point("rollback")
                    try maintenance.query("DROP DATABASE IF EXISTS \(PGConnection.quoteIdentifier(name))\(maintenance.serverVersion >= 130000 ? " WITH (FORCE)" : "")")
                    done.append("the half-restored \(name) was dropped")
                } catch {
                    failed.append("\(name): could not drop the half-restored database: \(error)")
                }
            }
        }
        return (done, failed)
    }

    /// Rolls back a restore that was killed before it could roll back itself, from its journal:
    /// every database it had started to replace is put back from its safety dump (or dropped if
    /// it did not exist before); databases it had not touched yet are left alone.
    public func rollBackInterruptedRestore(_ entry: RestoreJournal.Entry, context: RestoreContext) throws -> RestoreReport {
        var report = RestoreReport(target: name, destination: server.label, dryRun: context.options.dryRun)
        let items = (entry.changes["databases"]?.arrayValue ?? []).compactMap(\.objectValue)
        var toRollBack: [(name: String, safety: (path: String, meta: [String: JSONValue])?)] = []
        for item in items {
            guard let db = item["name"]?.stringValue else { continue }
            let phase = item["phase"]?.stringValue ?? "?"
            guard phase == "replacing" || phase == "restored" else {
                report.lines.append("\(db): untouched by the interrupted restore (\(phase)); left as it is")
                continue
            }
            if item["existed"]?.boolValue == true {
                guard let path = item["safetyDump"]?.stringValue, let meta = item["meta"]?.objectValue, FileOps.exists(path) else {
                    throw OperationError("the journal of \(name) names no usable safety dump for \(db); nothing was changed. Look in \(context.safetyDirectory)")
                }
                report.lines.append("\(db): recreate from the safety dump \(path), with its settings, privileges and connection limit \(meta["connlimit"]?.stringValue ?? "-1")")
                toRollBack.append((db, (path, meta)))
            } else {
                report.lines.append("\(db): did not exist before the restore: drop the half-restored database")
                toRollBack.append((db, nil))
            }
        }
        if context.options.dryRun || toRollBack.isEmpty { return report }
        let maintenance = try maintenanceConnection(avoiding: toRollBack.map(\.name))
        defer { maintenance.close() }
        let pgRestore = try server.tool("pg_restore", for: PostgresMajor(serverVersion: maintenance.serverVersion))
        let (done, failed) = rollBack(toRollBack, maintenance: maintenance, pgRestore: pgRestore)
        if !failed.isEmpty {
            throw OperationError("THE ROLLBACK FAILED for \(failed.joined(separator: "; "))\(done.isEmpty ? "" : " (done: \(done.joined(separator: "; ")))"); the journal is kept")
        }
        report.lines = report.lines.filter { $0.contains("untouched by the interrupted restore") } + done
        report.safetyCopy = toRollBack.compactMap { $0.safety?.path }.first
        return report
    }

    /// Drops a scratch database a killed restore drill left behind. Only drill scratch names
    /// are ever dropped.
    public func removeDrillLeftover(_ resource: String) throws {
        guard resource.hasPrefix(Self.drillPrefix) else { return }
        let conn = try maintenanceConnection(avoiding: [resource])
        defer { conn.close() }
        try conn.query("DROP DATABASE IF EXISTS \(PGConnection.quoteIdentifier(resource))\(conn.serverVersion >= 130000 ? " WITH (FORCE)" : "")")
    }

    /// Scratch databases of restore drills are named `backstop_drill_<pid>_<time>`.
    static let drillPrefix = "backstop_drill_"

    /// A connection to a database other than the ones restored (to drop and create them):
    /// `postgres`, else `template1`.
    func maintenanceConnection(avoiding busy: [String] = []) throws -> PGConnection {
        let choices = ["postgres", "template1"].filter { !busy.contains($0) }
        var firstError: Error?
        for db in choices {
            do { return try server.connect(database: db) } catch { firstError = firstError ?? error }
        }
        throw firstError ?? OperationError("no maintenance database to connect to")
    }

    /// A database name as a libpq conninfo string, so that a name containing `=` is never
    /// taken for connection options by the client programs.
    static func conninfo(_ database: String) -> String {
        "dbname='" + database.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// A name made safe for a file name.
    static func fileSafe(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
    }

    struct Tools { var pgRestore: PostgresTool; var pgDump: PostgresTool; var psql: PostgresTool }

    /// The database's own properties: owner, encoding, locale, connection limit, its settings
    /// (`ALTER DATABASE … SET`, also per role) and its privileges.
    private func databaseMeta(_ conn: PGConnection, _ db: String) throws -> [String: JSONValue] {
        let row = try conn.query("""
            SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype, datconnlimit::text, datacl::text
            FROM pg_database WHERE datname = $1
            """, parameters: [db]).first ?? []
        var meta: [String: JSONValue] = [:]
        for (i, key) in ["owner", "encoding", "collate", "ctype", "connlimit", "acl"].enumerated() where i < row.count {
            if let v = row[i] { meta[key] = .string(v) }
        }
        let settings = try conn.query("""
            SELECT coalesce(r.rolname, ''), s.setting
            FROM pg_db_role_setting d LEFT JOIN pg_roles r ON r.oid = d.setrole, unnest(d.setconfig) AS s(setting)
            WHERE d.setdatabase = (SELECT oid FROM pg_database WHERE datname = $1)
            ORDER BY 1, 2
            """, parameters: [db])
        meta["settings"] = .array(settings.map { .object(["role": .string($0[0] ?? ""), "setting": .string($0[1] ?? "")]) })
        return meta
    }

    /// Puts back what `databaseMeta` recorded beyond what CREATE DATABASE set: settings (through
    /// `set_config` and `SET … FROM CURRENT`, so values keep the server's own syntax) and
    /// privileges. Returns one line per property that could not be applied.
    private func applyProperties(_ conn: PGConnection, _ db: String, meta: [String: JSONValue]) -> [String] {
        let ident = PGConnection.quoteIdentifier(db)
        var problems: [String] = []
        for item in meta["settings"]?.arrayValue ?? [] {
            guard let o = item.objectValue, let setting = o["setting"]?.stringValue,
                  let eq = setting.firstIndex(of: "=") else { continue }
            let key = String(setting[..<eq]), value = String(setting[setting.index(after: eq)...])
            let role = o["role"]?.stringValue ?? ""
            let target = role.isEmpty ? "DATABASE \(ident)" : "ROLE \(PGConnection.quoteIdentifier(role)) IN DATABASE \(ident)"
            do {
                try conn.query("SELECT set_config($1, $2, false)", parameters: [key, value])
                try conn.query("ALTER \(target) SET \(PGConnection.quoteIdentifier(key)) FROM CURRENT")
            } catch {
                problems.append("setting \(setting)\(role.isEmpty ? "" : " for role \(role)"): \(error)")
            }
            _ = try? conn.query("RESET \(PGConnection.quoteIdentifier(key))")
        }
        if let acl = meta["acl"]?.stringValue, acl.hasPrefix("{") {
            // {=Tc/owner,owner=CTc/owner,app=c/owner}: grantee=privileges/grantor; empty grantee is PUBLIC.
            var statements = ["REVOKE ALL ON DATABASE \(ident) FROM PUBLIC"]
            for item in acl.dropFirst().dropLast().split(separator: ",") {
                let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { continue }
                let grantee = parts[0].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                let privs = parts[1].split(separator: "/").first ?? ""
                let names = privs.compactMap { ["C": "CREATE", "T": "TEMPORARY", "c": "CONNECT"][$0] }
                guard !names.isEmpty else { continue }
                statements.append("GRANT \(names.joined(separator: ", ")) ON DATABASE \(ident) TO \(grantee.isEmpty ? "PUBLIC" : PGConnection.quoteIdentifier(grantee))")
            }
            for sql in statements {
                do { try conn.query(sql) } catch { problems.append("privileges (\(sql)): \(error)") }
            }
        }
        return problems
    }

    /// Drops (ending other sessions) and creates `db` like the original: owner, encoding, locale.
    /// With `lockOut` (and a superuser connection), applications cannot connect until
    /// `reopen` is called: nothing writes into a half-restored database.
    /// Returns how many other sessions had to be ended.
    @discardableResult
    private func recreate(_ conn: PGConnection, _ db: String, meta: [String: JSONValue], dropFirst: Bool, lockOut: Bool) throws -> Int {
        let ended = try recreate(conn, db, meta: meta, dropFirst: dropFirst)
        if lockOut, try conn.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == "t" {
            try conn.query("ALTER DATABASE \(PGConnection.quoteIdentifier(db)) CONNECTION LIMIT 0")
        }
        return ended
    }

    /// Lets applications connect again, with the database's original connection limit.
    private func reopen(_ conn: PGConnection, _ db: String, meta: [String: JSONValue]) throws {
        let limit = meta["connlimit"]?.stringValue.flatMap { Int($0) } ?? -1
        try conn.query("ALTER DATABASE \(PGConnection.quoteIdentifier(db)) CONNECTION LIMIT \(limit)")
    }

    /// Drops (ending other sessions) and creates `db`; returns how many sessions were ended.
    @discardableResult
    private func recreate(_ conn: PGConnection, _ db: String, meta: [String: JSONValue], dropFirst: Bool) throws -> Int {
        let ident = PGConnection.quoteIdentifier(db)
        var terminated = 0
        if dropFirst {
            let ended = try conn.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", parameters: [db]).count
            terminated = ended
            let force = conn.serverVersion >= 130000 ? " WITH (FORCE)" : ""
            try conn.query("DROP DATABASE IF EXISTS \(ident)\(force)")
        }
        var sql = "CREATE DATABASE \(ident) TEMPLATE template0"
        if let owner = meta["owner"]?.stringValue, !owner.isEmpty,
           try conn.scalar("SELECT 1 FROM pg_roles WHERE rolname = $1", parameters: [owner]) != nil {
            sql += " OWNER \(PGConnection.quoteIdentifier(owner))"
        }
        if let e = meta["encoding"]?.stringValue, !e.isEmpty { sql += " ENCODING \(PGConnection.quoteLiteral(e))" }
        if let c = meta["collate"]?.stringValue, !c.isEmpty { sql += " LC_COLLATE \(PGConnection.quoteLiteral(c))" }
        if let c = meta["ctype"]?.stringValue, !c.isEmpty { sql += " LC_CTYPE \(PGConnection.quoteLiteral(c))" }
        try conn.query(sql)
        return terminated
    }

    /// Loads a stored dump into the (empty) database `targetName`.
    private func load(_ db: StoredDatabase, into targetName: String, setDirectory: String, scratch: String, tools: Tools) throws {
        let path = setDirectory + "/" + db.artifact.path
        let fmt = Self.format(of: db.artifact)
        let env = server.childEnvironment
        switch fmt {
        case .custom where !path.hasSuffix(ArtifactEncryption.suffix):
            try restoreDumpFile(path, into: targetName, tool: tools.pgRestore)
        case .customZstd where jobs > 1, .custom:
            // pg_restore -j needs a seekable file: decompress (or decrypt) into a private temporary file first.
            try FileOps.makeDirectory(scratch)
            let tmp = "\(scratch)/.\(Self.fileSafe(targetName))-\(getpid()).dump"
            unlink(tmp)
            Interrupts.shared.registerPartial(tmp)
            defer { unlink(tmp); Interrupts.shared.unregisterPartial(tmp) }
            let out = try HashingFileWriter(path: tmp)
            do {
                try Self.stream(try HashingFileReader(path: path), format: fmt) { try out.write($0) }
                _ = try out.finish()
            } catch { out.abandon(); throw error }
            try restoreDumpFile(tmp, into: targetName, tool: tools.pgRestore)
        case .customZstd:
            try run(ChildProcess(tools.pgRestore.path, ["--exit-on-error", "--no-password", "--dbname=\(Self.conninfo(targetName))"],
                                 environment: env, input: .producer { write in
                try Self.stream(try HashingFileReader(path: path), format: fmt, into: write)
            }), what: "pg_restore")
        case .sqlGzip:
            try run(ChildProcess(tools.psql.path, ["-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                                                   "--dbname=\(Self.conninfo(targetName))", "-f", "-"],
                                 environment: env, input: .producer { write in
                try Self.stream(try HashingFileReader(path: path), format: fmt, into: write)
            }), what: "psql")
        }
    }

    /// `pg_restore -j JOBS --exit-on-error` of a custom-format dump file into `database`.
    private func restoreDumpFile(_ file: String, into database: String, tool: PostgresTool, what: String = "pg_restore") throws {
        try run(ChildProcess(tool.path, ["--exit-on-error", "--no-password", "--jobs=\(jobs)", "--dbname=\(Self.conninfo(database))", file],
                             environment: server.childEnvironment), what: what)
    }

    private func run(_ child: ChildProcess, what: String) throws {
        let outcome = try child.run()
        guard outcome.status == 0 else { throw outcome.error(what) }
    }

    private func dumpForSafety(database: String, to path: String, tool: PostgresTool) throws {
        let writer = try HashingFileWriter(path: path)
        do {
            let outcome = try ChildProcess(tool.path, ["--format=custom", "--no-password", "--dbname=\(Self.conninfo(database))"],
                                           environment: server.childEnvironment).run { try writer.write($0) }
            guard outcome.status == 0 else {
                throw OperationError("safety dump of \(database) failed, nothing was changed: \(outcome.error("pg_dump").message)")
            }
            _ = try writer.finish()
        } catch {
            writer.abandon()
            unlink(path)
            throw error
        }
    }

    /// Counts every table of `database` and compares with the manifest; returns tables and rows.
    private func compareCounts(_ db: StoredDatabase, database: String) throws -> (Int, Int64) {
        let conn = try server.connect(database: database)
        defer { conn.close() }
        let counted = try RowCounter.count(conn, exact: true)
        guard let expected = db.tables else { return (counted.count, counted.values.reduce(0, +)) }
        let problems = DrillChecks.compareCounts(expected: expected, actual: counted)
        if !problems.isEmpty {
            throw OperationError("row counts differ from the manifest: \(problems.prefix(3).joined(separator: "; "))\(problems.count > 3 ? " (and \(problems.count - 3) more)" : "")")
        }
        return (counted.count, counted.values.reduce(0, +))
    }

    // MARK: restore drill

    public static var hasRestoreDrill: Bool { true }

    public func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport? {
        let setID = (context.setDirectory as NSString).lastPathComponent
        let problems = context.checkArtifacts(record) { _, _ in }
        if !problems.isEmpty {
            return DrillReport(target: name, setID: setID, passed: false, restoreSeconds: 0, lines: problems.map(\.message))
        }
        let maintenance = try maintenanceConnection()
        defer { maintenance.close() }
        let major = PostgresMajor(serverVersion: maintenance.serverVersion)
        let tools = Tools(pgRestore: try server.tool("pg_restore", for: major), pgDump: try server.tool("pg_dump", for: major),
                          psql: try server.tool("psql", for: major))
        var lines: [String] = []
        var passed = true
        let started = Date()
        for db in storedDatabases(record) {
            let scratch = "\(Self.drillPrefix)\(getpid())_\(Int(Date().timeIntervalSince1970))"
            lines.append("\(db.name): restoring \(db.artifact.path) into scratch database \(scratch)")
            let root = ((context.setDirectory as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
            // Recorded first: if this process is killed, the next drill or prune drops it.
            try DrillLeftovers(root: root).add(target: name, resource: scratch, description: "scratch database \(scratch) on \(server.label)")
            defer {
                if (try? maintenance.query("DROP DATABASE IF EXISTS \(PGConnection.quoteIdentifier(scratch))\(maintenance.serverVersion >= 130000 ? " WITH (FORCE)" : "")")) != nil {
                    DrillLeftovers(root: root).remove(resource: scratch)
                }
            }
            do {
                try recreate(maintenance, scratch, meta: db.meta, dropFirst: false)
                let tmp = try context.makeDrillScratch(name)
                defer { context.removeDrillScratch(tmp) }
                try load(db, into: scratch, setDirectory: context.setDirectory, scratch: tmp, tools: tools)
                let (tables, rows) = try compareCounts(db, database: scratch)
                lines.append("\(db.name): \(tables) tables, \(rows) rows\(db.tables == nil ? " (manifest has estimates only; not compared)" : ", every count matches the manifest")")
            } catch {
                passed = false
                lines.append("\(db.name): \(error)")
            }
        }
        return DrillReport(target: name, setID: setID, passed: passed, restoreSeconds: Date().timeIntervalSince(started), lines: lines)
    }
}

/// Counts the rows of every user table on one connection, on its own thread, inside the
/// transaction that exported the dump's snapshot (so the counts match the dump exactly).
final class RowCounter: @unchecked Sendable {
    private let conn: PGConnection
    private let exact: Bool
    private var result: Result<[String: Int64], Error> = .success([:])
    private let done = DispatchSemaphore(value: 0)
    private var started = false

    init(conn: PGConnection, exact: Bool) {
        self.conn = conn
        self.exact = exact
    }

    func start() {
        started = true
        Thread.detachNewThread { [self] in
            result = Result { try RowCounter.count(conn, exact: exact) }
            done.signal()
        }
    }

    /// Cancels the counting query in progress (the result becomes an error).
    func cancel() {
        if started { conn.cancel() }
    }

    func finish() -> Result<[String: Int64], Error> {
        if started { done.wait(); started = false }
        return result
    }

    /// `schema.table` -> rows, for every ordinary table outside the system schemas.
    static func count(_ conn: PGConnection, exact: Bool) throws -> [String: Int64] {
        let rows = try conn.query("""
            SELECT n.nspname, c.relname, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
            ORDER BY 1, 2
            """)
        var counts: [String: Int64] = [:]
        for row in rows {
            guard let schema = row[0], let table = row[1] else { continue }
            let key = "\(schema).\(table)"
            if exact {
                let sql = "SELECT count(*) FROM \(PGConnection.quoteIdentifier(schema)).\(PGConnection.quoteIdentifier(table))"
                counts[key] = Int64(try conn.scalar(sql) ?? "0") ?? 0
            } else {
                counts[key] = max(0, Int64(row[2] ?? "0") ?? 0)
            }
        }
        return counts
    }
}

/// Carries a value that is used by one thread at a time across a `@Sendable` boundary.
final class Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

// MARK: roles and memberships (bare-metal recovery)

extension PgDumpTarget {
    /// The artifact format of the globals dump.
    static let globalsFormat = "pg_dumpall+globals+gzip"

    /// One role of the globals dump: its name and the statements that recreate it.
    struct GlobalRole: Equatable {
        var name: String
        var statements: [String]
    }

    /// What a restore creates before loading the databases.
    struct RolePlan {
        var missing: [GlobalRole]
        /// Memberships (`GRANT role TO member ...`) that involve a created role.
        var grants: [String]
        /// Whether the backup kept the password hashes.
        var passwords: Bool
    }

    /// `pg_dumpall --globals-only` (roles, memberships, role settings, tablespaces), without
    /// password hashes unless `GLOBALS=with-passwords`, gzip-compressed and hashed as it
    /// streams. Returns the artifact and the roles it holds.
    func dumpGlobals(_ context: BackupContext, taken: [String]) throws -> (Artifact, [String]) {
        let conn = try server.connect(database: databases[0])
        let major = PostgresMajor(serverVersion: conn.serverVersion)
        conn.close()
        let tool = try server.tool("pg_dumpall", for: major)
        let artifactName = artifactPrefix + "globals.sql.gz"
        guard !taken.contains(artifactName) else {
            throw OperationError("a database dump is already named \(artifactName); set GLOBALS=none for this target or rename the database")
        }
        var args = ["--globals-only", "--no-password", "--database=\(databases[0])"]
        if globals != .withPasswords { args.append("--no-role-passwords") }
        let child = ChildProcess(tool.path, args, environment: server.childEnvironment)
        let writer = try context.createArtifact(artifactName, label: "\(name): pg_dumpall --globals-only")
        var text: [UInt8] = []
        let outcome: ChildProcess.Outcome
        do {
            let archive = try ArchiveWriter(sink: writer, format: .raw, compression: .gzip(level: 6))
            var result: ChildProcess.Outcome?
            try archive.addStream(name: artifactName, size: nil) { write in
                result = try child.run { chunk in
                    text.append(contentsOf: chunk)
                    try write(chunk)
                }
            }
            try archive.close()
            outcome = result!
        } catch {
            writer.abandon()
            unlink(context.directory + "/" + artifactName)
            throw error
        }
        if outcome.status != 0 { try Interrupts.shared.yieldToSignal() }
        guard outcome.status == 0 else {
            writer.abandon()
            unlink(context.directory + "/" + artifactName)
            let hint = globals == .withPasswords ? " (GLOBALS=with-passwords needs a superuser; without-passwords does not)" : ""
            throw OperationError("pg_dumpall --globals-only failed (exit \(outcome.status)): \(outcome.lastErrorLine)\(hint)")
        }
        let (bytes, sha) = try writer.finish()
        let roles = Self.parseGlobals(String(decoding: text, as: UTF8.self)).roles.map(\.name)
        return (Artifact(path: artifactName, bytes: bytes, sha256: sha, format: Self.globalsFormat), roles)
    }

    /// The SQL of a globals dump, checking that it is complete (pg_dumpall's closing line).
    static func readGlobals(_ reader: HashingFileReader) throws -> String {
        let archive = try ArchiveReader(source: reader, raw: true)
        guard try archive.next() != nil else { throw OperationError("empty gzip stream") }
        var bytes: [UInt8] = []
        try archive.readData { bytes.append(contentsOf: $0) }
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.contains("PostgreSQL database cluster dump complete") else {
            throw OperationError("the globals dump is truncated: pg_dumpall's closing line is missing")
        }
        return text
    }

    /// An SQL identifier at the start of `s` (quoted or not): its name, and the rest after it.
    private static func identifier(_ s: Substring) -> (name: String, rest: Substring)? {
        if s.first == "\"" {
            var name = ""
            var i = s.index(after: s.startIndex)
            while i < s.endIndex {
                if s[i] == "\"" {
                    let next = s.index(after: i)
                    if next < s.endIndex && s[next] == "\"" { name.append("\""); i = s.index(after: next); continue }
                    return name.isEmpty ? nil : (name, s[next...])
                }
                name.append(s[i])
                i = s.index(after: i)
            }
            return nil
        }
        let end = s.firstIndex { $0 == " " || $0 == ";" } ?? s.endIndex
        let name = s[..<end]
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "$" }) else { return nil }
        return (String(name), s[end...])
    }

    /// True if `line` is one statement: its only `;` outside quotes is the last character.
    private static func isOneStatement(_ line: String) -> Bool {
        var inSingle = false, inDouble = false
        for (i, c) in line.enumerated() {
            if c == "'" && !inDouble { inSingle.toggle() } else if c == "\"" && !inSingle { inDouble.toggle() }
            if c == ";" && !inSingle && !inDouble && i != line.count - 1 { return false }
        }
        return line.hasSuffix(";") && !inSingle && !inDouble
    }

    /// The roles of a globals dump, each with the statements that recreate it (`CREATE ROLE`,
    /// `ALTER ROLE … WITH`, `ALTER ROLE … SET`, `COMMENT ON ROLE`), and the memberships as
    /// `(role, member, statement)`. Only one-line statements of exactly these shapes are taken:
    /// the file is read as data, never run whole.
    static func parseGlobals(_ text: String) -> (roles: [GlobalRole], grants: [(role: String, member: String, sql: String)]) {
        var roles: [GlobalRole] = []
        var index: [String: Int] = [:]
        var grants: [(String, String, String)] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasSuffix(";"), isOneStatement(line) else { continue }
            let s = Substring(line)
            if s.hasPrefix("CREATE ROLE "), let (name, rest) = identifier(s.dropFirst(12)), rest == ";" {
                guard index[name] == nil else { continue }
                index[name] = roles.count
                roles.append(GlobalRole(name: name, statements: [line]))
            } else if s.hasPrefix("ALTER ROLE "), let (name, rest) = identifier(s.dropFirst(11)), let i = index[name],
                      rest.hasPrefix(" WITH ") || (rest.hasPrefix(" SET ")) {
                roles[i].statements.append(line)
            } else if s.hasPrefix("COMMENT ON ROLE "), let (name, rest) = identifier(s.dropFirst(16)), let i = index[name], rest.hasPrefix(" IS ") {
                roles[i].statements.append(line)
            } else if s.hasPrefix("GRANT "), let (role, rest) = identifier(s.dropFirst(6)), rest.hasPrefix(" TO "),
                      let (member, _) = identifier(rest.dropFirst(4)) {
                grants.append((role, member, line))
            }
        }
        return (roles, grants.map { (role: $0.0, member: $0.1, sql: $0.2) })
    }

    /// The roles of the backup's globals dump that the server lacks, or nil when the backup has
    /// no globals dump (made before they were kept, or with `GLOBALS=none`).
    func missingRoles(_ record: TargetRecord, setDirectory: String, _ conn: PGConnection) throws -> RolePlan? {
        guard let artifact = record.artifacts.first(where: { $0.format == Self.globalsFormat }) else { return nil }
        let reader = try HashingFileReader(path: setDirectory + "/" + artifact.path)
        defer { reader.close() }
        let text = try Self.readGlobals(reader)
        try reader.drain()
        try ChecksumMismatch.check(artifact.path, actual: reader.hexDigest(), expected: artifact.sha256, consequence: "not restoring")
        let (roles, grants) = Self.parseGlobals(text)
        func exists(_ role: String) throws -> Bool { try conn.scalar("SELECT 1 FROM pg_roles WHERE rolname = $1", parameters: [role]) != nil }
        let missing = try roles.filter { try !exists($0.name) }
        let created = Set(missing.map(\.name))
        let wanted = try grants.filter { g in
            guard created.contains(g.role) || created.contains(g.member) else { return false }
            let roleThere = try created.contains(g.role) || exists(g.role)
            let memberThere = try created.contains(g.member) || exists(g.member)
            return roleThere && memberThere
        }
        return RolePlan(missing: missing, grants: wanted.map(\.sql),
                        passwords: record.facts["globals"]?.objectValue?["passwords"]?.boolValue ?? false)
    }

    /// Creates the missing roles and their memberships; one line each for the report.
    func createRoles(_ plan: RolePlan, _ conn: PGConnection) throws -> [String] {
        var lines: [String] = []
        for role in plan.missing {
            do {
                for sql in role.statements { try conn.query(sql) }
            } catch {
                throw OperationError("creating role \(role.name) from the backup failed: \(error); no database was changed yet")
            }
            let logsIn = role.statements.contains { $0.contains(" LOGIN ") || $0.hasSuffix(" LOGIN;") }
            lines.append("created role \(role.name)" + (plan.passwords ? " with its password from the backup"
                : logsIn ? " without a password (the backup keeps none): set one with ALTER ROLE \(PGConnection.quoteIdentifier(role.name)) PASSWORD '…'" : ""))
        }
        for sql in plan.grants {
            do { try conn.query(sql) } catch { throw OperationError("\(sql) failed: \(error); no database was changed yet") }
            lines.append("membership: \(sql.dropLast())")
        }
        return lines
    }
}

/// What a pg_dump restore plan holds for its apply step.
struct PgDumpRestoreDetails: RestorePlanDetails {
    /// One database restored.
    struct Database: Sendable {
        var stored: PgDumpTarget.StoredDatabase
        var targetName: String
        /// Whether it existed when the plan was made (then it is dumped first, and dropped).
        var existed: Bool
    }
    var databases: [Database]
    /// The roles to create first; their statements (which may hold password hashes) are never shown.
    var roles: PgDumpTarget.RolePlan?

    private enum CodingKeys: String, CodingKey { case databases, rolesToCreate }
    private enum DatabaseKeys: String, CodingKey { case name, into, existed, artifact }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        var list = c.nestedUnkeyedContainer(forKey: .databases)
        for db in databases {
            var d = list.nestedContainer(keyedBy: DatabaseKeys.self)
            try d.encode(db.stored.name, forKey: .name)
            try d.encode(db.targetName, forKey: .into)
            try d.encode(db.existed, forKey: .existed)
            try d.encode(db.stored.artifact.path, forKey: .artifact)
        }
        try c.encode(roles?.missing.map(\.name) ?? [], forKey: .rolesToCreate)
    }
}

// MARK: checking an interrupted restore's journal

extension PgDumpTarget {
    /// The journal may name only the configured databases or the `--into` given again, and as
    /// safety dumps only `<pre-restore>/<target>-<time>-<database>.dump` files.
    public func journalProblem(_ entry: RestoreJournal.Entry, context: RestoreContext) -> String? {
        let allowed = databases + [context.options.intoDatabase].compactMap { $0 }
        for item in (entry.changes["databases"]?.arrayValue ?? []) {
            guard let object = item.objectValue, let db = object["name"]?.stringValue else { return "holds a database entry without a name" }
            guard allowed.contains(db) else {
                return "names database \(db), which is not one of \(name)'s (\(allowed.joined(separator: ", "))); if the restore used --into, give the same --into again"
            }
            if let dump = object["safetyDump"]?.stringValue {
                let folder = context.safetyDirectory + "/"
                let file = dump.hasPrefix(folder) ? String(dump.dropFirst(folder.count)) : ""
                guard !file.contains("/"), file.hasPrefix(name + "-"), file.hasSuffix("-\(Self.fileSafe(db)).dump") else {
                    return "names \(dump) as the safety dump of \(db), which no restore writes (it would be in \(context.safetyDirectory))"
                }
            }
        }
        return nil
    }
}
