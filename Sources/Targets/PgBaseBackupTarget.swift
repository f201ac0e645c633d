import BackupCore
import Foundation

/// A physical backup of a whole PostgreSQL cluster with `pg_basebackup` (tar format, with the
/// WAL it needs), plus a WAL archive for point-in-time recovery.
///
/// The tar stream comes on pg_basebackup's stdout and is hashed as it is written. On
/// PostgreSQL 15+ it is compressed by the server with zstd workers; on older servers Backstop
/// compresses it while it streams.
///
/// Config (`TARGET_<NAME>_…`): the keys declared in `configKeys`.
public struct PgBaseBackupTarget: TargetKind {
    public let name: String
    /// The kind's name in config.
    public static let kindName = "pg_basebackup"
    /// Every key of the kind, declared once (see `TargetKind`).
    public static let configKeys: [ConfigKey] = [
        ConfigKey("DATABASE", .string, default: "postgres", help: "a database to connect to for the checks"),
        ConfigKey("WAL_ARCHIVE", .path, help: "the folder archive_command copies WAL into (for point-in-time recovery)"),
        ConfigKey("WORKERS", .int, default: "CPU count", help: "zstd threads (on the server for PostgreSQL 15+; 0-64)"),
        ConfigKey("DATA_DIR", .path, help: "where restore puts the cluster when --to is not given"),
        ConfigKey("RESTORE_OWNER", .string, default: "postgres", help: "owner of the restored data directory"),
        ConfigKey("STOP_CMD", .command, help: "run before a restore (e.g. systemctl stop postgresql)"),
        ConfigKey("START_CMD", .command, help: "run after a restore"),
        ConfigKey("PRUNE_WAL", .bool, default: "true", help: "retention removes WAL older than the oldest kept base backup"),
        ConfigKey("ROW_COUNTS", .choice(["exact", "none"]), default: "exact", help: "count every table after each backup, for the restore drill"),
    ] + Compression.configKeys(defaultName: "zstd", threads: false, of: "the base backup") + PostgresServer.configKeys
    /// The server.
    public let server: PostgresServer
    /// A database to connect to for checks.
    public let database: String
    /// The folder archive_command copies WAL into (needed for point-in-time recovery).
    public let walArchive: String?
    /// `zstd`, `gzip` or `none`.
    public let compression: String
    /// Compression level.
    public let level: Int?
    /// zstd workers (server side on 15+, threads client side).
    public let workers: Int
    /// Where restore puts the cluster by default.
    public let dataDirectory: String?
    /// The OS user that owns restored data directories.
    public let restoreOwner: String
    /// Run before a restore touches the data directory, e.g. `systemctl stop postgresql`.
    public let stopCommand: String?
    /// Run after a restore, e.g. `systemctl start postgresql`.
    public let startCommand: String?
    /// Whether retention removes WAL older than the oldest kept base backup.
    public let pruneWal: Bool
    /// Whether each backup records every table's row count for the restore drill.
    public let rowCounts: Bool

    /// Creates the target.
    public init(name: String, server: PostgresServer, database: String = "postgres", walArchive: String? = nil,
                compression: String = "zstd", level: Int? = nil, workers: Int = 2, dataDirectory: String? = nil,
                restoreOwner: String = "postgres", stopCommand: String? = nil, startCommand: String? = nil,
                pruneWal: Bool = true, rowCounts: Bool = true) {
        self.name = name
        self.server = server
        self.database = database
        self.walArchive = walArchive
        self.compression = compression
        self.level = level
        self.workers = workers
        self.dataDirectory = dataDirectory
        self.restoreOwner = restoreOwner
        self.stopCommand = stopCommand
        self.startCommand = startCommand
        self.pruneWal = pruneWal
        self.rowCounts = rowCounts
    }

    /// Builds the target from its config keys.
    public init(settings s: TargetSettings) throws {
        let (compression, level) = try Compression.read(s, defaultName: "zstd", threads: false)
        self.init(name: s.name, server: try PostgresServer(settings: s), database: s.string("DATABASE") ?? "postgres",
                  walArchive: try s.path("WAL_ARCHIVE"), compression: compression.name, level: level,
                  workers: try s.int("WORKERS", default: ProcessInfo.processInfo.activeProcessorCount, range: 0...64),
                  dataDirectory: try s.path("DATA_DIR"), restoreOwner: s.string("RESTORE_OWNER") ?? "postgres",
                  stopCommand: s.string("STOP_CMD"), startCommand: s.string("START_CMD"),
                  pruneWal: try s.bool("PRUNE_WAL", default: true),
                  rowCounts: try s.choice("ROW_COUNTS", ["exact", "none"], default: "exact") == "exact")
    }

    public var summary: String {
        "PostgreSQL cluster at \(server.label) (pg_basebackup, \(compression))\(walArchive.map { ", WAL archive \($0)" } ?? "")"
    }

    /// This target's config key for `short`, e.g. `TARGET_CLUSTER_STOP_CMD`, for messages.
    private func key(_ short: String) -> String {
        "TARGET_" + name.uppercased().replacingOccurrences(of: "-", with: "_") + "_" + short
    }

    private var suffix: String { compression == "zstd" ? ".tar.zst" : compression == "gzip" ? ".tar.gz" : ".tar" }

    // MARK: preflight

    public func preflight(_ context: PreflightContext) -> [Finding] {
        var (findings, version) = server.preflight(target: name, database: database, tools: ["pg_basebackup"])
        guard version != nil, let conn = try? server.connect(database: database) else { return findings }
        defer { conn.close() }
        findings += WalArchive.settingsFindings(conn, archive: walArchive, target: name)
        if let row = try? conn.query("SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user").first, row.first == "f" {
            findings.append(Finding(.error, target: name, "role \(server.user ?? "(default)") has neither REPLICATION nor SUPERUSER: pg_basebackup will be refused (ALTER ROLE ... REPLICATION)"))
        }
        if let n = try? conn.scalar("SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')"), n != "0" {
            findings.append(Finding(.error, target: name, "the cluster has \(n) extra tablespace(s); this target streams one tarball and supports only the default tablespaces"))
        }
        if walArchive == nil {
            findings.append(Finding(.warning, target: name, "no \(key("WAL_ARCHIVE")) set: base backups only, no point-in-time recovery"))
        }
        return findings
    }

    // MARK: backup

