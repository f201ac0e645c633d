import BackupCore
import Foundation

/// A physical backup of a whole PostgreSQL cluster with `pg_basebackup` (tar format, with the
/// WAL it needs), plus a WAL archive for point-in-time recovery.
///
/// The tar stream comes on pg_basebackup's stdout and is hashed as it is written. On
/// PostgreSQL 15+ it is compressed by the server with zstd workers; on older servers Backstop
/// compresses it while it streams.
///
/// Config (`TARGET_<NAME>_…`): the connection keys of `PostgresServer`, `DATABASE` (for the
/// checks; default `postgres`), `WAL_ARCHIVE`, `COMPRESSION` (`zstd`, `gzip`, `none`),
/// `LEVEL`, `WORKERS`, `DATA_DIR`, `RESTORE_OWNER`, `STOP_CMD`, `START_CMD`.
public struct PgBaseBackupTarget: BackupTarget {
    public let name: String
    public let kind = "pg_basebackup"
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

    /// Creates the target.
    public init(name: String, server: PostgresServer, database: String = "postgres", walArchive: String? = nil,
                compression: String = "zstd", level: Int? = nil, workers: Int = 2, dataDirectory: String? = nil,
                restoreOwner: String = "postgres", stopCommand: String? = nil, startCommand: String? = nil,
                pruneWal: Bool = true) {
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
    }

    /// Builds the target from its config keys.
    public init(settings s: TargetSettings) throws {
        self.init(name: s.name, server: try PostgresServer(settings: s), database: s.string("DATABASE") ?? "postgres",
                  walArchive: try s.path("WAL_ARCHIVE"),
                  compression: try s.choice("COMPRESSION", ["zstd", "gzip", "none"], default: "zstd"),
                  level: try s.string("LEVEL") == nil ? nil : s.int("LEVEL", default: 3, range: 1...19),
                  workers: try s.int("WORKERS", default: ProcessInfo.processInfo.activeProcessorCount, range: 0...64),
                  dataDirectory: try s.path("DATA_DIR"), restoreOwner: s.string("RESTORE_OWNER") ?? "postgres",
                  stopCommand: s.string("STOP_CMD"), startCommand: s.string("START_CMD"),
                  pruneWal: try s.bool("PRUNE_WAL", default: true))
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
            throw OperationError("pg_basebackup failed (exit \(outcome.status)): \(outcome.lastErrorLine)")
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
        let segmentBytes = repository.latestGood(target: name)?.1.facts["walSegmentBytes"]?.numberValue.map { Int64($0) } ?? 16 << 20
        return ["walArchive": .object(walReport(repository: repository, segmentBytes: segmentBytes))]
    }

