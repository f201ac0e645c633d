import Foundation

/// How many sets to keep per tier, and for how long, with a floor that is never crossed.
///
/// A set is a candidate for removal when its tier keeps a count and newer sets fill it, or when
/// it is older than its tier's age limit. A candidate is kept anyway if removing it would leave
/// any of its targets with fewer than `minimumGood` good backups: retention never loses the
/// last good backup.
public struct RetentionPolicy: Sendable, Equatable {
    /// Per-tier limits.
    public struct Limit: Sendable, Equatable {
        /// Keep at most this many sets of the tier (nil: no count limit).
        public var count: Int?
        /// Remove sets older than this many days (nil: no age limit).
        public var days: Int?

        /// Creates a limit.
        public init(count: Int? = nil, days: Int? = nil) {
            self.count = count
            self.days = days
        }
    }

    /// Limits by tier name; tiers not listed are never pruned.
    public var limits: [String: Limit]
    /// Good backups of every target that always remain (at least 1).
    public var minimumGood: Int

    /// Creates a policy.
    public init(limits: [String: Limit], minimumGood: Int = 1) {
        self.limits = limits
        self.minimumGood = max(1, minimumGood)
    }

    /// Reads `KEEP_<TIER>` (a count) and `KEEP_<TIER>_DAYS` for the daily, weekly and monthly
    /// tiers and any tier in `KEEP_TIERS`, plus `KEEP_MINIMUM` (default 1). Nil when none is set.
    public static func from(config: Config) throws -> RetentionPolicy? {
        var limits: [String: Limit] = [:]
        let tiers = Set(["daily", "weekly", "monthly"] + config.list("KEEP_TIERS"))
        // A misspelt retention key must not silently mean "keep everything".
        let known = Set(["KEEP_TIERS", "KEEP_MINIMUM"] + tiers.flatMap { t -> [String] in
            let k = "KEEP_" + t.uppercased().replacingOccurrences(of: "-", with: "_")
            return [k, k + "_DAYS"]
        })
        for key in config.keys(withPrefix: "KEEP_") where !known.contains(key) {
            throw ConfigError.unknownKey(key: key, file: config.file,
                                         hint: "retention keys: KEEP_<TIER> and KEEP_<TIER>_DAYS for \(tiers.sorted().joined(separator: ", ")) (more tiers with KEEP_TIERS), KEEP_MINIMUM")
        }
        for tier in tiers {
            guard Repository.isValidTier(tier) else {
                throw ConfigError.invalidValue(key: "KEEP_TIERS", file: config.file, value: tier, expected: "tier names (lowercase letters, digits, dashes)")
            }
            let key = "KEEP_" + tier.uppercased().replacingOccurrences(of: "-", with: "_")
            let count = config.string(key) == nil ? nil : try config.int(key, default: 0, range: 1...100_000)
            let days = config.string(key + "_DAYS") == nil ? nil : try config.int(key + "_DAYS", default: 0, range: 1...100_000)
            if count != nil || days != nil { limits[tier] = Limit(count: count, days: days) }
        }
        guard !limits.isEmpty else { return nil }
        return RetentionPolicy(limits: limits, minimumGood: try config.int("KEEP_MINIMUM", default: 1, range: 1...1000))
    }
}

/// One set retention looked at.
public struct PruneDecision: Codable, Sendable {
    /// The set.
    public var id: String
    /// Its tier.
    public var tier: String
    /// True if it is (or would be) removed.
    public var remove: Bool
    /// Why.
    public var reason: String
    /// Its size on disk.
    public var bytes: Int64
    /// Set for what a target keeps outside sets (e.g. old WAL): the target's name. `id` then
    /// describes what is removed.
    public var target: String?

    /// Describes a decision.
    public init(id: String, tier: String, remove: Bool, reason: String, bytes: Int64, target: String? = nil) {
        self.id = id
        self.tier = tier
        self.remove = remove
        self.reason = reason
        self.bytes = bytes
        self.target = target
    }
}

extension BackupEngine {
    /// Decides which sets `policy` removes, newest first, without touching anything.
    public func pruneDecisions(_ policy: RetentionPolicy, now: Date = Date()) -> [PruneDecision] {
        let sets = repository.completeSets()
        var remaining = sets
        var decisions: [String: PruneDecision] = [:]
        var candidates: [(StoredSet, String)] = []
        for (tier, limit) in policy.limits {
            let inTier = sets.filter { $0.tier == tier } // newest first
            for (index, set) in inTier.enumerated() {
                let age = now.timeIntervalSince(set.manifest!.startedAt) / 86_400
                if let count = limit.count, index >= count {
                    candidates.append((set, "beyond KEEP_\(tier.uppercased())=\(count)"))
                } else if let days = limit.days, age > Double(days) {
                    candidates.append((set, "older than \(days) days"))
                }
            }
        }
        // Oldest first, so the floor protects the newest good backups.
        for (set, reason) in candidates.sorted(by: { $0.0.id < $1.0.id }) {
            let good = set.manifest!.targets.filter { $0.status == .ok }.map(\.name)
            let others = remaining.filter { $0.directory != set.directory }
            let starved = good.first { name in
                others.filter { $0.manifest?.record(for: name)?.status == .ok }.count < policy.minimumGood
            }
            if let starved {
                decisions[set.directory] = PruneDecision(id: set.id, tier: set.tier, remove: false,
                                                         reason: "kept: floor of \(policy.minimumGood) good backup(s) of target '\(starved)'", bytes: 0)
            } else {
                remaining = others
                decisions[set.directory] = PruneDecision(id: set.id, tier: set.tier, remove: true, reason: reason,
                                                         bytes: FileOps.freedSize(set.directory))
            }
        }
        return sets.compactMap { decisions[$0.directory] }
    }

    /// Applies `policy` under the lock (or only reports with `dryRun`).
    public func prune(_ policy: RetentionPolicy, dryRun: Bool) throws -> [PruneDecision] {
        let runLock: RunLock? = dryRun ? nil : try lock()
        defer { runLock?.release() }
        var decisions = pruneDecisions(policy)
        for d in decisions where d.remove {
            if dryRun {
                logger.info("would remove \(d.tier)/\(d.id) (\(Format.bytes(d.bytes))): \(d.reason)")
            } else {
                try repository.delete(try repository.find("\(d.tier)/\(d.id)"))
                logger.info("removed \(d.tier)/\(d.id) (\(Format.bytes(d.bytes))): \(d.reason)")
            }
        }
        for d in decisions where !d.remove { logger.info("\(d.tier)/\(d.id): \(d.reason)") }
        // Then what targets keep beside their sets, judged by the sets that remain.
        let removed = Set(decisions.filter(\.remove).map { "\($0.tier)/\($0.id)" })
        let remaining = repository.completeSets().filter { !removed.contains("\($0.tier)/\($0.id)") }
        for target in targets {
            let kept = remaining.compactMap { $0.manifest?.record(for: target.name) }.filter { $0.status == .ok }
            guard !kept.isEmpty else { continue }
            for d in try target.pruneOutsideSets(keeping: kept, dryRun: dryRun) {
                logger.info("\(dryRun && d.remove ? "would remove" : d.remove ? "removed" : "kept") \(d.id) (\(Format.bytes(d.bytes))): \(d.reason)",
                            metadata: ["target": "\(target.name)"])
                decisions.append(d)
            }
        }
        if !dryRun { try Fault.point("prune") }
        return decisions
    }
}