    public func backup(_ context: BackupContext) throws -> TargetOutput {
        let conn = try server.connect(database: database)
        defer { conn.close() }
        let version = conn.serverVersion
        let major = PostgresMajor(serverVersion: version)
        let tool = try server.tool("pg_basebackup", for: major)
        let segmentBytes = Int64(try conn.scalar("SELECT pg_size_bytes(current_setting('wal_segment_size'))") ?? "") ?? 16 << 20
        let startWal = try conn.scalar("SELECT pg_walfile_name(pg_current_wal_lsn())") ?? ""
        let systemID = try conn.scalar("SELECT system_identifier FROM pg_control_system()") ?? ""
        let started = Date()

        let serverSide = compression == "zstd" && version >= 150000
        var args = ["-D", "-", "-Ft", "-X", "fetch", "--no-manifest", "--checkpoint=fast", "--no-password",
                    "--label=backstop \(context.setID)"]
        if serverSide {
            args.append("--compress=server-zstd:level=\(level ?? 3)\(workers > 0 ? ",workers=\(workers)" : "")")
        }
        let child = ChildProcess(tool.path, args, environment: server.childEnvironment)
        let artifactName = "base" + suffix
        let writer = try context.createArtifact(artifactName, label: "\(name): pg_basebackup")
        let outcome: ChildProcess.Outcome
        do {
            if serverSide || compression == "none" {
                outcome = try child.run { try writer.write($0) }
            } else {
                let c: Compression = compression == "zstd" ? .zstd(level: level ?? 3, threads: max(1, workers)) : .gzip(level: level ?? 6)
                let archive = try ArchiveWriter(sink: writer, format: .raw, compression: c)
                var result: ChildProcess.Outcome?
                try archive.addStream(name: artifactName, size: nil) { write in result = try child.run(onStdout: write) }
                try archive.close()
                outcome = result!
            }
        } catch {
            writer.abandon()
            throw error
        }
        // Killed by our own SIGINT/SIGTERM handler: let it exit 130/143 instead of reporting a failure.
        if outcome.status != 0 { try Interrupts.shared.yieldToSignal() }
        guard outcome.status == 0 else {
            writer.abandon()
            throw outcome.error("pg_basebackup")
        }
        let (bytes, sha) = try writer.finish()
        // The connection sat idle through the whole copy (idle_session_timeout may have closed
        // it): ask on a fresh one if need be.
        let endQuery = "SELECT pg_walfile_name(pg_current_wal_lsn())"
        var endWal = (try? conn.scalar(endQuery)) ?? ""
        if endWal.isEmpty {
            let fresh = try server.connect(database: database)
            defer { fresh.close() }
            endWal = try fresh.scalar(endQuery) ?? ""
        }
        let finished = Date()

        var output = TargetOutput()
        output.artifacts = [Artifact(path: artifactName, bytes: bytes, sha256: sha, format: "pg_basebackup+tar\(compression == "none" ? "" : "+" + compression)")]
        output.toolVersions = ["pg_basebackup": tool.versionLine, "server": "PostgreSQL \(PostgresServer.versionText(version))"]
        output.facts = [
            "serverVersion": .string(PostgresServer.versionText(version)),
            "systemIdentifier": .string(systemID),
            "walStart": .string(startWal),
            "walEnd": .string(endWal),
            "walSegmentBytes": .number(Double(segmentBytes)),
            "backupStartedAt": .string(Format.iso8601(started)),
            "backupFinishedAt": .string(Format.iso8601(finished)),
            "compression": .string(serverSide ? "server-zstd" : compression == "none" ? "none" : "client-\(compression)"),
            "server": .string(server.label),
        ]
        if walArchive != nil {
            let report = walReport(repository: context.repository, segmentBytes: segmentBytes, also: startWal)
            output.facts["walArchive"] = .object(report)
            if let gaps = report["gaps"]?.arrayValue, !gaps.isEmpty {
                output.warnings.append("WAL archive \(walArchive ?? "") has gaps since the oldest kept base backup: \(gaps.compactMap(\.stringValue).prefix(3).joined(separator: ", ")); point-in-time recovery cannot cross them")
            }
        }
        if rowCounts {
            do {
                let counts = try recordRowCounts(conn.serverVersion)
                output.facts["rowCounts"] = .object(counts)
                if let dbs = counts["databases"]?.objectValue {
                    output.facts["databases"] = .array(dbs.keys.sorted().map { db in
                        let rows = dbs[db]?.objectValue?.values.compactMap(\.numberValue).reduce(0, +) ?? 0
                        return .object(["name": .string(db), "rows": .number(rows)])
                    })
                }
            } catch {
                output.warnings.append("row counts for the restore drill could not be taken: \(error)")
                output.facts["rowCounts"] = .object(["recorded": .bool(false), "reason": .string("\(error)")])
            }
        }
        context.logger.info("base backup: \(Format.bytes(bytes)), WAL \(startWal)..\(endWal)")
        return output
    }

    /// The WAL archive report, with gaps counted from the oldest base backup still kept (that
    /// is where a restore may start).
    func walReport(repository: Repository, segmentBytes: Int64, also extra: String? = nil) -> [String: JSONValue] {
        guard let walArchive else { return [:] }
        let kept = repository.completeSets().compactMap { $0.manifest?.record(for: name) }
            .filter { $0.status == .ok }.compactMap { $0.facts["walStart"]?.stringValue }
        let oldest = (kept + [extra].compactMap { $0 }).compactMap { WalSegment(name: $0, segmentBytes: segmentBytes) }.min()
        return WalArchive(directory: walArchive, segmentBytes: segmentBytes).report(since: oldest)
    }

    public func currentFacts(repository: Repository) -> [String: JSONValue] {
        guard walArchive != nil else { return [:] }
        let segmentBytes = repository.latestGood(target: name)?.1.facts["walSegmentBytes"]?.sizeValue.flatMap { $0 > 0 ? $0 : nil } ?? 16 << 20
        return ["walArchive": .object(walReport(repository: repository, segmentBytes: segmentBytes))]
    }

