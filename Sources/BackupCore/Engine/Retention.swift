import Foundation

/// Which sets retention keeps, with a floor that is never crossed.
///
/// Two modes, chosen by `RETENTION=tiers|gfs` (or, when unset, by the keys present):
///
/// - `tiers` (the default, and what existing configs mean): each tier folder has its own limit,
///   "at most N sets" (`KEEP_DAILY=7`, also spelt `KEEP_DAILY_SETS=7`) and/or "none older than
///   N days" (`KEEP_DAILY_DAYS=7`). Sets of tiers without a limit are kept.
/// - `gfs` (grandfather-father-son, as restic and borg define it): over each stream of sets
///   (sets holding the same targets, whatever their tier), `KEEP_LAST` keeps the newest N,
///   `KEEP_HOURLY`/`_DAILY`/`_WEEKLY`/`_MONTHLY`/`_YEARLY` keep the newest set of each of the
///   newest N hours, days, ISO weeks, months or years that have sets (in the time zone `TZ`),
///   and `KEEP_WITHIN` keeps every set made within that duration before the stream's newest
///   set. Each rule counts on its own; a set is kept when any rule keeps it. Tier limits
///   (`KEEP_<TIER>_SETS`, `KEEP_<TIER>_DAYS`) keep sets of their tier in addition.
///
/// A set no rule keeps is removed, unless it is one of the newest `minimumGood` good backups of
/// any of its targets (the floor): retention never loses the newest good backup of a target,
/// however long its backups have been failing.
public struct RetentionPolicy: Sendable, Equatable {
    /// How the rules are read.
    public enum Mode: String, Sendable, Equatable {
        /// Per-tier counts and ages.
        case tiers
        /// Grandfather-father-son counts over each stream of sets.
        case gfs
    }

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

    /// Grandfather-father-son counts; nil means the rule is off.
    public struct GFS: Sendable, Equatable {
        /// The newest N sets.
        public var last: Int?
        /// The newest set of each of the newest N hours that have sets.
        public var hourly: Int?
        /// ... days.
        public var daily: Int?
        /// ... ISO weeks (Monday to Sunday; week 1 holds the year's first Thursday).
        public var weekly: Int?
        /// ... months.
        public var monthly: Int?
        /// ... years.
        public var yearly: Int?
        /// Every set made within this many seconds before the stream's newest set.
        public var within: TimeInterval?

        /// Creates counts.
        public init(last: Int? = nil, hourly: Int? = nil, daily: Int? = nil, weekly: Int? = nil,
                    monthly: Int? = nil, yearly: Int? = nil, within: TimeInterval? = nil) {
            self.last = last
            self.hourly = hourly
            self.daily = daily
            self.weekly = weekly
            self.monthly = monthly
            self.yearly = yearly
            self.within = within
        }

        /// True when no rule is on.
        public var isEmpty: Bool { self == GFS() }
    }

    /// The mode.
    public var mode: Mode
    /// Limits by tier name. In `tiers` mode, tiers not listed are never pruned; in `gfs` mode
    /// they keep their tier's sets in addition to the GFS rules.
    public var limits: [String: Limit]
    /// The GFS rules (`gfs` mode only).
    public var gfs: GFS
    /// The time zone calendar buckets are cut in.
    public var timeZone: TimeZone
    /// The newest good backups of every target that always remain (at least 1).
    public var minimumGood: Int

    /// Creates a `tiers` policy.
    public init(limits: [String: Limit], minimumGood: Int = 1) {
        self.mode = .tiers
        self.limits = limits
        self.gfs = GFS()
        self.timeZone = TimeZone.current
        self.minimumGood = max(1, minimumGood)
    }

    /// Creates a `gfs` policy, optionally with tier limits that keep more.
    public init(gfs: GFS, limits: [String: Limit] = [:], timeZone: TimeZone = .current, minimumGood: Int = 1) {
        self.mode = .gfs
        self.limits = limits
        self.gfs = gfs
        self.timeZone = timeZone
        self.minimumGood = max(1, minimumGood)
    }

    /// Keys that only mean something in `gfs` mode; any of them selects it when `RETENTION`
    /// is unset.
    static let gfsMarkers = ["KEEP_LAST", "KEEP_HOURLY", "KEEP_YEARLY", "KEEP_WITHIN", "RETENTION_DAYS"]

