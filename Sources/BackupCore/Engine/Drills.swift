import Foundation

extension BackupEngine {
    /// Where drill results are kept, so health checks can say when the last good drill was.
    public var drillLogPath: String { repository.root + "/state/drills.json" }

    /// Runs the restore drill of every target (or `only`) that has one, on each target's
    /// newest good backup (or on set `id`), under the repository lock (so retention cannot
    /// remove a set while it is drilled). Each drill works in its own folder under the
    /// repository's scratch space and removes it. Results are appended to `drillLogPath`.
    /// SIGINT/SIGTERM during a drill let it stop its throwaway server and remove its scratch
    /// space before the process exits; an interrupted drill is not recorded.
    /// `kindsWithDrill` (every kind this build knows that has a drill) only serves the error
    /// when no selected target has one.
    public func drill(id: String? = nil, only: [String] = [], kindsWithDrill: [String] = []) throws -> [DrillReport] {
        try Interrupts.shared.deferring { try drillDeferred(id: id, only: only, kindsWithDrill: kindsWithDrill) }
    }

    private func drillDeferred(id: String?, only: [String], kindsWithDrill: [String]) throws -> [DrillReport] {
        let selected = try select(only)
        func noDrill(_ targets: [any BackupTarget]) -> UsageError {
            let list = targets.map { "\($0.name) (\($0.kind))" }.joined(separator: ", ")
            let kinds = kindsWithDrill.isEmpty ? "none" : kindsWithDrill.joined(separator: ", ")
            return UsageError("no restore drill for \(list): \(targets.count == 1 ? "its kind has" : "their kinds have") none; kinds with one: \(kinds)")
        }
        let runLock = try lock()
        defer { runLock.release() }
        // A drill killed with SIGKILL leaves its scratch folder behind: clear it under the lock.
        try repository.removeStaleScratch()
        removeDrillLeftovers()
        var reports: [DrillReport] = []
        var withoutDrill: [String] = []
        var withoutBackup: [String] = []
        for target in selected {
            let found: (StoredSet, TargetRecord)?
            if let id {
                let set = try repository.find(id)
                found = set.manifest?.record(for: target.name).flatMap { $0.status == .ok ? (set, $0) : nil }
            } else {
                found = repository.latestGood(target: target.name)
            }
            guard let (set, record) = found else {
                if !only.isEmpty { throw OperationError("no good backup of target '\(target.name)' to drill") }
                withoutBackup.append(target.name)
                continue
            }
            try ArtifactEncryption.shared.requireIdentity(for: record, setID: set.id)
            var tagged = logger
            tagged[metadataKey: "target"] = "\(target.name)"
            let context = VerifyContext(setDirectory: set.directory, deep: false, logger: tagged, showProgress: showProgress,
                                        scratchDirectory: repository.scratchDirectory, checkSidecars: false)
            do {
                guard let report = try target.restoreDrill(record, context: context) else {
                    if !only.isEmpty { throw noDrill([target]) }
                    withoutDrill.append("\(target.name) (\(target.kind))")
                    continue
                }
                // Interrupted: the drill has cleaned up; stop here without recording it.
                try Interrupts.shared.checkpoint()
                reports.append(report)
            } catch let error as UsageError {
                throw error
            } catch let error as InterruptedError {
                throw error
            } catch {
                reports.append(DrillReport(target: target.name, setID: set.id, passed: false, restoreSeconds: 0,
                                           lines: ["drill failed: \(error)"]))
            }
        }
        if reports.isEmpty {
            // Nothing drilled: either no target has a drill, or the ones that do have no good backup yet.
            let waiting = selected.filter { withoutBackup.contains($0.name) && type(of: $0).hasRestoreDrill }
            if waiting.isEmpty { throw noDrill(selected) }
            throw OperationError("no good backup to drill yet of \(waiting.map(\.name).joined(separator: ", "))\(id.map { " in backup \($0)" } ?? "")"
                                 + (withoutDrill.isEmpty ? "" : "; no restore drill for \(withoutDrill.joined(separator: ", "))"))
        }
        for name in withoutDrill { logger.warning("\(name) has no restore drill; not drilled") }
        try appendDrills(reports)
        return reports
    }

    /// Past drill results, oldest first.
    public func drillHistory() -> [DrillReport] {
        guard let data = FileManager.default.contents(atPath: drillLogPath) else { return [] }
        return (try? BackstopJSON.decoder().decode([DrillReport].self, from: data)) ?? []
    }

    private func appendDrills(_ reports: [DrillReport]) throws {
        try FileOps.makeDirectory(repository.root + "/state")
        // A history that cannot be read is kept aside, never silently overwritten.
        if let data = FileManager.default.contents(atPath: drillLogPath),
           (try? BackstopJSON.decoder().decode([DrillReport].self, from: data)) == nil {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.dateFormat = "yyyyMMdd_HHmmss"
            let aside = drillLogPath + ".corrupt-" + f.string(from: Date())
            try FileOps.rename(drillLogPath, to: aside)
            logger.warning("\(drillLogPath) could not be read; it was moved aside to \(aside) and a new drill history started")
        }
        let history = Array((drillHistory() + reports).suffix(200))
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(history), to: drillLogPath)
    }
}

/// Scratch resources of restore drills in progress (`state/drill-scratch.json`): each is
/// recorded before it is created and removed from the record once dropped, so a drill killed
/// with -9 leaves a record, and the next drill or `prune` removes the leftover.
public struct DrillLeftovers: Sendable {
    /// One scratch resource.
    public struct Item: Codable, Sendable {
        /// The target whose drill made it.
        public var target: String
        /// What the target removes it by (a scratch database's name).
        public var resource: String
        /// For people: what and where it is.
        public var description: String
        /// The drill's process.
        public var pid: Int32
        /// When it was made.
        public var at: Date
    }

    /// The repository root.
    public let root: String
    /// Opens the record of the repository at `root`.
    public init(root: String) { self.root = root }

    var path: String { root + "/state/drill-scratch.json" }

    /// Every recorded item.
    public func all() -> [Item] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return (try? BackstopJSON.decoder().decode([Item].self, from: data)) ?? []
    }

    /// Items whose drill process is gone: leftovers of killed drills.
    public func leftovers() -> [Item] {
        all().filter { $0.pid != getpid() && kill($0.pid, 0) != 0 && errno == ESRCH }
    }

    /// Records a scratch resource before it is created.
    public func add(target: String, resource: String, description: String) throws {
        try FileOps.makeDirectory(root + "/state")
        try save(all() + [Item(target: target, resource: resource, description: description, pid: getpid(), at: Date())])
    }

    /// Forgets a resource once it is gone. Best effort.
    public func remove(resource: String) {
        try? save(all().filter { $0.resource != resource })
    }

    private func save(_ items: [Item]) throws {
        if items.isEmpty { unlink(path); return }
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(items), to: path)
    }
}

extension BackupEngine {
    /// Removes what killed restore drills left behind (through their targets) and forgets it;
    /// a leftover that cannot be removed now stays recorded and is logged.
    public func removeDrillLeftovers() {
        let record = DrillLeftovers(root: repository.root)
        for item in record.leftovers() {
            guard let target = targets.first(where: { $0.name == item.target }) else { continue }
            do {
                try target.removeDrillLeftover(item.resource)
                record.remove(resource: item.resource)
                logger.warning("removed \(item.description), left by a restore drill that was killed", metadata: ["target": "\(item.target)"])
            } catch {
                logger.warning("could not remove \(item.description), left by a killed restore drill: \(error)", metadata: ["target": "\(item.target)"])
            }
        }
    }
}
