import Foundation

/// The thresholds of the health check, read from config.
public struct HealthSettings: Sendable {
    /// Per-target thresholds.
    public struct Target: Sendable {
        /// A backup older than this is a warning; twice as old is critical.
        public var maxAge: TimeInterval
        /// A smaller newest backup is critical (nil: no minimum).
        public var minBytes: Int64?
        /// Shrinking by more than this fraction against the backup before is a warning.
        public var shrinkWarn: Double
    }
    /// Thresholds by target name.
    public var targets: [String: Target]
    /// For targets not listed (e.g. in tests).
    public var fallback: Target
    /// Percent of the backup disk in use that is a warning, and critical.
    public var diskWarnPercent: Double
    public var diskCriticalPercent: Double
    /// The newest archived WAL segment older than this is a warning.
    public var walMaxAge: TimeInterval
    /// The last restore drill older than this is a warning (only where drills have run).
    public var drillMaxAge: TimeInterval
    /// With an off-site copy configured: the newest set in the bucket older than this is a
    /// warning, twice as old critical (`OFFSITE_MAX_AGE`, default twice `MAX_AGE`).
    public var offsiteMaxAge: TimeInterval? = nil

    /// The default freshness threshold, `26h` (the journal document's).
    public static let defaultMaxAge: TimeInterval = 26 * 3600

    /// Target keys the health check reads (`TARGET_<NAME>_…`), accepted for every target kind.
    public static let targetConfigKeys: [ConfigKey] = [
        ConfigKey("MAX_AGE", .duration, default: "MAX_AGE", help: "health: this target's newest backup older than this warns"),
        ConfigKey("MIN_SIZE", .size, default: "MIN_SIZE", help: "health: this target's newest good backup must be at least this big"),
        ConfigKey("SHRINK_WARN", .number, default: "SHRINK_WARN", help: "health: warn when a backup shrinks by more than this fraction"),
    ]

    /// Reads `MAX_AGE`, `MIN_SIZE`, `SHRINK_WARN` (each also as `TARGET_<NAME>_…`),
    /// `DISK_USAGE_WARN`, `DISK_USAGE_CRITICAL`, `WAL_MAX_AGE` and `DRILL_MAX_AGE`.
    public static func from(config: Config, targets names: [String]) throws -> HealthSettings {
        let maxAge = try config.duration("MAX_AGE", default: defaultMaxAge)!
        let minBytes = try config.byteSize("MIN_SIZE", default: nil)
        let shrink = try config.double("SHRINK_WARN", default: 0.5, range: 0...1)
        let fallback = Target(maxAge: maxAge, minBytes: minBytes, shrinkWarn: shrink)
        var perTarget: [String: Target] = [:]
        for name in names {
            let p = "TARGET_" + name.uppercased().replacingOccurrences(of: "-", with: "_") + "_"
            perTarget[name] = Target(maxAge: try config.duration(p + "MAX_AGE", default: maxAge)!,
                                     minBytes: try config.byteSize(p + "MIN_SIZE", default: minBytes),
                                     shrinkWarn: try config.double(p + "SHRINK_WARN", default: shrink, range: 0...1))
        }
        let warn = try config.double("DISK_USAGE_WARN", default: 85, range: 1...100)
        let crit = try config.double("DISK_USAGE_CRITICAL", default: max(95, warn), range: 1...100)
        guard crit >= warn else {
            throw ConfigError.invalidValue(key: "DISK_USAGE_CRITICAL", file: config.origin("DISK_USAGE_CRITICAL"), value: config.string("DISK_USAGE_CRITICAL") ?? "",
                                           expected: "a percentage no lower than DISK_USAGE_WARN (\(warn))")
        }
        var settings = HealthSettings(targets: perTarget, fallback: fallback, diskWarnPercent: warn, diskCriticalPercent: crit,
                                      walMaxAge: try config.duration("WAL_MAX_AGE", default: 6 * 3600)!,
                                      drillMaxAge: try config.duration("DRILL_MAX_AGE", default: 8 * 86400)!)
        if ["OFFSITE", "OFFSITE_URL", "OFFSITE_BUCKET"].contains(where: { config.string($0) != nil }) {
            settings.offsiteMaxAge = try config.duration("OFFSITE_MAX_AGE", default: 2 * maxAge)!
        }
        return settings
    }

    /// The thresholds for `target`.
    public func of(_ target: String) -> Target { targets[target] ?? fallback }
}

