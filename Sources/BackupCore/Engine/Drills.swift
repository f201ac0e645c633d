import Foundation

extension BackupEngine {
    /// Where drill results are kept, so health checks can say when the last good drill was.
    public var drillLogPath: String { repository.root + "/state/drills.json" }

    /// Runs the restore drill of every target (or `only`) that has one, on each target's
    /// newest good backup (or on set `id`). Results are appended to `drillLogPath`.
    public func drill(id: String? = nil, only: [String] = []) throws -> [DrillReport] {
        let selected = try select(only)
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
            try ArtifactEncryption.shared.requireIdentity(for: record, setID: set.id)
            var tagged = logger
            tagged[metadataKey: "target"] = "\(target.name)"
            let context = VerifyContext(setDirectory: set.directory, deep: false, logger: tagged, showProgress: showProgress)
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
