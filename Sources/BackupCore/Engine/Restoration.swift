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
                throw OperationError("no good backup of '\(name)' finished before \(Format.iso8601(before)); the oldest finished at \(Format.iso8601(oldest.1.finishedAt))")
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
        let context = RestoreContext(setDirectory: set.directory, setID: set.id, safetyDirectory: repository.safetyDirectory,
                                     options: options, logger: tagged, showProgress: showProgress)
        if !options.dryRun {
            // Never restore from a damaged backup: check it first, thoroughly (a snapshot tree's
            // files are re-hashed: a same-size corruption must not overwrite good live data).
            let verifyContext = VerifyContext(setDirectory: set.directory, deep: true, logger: tagged, showProgress: showProgress)
            let problems = target.verify(record, context: verifyContext).filter { $0.severity == .error }
            if let first = problems.first {
                throw OperationError("backup \(set.id) of '\(name)' failed verification, not restoring: \(first.message)")
            }
        }
        if options.dryRun {
            tagged.debug("planning the restore of \(name) from backup \(set.id)")
        } else {
            tagged.info("restoring \(name) from backup \(set.id)")
        }
        // A signal mid-restore stops the work and lets the target roll back before exiting.
        return try Interrupts.shared.deferring { try target.restore(record, context: context) }
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
        let plan = RemovalPlan(id: set.id, directory: set.directory, bytes: FileOps.freedSize(set.directory), removed: !dryRun)
        if !dryRun {
            try repository.delete(set)
            logger.info("removed backup \(set.tier)/\(set.id) (\(Format.bytes(plan.bytes)))")
        }
        return plan
    }
}