    /// Reads the retention keys (see the type's documentation and README "Retention"). Nil when
    /// no retention is configured.
    public static func from(config: Config) throws -> RetentionPolicy? {
        let tiers = Set(["daily", "weekly", "monthly"] + config.list("KEEP_TIERS"))
        for tier in tiers where !Repository.isValidTier(tier) {
            throw ConfigError.invalidValue(key: "KEEP_TIERS", file: config.origin("KEEP_TIERS"), value: tier, expected: "tier names (lowercase letters, digits, dashes)")
        }
        func tierKey(_ t: String) -> String { "KEEP_" + t.uppercased().replacingOccurrences(of: "-", with: "_") }
        // KEEP_HOURLY is a tier count when `hourly` is a tier (KEEP_TIERS=hourly).
        let markers = gfsMarkers.filter { key in !tiers.contains { tierKey($0) == key } && config.string(key) != nil }
        let explicit = config.string("RETENTION") == nil ? nil : try config.choice("RETENTION", ["tiers", "gfs"], default: "tiers")
        let mode: Mode = explicit.map { Mode(rawValue: $0)! } ?? (markers.isEmpty ? .tiers : .gfs)
        if mode == .tiers, let key = markers.first {
            throw ConfigError.invalidValue(key: key, file: config.origin(key), value: config.string(key)!,
                                           expected: "nothing while RETENTION=tiers: \(key) is a grandfather-father-son rule (set RETENTION=gfs, or remove it)")
        }
        let gfsKeys = ["KEEP_LAST", "KEEP_HOURLY", "KEEP_DAILY", "KEEP_WEEKLY", "KEEP_MONTHLY", "KEEP_YEARLY", "KEEP_WITHIN"]
        var known = Set(["KEEP_TIERS", "KEEP_MINIMUM"] + tiers.flatMap { [tierKey($0) + "_SETS", tierKey($0) + "_DAYS"] })
        known.formUnion(mode == .tiers ? tiers.map(tierKey) : gfsKeys)
        // A misspelt retention key must not silently mean "keep everything".
        for key in config.keys(withPrefix: "KEEP_") where !known.contains(key) {
            let hint = mode == .tiers
                ? "tier retention keys: KEEP_<TIER> (or KEEP_<TIER>_SETS) and KEEP_<TIER>_DAYS for \(tiers.sorted().joined(separator: ", ")) (more tiers with KEEP_TIERS), KEEP_MINIMUM; RETENTION=gfs for KEEP_LAST, KEEP_HOURLY ... KEEP_YEARLY, KEEP_WITHIN"
                : "with RETENTION=gfs: KEEP_LAST, KEEP_HOURLY, KEEP_DAILY, KEEP_WEEKLY, KEEP_MONTHLY, KEEP_YEARLY, KEEP_WITHIN, KEEP_<TIER>_SETS, KEEP_<TIER>_DAYS, KEEP_TIERS, KEEP_MINIMUM"
            let near = ConfigKey.nearest(to: key, among: known.sorted())
            throw ConfigError.unknownKey(key: key, file: config.origin(key), hint: near.map { "did you mean \(key) → \($0)?" } ?? hint)
        }
        func count(_ key: String) throws -> Int? {
            config.string(key) == nil ? nil : try config.int(key, default: 0, range: 1...100_000)
        }
        func either(_ a: String, _ b: String) throws -> String? {
            if config.string(a) != nil && config.string(b) != nil {
                throw ConfigError.invalidValue(key: b, file: config.origin(b), value: config.string(b)!, expected: "only one of \(a) and \(b) (they mean the same)")
            }
            return config.string(a) != nil ? a : config.string(b) != nil ? b : nil
        }
        var limits: [String: Limit] = [:]
        for tier in tiers {
            let k = tierKey(tier)
            let countKey = mode == .tiers ? try either(k, k + "_SETS") : (config.string(k + "_SETS") == nil ? nil : k + "_SETS")
            let c = try countKey.flatMap { try count($0) }
            var days = try count(k + "_DAYS")
            // CEP's RETENTION_WEEKS: its weekly tier, kept that many weeks.
            if tier == "weekly", try either(k + "_DAYS", "RETENTION_WEEKS") == "RETENTION_WEEKS" {
                days = try count("RETENTION_WEEKS").map { $0 * 7 }
            }
            if c != nil || days != nil { limits[tier] = Limit(count: c, days: days) }
        }
        let minimum = try config.int("KEEP_MINIMUM", default: 1, range: 1...1000)
        if mode == .tiers {
            return limits.isEmpty ? nil : RetentionPolicy(limits: limits, minimumGood: minimum)
        }
        var gfs = GFS(last: try count("KEEP_LAST"), hourly: try count("KEEP_HOURLY"), daily: try count("KEEP_DAILY"),
                      weekly: try count("KEEP_WEEKLY"), monthly: try count("KEEP_MONTHLY"), yearly: try count("KEEP_YEARLY"),
                      within: try config.duration("KEEP_WITHIN", default: nil))
        // The seeds' RETENTION_DAYS is KEEP_WITHIN in days.
        if try either("KEEP_WITHIN", "RETENTION_DAYS") == "RETENTION_DAYS" {
            gfs.within = TimeInterval(try config.int("RETENTION_DAYS", default: 0, range: 1...100_000)) * 86_400
        }
        if gfs.isEmpty && limits.isEmpty {
            throw ConfigError.missingKey(key: "KEEP_LAST, KEEP_DAILY, ... or KEEP_WITHIN (RETENTION=gfs needs at least one rule)", file: config.file)
        }
        return RetentionPolicy(gfs: gfs, limits: limits, timeZone: try timeZone(config), minimumGood: minimum)
    }