    /// Removes archived WAL segments older than the start of the oldest kept base backup: no
    /// remaining backup can replay them. Timeline history files are always kept.
    public func pruneOutsideSets(keeping kept: [TargetRecord], dryRun: Bool) throws -> [PruneDecision] {
        guard pruneWal, let walArchive else { return [] }
        let starts = kept.compactMap { r -> WalSegment? in
            let bytes = r.facts["walSegmentBytes"]?.sizeValue.flatMap { $0 > 0 ? $0 : nil } ?? 16 << 20
            return r.facts["walStart"]?.stringValue.flatMap { WalSegment(name: $0, segmentBytes: bytes) }
        }
        guard starts.count == kept.count, let oldest = starts.min() else { return [] }
        let bytesPerSegment = kept[0].facts["walSegmentBytes"]?.sizeValue.flatMap { $0 > 0 ? $0 : nil } ?? 16 << 20
        let archive = WalArchive(directory: walArchive, segmentBytes: bytesPerSegment)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: walArchive)) ?? []
        var doomed: [String] = []
        for name in names {
            let base = String(name.prefix(24))
            guard let seg = WalSegment(name: base, segmentBytes: bytesPerSegment), !name.hasSuffix(".history"),
                  seg.timeline <= oldest.timeline, seg.number < oldest.number else { continue }
            doomed.append(name)
        }
        guard !doomed.isEmpty else { return [] }
        doomed.sort()
        let bytes = doomed.reduce(Int64(0)) { $0 + (FileOps.size(archive.directory + "/" + $1) ?? 0) }
        if !dryRun {
            for name in doomed where unlink(archive.directory + "/" + name) != 0 && errno != ENOENT {
                throw SystemError("remove", archive.directory + "/" + name)
            }
        }
        return [PruneDecision(id: "\(doomed.count) WAL file(s) \(doomed.first!)..\(doomed.last!)", tier: "-", remove: true,
                              reason: "older than \(oldest), where the oldest kept base backup starts", bytes: bytes, target: name)]
    }

    // MARK: verify

    public func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding] {
        context.checkArtifacts(record) { _, reader in
            let archive = try ArchiveReader(source: reader)
            var sawLabel = false, sawControl = false, entries = 0
            while let entry = try archive.next() {
                entries += 1
                let path = entry.path.hasPrefix("./") ? String(entry.path.dropFirst(2)) : entry.path
                if path == "backup_label" { sawLabel = true }
                if path == "global/pg_control" { sawControl = true }
                try archive.readData()
            }
            if !sawLabel || !sawControl {
                throw OperationError("the tarball (\(entries) entries) lacks \(sawLabel ? "global/pg_control" : "backup_label"): not a complete base backup")
            }
        }
    }

    // MARK: restore

    /// The data directory, the WAL range and recovery target for point-in-time recovery, and
    /// whether the current directory is renamed aside (the safety copy) or the restore goes
    /// into an empty or new one. Changes nothing.
    public func planRestore(_ record: TargetRecord, context: RestoreContext) throws -> RestorePlan {
        let options = context.options
        guard let destination = options.destination.map({ $0.hasSuffix("/") ? String($0.dropLast()) : $0 }) ?? dataDirectory else {
            throw UsageError("say where the cluster goes: --to DATA_DIR, or set \(key("DATA_DIR"))")
        }
        guard let artifact = record.artifacts.first else { throw OperationError("backup of \(name) has no files") }
        var report = RestorePlan(target: name, kind: kind, setID: context.setID, destination: destination, safetyCopy: .none,
                                 destinationState: DestinationState.of(destination))
        let finishedAt = record.facts["backupFinishedAt"]?.stringValue.flatMap(Format.parseISO8601) ?? record.finishedAt
        report.lines.append("source: backup \(context.setID), \(artifact.path) (\(Format.bytes(artifact.bytes))), PostgreSQL \(record.facts["serverVersion"]?.stringValue ?? "?"), finished \(Format.iso8601(finishedAt))")
        report.lines.append("destination: data directory \(destination), owned by \(options.owner ?? restoreOwner)")

        let pitr = options.targetTime != nil || options.toLatest
        if pitr {
            guard let walArchive else {
                throw UsageError("point-in-time recovery needs the WAL archive: set \(key("WAL_ARCHIVE"))")
            }
            guard !walArchive.contains(where: { "\"'$`\\".contains($0) }) else {
                throw UsageError("\(key("WAL_ARCHIVE")) \(walArchive) holds a quote, $, ` or \\, which restore_command cannot carry; use a plainer path")
            }
            if let t = options.targetTime, t < finishedAt {
                throw UsageError("--to-time \(Format.iso8601(t)) is before this base backup finished (\(Format.iso8601(finishedAt))); pick an older backup with --backup, or a later time")
            }
            let segBytes = record.facts["walSegmentBytes"]?.sizeValue.flatMap { $0 > 0 ? $0 : nil } ?? 16 << 20
            let archive = WalArchive(directory: walArchive, segmentBytes: segBytes)
            let segments = archive.segments()
            let start = record.facts["walStart"]?.stringValue ?? "?"
            let newest = segments.last
            report.lines.append("recovery: \(options.targetTime.map { "to \(Format.iso8601($0))" } ?? "to the end of the archived WAL"), then promote")
            report.lines.append("WAL: from \(start) to \(newest.map { "\($0.segment) (archived \(Format.iso8601($0.modified)))" } ?? "nothing archived yet") in \(walArchive)")
            let gaps = archive.gaps(in: segments.map(\.segment), since: WalSegment(name: start, segmentBytes: segBytes), branches: archive.branchPoints())
            if !gaps.isEmpty { report.lines.append("WARNING: the archive has gaps (\(gaps.prefix(3).joined(separator: ", "))); recovery stops at the first one") }
            if let t = options.targetTime, newest.map({ $0.modified < t }) ?? true {
                // PostgreSQL 13+ refuses to start when recovery ends before the target is reached.
                throw UsageError("--to-time \(Format.iso8601(t)) is after the newest archived WAL (\(newest.map { "\($0.segment), archived \(Format.iso8601($0.modified))" } ?? "none archived")): recovery could not reach it and PostgreSQL would refuse to start. Use --to-latest to replay everything archived, or archive the current WAL first (SELECT pg_switch_wal()) and try again")
            }
            if options.targetTime != nil {
                report.lines.append("note: recovery stops at the first transaction that committed after the target time; if none did, use --to-latest")
            }
        }

        let pidFile = destination + "/postmaster.pid"
        let running = FileOps.exists(pidFile) && Self.pidIsAlive(pidFile)
        if FileOps.exists(destination) && !FileOps.isDirectory(destination) {
            throw UsageError("\(destination) exists and is not a directory; give --to a data directory")
        }
        let nonEmpty: Bool
        if FileOps.exists(destination) {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: destination) else {
                throw UsageError("cannot list \(destination) to see whether it is empty; check its permissions")
            }
            nonEmpty = !entries.isEmpty
        } else {
            nonEmpty = false
        }
        if let stopCommand { report.lines.append("before: runs \(stopCommand)") }
        if running && stopCommand == nil {
            throw OperationError("PostgreSQL is running on \(destination) (postmaster.pid names a live process); stop it first, or set \(key("STOP_CMD"))")
        }
        if nonEmpty {
            guard options.force else {
                throw UsageError("\(destination) is not empty\(FileOps.exists(pidFile) ? " (and has a postmaster.pid)" : ""); add --force to move it aside (it is kept, never deleted)")
            }
            report.lines.append("the current \(destination) is moved aside to \(destination).pre-restore-<time> (kept)")
        }
        if let startCommand { report.lines.append("after: runs \(startCommand)") }
        report.safetyCopy = nonEmpty ? .renameAside : .none
        report.safetyCopyHolds = "the previous data directory is"
        report.details = PgBaseBackupRestoreDetails(artifact: artifact, pitr: pitr, targetTime: options.targetTime,
                                                    owner: options.owner ?? restoreOwner, existed: FileOps.exists(destination))
        return report
    }

    /// Records in the journal what a kill -9 from here on leaves, so the next run can roll it back.
    private func note(_ plan: RestorePlan, _ context: RestoreContext, _ phase: String, aside: String?, _ summary: String) throws {
        let existed = (try? plan.details(as: PgBaseBackupRestoreDetails.self).existed) ?? true
        try context.journal?.record(["destination": .string(plan.destination), "existed": .bool(existed), "phase": .string(phase),
                                     "aside": aside.map { .string($0) } ?? .null], summary: summary)
    }

    /// Runs STOP_CMD, and refuses (nothing changed) if PostgreSQL still runs on the directory.
    public func prepareRestore(_ plan: RestorePlan, context: RestoreContext) throws {
        if let stopCommand {
            try note(plan, context, "stopping", aside: nil, "it ran STOP_CMD: PostgreSQL on \(plan.destination) may be stopped; the data directory is unchanged")
            try Self.shell(stopCommand, what: "STOP_CMD")
        }
        let pidFile = plan.destination + "/postmaster.pid"
        if FileOps.exists(pidFile) && Self.pidIsAlive(pidFile) {
            throw OperationError("PostgreSQL is still running on \(plan.destination)\(stopCommand != nil ? " after STOP_CMD" : " (stop it first, or set \(key("STOP_CMD")))"); nothing was changed")
        }
    }

    /// Renames the current data directory aside (kept, never deleted) when it is not empty.
    public func takeSafetyCopy(for plan: RestorePlan, context: RestoreContext, progress: RestoreProgress) throws -> String? {
        let destination = plan.destination
        guard plan.safetyCopy == .renameAside else {
            let existed = try plan.details(as: PgBaseBackupRestoreDetails.self).existed
            try note(plan, context, "replacing", aside: nil, "data directory \(destination) is partly restored\(existed ? " (it was an empty folder)" : " (it did not exist)")")
            return nil
        }
        let path = "\(destination).pre-restore-\(Self.asideStamp())"
        try note(plan, context, "replacing", aside: path, "data directory \(destination) is partly restored; the previous one is (or is about to be) moved aside to \(path)")
        do { try FileOps.rename(destination, to: path) } catch {
            throw OperationError("cannot move \(destination) aside (\(error)); nothing was changed")
        }
        context.logger.info("moved the current data directory aside: \(path)")
        return path
    }

    private static func asideStamp() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyyMMdd_HHmmss"
        return f.string(from: Date())
    }

    /// Extracts the base backup into the data directory, writes the recovery settings for
    /// point-in-time recovery, and gives it to the cluster's owner (0700).
    public func applyRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                             progress: RestoreProgress) throws -> RestoreOutcome {
        let details = try plan.details(as: PgBaseBackupRestoreDetails.self)
        let destination = plan.destination
        try Interrupts.shared.checkpoint()
        progress.willChangeDestination()
        try extract(context.setDirectory + "/" + details.artifact.path, sha256: details.artifact.sha256, into: destination)
        if details.pitr { try writeRecoverySettings(destination, targetTime: details.targetTime) }
        try Self.shell("chown -R \(Self.shellQuote(details.owner)): \(Self.shellQuote(destination))", what: "chown")
        chmod(destination, 0o700)
        try Interrupts.shared.checkpoint()
        try Fault.point("restore-pg-basebackup")
        var outcome = RestoreOutcome(facts: ["bytes": .number(Double(details.artifact.bytes))])
        if details.pitr {
            outcome.lines.append("recovery.signal written: the server recovers when it starts")
            outcome.lines.append("once the data is checked, turn archiving back on (Backstop set archive_mode = off): psql -c 'ALTER SYSTEM RESET archive_mode' -c 'ALTER SYSTEM RESET restore_command' -c 'ALTER SYSTEM RESET recovery_target_time' -c 'ALTER SYSTEM RESET recovery_target_action', then restart PostgreSQL")
        }
        if let safetyCopy { outcome.lines.append("previous data directory: \(safetyCopy)") }
        return outcome
    }

    /// Removes only what this restore created (the old directory was moved aside, or there was
    /// none; an empty directory, perhaps a mount point, is emptied again), then moves the
    /// previous directory back.
    public func rollBackRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                                progress: RestoreProgress) throws -> [String] {
        let details = try plan.details(as: PgBaseBackupRestoreDetails.self)
        let destination = plan.destination
        try Fault.point("rollback")
        if safetyCopy != nil || !details.existed {
            do { try FileOps.removeTree(destination) } catch { throw OperationError("cannot remove the partial \(destination): \(error)") }
        } else {
            for child in (try? FileManager.default.contentsOfDirectory(atPath: destination)) ?? [] {
                do { try FileOps.removeTree(destination + "/" + child) } catch { throw OperationError("cannot remove the partial \(destination): \(error)") }
            }
        }
        guard let aside = safetyCopy else { return ["removed the partial data directory"] }
        do { try FileOps.rename(aside, to: destination) } catch { throw OperationError("cannot move \(aside) back: \(error)") }
        return ["put the previous data directory back"]
    }

    /// Runs START_CMD after the restore, or after its rollback (the old cluster is back).
    public func finishRestore(_ plan: RestorePlan, context: RestoreContext, succeeded: Bool) throws -> [String] {
        if let startCommand { try Self.shell(startCommand, what: "START_CMD") }
        return []
    }

    /// Extracts the tarball, refusing unsafe names, and checks its checksum as it reads.
    private func extract(_ path: String, sha256: String, into destination: String) throws {
        try FileOps.makeDirectory(destination)
        let reader = try HashingFileReader(path: path)
        defer { reader.close() }
        let archive = try ArchiveReader(source: reader)
        let extractor = ArchiveExtractor(directory: destination, restoreOwner: false)
        while let entry = try archive.next() {
            guard ArchivePaths.isSafe(entry.path) || entry.path == "./" || entry.path == "." else {
                throw OperationError("unsafe entry \(entry.path) in \(path)")
            }
            try extractor.extractCurrent(from: archive)
        }
        try extractor.close()
        try reader.drain()
        try ChecksumMismatch.check(path, actual: reader.hexDigest(), expected: sha256)
    }

    /// Asks the restored server to recover from the archive and then promote.
    private func writeRecoverySettings(_ dataDir: String, targetTime: Date?) throws {
        guard let walArchive else { return }
        try FileOps.writeAtomically(Data(), to: dataDir + "/recovery.signal")
        var lines = [
            "",
            "# Added by backstop restore: point-in-time recovery.",
            // Plain copies, or segments the archive_command compressed with gzip or zstd.
            "restore_command = '\(Self.restoreCommand(walArchive))'",
            "recovery_target_action = 'promote'",
            "archive_mode = off",
        ]
        if let targetTime {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "UTC")
            f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
            lines.append("recovery_target_time = '\(f.string(from: targetTime))+00'")
        }
        let conf = dataDir + "/postgresql.auto.conf"
        // Settings left by an earlier recovery (ours or anyone's) would still apply: a stale
        // recovery_target_time would silently stop a --to-latest recovery early. Drop them.
        let managed = ["restore_command", "recovery_target", "archive_mode", "primary_conninfo", "standby_mode"]
        let old = ((try? String(contentsOfFile: conf, encoding: .utf8)) ?? "").split(separator: "\n", omittingEmptySubsequences: false)
            .filter { line in
                let key = line.trimmingCharacters(in: .whitespaces).lowercased()
                return !managed.contains { key.hasPrefix($0) } && !key.hasPrefix("# added by backstop restore")
            }
            .joined(separator: "\n")
        try FileOps.writeAtomically(Data((old + lines.joined(separator: "\n") + "\n").utf8), to: conf)
    }

    /// The `restore_command` that copies a segment from `walArchive`: a plain copy, or a
    /// segment the archive_command compressed with gzip or zstd. It only reads the archive.
    static func restoreCommand(_ walArchive: String) -> String {
        "f=\"\(walArchive)/%f\"; if [ -f \"$f\" ]; then cp \"$f\" \"%p\"; elif [ -f \"$f.gz\" ]; then gzip -dc \"$f.gz\" > \"%p\"; elif [ -f \"$f.zst\" ]; then zstd -dcq \"$f.zst\" > \"%p\"; else exit 1; fi"
    }

    static func pidIsAlive(_ pidFile: String) -> Bool {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = Int32(text.split(separator: "\n").first ?? "") else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    /// Rolls back a restore that was killed before it could roll back itself, from its journal:
    /// the partial data directory is removed and the previous one (moved aside) put back, or
    /// an empty folder emptied again; then START_CMD runs. Paths are checked against what a
    /// restore writes, whatever the journal holds.
    public func rollBackInterruptedRestore(_ entry: RestoreJournal.Entry, context: RestoreContext) throws -> RestoreReport {
        guard let destination = entry.changes["destination"]?.stringValue, destination.hasPrefix("/"), destination.count > 1,
              !destination.contains("/../"), !destination.hasSuffix("/..") else {
            throw OperationError("the journal of \(name) names no valid data directory; nothing was changed")
        }
        let phase = entry.changes["phase"]?.stringValue ?? "?"
        let existed = entry.changes["existed"]?.boolValue ?? true
        let aside = entry.changes["aside"]?.stringValue
        if let aside, !(aside.hasPrefix(destination + ".pre-restore-") && !aside.dropFirst(destination.count).contains("/")) {
            throw OperationError("the journal of \(name) names \(aside) as the previous data directory, which no restore writes; nothing was changed")
        }
        var report = RestoreReport(target: name, destination: destination, dryRun: context.options.dryRun)
        var steps: [() throws -> Void] = []
        if phase == "replacing" {
            if let aside, FileOps.isDirectory(aside) {
                report.lines.append("remove the partly restored \(destination) and move \(aside) back")
                report.safetyCopy = aside
                steps.append {
                    try FileOps.removeTree(destination)
                    try FileOps.rename(aside, to: destination)
                }
            } else if aside != nil {
                report.lines.append("\(destination) was never moved aside: left as it is")
            } else if !existed {
                report.lines.append("remove the partly restored \(destination) (it did not exist before)")
                steps.append { try FileOps.removeTree(destination) }
            } else {
                report.lines.append("empty \(destination) again (it was an empty folder)")
                steps.append {
                    for child in (try? FileManager.default.contentsOfDirectory(atPath: destination)) ?? [] {
                        try FileOps.removeTree(destination + "/" + child)
                    }
                }
            }
        } else {
            report.lines.append("the data directory was not changed yet")
        }
        if let startCommand {
            report.lines.append("then run START_CMD: \(startCommand)")
            steps.append { try Self.shell(startCommand, what: "START_CMD") }
        }
        if context.options.dryRun { return report }
        for step in steps { try step() }
        report.lines.append("rolled back")
        return report
    }

    static func shell(_ command: String, what: String) throws {
        let outcome = try ChildProcess("/bin/sh", ["-c", command]).run()
        guard outcome.status == 0 else { throw outcome.error("\(what) '\(command)'") }
    }

    static func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}

