import Foundation

extension BackupEngine {
    /// Where drill results are kept, so health checks can say when the last good drill was.
    public var drillLogPath: String { repository.root + "/state/drills.json" }

    /// Runs the restore drill of every target (or `only`) that has one, on each target's
    /// newest good backup (or on set `id`). Results are appended to `drillLogPath`.
    public func drill(id: String? = nil, only: [String] = []) throws -> [DrillReport] {
        let selected = try select(only)
        removeDrillLeftovers()
        var reports: [DrillReport] = []
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
                continue
            }
            var tagged = logger
            tagged[metadataKey: "target"] = "\(target.name)"
            let context = VerifyContext(setDirectory: set.directory, deep: false, logger: tagged, showProgress: showProgress,
                                        checkSidecars: false)
            do {
                guard let report = try target.restoreDrill(record, context: context) else {
                    if !only.isEmpty { throw UsageError("target '\(target.name)' (\(target.kind)) has no restore drill") }
                    continue
                }
                reports.append(report)
            } catch let error as UsageError {
                throw error
            } catch {
                reports.append(DrillReport(target: target.name, setID: set.id, passed: false, restoreSeconds: 0,
                                           lines: ["drill failed: \(error)"]))
            }
        }
        if reports.isEmpty { throw UsageError("no configured target supports a restore drill") }
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