    /// `TZ` (an IANA name such as `Europe/Berlin`, as in the environment variable), or the
    /// system's time zone.
    public static func timeZone(_ config: Config) throws -> TimeZone {
        guard var raw = config.string("TZ") else { return TimeZone.current }
        if raw.hasPrefix(":") { raw.removeFirst() }
        if raw.hasPrefix("/usr/share/zoneinfo/") { raw.removeFirst("/usr/share/zoneinfo/".count) }
        if raw == "/etc/localtime" { return TimeZone.current }
        guard let tz = TimeZone(identifier: raw) else {
            throw ConfigError.invalidValue(key: "TZ", file: config.origin("TZ"), value: raw, expected: "a time zone name such as UTC or Europe/Berlin")
        }
        return tz
    }

    /// The zone name `TZ` gives (cleaned as `timeZone` reads it), or nil for the system's.
    public static func timeZoneName(_ config: Config) throws -> String? {
        let tz = try timeZone(config)
        guard var raw = config.string("TZ") else { return nil }
        if raw.hasPrefix(":") { raw.removeFirst() }
        if raw.hasPrefix("/usr/share/zoneinfo/") { raw.removeFirst("/usr/share/zoneinfo/".count) }
        return raw == "/etc/localtime" ? nil : TimeZone(identifier: raw) != nil ? raw : tz.identifier
    }

    /// A short description, for logs and `--help`-like output.
    public var summary: String {
        var parts: [String] = []
        if mode == .gfs {
            let g = gfs
            for (name, n) in [("last", g.last), ("hourly", g.hourly), ("daily", g.daily), ("weekly", g.weekly), ("monthly", g.monthly), ("yearly", g.yearly)] {
                if let n { parts.append("\(name) \(n)") }
            }
            if let w = g.within { parts.append("within \(ConfigUnits.format(w))") }
        }
        for (tier, l) in limits.sorted(by: { $0.key < $1.key }) {
            parts.append("tier \(tier): " + [l.count.map { "\($0) sets" }, l.days.map { "\($0) days" }].compactMap { $0 }.joined(separator: ", "))
        }
        return "\(mode.rawValue): " + parts.joined(separator: "; ") + "; floor \(minimumGood)"
    }
}

/// What retention needs to know about one set.
public struct RetentionCandidate: Sendable {
    /// A unique key, e.g. `daily/20240708_020000`.
    public var key: String
    /// The set ID (tie-breaker between equal start times).
    public var id: String
    /// The tier folder.
    public var tier: String
    /// When the run started.
    public var startedAt: Date
    /// Every target recorded in the set, in order, with whether it succeeded.
    public var targets: [(name: String, ok: Bool)]

    /// Describes a set.
    public init(key: String, id: String, tier: String, startedAt: Date, targets: [(name: String, ok: Bool)]) {
        self.key = key
        self.id = id
        self.tier = tier
        self.startedAt = startedAt
        self.targets = targets
    }

    /// The stream the set belongs to in `gfs` mode: the names of the targets it holds.
    public var stream: String { targets.map(\.name).sorted().joined(separator: " ") }
}

