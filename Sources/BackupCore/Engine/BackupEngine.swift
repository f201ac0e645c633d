import Foundation
import Logging

/// The outcome of one backup run.
public struct RunSummary: Codable, Sendable {
    /// The set made, or nil when nothing was committed (dry run, or every target failed).
    public var setID: String?
    /// The set directory.
    public var directory: String?
    /// Per-target records (also for a dry run, with no artifacts).
    public var targets: [TargetRecord]
    /// Preflight findings.
    public var findings: [Finding]
    /// Incomplete sets removed before the run.
    public var cleanedUp: [String]
    /// Whether it was a dry run.
    public var dryRun: Bool
    /// True when every selected target succeeded.
    public var succeeded: Bool { targets.allSatisfy { $0.status == .ok } && !targets.isEmpty }
}

/// Runs targets into sets: locking, staging, checksums, sidecars, the manifest written last.
public struct BackupEngine: Sendable {
    /// Where sets go.
    public let repository: Repository
    /// The deployment's targets, in run order.
    public let targets: [any BackupTarget]
    /// The executable's name, stored in manifests.
    public let frontend: String
    /// The logger.
    public let logger: Logger
    /// Whether progress lines may be drawn.
    public let showProgress: Bool

    /// Creates an engine.
    public init(repository: Repository, targets: [any BackupTarget], frontend: String, logger: Logger,
                showProgress: Bool = isatty(STDERR_FILENO) == 1) {
        self.repository = repository
        self.targets = targets
        self.frontend = frontend
        self.logger = logger
        self.showProgress = showProgress
    }

    /// The targets named in `only` (all when empty), in configured order; unknown names are a
    /// usage error that lists the known ones.
    public func select(_ only: [String]) throws -> [any BackupTarget] {
        let known = targets.map(\.name)
        for name in only where !known.contains(name) {
            throw UsageError("unknown target '\(name)'; this deployment has: \(known.joined(separator: ", "))")
        }
        return only.isEmpty ? targets : targets.filter { only.contains($0.name) }
    }

    /// The target named `name`.
    public func target(named name: String) throws -> any BackupTarget {
        try select([name])[0]
    }

    /// Takes the repository lock (creating the repository if needed).
    public func lock() throws -> RunLock {
        try repository.prepare()
        return try RunLock(path: repository.lockPath)
    }

