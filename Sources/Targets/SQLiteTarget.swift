import BackupCore
import Foundation

/// A SQLite database, copied hot with the online backup API, checked with
/// `PRAGMA integrity_check`, then compressed while it is hashed.
///
/// Config (`TARGET_<NAME>_…`): the keys declared in `configKeys`.
public struct SQLiteTarget: TargetKind {
    public let name: String
    /// The kind's name in config.
    public static let kindName = "sqlite"
    /// Every key of the kind, declared once (see `TargetKind`).
    public static let configKeys: [ConfigKey] = [
        ConfigKey("PATH", .path, help: "the database file (required)"),
    ] + Compression.configKeys(threads: false, of: "the copy")
    /// The live database file.
    public let path: String
    /// How the copy is compressed.
    public let compression: Compression

    /// Creates the target.
    public init(name: String, path: String, compression: Compression = .gzip(level: 6)) {
        self.name = name
        self.path = path
        self.compression = compression
    }

    /// Builds the target from its config keys.
    public init(settings s: TargetSettings) throws {
        self.init(name: s.name, path: try s.requirePath("PATH"), compression: try Compression(settings: s, threads: false))
    }

    public var summary: String { "SQLite database \(path) (\(compression.name))" }

    private var artifactName: String { (path as NSString).lastPathComponent + compression.suffix }

    public func preflight(_ context: PreflightContext) -> [Finding] {
        guard FileOps.exists(path) else { return [Finding(.error, target: name, "database \(path) does not exist")] }
        guard access(path, R_OK) == 0 else { return [Finding(.error, target: name, "database \(path) is not readable by this user")] }
        guard SQLiteDatabase.looksLikeSQLite(path) else { return [Finding(.error, target: name, "\(path) is not a SQLite database")] }
        return []
    }

    public func backup(_ context: BackupContext) throws -> TargetOutput {
        let copy = context.directory + "/.snapshot.db"
        defer { unlink(copy) }
        // The live file's mode and owner, so a restore can give a new file the same.
        let ownership = FileOwnership(of: path)
        let source = try SQLiteDatabase(path: path, readOnly: true)
        try source.backup(to: copy)
        chmod(copy, FileOps.fileMode)
        let snapshot = try SQLiteDatabase(path: copy, readOnly: true)
        let problems = try snapshot.integrityProblems()
        guard problems.isEmpty else {
            throw OperationError("integrity check of the copy of \(path) failed: \(problems.prefix(3).joined(separator: "; "))")
        }
        let counts = try snapshot.tableRowCounts()
        let rawSize = FileOps.size(copy) ?? 0

        let writer = try context.createArtifact(artifactName, label: "\(name): compress", expectedBytes: nil)
        do {
            let archive = try ArchiveWriter(sink: writer, format: .raw, compression: compression)
            let reader = try HashingFileReader(path: copy)
            defer { reader.close() }
            try archive.addStream(name: artifactName, size: nil) { write in
                while true {
                    let n = try reader.read()
                    if n == 0 { break }
                    try write(UnsafeRawBufferPointer(rebasing: reader.buffer[0..<n]))
                }
            }
            try archive.close()
        } catch {
            writer.abandon()
            throw error
        }
        let (bytes, sha) = try writer.finish()
        var output = TargetOutput()
        output.artifacts = [Artifact(path: artifactName, bytes: bytes, sha256: sha, format: "sqlite+\(compression.name)")]
        output.facts = [
            "source": .string(path),
            "databaseBytes": .number(Double(rawSize)),
            "tables": .object(counts.mapValues { .number(Double($0)) }),
            "integrityCheck": .string("ok"),
        ].merging(ownership?.facts ?? [:]) { $1 }
        output.toolVersions = ["sqlite": SQLiteDatabase.version, "libarchive": libarchiveVersion]
        return output
    }

    /// Decompresses the artifact into `destination` (a new file), hashing as it reads.
    private func decompress(_ reader: HashingFileReader, into destination: String) throws {
        let archive = try ArchiveReader(source: reader, raw: true)
        guard try archive.next() != nil else { throw OperationError("\(reader.path) is empty") }
        let out = try HashingFileWriter(path: destination)
        do {
            try archive.readData { try out.write($0) }
            _ = try out.finish()
        } catch {
            out.abandon()
            throw error
        }
    }

    public func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding] {
        context.checkArtifacts(record) { _, reader in
            let tmp = try TemporaryDirectory()
            defer { tmp.remove() }
            let copy = tmp.path + "/check.db"
            try decompress(reader, into: copy)
            let problems = try SQLiteDatabase(path: copy, readOnly: true).integrityProblems()
            if !problems.isEmpty {
                throw OperationError("SQLite integrity check failed: \(problems.prefix(3).joined(separator: "; "))")
            }
        }
    }
}