    /// Removes archived WAL segments older than the start of the oldest kept base backup: no
    /// remaining backup can replay them. Timeline history files are always kept.
    public func pruneOutsideSets(keeping kept: [TargetRecord], dryRun: Bool) throws -> [PruneDecision] {
        guard pruneWal, let walArchive else { return [] }
        let starts = kept.compactMap { r -> WalSegment? in
            let bytes = Int64(r.facts["walSegmentBytes"]?.numberValue ?? Double(16 << 20))
            return r.facts["walStart"]?.stringValue.flatMap { WalSegment(name: $0, segmentBytes: bytes) }
        }
        guard starts.count == kept.count, let oldest = starts.min() else { return [] }
        let bytesPerSegment = Int64(kept[0].facts["walSegmentBytes"]?.numberValue ?? Double(16 << 20))
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

    public func restore(_ record: TargetRecord, context: RestoreContext) throws -> RestoreReport {
        let options = context.options
        guard let destination = options.destination.map({ $0.hasSuffix("/") ? String($0.dropLast()) : $0 }) ?? dataDirectory else {
            throw UsageError("say where the cluster goes: --to DATA_DIR, or set \(key("DATA_DIR"))")
        }
        guard let artifact = record.artifacts.first else { throw OperationError("backup of \(name) has no files") }
        var report = RestoreReport(target: name, destination: destination, dryRun: options.dryRun)
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
            let segBytes = Int64(record.facts["walSegmentBytes"]?.numberValue ?? Double(16 << 20))
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
        if options.dryRun { return report }

        let started = Date()
        let existed = FileOps.exists(destination)
        if let stopCommand { try Self.shell(stopCommand, what: "STOP_CMD") }
        /// After STOP_CMD, every way out that leaves the old cluster in place starts it again.
        func restartAfterFailure(_ why: String) -> String {
            guard let startCommand else { return why }
            do { try Self.shell(startCommand, what: "START_CMD"); return why + "; START_CMD ran again" } catch {
                return why + "; START_CMD FAILED too (\(error)): start PostgreSQL by hand"
            }
        }
        if FileOps.exists(pidFile) && Self.pidIsAlive(pidFile) {
            throw OperationError(restartAfterFailure("PostgreSQL is still running on \(destination) after STOP_CMD; nothing was changed"))
        }
        var aside: String?
        if nonEmpty {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.dateFormat = "yyyyMMdd_HHmmss"
            let path = "\(destination).pre-restore-\(f.string(from: Date()))"
            do { try FileOps.rename(destination, to: path) } catch {
                throw OperationError(restartAfterFailure("cannot move \(destination) aside (\(error)); nothing was changed"))
            }
            aside = path
            report.safetyCopy = path
            context.logger.info("moved the current data directory aside: \(path)")
        }
        do {
            try Interrupts.shared.checkpoint()
            try extract(context.setDirectory + "/" + artifact.path, sha256: artifact.sha256, into: destination)
            if pitr { try writeRecoverySettings(destination, targetTime: options.targetTime) }
            try Self.shell("chown -R \(Self.shellQuote(options.owner ?? restoreOwner)): \(Self.shellQuote(destination))", what: "chown")
            chmod(destination, 0o700)
            try Interrupts.shared.checkpoint()
            try Fault.point("restore-pg-basebackup")
        } catch {
            // Remove only what this restore created: the old directory was moved aside, or
            // there was none.
            var rollbackProblem: String?
            do {
                try Fault.point("rollback")
                if aside != nil || !existed {
                    try FileOps.removeTree(destination)
                } else {
                    // It was an empty directory (perhaps a mount point): empty it again.
                    for child in (try? FileManager.default.contentsOfDirectory(atPath: destination)) ?? [] {
                        try FileOps.removeTree(destination + "/" + child)
                    }
                }
            } catch { rollbackProblem = "cannot remove the partial \(destination): \(error)" }
            if let aside, rollbackProblem == nil {
                do { try FileOps.rename(aside, to: destination) } catch { rollbackProblem = "cannot move \(aside) back: \(error)" }
            }
            if let rollbackProblem {
                context.logger.error("restore of \(destination) failed AND THE ROLLBACK FAILED: \(rollbackProblem)")
                throw OperationError("restore into \(destination) failed (\(error)) AND THE ROLLBACK FAILED (\(rollbackProblem))\(aside.map { "; the previous data directory is \($0)" } ?? "")")
            }
            context.logger.error("restore of \(destination) failed; \(aside != nil ? "put the previous data directory back" : "removed the partial one")")
            throw OperationError(restartAfterFailure("restore into \(destination) failed and was rolled back: \(error)"))
        }
        if let startCommand { try Self.shell(startCommand, what: "START_CMD") }
        let seconds = Date().timeIntervalSince(started)
        report.facts = ["seconds": .number(seconds), "bytes": .number(Double(artifact.bytes))]
        report.lines.append("restored in \(Format.seconds(seconds))\(pitr ? "; recovery.signal written: the server recovers when it starts" : "")")
        if pitr {
            report.lines.append("once the data is checked, turn archiving back on (Backstop set archive_mode = off): psql -c 'ALTER SYSTEM RESET archive_mode' -c 'ALTER SYSTEM RESET restore_command' -c 'ALTER SYSTEM RESET recovery_target_time' -c 'ALTER SYSTEM RESET recovery_target_action', then restart PostgreSQL")
        }
        if let aside { report.lines.append("previous data directory: \(aside)") }
        return report
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
        guard reader.hexDigest() == sha256 else { throw OperationError("\(path): checksum mismatch while extracting") }
    }

    /// Asks the restored server to recover from the archive and then promote.
    private func writeRecoverySettings(_ dataDir: String, targetTime: Date?) throws {
        guard let walArchive else { return }
        try FileOps.writeAtomically(Data(), to: dataDir + "/recovery.signal")
        var lines = [
            "",
            "# Added by backstop restore: point-in-time recovery.",
            // Plain copies, or segments the archive_command compressed with gzip or zstd.
            "restore_command = 'f=\"\(walArchive)/%f\"; if [ -f \"$f\" ]; then cp \"$f\" \"%p\"; elif [ -f \"$f.gz\" ]; then gzip -dc \"$f.gz\" > \"%p\"; elif [ -f \"$f.zst\" ]; then zstd -dcq \"$f.zst\" > \"%p\"; else exit 1; fi'",
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

    static func pidIsAlive(_ pidFile: String) -> Bool {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = Int32(text.split(separator: "\n").first ?? "") else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    static func shell(_ command: String, what: String) throws {
        let outcome = try ChildProcess("/bin/sh", ["-c", command]).run()
        guard outcome.status == 0 else { throw OperationError("\(what) '\(command)' failed (exit \(outcome.status)): \(outcome.lastErrorLine)") }
    }

    static func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