/// Retention's verdict on one set.
public struct RetentionVerdict: Sendable, Equatable {
    /// The candidate's key.
    public var key: String
    /// True if the set stays.
    public var keep: Bool
    /// The rules that keep it, e.g. `["daily #3", "monthly #1"]`, or the floor.
    public var keptBy: [String]
    /// One line: `kept: daily #3, monthly #1`, or why it goes.
    public var reason: String
}

extension RetentionPolicy {
    /// The newest-first order retention walks: by start time, then by ID.
    static func newestFirst(_ a: RetentionCandidate, _ b: RetentionCandidate) -> Bool {
        (a.startedAt, a.id, a.tier) > (b.startedAt, b.id, b.tier)
    }

    /// Decides every set, newest first. A pure function of the sets, the policy and `now`
    /// (`now` matters only for `KEEP_<TIER>_DAYS`), so the dry run and the real run agree.
    public func decide(_ candidates: [RetentionCandidate], now: Date) -> [RetentionVerdict] {
        let sets = candidates.sorted(by: RetentionPolicy.newestFirst)
        var keptBy: [String: [String]] = [:]
        var removal: [String: String] = [:]
        // Tier limits (both modes).
        var byTier: [String: [RetentionCandidate]] = [:]
        for s in sets { byTier[s.tier, default: []].append(s) }
        for (tier, inTier) in byTier {
            guard let limit = limits[tier] else {
                if mode == .tiers { for s in inTier { keptBy[s.key, default: []].append("tier \(tier) has no limit") } }
                continue
            }
            for (index, s) in inTier.enumerated() {
                let age = now.timeIntervalSince(s.startedAt) / 86_400
                let key = "KEEP_" + tier.uppercased().replacingOccurrences(of: "-", with: "_")
                if let c = limit.count, index >= c {
                    removal[s.key] = "beyond \(key)\(mode == .tiers ? "" : "_SETS")=\(c)"
                } else if let d = limit.days, age > Double(d) {
                    removal[s.key] = "older than \(d) days (\(key)_DAYS)"
                } else {
                    keptBy[s.key, default: []].append("tier \(tier) #\(index + 1)")
                }
            }
        }
        if mode == .gfs {
            var streams: [String: [RetentionCandidate]] = [:]
            for s in sets { streams[s.stream, default: []].append(s) }
            for stream in streams.values { applyGFS(stream, into: &keptBy) }
        }
        // The floor: the newest `minimumGood` good backups of every target stay, whatever the rules say.
        var floor: [String: String] = [:]
        var goodSeen: [String: Int] = [:]
        for s in sets {
            for t in s.targets where t.ok {
                goodSeen[t.name, default: 0] += 1
                if goodSeen[t.name]! <= minimumGood && floor[s.key] == nil {
                    floor[s.key] = minimumGood == 1 ? "floor: newest good backup of target '\(t.name)'"
                        : "floor: good backup #\(goodSeen[t.name]!) of \(minimumGood) of target '\(t.name)'"
                }
            }
        }
        var verdicts: [String: RetentionVerdict] = [:]
        for s in sets {
            if let rules = keptBy[s.key], !rules.isEmpty {
                verdicts[s.key] = RetentionVerdict(key: s.key, keep: true, keptBy: rules, reason: "kept: " + rules.joined(separator: ", "))
            } else if let rule = floor[s.key] {
                verdicts[s.key] = RetentionVerdict(key: s.key, keep: true, keptBy: [rule], reason: "kept: " + rule)
            } else {
                verdicts[s.key] = RetentionVerdict(key: s.key, keep: false, keptBy: [],
                                                   reason: removal[s.key] ?? (mode == .gfs ? "no rule keeps it" : "beyond its tier's limits"))
            }
        }
        return sets.map { verdicts[$0.key]! }
    }