// MARK: restore

/// What a SQLite restore plan holds for its apply step.
struct SQLiteRestoreDetails: RestorePlanDetails {
    /// The compressed copy in the set.
    var artifact: Artifact
    /// Whether a database is at the destination (then it is copied aside first).
    var replacesExisting: Bool
    /// The mode and owner the restored file gets.
    var ownership: FileOwnership
}

extension SQLiteTarget {
    /// The destination file, what the restored file's mode and owner will be (the file it
    /// replaces wins, then what the backup recorded), and an online copy of the live database
    /// as the safety copy when one is there.
    public func planRestore(_ record: TargetRecord, context: RestoreContext) throws -> RestorePlan {
        guard let artifact = record.artifacts.first else { throw OperationError("backup of \(name) has no files") }
        let original = record.facts["source"]?.stringValue ?? path
        var destination = context.options.destination ?? original
        if destination.hasSuffix("/") || FileOps.isDirectory(destination) {
            destination = (destination.hasSuffix("/") ? String(destination.dropLast()) : destination) + "/" + (original as NSString).lastPathComponent
        }
        let state = DestinationState.of(destination)
        let exists = state.exists
        var plan = RestorePlan(target: name, kind: kind, setID: context.setID, destination: destination,
                               safetyCopy: exists ? .sqliteOnlineCopy : .none, destinationState: state)
        plan.lines.append("source: backup \(context.setID), \(artifact.path) (\(Format.bytes(artifact.bytes)))")
        plan.lines.append("destination: \(destination)\(exists ? " (exists; a safety copy is taken first)" : " (new file)")")
        // The restored file gets the mode and owner of the file it replaces; a new file gets
        // what the backup recorded (older backups recorded nothing: then 0600, this user).
        let ownership: FileOwnership
        let ownershipSource: String
        if exists, let current = FileOwnership(of: destination) {
            (ownership, ownershipSource) = (current, "kept from the file it replaces")
        } else if let recorded = FileOwnership(facts: record.facts) {
            (ownership, ownershipSource) = (recorded, "as recorded at backup time")
        } else {
            ownership = FileOwnership(mode: FileOps.fileMode, uid: geteuid(), gid: getegid())
            ownershipSource = "the backup recorded none"
        }
        plan.lines.append("file: \(ownership.description), \(ownershipSource)")
        plan.facts["fileMode"] = .string(ownership.modeText)
        plan.facts["uid"] = .number(Double(ownership.uid))
        plan.facts["gid"] = .number(Double(ownership.gid))
        plan.details = SQLiteRestoreDetails(artifact: artifact, replacesExisting: exists, ownership: ownership)
        return plan
    }

    /// A consistent copy of the current database (including its WAL) via the backup API.
    public func takeSafetyCopy(for plan: RestorePlan, context: RestoreContext, progress: RestoreProgress) throws -> String? {
        guard try plan.details(as: SQLiteRestoreDetails.self).replacesExisting else { return nil }
        let safetyPath = try context.safetyPath(target: name, suffix: ".db")
        do {
            try SQLiteDatabase(path: plan.destination, readOnly: true).backup(to: safetyPath)
        } catch {
            unlink(safetyPath)
            throw OperationError("could not take the safety copy of \(plan.destination) (\(error)); nothing was restored")
        }
        chmod(safetyPath, FileOps.fileMode)
        return safetyPath
    }