// MARK: row counts and restore drill

extension PgBaseBackupTarget {
    /// Permanent ordinary tables outside the system schemas, as `(quoted, schema.table)`.
    /// Unlogged tables are left out: they come back empty from recovery, and a server in
    /// recovery cannot read them.
    private static let tablesQuery = """
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname || '.' || c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
        ORDER BY 2
        """

    /// `schema.table` -> exact rows, for every permanent table of the connected database.
    static func countRows(_ conn: PGConnection) throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        for row in try conn.query(tablesQuery) {
            guard let quoted = row[0], let table = row[1] else { continue }
            guard let n = Int64(try conn.scalar("SELECT count(*) FROM \(quoted)") ?? "") else {
                throw OperationError("count(*) of \(table) returned no number")
            }
            counts[table] = n
        }
        return counts
    }

    /// Counts every table of every database right after the base backup, for the drill.
    ///
    /// Every database is counted in its own REPEATABLE READ snapshot, all taken together with
    /// the WAL insert position `lsn`. The counts are marked `exact` when no transaction holding
    /// a transaction ID was running and none finished while the snapshots were taken: then the
    /// snapshots show exactly the transactions whose commit records lie before `lsn`, so a
    /// recovery that stops at `lsn` must give the same counts. Up to ten tries, 0.2 s apart;
    /// a server that is never quiet that long gets counts marked not exact.
    func recordRowCounts(_ version: Int) throws -> [String: JSONValue] {
        func notRecorded(_ why: String) -> [String: JSONValue] { ["recorded": .bool(false), "reason": .string(why)] }
        let conn = try server.connect(database: database)
        defer { conn.close() }
        if try conn.scalar("SELECT pg_is_in_recovery()") == "t" {
            return notRecorded("the server is a standby: row counts are taken on a primary only")
        }
        let privileged = version >= 140000
            ? "SELECT rolsuper OR (pg_has_role(current_user, 'pg_read_all_data', 'MEMBER') AND pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')) FROM pg_roles WHERE rolname = current_user"
            : "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        guard try conn.scalar(privileged) == "t" else {
            return notRecorded("role \(server.user ?? "(default)") may not read every table (it needs SUPERUSER, or pg_read_all_data and pg_read_all_stats)")
        }
        let superuser = try conn.scalar("SELECT rolname FROM pg_roles WHERE oid = 10") ?? "postgres"
        let names = try conn.query("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1").compactMap { $0.first ?? nil }
        let sessions = try names.map { try server.connect(database: $0) }
        defer { sessions.forEach { $0.close() } }
        let snapshot = version >= 130000 ? "SELECT pg_current_snapshot()::text" : "SELECT txid_current_snapshot()::text"
        var exact = false
        var lsn = ""
        for attempt in 1...10 {
            let before = try conn.scalar(snapshot) ?? ""
            for s in sessions {
                try s.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                // The first statement takes the transaction's snapshot.
                lsn = try s.scalar("SELECT pg_current_wal_insert_lsn()::text") ?? ""
            }
            let holdingIDs = try conn.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL") ?? ""
            let after = try conn.scalar(snapshot) ?? ""
            // "xmin:xmax:" with xmin == xmax: nothing was running.
            let parts = after.split(separator: ":", omittingEmptySubsequences: false)
            exact = before == after && holdingIDs == "0" && parts.count == 3 && parts[0] == parts[1] && parts[2].isEmpty
            if exact || attempt == 10 { break }
            for s in sessions { try s.query("ROLLBACK") }
            usleep(200_000)
        }
        var databases: [String: JSONValue] = [:]
        for (name, s) in zip(names, sessions) {
            databases[name] = .object(try Self.countRows(s).mapValues { .number(Double($0)) })
            try s.query("COMMIT")
        }
        // Close the WAL segment holding that position, so it is archived now rather than when
        // it fills: the drill needs it (a no-op when nothing was written since the last switch,
        // in which case the drill needs only the segments before it).
        if exact { _ = try? conn.query("SELECT pg_switch_wal()") }
        return ["recorded": .bool(true), "exact": .bool(exact), "lsn": .string(lsn), "superuser": .string(superuser),
                "databases": .object(databases)]
    }

    /// The exact-major server binaries (`pg_ctl`, `postgres`) for a data directory of `major`:
    /// `BIN_DIR` when it holds that major, else `/usr/lib/postgresql/<major>/bin`.
    private func serverBinaries(_ major: PostgresMajor) throws -> String {
        for dir in [server.binDir, "/usr/lib/postgresql/\(major)/bin"].compactMap({ $0 }) where access(dir + "/pg_ctl", X_OK) == 0 {
            if let tool = try? PostgresServer.describe(dir + "/postgres"), tool.major == major { return dir }
        }
        throw OperationError("the restore drill needs the PostgreSQL \(major) server programs (pg_ctl, postgres) to start the restored cluster; install postgresql-\(major) (apt-get install postgresql-\(major)) or set \(key("BIN_DIR"))")
    }

    /// Where the drill's recovery stops.
    enum DrillStop: Equatable, CustomStringConvertible {
        /// At the WAL position where the row counts were taken (`recovery_target_lsn`, then pause).
        case atLsn(String)
        /// As a standby, once everything before this position (a segment's start) is replayed.
        case replayedThrough(String)
        /// Where the backup became consistent (`recovery_target = 'immediate'`, then pause).
        case endOfBackup

        var description: String {
            switch self {
            case let .atLsn(lsn): return "recovering to WAL position \(lsn), where the row counts were taken"
            case let .replayedThrough(lsn): return "replaying as a standby up to \(lsn), where the row counts were taken (its segment holds nothing before that point)"
            case .endOfBackup: return "recovering to the end of the backup"
            }
        }
    }

    /// The size of a WAL segment's first page header: where the first record of a fresh segment starts.
    static let longPageHeaderBytes: UInt64 = 40

    /// A number as `X/Y`.
    private static func lsnText(_ value: UInt64) -> String { String(format: "%X/%X", UInt32(value >> 32), UInt32(value & 0xFFFF_FFFF)) }

    /// `X/Y` as a number.
    private static func lsnValue(_ text: String) -> UInt64? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let hi = UInt64(parts[0], radix: 16), let lo = UInt64(parts[1], radix: 16) else { return nil }
        return hi << 32 | lo
    }

    /// Restores the base backup into a scratch data directory, starts a throwaway server on it
    /// (as `RESTORE_OWNER` when run as root, on a free port on 127.0.0.1, its socket in a short
    /// private folder, trust authentication on that socket only), recovers to the point where
    /// the row counts were taken (or, without them, to the end of the backup), compares every
    /// table's row count with the manifest, then stops the server and removes everything, also
    /// on failure. The live cluster, its data directory and the WAL archive (only read) are
    /// never touched.
    public static var hasRestoreDrill: Bool { true }

    public func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport? {
        guard let artifact = record.artifacts.first else { throw OperationError("backup of \(name) has no files") }
        guard let versionText = record.facts["serverVersion"]?.stringValue, let major = PostgresMajor(versionString: versionText) else {
            throw OperationError("the manifest does not say which PostgreSQL version made backup \(context.setID)")
        }
        guard major.code >= 1200 else { throw OperationError("the restore drill needs PostgreSQL 12 or newer (this backup is \(major))") }
        let bin = try serverBinaries(major)
        var lines: [String] = []
        func failed(_ why: String, seconds: Double = 0) -> DrillReport {
            DrillReport(target: name, setID: context.setID, passed: false, restoreSeconds: seconds, lines: lines + [why])
        }

        // PostgreSQL refuses to run as root: as root, the server runs as RESTORE_OWNER, who cannot
        // enter the 0700 backup directory, so its scratch folder is a private one in /var/tmp.
        let runAs: String? = getuid() == 0 ? restoreOwner : nil
        let scratch: String
        if runAs == nil {
            scratch = try context.makeDrillScratch(name)
        } else {
            var template = Array("/var/tmp/backstop-drill-\(name).XXXXXX".utf8CString)
            guard let p = mkdtemp(&template) else { throw SystemError("mkdtemp", "/var/tmp") }
            scratch = String(cString: p)
            Interrupts.shared.registerPartial(scratch)
        }
        defer { context.removeDrillScratch(scratch) }
        // Unix socket paths are limited to 107 bytes: a short private folder.
        var socketTemplate = Array("/tmp/bsdrill.XXXXXX".utf8CString)
        guard let sp = mkdtemp(&socketTemplate) else { throw SystemError("mkdtemp", "/tmp") }
        let socketDir = String(cString: sp)
        Interrupts.shared.registerPartial(socketDir)
        defer { context.removeDrillScratch(socketDir) }
        let data = scratch + "/data"
        let log = scratch + "/server.log"
        func asOwner(_ program: String, _ args: [String]) -> ChildProcess {
            runAs.map { ChildProcess("/usr/sbin/runuser", ["-u", $0, "--", program] + args, workingDirectory: "/") }
                ?? ChildProcess(program, args, workingDirectory: "/")
        }

        // Where recovery stops (decided once the tarball's own WAL is unpacked): where the row
        // counts were taken, when they are exact and that WAL is at hand; otherwise the end of
        // the backup.
        let counts = record.facts["rowCounts"]?.objectValue
        let segmentBytes = UInt64(record.facts["walSegmentBytes"]?.sizeValue.flatMap { $0 > 0 ? $0 : nil } ?? 16 << 20)
        let countedAt: (lsn: String, value: UInt64, segment: WalSegment)?
        if counts?["recorded"]?.boolValue == true {
            let lsn = counts?["lsn"]?.stringValue ?? ""
            if counts?["exact"]?.boolValue != true {
                lines.append("the row counts were taken while the server was busy: they are shown, not compared")
                countedAt = nil
            } else if let value = Self.lsnValue(lsn), let end = record.facts["walEnd"]?.stringValue, let timeline = UInt32(end.prefix(8), radix: 16) {
                countedAt = (lsn, value, WalSegment(timeline: timeline, number: value / segmentBytes, perLog: 0x1_0000_0000 / segmentBytes))
            } else {
                countedAt = nil
            }
        } else {
            let why = counts?["reason"]?.stringValue ?? "this backup has none"
            lines.append("no row counts recorded at backup time (\(why)): every table is read in full, counts not compared")
            countedAt = nil
        }
        var stop = DrillStop.endOfBackup

        let started = Date()
        var running = false
        defer {
            if running {
                _ = try? asOwner(bin + "/pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).run()
            }
        }
        let port: Int
        do {
            if let runAs {
                for dir in [scratch, socketDir] {
                    let (o, _) = try ChildProcess("chown", ["--", runAs, dir]).capture()
                    guard o.status == 0 else { throw OperationError("chown \(runAs) \(dir): \(o.lastErrorLine)") }
                }
            }
            lines.append("extracting \(artifact.path) (\(Format.bytes(artifact.bytes))) into scratch data directory \(data)")
            try extract(context.setDirectory + "/" + artifact.path, sha256: artifact.sha256, into: data)
            try Interrupts.shared.checkpoint()
            if let countedAt {
                let archived = walArchive.map { WalArchive(directory: $0, segmentBytes: Int64(segmentBytes)).segments().map(\.segment) } ?? []
                func atHand(_ s: WalSegment) -> Bool { archived.contains(s) || FileOps.exists(data + "/pg_wal/\(s)") }
                let previous = WalSegment(timeline: countedAt.segment.timeline, number: countedAt.segment.number - 1, perLog: countedAt.segment.perLog)
                let segmentStart = countedAt.value - countedAt.value % segmentBytes
                if archived.contains(countedAt.segment) {
                    stop = .atLsn(countedAt.lsn)
                } else if countedAt.value - segmentStart == Self.longPageHeaderBytes, atHand(previous) {
                    // Nothing was written in the segment before the counts were taken: replaying
                    // every earlier segment reaches exactly that point.
                    stop = .replayedThrough(Self.lsnText(segmentStart))
                } else {
                    lines.append("WAL segment \(countedAt.segment) (where the row counts were taken, \(countedAt.lsn)) is not \(walArchive == nil ? "at hand (no WAL archive)" : "archived yet"): recovering to the end of the backup; counts are shown, not compared")
                }
            }
            port = try freeLoopbackPort()
            try writeDrillSettings(data: data, scratch: scratch, socketDir: socketDir, port: port, stop: stop, major: major)
            if let runAs {
                let (o, _) = try ChildProcess("chown", ["-R", "--", runAs, scratch]).capture()
                guard o.status == 0 else { throw OperationError("chown -R \(runAs) \(scratch): \(o.lastErrorLine)") }
            }
            chmod(data, 0o700)
            lines.append("starting a throwaway PostgreSQL \(major) server on 127.0.0.1:\(port)\(runAs.map { " as \($0)" } ?? ""), \(stop.description)")
            running = true
            let (o, _) = try asOwner(bin + "/pg_ctl", ["-D", data, "-l", log, "-w", "-t", "3600", "start"]).capture()
            guard o.status == 0 else { throw OperationError("the restored server did not start: \(Self.logTail(log))") }
        } catch {
            return failed("restore failed: \(error)")
        }

        // Connect on the socket and wait until recovery has reached its target and paused.
        let superuser = counts?["superuser"]?.stringValue ?? "postgres"
        func connect(_ db: String) throws -> PGConnection {
            try PGConnection(["host": socketDir, "port": "\(port)", "user": superuser, "dbname": db], label: "drill server/\(db)")
        }
        let maintenanceDB = (try? connect("postgres")) != nil ? "postgres" : "template1"
        do {
            let conn = try connect(maintenanceDB)
            defer { conn.close() }
            let deadline = Date().addingTimeInterval(3600)
            let reached: String
            switch stop {
            case .atLsn, .endOfBackup: reached = "SELECT pg_is_wal_replay_paused()"
            case let .replayedThrough(lsn): reached = "SELECT pg_last_wal_replay_lsn() >= '\(lsn)'::pg_lsn"
            }
            var lastReplay = "", lastProgress = Date()
            while try conn.scalar(reached) != "t" {
                try Interrupts.shared.checkpoint()
                if Date() > deadline { throw OperationError("recovery did not reach its target within an hour") }
                let replay = try conn.scalar("SELECT pg_last_wal_replay_lsn()::text") ?? ""
                if replay != lastReplay { lastReplay = replay; lastProgress = Date() }
                if Date().timeIntervalSince(lastProgress) > 120 {
                    throw OperationError("recovery stopped at \(replay) and made no progress for two minutes: WAL is missing")
                }
                usleep(100_000)
            }
            let systemID = try conn.scalar("SELECT system_identifier FROM pg_control_system()") ?? ""
            if let recorded = record.facts["systemIdentifier"]?.stringValue, recorded != systemID {
                return failed("the restored cluster's system identifier is \(systemID), the manifest says \(recorded)")
            }
        } catch {
            return failed("recovery failed: \(error); server log: \(Self.logTail(log))")
        }
        let seconds = Date().timeIntervalSince(started)
        lines.append("recovered in \(Format.seconds(seconds))")

        // Count every table of every database.
        var actual: [String: [String: Int64]] = [:]
        do {
            let conn = try connect(maintenanceDB)
            let names = try conn.query("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1").compactMap { $0.first ?? nil }
            conn.close()
            for db in names {
                try Interrupts.shared.checkpoint()
                let c = try connect(db)
                defer { c.close() }
                actual[db] = try Self.countRows(c)
            }
        } catch {
            return failed("reading the restored cluster failed: \(error)", seconds: seconds)
        }
        var problems: [String] = []
        let expected = counts?["databases"]?.objectValue
        if let expected {
            for db in expected.keys.sorted() where actual[db] == nil { problems.append("database \(db): missing") }
            for db in actual.keys.sorted() where expected[db] == nil { problems.append("database \(db): not in the manifest") }
            for db in actual.keys.sorted() {
                guard let want = DrillChecks.counts(expected[db]) else { continue }
                problems += DrillChecks.compareCounts(expected: want, actual: actual[db]!, prefix: "\(db): ")
            }
        }
        let countsComparable = stop != .endOfBackup
        let tables = actual.values.reduce(0) { $0 + $1.count }
        let rows = actual.values.reduce(Int64(0)) { $0 + $1.values.reduce(0, +) }
        if !countsComparable {
            lines.append("\(actual.count) database(s), \(tables) tables, \(rows) rows, every table read in full")
            if !problems.isEmpty {
                lines.append("\(problems.count) difference(s) from the counts taken after the backup (not failures: see above):")
                lines += DrillChecks.shown(problems, limit: 5).map { "  " + $0 }
            }
            return DrillReport(target: name, setID: context.setID, passed: true, restoreSeconds: seconds, lines: lines)
        }
        if problems.isEmpty {
            lines.append("\(actual.count) database(s), \(tables) tables, \(rows) rows: every count matches the manifest")
        } else {
            lines.append("row counts differ from the manifest in \(problems.count) place(s):")
            lines += DrillChecks.shown(problems).map { "  " + $0 }
        }
        return DrillReport(target: name, setID: context.setID, passed: problems.isEmpty, restoreSeconds: seconds, lines: lines)
    }

    /// Makes the scratch data directory safe and reachable: our own port, socket folder and
    /// authentication (trust on that socket only), no archiving and no cleanup commands that
    /// could touch the live WAL archive, no connection to a primary, modest memory, and a
    /// recovery that pauses at its target (so the server stays read-only).
    private func writeDrillSettings(data: String, scratch: String, socketDir: String, port: Int, stop: DrillStop,
                                    major: PostgresMajor) throws {
        let hba = scratch + "/drill_hba.conf", ident = scratch + "/drill_ident.conf"
        try FileOps.writeAtomically(Data("local all all trust\n".utf8), to: hba)
        try FileOps.writeAtomically(Data(), to: ident)
        // Debian keeps postgresql.conf in /etc: the tarball then has none.
        if !FileOps.exists(data + "/postgresql.conf") { try FileOps.writeAtomically(Data(), to: data + "/postgresql.conf") }
        // A standby never ends recovery; a targeted recovery pauses at its target. Either way
        // the server stays read-only.
        if case .replayedThrough = stop {
            try FileOps.writeAtomically(Data(), to: data + "/standby.signal")
        } else {
            try FileOps.writeAtomically(Data(), to: data + "/recovery.signal")
        }
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }
        var settings: [(String, String)] = [
            ("port", "\(port)"), ("listen_addresses", "'127.0.0.1'"), ("unix_socket_directories", quoted(socketDir)),
            ("hba_file", quoted(hba)), ("ident_file", quoted(ident)), ("ssl", "off"),
            ("logging_collector", "off"), ("log_destination", "'stderr'"), ("cluster_name", "'backstop-drill'"),
            ("archive_mode", "off"), ("archive_command", "''"), ("archive_cleanup_command", "''"), ("recovery_end_command", "''"),
            ("primary_conninfo", "''"), ("primary_slot_name", "''"), ("synchronous_standby_names", "''"),
            ("restore_command", quoted(walArchive.map(Self.restoreCommand) ?? "false")),
            ("recovery_target_timeline", "'current'"), ("recovery_target_action", "'pause'"), ("hot_standby", "on"),
            ("shared_buffers", "'128MB'"), ("huge_pages", "off"),
        ]
        if major.code >= 1500 { settings.append(("archive_library", "''")) }
        switch stop {
        case let .atLsn(lsn):
            // Stop before the record at that position: it was written after the snapshots.
            settings.append(("recovery_target_lsn", quoted(lsn)))
            settings.append(("recovery_target_inclusive", "off"))
        case .endOfBackup: settings.append(("recovery_target", "'immediate'"))
        case .replayedThrough: break
        }
        let conf = data + "/postgresql.auto.conf"
        let ours = Set(settings.map(\.0))
        // Recovery settings left in the backup (a second recovery target is an error) and every
        // setting set here are dropped from the old file first.
        let old = ((try? String(contentsOfFile: conf, encoding: .utf8)) ?? "").split(separator: "\n", omittingEmptySubsequences: false)
            .filter { line in
                let key = line.trimmingCharacters(in: .whitespaces).lowercased().prefix { $0.isLetter || $0 == "_" }
                return !ours.contains(String(key)) && !key.hasPrefix("recovery_target")
            }
            .joined(separator: "\n")
        let added = ["", "# Added by the backstop restore drill (a scratch copy)."] + settings.map { "\($0.0) = \($0.1)" }
        try FileOps.writeAtomically(Data((old + added.joined(separator: "\n") + "\n").utf8), to: conf)
    }

    /// The last lines of the throwaway server's log, for a failure message.
    private static func logTail(_ path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let tail = text.split(separator: "\n").suffix(3).joined(separator: " | ")
        return tail.isEmpty ? "(no server log)" : tail
    }
}

