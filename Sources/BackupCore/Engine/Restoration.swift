import Foundation
import Logging

extension BackupEngine {
    /// Finds the backup of `target` to restore: in set `id`, or the newest good one for `latest`.
    /// With `before` (a point-in-time target) and `latest`, the newest good backup that finished
    /// before that moment.
    public func restoreSource(target name: String, id: String, before: Date? = nil) throws -> (StoredSet, TargetRecord) {
        _ = try target(named: name)
        if id == "latest", let before {
            let good = repository.completeSets().compactMap { set in
                set.manifest?.record(for: name).flatMap { $0.status == .ok ? (set, $0) : nil }
            }
            if let found = good.first(where: { $0.1.finishedAt <= before }) { return found }
            if let oldest = good.last {
                // A bad argument, like a time after the newest archived WAL: both exit 2.
                throw UsageError("--to-time \(Format.iso8601(before)) is before any good backup of '\(name)' finished; the oldest finished at \(Format.iso8601(oldest.1.finishedAt)): pick a later time")
            }
        }
        if id == "latest" {
            guard let found = repository.latestGood(target: name) else {
                throw OperationError("no good backup of target '\(name)' in \(repository.root)")
            }
            return found
        }
        let set = try repository.find(id)
        guard let record = set.manifest?.record(for: name) else {
            throw UsageError("backup \(set.id) has no target '\(name)' (it has: \(set.manifest?.targets.map(\.name).joined(separator: ", ") ?? "none"))")
        }
        guard record.status == .ok else {
            throw OperationError("target '\(name)' failed in backup \(set.id) (\(record.error ?? "unknown")); pick another backup")
        }
        return (set, record)
    }

    /// Restores `target` from set `id` (or `latest`): makes the plan and, unless
    /// `options.dryRun`, carries out that plan (`planRestore` then `carryOut`). A dry run
    /// returns the plan as a report.
    public func restore(target name: String, id: String, options: RestoreOptions) throws -> RestoreReport {
        let plan = try planRestore(target: name, id: id, options: options)
        if options.dryRun { return plan.report }
        return try carryOut(plan)
    }

    /// Works out the restore of `target` from set `id` (or `latest`) without changing anything.
    /// Unless `options.dryRun`, the backup is verified first (deeply, under the lock): a
    /// damaged backup is refused before the plan is shown. The returned value is what the
    /// administrator confirms and what `carryOut(_:)` carries out.
    public func planRestore(target name: String, id: String, options: RestoreOptions) throws -> RestorePlan {
        let target = try target(named: name)
        try checkRestoreOptions(options, kind: target.kind)
        let (set, record) = try restoreSource(target: name, id: id, before: options.targetTime)
        try ArtifactEncryption.shared.requireIdentity(for: record, setID: set.id)
        let runLock: RunLock? = options.dryRun ? nil : try lock()
        defer { runLock?.release() }
        try refuseOverInterruptedRestore(of: name)
        let tagged = restoreLogger(name)
        if !options.dryRun {
            // Never restore from a damaged backup: check it first, thoroughly (a snapshot tree's
            // files are re-hashed: a same-size corruption must not overwrite good live data).
            let verifyContext = VerifyContext(setDirectory: set.directory, deep: true, logger: tagged, showProgress: showProgress,
                                              checkSidecars: false)
            let problems = target.verify(record, context: verifyContext).filter { $0.severity == .error }
            if let first = problems.first {
                throw OperationError("backup \(set.id) of '\(name)' failed verification, not restoring: \(first.message)")
            }
        }
        tagged.debug("planning the restore of \(name) from backup \(set.id)")
        try Fault.point("restore-plan")
        let context = RestoreContext(setDirectory: set.directory, setID: set.id, safetyDirectory: repository.safetyDirectory,
                                     options: options, logger: tagged, showProgress: showProgress)
        var plan = try target.planRestore(record, context: context)
        plan.record = record
        plan.setDirectory = set.directory
        plan.options = options
        return plan
    }

    /// Carries out a plan from `planRestore` under the repository lock, as it was shown: the
    /// plan is not worked out again. Refuses when the backup it restores from is gone or
    /// changed, or (kinds with a plan step) when the destination is no longer what the plan
    /// saw. The target's safety copy, apply and rollback steps run in the one sequence of
    /// `BackupTarget.carryOutRestore`; a signal mid-restore waits for the rollback.
    public func carryOut(_ plan: RestorePlan) throws -> RestoreReport {
        let target = try target(named: plan.target)
        guard let record = plan.record else { throw OperationError("the restore plan of \(plan.target) was not made by planRestore") }
        let runLock = try lock()
        defer { runLock.release() }
        let set = try? repository.find(plan.setID)
        guard let set, set.directory == plan.setDirectory,
              let current = set.manifest?.record(for: plan.target), current.status == .ok,
              current.artifacts.map(\.sha256) == record.artifacts.map(\.sha256) else {
            throw OperationError("backup \(plan.setID) of '\(plan.target)' was removed or changed after the restore plan was made; nothing was restored")
        }
        try refuseOverInterruptedRestore(of: plan.target)
        let tagged = restoreLogger(plan.target)
        var options = plan.options
        options.dryRun = false
        let journal = RestoreJournal(repository: repository, target: plan.target, kind: target.kind, setID: set.id)
        let context = RestoreContext(setDirectory: set.directory, setID: set.id, safetyDirectory: repository.safetyDirectory,
                                     options: options, logger: tagged, showProgress: showProgress, journal: journal)
        tagged.info("restoring \(plan.target) from backup \(set.id)")
        try Fault.point("restore")
        // A signal mid-restore stops the work and lets the rollback finish before exiting.
        return try Interrupts.shared.deferring {
            do {
                let report = try target.carryOutRestore(plan, context: context)
                journal.finish()
                return report
            } catch {
                // Rolled back (or nothing changed): the journal goes. A failed rollback keeps it.
                if !journal.kept { journal.finish() }
                throw error
            }
        }
    }

