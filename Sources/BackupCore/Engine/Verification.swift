import Foundation

/// The verification result for one set.
public struct SetVerification: Codable, Sendable {
    /// The set's ID.
    public var id: String
    /// The set's tier.
    public var tier: String
    /// Targets checked.
    public var targets: [String]
    /// Problems found (empty means good).
    public var findings: [Finding]
    /// True when no finding is an error.
    public var ok: Bool { !findings.contains { $0.severity == .error } }
}

extension BackupEngine {
    /// Verifies `sets`: every artifact's checksum plus each target's own content checks.
    /// Targets of a set that this deployment no longer configures get the checksum check only.
    public func verify(_ sets: [StoredSet], only: [String] = [], deep: Bool = false) throws -> [SetVerification] {
        _ = try select(only)
        var results: [SetVerification] = []
        for set in sets {
            guard let manifest = set.manifest else {
                let staging = set.problem == Repository.stagingProblem
                results.append(SetVerification(id: set.id, tier: set.tier, targets: [],
                                               findings: [Finding(staging ? .warning : .error, target: "-", set.problem ?? "incomplete: no manifest")]))
                continue
            }
            var findings: [Finding] = []
            var names: [String] = []
            for record in manifest.targets where only.isEmpty || only.contains(record.name) {
                names.append(record.name)
                if record.status == .failed {
                    findings.append(Finding(.warning, target: record.name, "this target failed in this run: \(record.error ?? "unknown")"))
                    continue
                }
                var tagged = logger
                tagged[metadataKey: "target"] = "\(record.name)"
                let context = VerifyContext(setDirectory: set.directory, deep: deep, logger: tagged, showProgress: showProgress)
                if let target = targets.first(where: { $0.name == record.name && $0.kind == record.kind }) {
                    findings += target.verify(record, context: context)
                } else {
                    findings += context.checkArtifacts(record) { _, _ in }
                }
            }
            results.append(SetVerification(id: set.id, tier: set.tier, targets: names, findings: findings))
        }
        return results
    }
}
