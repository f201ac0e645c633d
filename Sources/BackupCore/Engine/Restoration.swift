import Foundation

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

    /// Restores `target` from set `id` (or `latest`) under the repository lock. The target takes
    /// its own safety copy and rolls back on failure.
    public func restore(target name: String, id: String, options: RestoreOptions) throws -> RestoreReport {
        let target = try target(named: name)
        let (set, record) = try restoreSource(target: name, id: id, before: options.targetTime)
        try ArtifactEncryption.shared.requireIdentity(for: record, setID: set.id)
        let runLock: RunLock? = options.dryRun ? nil : try lock()
        defer { runLock?.release() }
        var tagged = logger
        tagged[metadataKey: "target"] = "\(name)"
        // Never restore over what an interrupted restore left: its safety copy is the real
        // "before", and a new safety copy would be of the half-restored state.
        if let left = RestoreJournal.interrupted(in: repository, lockHeld: false).first(where: { $0.target == name }) {
            throw OperationError("an interrupted restore of \(name) (from backup \(left.setID)) left changes behind: \(left.summary); "
                                 + "roll it back first with `restore \(name) --resume-rollback`, then restore again")
        }
        let journal = options.dryRun ? nil : RestoreJournal(repository: repository, target: name, kind: target.kind, setID: set.id)
        let context = RestoreContext(setDirectory: set.directory, setID: set.id, safetyDirectory: repository.safetyDirectory,
                                     options: options, logger: tagged, showProgress: showProgress, journal: journal)
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
        if options.dryRun {
            tagged.debug("planning the restore of \(name) from backup \(set.id)")
        } else {
            tagged.info("restoring \(name) from backup \(set.id)")
            try Fault.point("restore")
        }
        // A signal mid-restore stops the work and lets the target roll back before exiting.
        return try Interrupts.shared.deferring {
            do {
                let report = try target.restore(record, context: context)
                journal?.finish()
                return report
            } catch {
                // Rolled back (or nothing changed): the journal goes. A failed rollback keeps it.
                if let journal, !journal.kept { journal.finish() }
                throw error
            }
        }
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