    /// Never restore over what an interrupted restore left: its safety copy is the real
    /// "before", and a new safety copy would be of the half-restored state.
    private func refuseOverInterruptedRestore(of name: String) throws {
        if let left = RestoreJournal.interrupted(in: repository, lockHeld: false).first(where: { $0.target == name }) {
            throw OperationError("an interrupted restore of \(name) (from backup \(left.setID)) left changes behind: \(left.summary); "
                                 + "roll it back first with `restore \(name) --resume-rollback`, then restore again")
        }
    }

    private func restoreLogger(_ name: String) -> Logger {
        var tagged = logger
        tagged[metadataKey: "target"] = "\(name)"
        return tagged
    }
}

extension BackupEngine {
    /// Lets every target update what it keeps beside the sets (e.g. a `latest` link) after
    /// sets were removed. A failure is a warning: the removal itself is done.
    func afterRemoval() {
        for target in targets {
            do { try target.didRemoveSets(repository: repository) } catch {
                logger.warning("after removing backups: \(error)", metadata: ["target": "\(target.name)"])
            }
        }
    }
}

/// What `remove` would delete or deleted.
public struct RemovalPlan: Codable, Sendable {
    /// The set.
    public var id: String
    /// Its directory.
    public var directory: String
    /// Its size.
    public var bytes: Int64
    /// Whether it was actually removed.
    public var removed: Bool
}

extension BackupEngine {
    /// Removes set `id`. Refuses to remove the last good backup of any target unless `force`.
    public func remove(id: String, force: Bool, dryRun: Bool) throws -> RemovalPlan {
        let runLock: RunLock? = dryRun ? nil : try lock()
        defer { runLock?.release() }
        let set = try repository.find(id)
        let manifest = set.manifest!
        if !force {
            for record in manifest.targets where record.status == .ok {
                let others = repository.completeSets().filter { $0.directory != set.directory }
                let hasOther = others.contains { $0.manifest?.record(for: record.name)?.status == .ok }
                if !hasOther {
                    throw OperationError("backup \(set.id) holds the only good backup of target '\(record.name)'; refusing to remove it (use --force to override)")
                }
            }
        }
        var sizes = SetSizes(sets: repository.completeSets())
        let plan = RemovalPlan(id: set.id, directory: set.directory, bytes: sizes.freed([set.directory]), removed: !dryRun)
        if !dryRun {
            try repository.delete(set)
            // The command prints its own line on stdout; the daily log keeps one too.
            logger.info("removed backup \(set.tier)/\(set.id) (\(Format.bytes(plan.bytes)))", metadata: .logFileOnly)
            try Fault.point("remove")
            afterRemoval()
        }
        return plan
    }
}

extension BackupEngine {
    /// Kinds that restore into a database, the only ones `--into` applies to.
    static let kindsWithDatabases: Set<String> = ["pg_dump"]

    /// Refuses options that a restore of this kind would otherwise ignore or that would write
    /// into the backup directory itself (exit 2, before anything is read or changed).
    func checkRestoreOptions(_ options: RestoreOptions, kind: String) throws {
        if options.intoDatabase != nil && !Self.kindsWithDatabases.contains(kind) {
            throw UsageError("--into applies to database targets (\(Self.kindsWithDatabases.sorted().joined(separator: ", "))); a \(kind) target has no database to restore into: use --to")
        }
        if let destination = options.destination {
            if destination.isEmpty { throw UsageError("--to is empty; give the directory (or file) to restore into") }
            let resolved = Self.resolvedPath(destination)
            let root = Self.resolvedPath(repository.root)
            if resolved == root || resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/") {
                throw UsageError("--to \(destination) is inside the backup directory \(repository.root); restore somewhere else")
            }
        }
    }

    /// `path` made absolute and standardized, with the symbolic links of its longest existing
    /// ancestor resolved (the rest does not exist yet).
    static func resolvedPath(_ path: String) -> String {
        var absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        absolute = (absolute as NSString).standardizingPath
        var head = absolute
        var tail: [String] = []
        while head != "/" && !FileOps.exists(head) {
            tail.insert((head as NSString).lastPathComponent, at: 0)
            head = (head as NSString).deletingLastPathComponent
        }
        guard let real = realpath(head, nil) else { return absolute }
        defer { free(real) }
        let base = String(cString: real)
        return tail.isEmpty ? base : (base == "/" ? "" : base) + "/" + tail.joined(separator: "/")
    }
}
