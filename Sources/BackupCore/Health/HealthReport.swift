import Foundation

/// A verdict in the Monitoring Plugins convention (Nagios, Icinga, Zabbix, Checkmk): its raw
/// value is the exit code a check command ends with.
public enum HealthStatus: Int32, Codable, Sendable, Comparable {
    case ok = 0
    case warning = 1
    case critical = 2
    /// The check itself could not run (e.g. an unreadable config).
    case unknown = 3

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    public var label: String {
        switch self {
        case .ok: "OK"
        case .warning: "WARNING"
        case .critical: "CRITICAL"
        case .unknown: "UNKNOWN"
        }
    }

    /// Severity order: OK < WARNING < UNKNOWN < CRITICAL (a check that could not run is worse
    /// than a warning, but a known-bad backup is worse still).
    public static func < (a: HealthStatus, b: HealthStatus) -> Bool { a.rank < b.rank }
    private var rank: Int {
        switch self {
        case .ok: 0
        case .warning: 1
        case .unknown: 2
        case .critical: 3
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(label)
    }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let v = [HealthStatus.ok, .warning, .critical, .unknown].first(where: { $0.label == s }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown status \(s)"))
        }
        self = v
    }
}

/// One finding of a health check: which subject (a target, or `disk_space`), which aspect
/// (freshness, last_run, size, checksum, verify, wal, drill, usage), how bad, and one line.
public struct HealthIssue: Codable, Sendable {
    /// A target's name, or `disk_space`.
    public var check: String
    /// What was checked.
    public var aspect: String
    /// How bad it is.
    public var status: HealthStatus
    /// One line for people.
    public var message: String
}

/// What the health check found about one target, with the numbers monitors graph.
public struct TargetHealth: Codable, Sendable {
    /// The target.
    public var name: String
    /// Its kind.
    public var kind: String
    /// The worst status of its checks.
    public var status: HealthStatus
    /// The newest good backup's set ID and end time.
    public var lastSuccessID: String?
    public var lastSuccessAt: Date?
    /// Seconds since the newest good backup ended.
    public var ageSeconds: Double?
    /// The freshness threshold (warning; twice it is critical).
    public var maxAgeSeconds: Double
    /// The newest good backup's size (a snapshot's files, not its manifest).
    public var bytes: Int64?
    /// Whether the newest run of this target succeeded, when it ended, how long it took.
    public var lastRunSuccess: Bool?
    public var lastRunAt: Date?
    public var lastRunSeconds: Double?
    /// The newest archived WAL segment's age, for targets with a WAL archive.
    public var walNewestAgeSeconds: Double?
    /// Its threshold (`WAL_MAX_AGE`).
    public var walMaxAgeSeconds: Double?
    /// The last restore drill, where there is one.
    public var lastDrillPassed: Bool?
    public var lastDrillAt: Date?
    public var lastDrillRestoreSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case name, kind, status, bytes
        case lastSuccessID = "last_success_id", lastSuccessAt = "last_success", ageSeconds = "age_seconds"
        case maxAgeSeconds = "max_age_seconds", lastRunSuccess = "last_run_success", lastRunAt = "last_run"
        case lastRunSeconds = "last_run_seconds", walNewestAgeSeconds = "wal_newest_age_seconds", walMaxAgeSeconds = "wal_max_age_seconds"
        case lastDrillPassed = "last_drill_passed", lastDrillAt = "last_drill", lastDrillRestoreSeconds = "last_drill_restore_seconds"
    }
}

/// The backup disk's state.
public struct DiskHealth: Codable, Sendable {
    /// The folder measured (the backup directory, or its nearest existing parent).
    public var path: String
    /// Percent of the file system in use (as `df` counts it).
    public var usedPercent: Double
    /// Bytes available to Backstop.
    public var freeBytes: Int64
    /// About how much the next run of every target writes (the newest backups' sizes).
    public var expectedNextRunBytes: Int64
    /// The thresholds.
    public var warnPercent: Double
    public var criticalPercent: Double

    enum CodingKeys: String, CodingKey {
        case path
        case usedPercent = "used_percent", freeBytes = "free_bytes", expectedNextRunBytes = "expected_next_run_bytes"
        case warnPercent = "warn_percent", criticalPercent = "critical_percent"
    }
}

/// The health verdict: the CEP document's status shape (`timestamp`, `overall_status`,
/// `critical_issues`, `warnings`, `checks`) plus the details behind it.
public struct HealthReport: Codable, Sendable {
    /// When the check ran.
    public var timestamp: Date
    /// The deployment's name and the host.
    public var deployment: String
    public var host: String
    /// The worst status of all checks.
    public var overallStatus: HealthStatus
    /// Every finding worse than OK.
    public var issues: [HealthIssue]
    /// Per target.
    public var targets: [TargetHealth]
    /// The backup disk, when it could be measured.
    public var disk: DiskHealth?

    /// How many findings are critical.
    public var criticalIssues: Int { issues.filter { $0.status == .critical }.count }
    /// How many findings are warnings.
    public var warnings: Int { issues.filter { $0.status == .warning }.count }
    /// Each subject's worst status: every target, then `disk_space`.
    public var checks: [String: HealthStatus] {
        var out: [String: HealthStatus] = [:]
        for t in targets { out[t.name] = t.status }
        if disk != nil || issues.contains(where: { $0.check == "disk_space" }) {
            out["disk_space"] = issues.filter { $0.check == "disk_space" }.map(\.status).max() ?? .ok
        }
        return out
    }