    /// Runs a backup of the selected targets into a new set in `tier`.
    public func backup(only: [String] = [], tier: String = "daily", dryRun: Bool = false) throws -> RunSummary {
        guard Repository.isValidTier(tier) else { throw UsageError("invalid tier '\(tier)': use lowercase letters, digits and dashes") }
        let selected = try select(only)
        // The lock first: a second run is refused before it touches any server.
        let runLock: RunLock? = dryRun ? nil : try lock()
        defer { runLock?.release() }
        var findings: [Finding] = []
        let preflightContext = PreflightContext(logger: logger)
        for target in selected { findings += target.preflight(preflightContext) }
        for f in findings {
            switch f.severity {
            case .error: logger.error("\(f.message)", metadata: ["target": "\(f.target)"])
            case .warning: logger.warning("\(f.message)", metadata: ["target": "\(f.target)"])
            case .info: logger.info("\(f.message)", metadata: ["target": "\(f.target)"])
            }
        }

        if dryRun {
            let records = selected.map { t -> TargetRecord in
                let blocked = findings.contains { $0.target == t.name && $0.severity == .error }
                logger.info("dry run: would back up \(t.summary)\(blocked ? " (blocked by preflight errors)" : "")", metadata: ["target": "\(t.name)"])
                return TargetRecord(name: t.name, kind: t.kind, status: blocked ? .failed : .ok, error: nil,
                                    startedAt: Date(), finishedAt: Date(), artifacts: [], warnings: [], facts: [:], toolVersions: [:])
            }
            return RunSummary(setID: nil, directory: nil, targets: records, findings: findings, cleanedUp: [], dryRun: true)
        }

        let cleaned = try repository.removeIncomplete()
        for path in cleaned { logger.warning("removed incomplete backup left by an earlier run: \(path)") }

        // Nothing can run: the preflight errors above are the whole story (one line each); no
        // "started" line after them, no set, and the failures are kept for stats.
        let blocked = selected.filter { t in findings.contains { $0.target == t.name && $0.severity == .error } }
        if blocked.count == selected.count {
            let records = selected.map { t in
                failedRecord(t, start: Date(), reason: "preflight: \(findings.first { $0.target == t.name && $0.severity == .error }!.message)")
            }
            repository.recordFailures(records)
            return RunSummary(setID: nil, directory: nil, targets: records, findings: findings, cleanedUp: cleaned, dryRun: false)
        }

        let started = Date()
        let tierDir = repository.root + "/" + tier
        try FileOps.makeDirectory(tierDir)
        let id = repository.newSetID(at: started, tier: tier)
        let staging = "\(tierDir)/.\(id).partial"
        let final = "\(tierDir)/\(id)"
        Interrupts.shared.registerPartial(staging)
        Interrupts.shared.registerPartial(final)
        defer {
            Interrupts.shared.unregisterPartial(staging)
            Interrupts.shared.unregisterPartial(final)
        }
        try FileOps.makeDirectory(staging)
        let skipped = blocked.isEmpty ? "" : " (not \(blocked.map(\.name).joined(separator: ", ")): preflight failed)"
        logger.info("backup \(id) started: \(selected.filter { t in !blocked.contains { $0.name == t.name } }.map(\.name).joined(separator: ", "))\(skipped) -> \(final)")

        var records: [TargetRecord] = []
        for target in selected {
            var tagged = logger
            tagged[metadataKey: "target"] = "\(target.name)"
            let targetStart = Date()
            if let blocker = findings.first(where: { $0.target == target.name && $0.severity == .error }) {
                records.append(failedRecord(target, start: targetStart, reason: "preflight: \(blocker.message)"))
                continue
            }
            let dir = staging + "/" + target.name
            let previous = repository.latestGood(target: target.name).map { ($0.1, $0.0.directory + "/" + target.name) }
            do {
                try FileOps.makeDirectory(dir)
                let context = BackupContext(setID: id, directory: dir, previous: previous, logger: tagged,
                                            showProgress: showProgress, repository: repository)
                var output = try target.backup(context)
                for i in output.artifacts.indices {
                    if context.encryptedArtifacts.contains(output.artifacts[i].path) {
                        output.artifacts[i].path += ArtifactEncryption.suffix
                    }
                    let name = output.artifacts[i].path
                    try writeSidecar(directory: dir, name: name, sha256: output.artifacts[i].sha256)
                    output.artifacts[i].path = target.name + "/" + name
                }
                FileOps.syncDirectory(dir)
                try Fault.point("backup-" + target.name)
                let record = TargetRecord(name: target.name, kind: target.kind, status: .ok, error: nil,
                                          startedAt: targetStart, finishedAt: Date(), artifacts: output.artifacts,
                                          warnings: output.warnings, facts: output.facts, toolVersions: output.toolVersions)
                for w in output.warnings { tagged.warning("\(w)") }
                tagged.info("done: \(output.artifacts.count) file(s), \(Format.bytes(record.bytes)) in \(Format.seconds(record.finishedAt.timeIntervalSince(targetStart)))")
                records.append(record)
            } catch {
                // With one target this line is the whole story: no summary line follows.
                tagged.error("failed: \(error)\(selected.count == 1 ? "; nothing was kept" : "")")
                try? FileOps.removeTree(dir)
                records.append(failedRecord(target, start: targetStart, reason: "\(error)"))
            }
        }

        guard records.contains(where: { $0.status == .ok }) else {
            try FileOps.removeTree(staging)
            // No set records this run, so keep its failures where stats and health checks look.
            repository.recordFailures(records.filter { $0.status == .failed })
            if selected.count > 1 { logger.error("backup \(id) failed: no target succeeded; nothing was kept") }
            return RunSummary(setID: nil, directory: nil, targets: records, findings: findings, cleanedUp: cleaned, dryRun: false)
        }

        // Commit: rename into place, then write the manifest last.
        try Fault.point("before-rename")
        try FileOps.rename(staging, to: final)
        try Fault.point("before-manifest")
        let manifest = SetManifest(id: id, tier: tier, frontend: frontend, host: ProcessInfo.processInfo.hostName,
                                   backstopVersion: backstopVersion, startedAt: started, finishedAt: Date(),
                                   status: records.allSatisfy { $0.status == .ok } ? .complete : .partial,
                                   targets: records)
        try repository.writeManifest(manifest, in: final)
        Interrupts.shared.unregisterPartial(final)

        for target in selected {
            guard let record = records.first(where: { $0.name == target.name }), record.status == .ok else { continue }
            var tagged = logger
            tagged[metadataKey: "target"] = "\(target.name)"
            let context = BackupContext(setID: id, directory: final + "/" + target.name, previous: nil, logger: tagged,
                                        showProgress: false, repository: repository)
            do { try target.didCommit(record, setDirectory: final, context: context) } catch {
                tagged.warning("after commit: \(error)")
            }
        }
        try Fault.point("backup-committed")
        let failed = records.filter { $0.status == .failed }
        if failed.isEmpty {
            logger.info("backup \(id) complete: \(Format.bytes(manifest.dataBytes)) data, \(Format.bytes(FileOps.freedSize(final))) on disk with manifest and checksum files, in \(Format.seconds(manifest.finishedAt.timeIntervalSince(started)))")
        } else {
            logger.error("backup \(id) partial: failed targets: \(failed.map(\.name).joined(separator: ", "))")
        }
        return RunSummary(setID: id, directory: final, targets: records, findings: findings, cleanedUp: cleaned, dryRun: false)
    }

    private func failedRecord(_ target: any BackupTarget, start: Date, reason: String) -> TargetRecord {
        TargetRecord(name: target.name, kind: target.kind, status: .failed, error: reason, startedAt: start,
                     finishedAt: Date(), artifacts: [], warnings: [], facts: [:], toolVersions: [:])
    }

    private func writeSidecar(directory: String, name: String, sha256: String) throws {
        let base = (name as NSString).lastPathComponent
        let sidecar = directory + "/" + name + ".sha256"
        try FileOps.writeAtomically(Data("\(sha256)  \(base)\n".utf8), to: sidecar)
    }
}