extension BackupEngine {
    /// Evaluates the health of every target: freshness, the last run and its warnings, size,
    /// the newest backup's checksum files (and with `verify`, a full verify), the WAL archive,
    /// the last restore drill, and the backup disk. Reads only; never writes.
    public func health(_ settings: HealthSettings, deployment: String, verify: Bool = false, now: Date = Date()) -> HealthReport {
        var issues: [HealthIssue] = []
        var healths: [TargetHealth] = []
        let sets = repository.completeSets()
        let unkept = repository.failures()
        let drills = drillHistory()
        var expectedNext: Int64 = 0
        for target in targets {
            let t = settings.of(target.name)
            var mine: [HealthIssue] = []
            func add(_ aspect: String, _ status: HealthStatus, _ message: String) {
                mine.append(HealthIssue(check: target.name, aspect: aspect, status: status, message: message))
            }
            var h = TargetHealth(name: target.name, kind: target.kind, status: .ok, maxAgeSeconds: t.maxAge)
            // The newest good backup, and the one before it for the size comparison.
            let good = sets.compactMap { s -> (StoredSet, TargetRecord)? in
                guard let r = s.manifest?.record(for: target.name), r.status == .ok else { return nil }
                return (s, r)
            }
            // The newest run of the target, good or failed, whether or not it kept a set.
            let runs = sets.compactMap { s in s.manifest?.record(for: target.name) } + unkept.filter { $0.name == target.name }
            if let last = runs.max(by: { $0.finishedAt < $1.finishedAt }) {
                h.lastRunSuccess = last.status == .ok
                h.lastRunAt = last.finishedAt
                h.lastRunSeconds = last.finishedAt.timeIntervalSince(last.startedAt)
                if last.status == .failed {
                    add("last_run", .critical, "last run failed \(Format.age(now.timeIntervalSince(last.finishedAt))) ago: \(last.error ?? "unknown error")")
                } else if !last.warnings.isEmpty {
                    add("last_run", .warning, "last run had \(last.warnings.count) warning\(last.warnings.count == 1 ? "" : "s"): "
                        + last.warnings.prefix(2).joined(separator: "; ") + (last.warnings.count > 2 ? "; ..." : ""))
                }
            }
            if let (set, record) = good.first {
                let age = now.timeIntervalSince(record.finishedAt)
                h.lastSuccessID = set.id
                h.lastSuccessAt = record.finishedAt
                h.ageSeconds = age.rounded()
                let bytes = Self.contentBytes(record)
                h.bytes = bytes
                expectedNext += record.facts["bytesTransferred"]?.sizeValue.map { Artifact.sum($0, record.bytes) } ?? record.bytes
                if age > 2 * t.maxAge {
                    add("freshness", .critical, "last good backup \(set.id) is \(Format.age(age)) old (max \(ConfigUnits.format(t.maxAge)); critical at twice that)")
                } else if age > t.maxAge {
                    add("freshness", .warning, "last good backup \(set.id) is \(Format.age(age)) old (max \(ConfigUnits.format(t.maxAge)))")
                }
                if let min = t.minBytes, bytes < min {
                    add("size", .critical, "last good backup is \(Format.bytes(bytes)), below the minimum \(Format.bytes(min))")
                }
                if good.count > 1 {
                    let before = Self.contentBytes(good[1].1)
                    if before > 0 && Double(bytes) < Double(before) * (1 - t.shrinkWarn) {
                        add("size", .warning, String(format: "last good backup shrank by %.0f%% (%@ -> %@; SHRINK_WARN %g)",
                                                     100 * (1 - Double(bytes) / Double(before)), Format.bytes(before), Format.bytes(bytes), t.shrinkWarn))
                    }
                }
                for problem in Self.checkSidecars(record, setDirectory: set.directory) { add("checksum", problem.0, problem.1) }
                if verify, let result = try? self.verify([set], only: [target.name]).first {
                    for f in result.findings where f.severity == .error { add("verify", .critical, f.message) }
                }
            } else {
                add("freshness", .critical, "no good backup")
            }
            if let wal = target.currentFacts(repository: repository)["walArchive"]?.objectValue {
                let gaps = wal["gaps"]?.arrayValue?.compactMap(\.stringValue) ?? []
                if let age = wal["newestAgeSeconds"]?.numberValue {
                    h.walNewestAgeSeconds = age
                    h.walMaxAgeSeconds = settings.walMaxAge
                    if age > settings.walMaxAge {
                        add("wal", .warning, "newest archived WAL segment is \(Format.age(age)) old (WAL_MAX_AGE \(ConfigUnits.format(settings.walMaxAge))): is archive_command failing, or archive_timeout unset?")
                    }
                } else {
                    add("wal", .warning, "WAL archive \(wal["directory"]?.stringValue ?? "") holds no segments: is archive_command set and working?")
                }
                if !gaps.isEmpty {
                    add("wal", .critical, "WAL archive has gaps (\(gaps.prefix(3).joined(separator: ", "))): point-in-time recovery cannot cross them")
                }
            }
            if let drill = drills.last(where: { $0.target == target.name }) {
                h.lastDrillPassed = drill.passed
                h.lastDrillAt = drill.at
                h.lastDrillRestoreSeconds = drill.restoreSeconds
                let age = now.timeIntervalSince(drill.at)
                if !drill.passed {
                    add("drill", .critical, "last restore drill (of \(drill.setID), \(Format.age(age)) ago) FAILED: \(drill.lines.last ?? "")")
                } else if age > settings.drillMaxAge {
                    add("drill", .warning, "last restore drill passed \(Format.age(age)) ago (DRILL_MAX_AGE \(ConfigUnits.format(settings.drillMaxAge)))")
                }
            }
            h.status = mine.map(\.status).max() ?? .ok
            issues += mine
            healths.append(h)
        }
        if let maxAge = settings.offsiteMaxAge { issues += offsiteHealth(maxAge: maxAge, sets: sets, now: now) }
                let disk = diskHealth(settings, expectedNext: expectedNext)
        if let d = disk {
            if d.usedPercent >= d.criticalPercent {
                issues.append(HealthIssue(check: "disk_space", aspect: "usage", status: .critical, message: String(format: "backup disk %.0f%% used (critical at %g%%)", d.usedPercent, d.criticalPercent)))
            } else if d.usedPercent >= d.warnPercent {
                issues.append(HealthIssue(check: "disk_space", aspect: "usage", status: .warning, message: String(format: "backup disk %.0f%% used (warning at %g%%)", d.usedPercent, d.warnPercent)))
            }
            if d.freeBytes < d.expectedNextRunBytes {
                issues.append(HealthIssue(check: "disk_space", aspect: "next_run", status: .critical,
                                          message: "only \(Format.bytes(d.freeBytes)) free; the next run needs about \(Format.bytes(d.expectedNextRunBytes))"))
            }
        }
        return HealthReport(timestamp: now, deployment: deployment, host: ProcessInfo.processInfo.hostName,
                            issues: issues, targets: healths, disk: disk)
    }