    /// Decompresses beside the destination, checks the checksum and `integrity_check`, moves a
    /// stale `-wal`/`-shm` aside, renames the new file into place and checks it again.
    public func applyRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                             progress: RestoreProgress) throws -> RestoreOutcome {
        let details = try plan.details(as: SQLiteRestoreDetails.self)
        let destination = plan.destination, artifact = details.artifact
        var outcome = RestoreOutcome()
        let dir = (destination as NSString).deletingLastPathComponent
        try FileOps.makeDirectory(dir)
        let incoming = "\(dir)/.\((destination as NSString).lastPathComponent).restore-\(getpid())"
        unlink(incoming)
        defer { unlink(incoming) }
        let reader = try HashingFileReader(path: context.setDirectory + "/" + artifact.path)
        try decompress(reader, into: incoming)
        // Before anything opens it: SQLite gives a -wal/-shm it creates the database's owner and mode.
        if let problem = details.ownership.apply(to: incoming) {
            context.logger.warning("\(problem)")
            outcome.lines.append("warning: \(problem)")
        }
        try reader.drain()
        guard reader.hexDigest() == artifact.sha256 else { throw OperationError("\(artifact.path): checksum mismatch; not restoring") }
        let problems = try SQLiteDatabase(path: incoming, readOnly: true).integrityProblems()
        guard problems.isEmpty else { throw OperationError("restored copy fails integrity check: \(problems[0])") }

        progress.willChangeDestination()
        // A stale -wal or -shm beside the new file would be replayed into it: move them aside.
        for suffix in ["-wal", "-shm"] where FileOps.exists(destination + suffix) {
            let aside = safetyCopy.map { $0 + suffix } ?? destination + suffix + ".pre-restore"
            try FileOps.rename(destination + suffix, to: aside)
        }
        try FileOps.rename(incoming, to: destination)
        try Fault.point("restore-sqlite")
        let after = try SQLiteDatabase(path: destination, readOnly: true)
        let afterProblems = try after.integrityProblems()
        guard afterProblems.isEmpty else { throw OperationError("integrity check after restore failed: \(afterProblems[0])") }
        let counts = try after.tableRowCounts()
        outcome.facts["tables"] = .object(counts.mapValues { .number(Double($0)) })
        outcome.lines.append("tables: \(counts.count), rows: \(counts.values.reduce(0, +))")
        return outcome
    }

    /// Copies the safety copy back with the backup API (or removes the new file when nothing
    /// was there before).
    public func rollBackRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                                progress: RestoreProgress) throws -> [String] {
        let details = try plan.details(as: SQLiteRestoreDetails.self)
        try Fault.point("rollback")
        guard let safetyCopy else {
            try FileOps.removeTree(plan.destination)
            return ["the new file was removed"]
        }
        unlink(plan.destination)
        try SQLiteDatabase(path: safetyCopy, readOnly: true).backup(to: plan.destination)
        _ = details.ownership.apply(to: plan.destination)
        return []
    }
}

// MARK: restore drill

extension SQLiteTarget {
    /// Restores the backup with the real restore into a new file in a scratch folder (nothing
    /// live is touched: the destination is new, so no safety copy is taken), runs
    /// `PRAGMA integrity_check` on it and compares every table's row count with the counts
    /// recorded from the backup copy at backup time. The scratch folder is always removed.
    public static var hasRestoreDrill: Bool { true }

    public func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport? {
        let scratch = try context.makeDrillScratch(name)
        defer { context.removeDrillScratch(scratch) }
        let original = record.facts["source"]?.stringValue ?? path
        let destination = scratch + "/" + (original as NSString).lastPathComponent
        var lines = ["restoring backup \(context.setID) of \(original) into scratch file \(destination)"]
        let started = Date()
        do {
            let restoreContext = RestoreContext(setDirectory: context.setDirectory, setID: context.setID,
                                                safetyDirectory: scratch + "/pre-restore", options: RestoreOptions(destination: destination),
                                                logger: context.logger, showProgress: false)
            _ = try restore(record, context: restoreContext)
        } catch {
            return DrillReport(target: name, setID: context.setID, passed: false, restoreSeconds: 0, lines: lines + ["restore failed: \(error)"])
        }
        let seconds = Date().timeIntervalSince(started)
        let db = try SQLiteDatabase(path: destination, readOnly: true)
        let integrity = try db.integrityProblems()
        if !integrity.isEmpty {
            lines.append("integrity_check failed: \(integrity.prefix(3).joined(separator: "; "))")
        } else {
            lines.append("integrity_check: ok")
        }
        let actual = try db.tableRowCounts().mapValues { Int64($0) }
        guard let expected = DrillChecks.counts(record.facts["tables"]) else {
            lines.append("the manifest records no row counts: \(actual.count) tables, \(actual.values.reduce(0, +)) rows not compared")
            return DrillReport(target: name, setID: context.setID, passed: false, restoreSeconds: seconds, lines: lines)
        }
        let problems = DrillChecks.compareCounts(expected: expected, actual: actual)
        if problems.isEmpty {
            lines.append("\(actual.count) tables, \(actual.values.reduce(0, +)) rows: every count matches the manifest")
        } else {
            lines.append("row counts differ from the manifest in \(problems.count) table(s):")
            lines += DrillChecks.shown(problems).map { "  " + $0 }
        }
        return DrillReport(target: name, setID: context.setID, passed: integrity.isEmpty && problems.isEmpty,
                           restoreSeconds: seconds, lines: lines)
    }
}