/// What a base-backup restore plan holds for its apply step.
struct PgBaseBackupRestoreDetails: RestorePlanDetails {
    /// The tarball in the set.
    var artifact: Artifact
    /// Whether recovery settings are written (point-in-time recovery).
    var pitr: Bool
    /// The recovery target time, if any.
    var targetTime: Date?
    /// Who owns the restored directory.
    var owner: String
    /// Whether the destination existed when the plan was made.
    var existed: Bool
}

// MARK: checking an interrupted restore's journal

extension PgBaseBackupTarget {
    /// The journal may name only DATA_DIR or the `--to` given again, and as the previous data
    /// directory only `<destination>.pre-restore-<yyyyMMdd_HHmmss>` beside it.
    public func journalProblem(_ entry: RestoreJournal.Entry, context: RestoreContext) -> String? {
        func trimmed(_ path: String) -> String {
            var p = path
            while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
            return p
        }
        let allowed = [context.options.destination, dataDirectory].compactMap { $0 }.map(trimmed)
        guard let destination = entry.changes["destination"]?.stringValue else {
            return "names no data directory"
        }
        guard allowed.contains(destination) else {
            let expected = allowed.isEmpty ? "no DATA_DIR is configured" : "only \(allowed.joined(separator: " or ")) may be named"
            return "names \(destination) as the data directory, which is neither \(key("DATA_DIR")) nor the --to given now (\(expected)); if the restore used --to, give the same --to again"
        }
        if let aside = entry.changes["aside"]?.stringValue {
            let stamp = aside.hasPrefix(destination + ".pre-restore-") ? aside.dropFirst(destination.count + ".pre-restore-".count) : ""
            let ok = stamp.count == 15 && stamp.enumerated().allSatisfy { i, c in i == 8 ? c == "_" : c.isASCII && c.isNumber }
            if !ok { return "names \(aside) as the previous data directory, which no restore writes (it would be \(destination).pre-restore-<yyyyMMdd_HHmmss>)" }
        }
        return nil
    }
}