    /// The GFS rules over one stream (newest first).
    func applyGFS(_ stream: [RetentionCandidate], into keptBy: inout [String: [String]]) {
        guard let newest = stream.first else { return }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        calendar.firstWeekday = 2               // ISO 8601: weeks start on Monday,
        calendar.minimumDaysInFirstWeek = 4     // and week 1 holds the year's first Thursday.
        let rules: [(String, Int?)] = [("last", gfs.last), ("hourly", gfs.hourly), ("daily", gfs.daily),
                                       ("weekly", gfs.weekly), ("monthly", gfs.monthly), ("yearly", gfs.yearly)]
        var seen = [Set<[Int]>](repeating: [], count: rules.count)
        for (position, s) in stream.enumerated() {
            let c = calendar.dateComponents([.year, .month, .day, .hour, .yearForWeekOfYear, .weekOfYear], from: s.startedAt)
            let buckets: [[Int]] = [[position], [c.year!, c.month!, c.day!, c.hour!], [c.year!, c.month!, c.day!],
                                    [c.yearForWeekOfYear!, c.weekOfYear!], [c.year!, c.month!], [c.year!]]
            for (i, (name, limit)) in rules.enumerated() {
                guard let limit, seen[i].count < limit, !seen[i].contains(buckets[i]) else { continue }
                seen[i].insert(buckets[i])
                keptBy[s.key, default: []].append("\(name) #\(seen[i].count)")
            }
            if let within = gfs.within, newest.startedAt.timeIntervalSince(s.startedAt) <= within {
                keptBy[s.key, default: []].append("within \(ConfigUnits.format(within))")
            }
        }
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
    /// Why: `kept: daily #3, monthly #1`, the floor, or why it goes.
    public var reason: String
    /// The rules that keep it (empty when it goes).
    public var keptBy: [String]
    /// What removing it frees (0 when kept).
    public var bytes: Int64
    /// Set for what a target keeps outside sets (e.g. old WAL): the target's name. `id` then
    /// describes what is removed.
    public var target: String?

    /// Describes a decision.
    public init(id: String, tier: String, remove: Bool, reason: String, bytes: Int64, target: String? = nil, keptBy: [String] = []) {
        self.id = id
        self.tier = tier
        self.remove = remove
        self.reason = reason
        self.keptBy = keptBy
        self.bytes = bytes
        self.target = target
    }
}

extension BackupEngine {
    /// Decides every complete set, newest first, without touching anything.
    public func pruneDecisions(_ policy: RetentionPolicy, now: Date = Date()) -> [PruneDecision] {
        let sets = repository.completeSets()
        let byKey = Dictionary(uniqueKeysWithValues: sets.map { ("\($0.tier)/\($0.id)", $0) })
        let candidates = sets.map { s in
            RetentionCandidate(key: "\(s.tier)/\(s.id)", id: s.id, tier: s.tier, startedAt: s.manifest!.startedAt,
                               targets: s.manifest!.targets.map { ($0.name, $0.status == .ok) })
        }
        let verdicts = policy.decide(candidates, now: now)
        // What each removal frees, oldest first, from the sizes recorded at backup time.
        var sizes = SetSizes(sets: sets)
        let order = verdicts.filter { !$0.keep }.map { byKey[$0.key]! }.sorted { ($0.id, $0.tier) < ($1.id, $1.tier) }
        let freed = Dictionary(uniqueKeysWithValues: zip(order.map(\.directory), sizes.freedInTurn(order.map(\.directory))))
        return verdicts.map { v in
            let s = byKey[v.key]!
            return PruneDecision(id: s.id, tier: s.tier, remove: !v.keep, reason: v.reason,
                                 bytes: v.keep ? 0 : freed[s.directory] ?? 0, keptBy: v.keptBy)
        }
    }

    /// Applies `policy` under the lock (or only reports with `dryRun`).
    public func prune(_ policy: RetentionPolicy, dryRun: Bool, now: Date = Date()) throws -> [PruneDecision] {
        let runLock: RunLock? = dryRun ? nil : try lock()
        defer { runLock?.release() }
        if !dryRun { removeDrillLeftovers() }
        var decisions = pruneDecisions(policy, now: now)
        logger.info("retention \(policy.summary)")
        for d in decisions where d.remove {
            if dryRun {
                logger.info("would remove \(d.tier)/\(d.id) (\(Format.bytes(d.bytes))): \(d.reason)")
            } else {
                try repository.delete(try repository.find("\(d.tier)/\(d.id)"))
                logger.info("removed \(d.tier)/\(d.id) (\(Format.bytes(d.bytes))): \(d.reason)")
            }
        }
        for d in decisions where !d.remove { logger.debug("\(d.tier)/\(d.id): \(d.reason)") }
        if !dryRun && decisions.contains(where: \.remove) { afterRemoval() }
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