    /// The age of the newest set complete in the bucket (as `state/offsite.json` records it):
    /// a warning past `maxAge`, critical past twice that or when nothing was ever pushed.
    func offsiteHealth(maxAge: TimeInterval, sets: [StoredSet], now: Date) -> [HealthIssue] {
        guard let state = OffsiteState.load(repository), let newest = state.sets.keys.max(by: { ($0.split(separator: "/").last ?? "") < ($1.split(separator: "/").last ?? "") }) else {
            return [HealthIssue(check: "offsite", aspect: "freshness", status: .critical, message: "no set has been copied off-site yet (offsite push)")]
        }
        let local = sets.first { "\($0.tier)/\($0.id)" == newest }
        let age = now.timeIntervalSince(local?.manifest?.finishedAt ?? state.sets[newest]!)
        let text = "newest off-site copy \(newest) is \(Format.age(age)) old (OFFSITE_MAX_AGE \(ConfigUnits.format(maxAge)))"
        if age > 2 * maxAge { return [HealthIssue(check: "offsite", aspect: "freshness", status: .critical, message: text + "; critical at twice that")] }
        if age > maxAge { return [HealthIssue(check: "offsite", aspect: "freshness", status: .warning, message: text)] }
        return []
    }

    /// A backup's size as people mean it: a snapshot's files, else its artifacts.
    static func contentBytes(_ record: TargetRecord) -> Int64 {
        record.facts["apparentBytes"]?.sizeValue ?? record.bytes
    }

    /// The cheap integrity check: every artifact is there with the manifest's size, was not
    /// written after the backup ended, and its `.sha256` sidecar names the manifest's checksum.
    /// Reads no artifact: `--verify` re-hashes them.
    static func checkSidecars(_ record: TargetRecord, setDirectory: String) -> [(HealthStatus, String)] {
        var out: [(HealthStatus, String)] = []
        for a in record.artifacts {
            let path = setDirectory + "/" + a.path
            var st = stat()
            guard stat(path, &st) == 0 else { out.append((.critical, "\(a.path) is missing")); continue }
            if Int64(st.st_size) != a.bytes {
                out.append((.critical, "\(a.path) is \(st.st_size) bytes, the manifest says \(a.bytes)"))
                continue
            }
            let modified = Date(timeIntervalSince1970: TimeInterval(st.st_mtim.tv_sec) + TimeInterval(st.st_mtim.tv_nsec) / 1e9)
            if modified.timeIntervalSince(record.finishedAt) > 0.01 {
                out.append((.warning, "\(a.path) was modified after the backup ended: run verify"))
            }
            switch SidecarCheck.problem(a, setDirectory: setDirectory) {
            case nil: break
            case .missing: out.append((.warning, "\(a.path).sha256 is missing"))
            case let .damaged(why):
                out.append((.critical, "\(a.path).sha256 does not match the manifest's checksum (\(why)): the backup or its checksum file changed"))
            }
        }
        return out
    }

    private func diskHealth(_ settings: HealthSettings, expectedNext: Int64) -> DiskHealth? {
        var path = repository.root
        while !FileOps.exists(path) && path != "/" && !path.isEmpty { path = (path as NSString).deletingLastPathComponent }
        var fs = statvfs()
        guard statvfs(path, &fs) == 0, fs.f_blocks > 0 else { return nil }
        let used = Double(fs.f_blocks - fs.f_bfree)
        let usable = used + Double(fs.f_bavail)
        return DiskHealth(path: path, usedPercent: usable > 0 ? (used / usable * 1000).rounded() / 10 : 0,
                          freeBytes: Int64(fs.f_bavail) * Int64(fs.f_frsize), expectedNextRunBytes: expectedNext,
                          warnPercent: settings.diskWarnPercent, criticalPercent: settings.diskCriticalPercent)
    }
}