    enum CodingKeys: String, CodingKey {
        case timestamp, deployment, host, issues, targets, disk, checks, warnings
        case overallStatus = "overall_status", criticalIssues = "critical_issues"
    }

    /// Creates a report; the overall status is the worst of `issues`.
    public init(timestamp: Date, deployment: String, host: String, issues: [HealthIssue], targets: [TargetHealth], disk: DiskHealth?) {
        self.timestamp = timestamp
        self.deployment = deployment
        self.host = host
        self.issues = issues
        self.targets = targets
        self.disk = disk
        self.overallStatus = issues.map(\.status).max() ?? .ok
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(timestamp, forKey: .timestamp)
        try c.encode(deployment, forKey: .deployment)
        try c.encode(host, forKey: .host)
        try c.encode(overallStatus, forKey: .overallStatus)
        try c.encode(criticalIssues, forKey: .criticalIssues)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(checks, forKey: .checks)
        try c.encode(issues, forKey: .issues)
        try c.encode(targets, forKey: .targets)
        try c.encodeIfPresent(disk, forKey: .disk)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(timestamp: try c.decode(Date.self, forKey: .timestamp), deployment: try c.decode(String.self, forKey: .deployment),
                  host: try c.decode(String.self, forKey: .host), issues: try c.decode([HealthIssue].self, forKey: .issues),
                  targets: try c.decode([TargetHealth].self, forKey: .targets), disk: try c.decodeIfPresent(DiskHealth.self, forKey: .disk))
    }

    /// The report for a check that could not run at all (exit 3).
    public static func unknown(_ reason: String, deployment: String) -> HealthReport {
        HealthReport(timestamp: Date(), deployment: deployment, host: ProcessInfo.processInfo.hostName,
                     issues: [HealthIssue(check: "health", aspect: "check", status: .unknown, message: reason)], targets: [], disk: nil)
    }

    /// The Monitoring Plugins output: `SERVICE STATUS - summary | perfdata` on the first line,
    /// then one line per finding (the "long output" those systems show on demand).
    public func pluginOutput(service: String) -> String {
        let worst = issues.sorted { $0.status > $1.status }
        let summary: String
        if worst.isEmpty {
            let ages = targets.compactMap(\.ageSeconds)
            summary = "\(targets.count) target\(targets.count == 1 ? "" : "s") healthy"
                + (ages.max().map { ", oldest last backup \(Format.age($0)) ago" } ?? "")
        } else {
            let shown = worst.prefix(3).map { "\($0.check): \($0.message)" }
            summary = shown.joined(separator: "; ") + (worst.count > 3 ? "; and \(worst.count - 3) more" : "")
        }
        let perf = perfdata.isEmpty ? "" : " | " + perfdata.joined(separator: " ")
        var lines = ["\(service) \(overallStatus.label) - \(summary.replacingOccurrences(of: "|", with: "/"))\(perf)"]
        for i in worst { lines.append("\(i.status.label): \(i.check) \(i.aspect): \(i.message.replacingOccurrences(of: "|", with: "/"))") }
        return lines.joined(separator: "\n")
    }

    /// Performance data, `label=value[UOM];warn;crit;min;max`.
    public var perfdata: [String] {
        var out: [String] = []
        func label(_ s: String) -> String { s.replacingOccurrences(of: "-", with: "_") }
        for t in targets {
            if let age = t.ageSeconds {
                out.append("age_\(label(t.name))=\(Int(age))s;\(Int(t.maxAgeSeconds));\(Int(2 * t.maxAgeSeconds));0")
            }
            if let b = t.bytes { out.append("size_\(label(t.name))=\(b)B;;;0") }
            if let w = t.walNewestAgeSeconds { out.append("wal_age_\(label(t.name))=\(Int(w))s;\(t.walMaxAgeSeconds.map { String(Int($0)) } ?? "");;0") }
        }
        if let d = disk {
            out.append(String(format: "disk_used=%.1f%%;%g;%g;0;100", d.usedPercent, d.warnPercent, d.criticalPercent))
            out.append("disk_free=\(d.freeBytes)B;;;0")
        }
        return out
    }

    /// A table for people.
    public var table: String {
        var lines = ["health of \(deployment) on \(host): \(overallStatus.label)"]
        let header = ["target", "status", "last good backup", "age", "size", "last run"]
        var rows = [header]
        if targets.isEmpty && disk == nil { rows = [] }
        for t in targets {
            rows.append([t.name, t.status.label, t.lastSuccessID ?? "none",
                         t.ageSeconds.map { Format.age($0) } ?? "-", t.bytes.map { Format.bytes($0) } ?? "-",
                         t.lastRunSuccess.map { $0 ? "ok" : "FAILED" } ?? "-"])
        }
        if let d = disk {
            rows.append(["disk_space", checks["disk_space"]?.label ?? "OK", String(format: "%.0f%% used", d.usedPercent),
                         "", Format.bytes(d.freeBytes) + " free", "next run ~" + Format.bytes(d.expectedNextRunBytes)])
        }
        let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        if rows.isEmpty { lines.append("(no target could be checked)") }
        for r in rows {
            lines.append(r.indices.map { $0 == r.count - 1 ? r[$0] : r[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
        for i in issues.sorted(by: { $0.status > $1.status }) {
            lines.append("\(i.status.label): \(i.check) \(i.aspect): \(i.message)")
        }
        return lines.joined(separator: "\n")
    }
}
