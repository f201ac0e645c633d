import Foundation

/// Prometheus metrics in the text exposition format, labelled by deployment and target:
/// written for node_exporter's textfile collector (`METRICS_FILE`) and pushed to a
/// Pushgateway (`PUSHGATEWAY_URL`) after every run and every health check.
public enum PrometheusMetrics {
    /// Where the `backstop_backups_total` counters are kept (survives pruning).
    public static func countersPath(_ repository: Repository) -> String { repository.root + "/state/metrics.json" }

    /// Successful backups per target, ever: what `backstop_backups_total` counts.
    public static func counters(_ repository: Repository) -> [String: Int] {
        guard let data = FileManager.default.contents(atPath: countersPath(repository)) else { return [:] }
        return (try? JSONDecoder().decode([String: Int].self, from: data)) ?? [:]
    }

    /// Counts the targets of a run that succeeded. The first time, a target starts from the
    /// good backups already on disk (this run's included).
    public static func recordRun(_ summary: RunSummary, repository: Repository) throws {
        guard !summary.dryRun else { return }
        var counts = counters(repository)
        let good = repository.completeSets()
        for t in summary.targets where t.status == .ok {
            if let n = counts[t.name] {
                counts[t.name] = n + 1
            } else {
                counts[t.name] = good.filter { $0.manifest?.record(for: t.name)?.status == .ok }.count
            }
        }
        try FileOps.makeDirectory(repository.root + "/state")
        try FileOps.writeAtomically(try JSONEncoder().encode(counts), to: countersPath(repository))
    }

    /// A label value, escaped as the text format requires.
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// A sample value: integers without a fraction, others in full precision.
    static func value(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }

    /// The metrics for `report` (the health check's view of every target), with the counters.
    public static func render(_ report: HealthReport, counters: [String: Int], includeHealth: Bool) -> String {
        let d = escape(report.deployment)
        var out: [String] = []
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            guard !samples.isEmpty else { return }
            out.append("# HELP \(name) \(help)")
            out.append("# TYPE \(name) \(type)")
            for (target, v) in samples { out.append("\(name){deployment=\"\(d)\",target=\"\(escape(target))\"} \(value(v))") }
        }
        let ts = report.targets
        family("backstop_last_success_timestamp_seconds", "gauge", "Unix time the newest good backup of the target finished.",
               ts.compactMap { t in t.lastSuccessAt.map { (t.name, $0.timeIntervalSince1970.rounded()) } })
        family("backstop_last_run_success", "gauge", "1 if the newest run of the target succeeded, 0 if it failed.",
               ts.compactMap { t in t.lastRunSuccess.map { (t.name, $0 ? 1 : 0) } })
        family("backstop_last_run_duration_seconds", "gauge", "How long the newest run of the target took.",
               ts.compactMap { t in t.lastRunSeconds.map { (t.name, ($0 * 1000).rounded() / 1000) } })
        family("backstop_last_backup_size_bytes", "gauge", "Size of the newest good backup of the target (a snapshot's files).",
               ts.compactMap { t in t.bytes.map { (t.name, Double($0)) } })
        family("backstop_backups_total", "counter", "Successful backups of the target since metrics were first kept.",
               ts.map { t in (t.name, Double(counters[t.name] ?? 0)) })
        family("backstop_wal_newest_age_seconds", "gauge", "Age of the newest archived WAL segment of the target.",
               ts.compactMap { t in t.walNewestAgeSeconds.map { (t.name, $0) } })
        family("backstop_last_drill_success", "gauge", "1 if the last restore drill of the target passed, 0 if it failed.",
               ts.compactMap { t in t.lastDrillPassed.map { (t.name, $0 ? 1 : 0) } })
        family("backstop_last_drill_restore_seconds", "gauge", "How long the last restore drill's restore took (the measured recovery time).",
               ts.compactMap { t in t.lastDrillRestoreSeconds.map { (t.name, ($0 * 1000).rounded() / 1000) } })
        if includeHealth {
            out.append("# HELP backstop_health_status Health verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
            out.append("# TYPE backstop_health_status gauge")
            out.append("backstop_health_status{deployment=\"\(d)\"} \(report.overallStatus.rawValue)")
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// Writes `text` to `path` atomically (readable by the exporter: it holds no secret).
    public static func writeFile(_ text: String, to path: String) throws {
        try FileOps.writeAtomically(Data(text.utf8), to: path, mode: 0o644)
    }

    /// Replaces this deployment's group on a Pushgateway:
    /// `PUT URL/metrics/job/backstop/deployment/NAME`.
    public static func push(_ text: String, gateway: String, deployment: String, timeout: Int = 20) throws {
        let base = gateway.hasSuffix("/") ? String(gateway.dropLast()) : gateway
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove("/")
        let name = deployment.addingPercentEncoding(withAllowedCharacters: allowed) ?? "backstop"
        let response = try Curl.http(url: "\(base)/metrics/job/backstop/deployment/\(name)", method: "PUT",
                                     headers: ["Content-Type: text/plain; version=0.0.4", "Expect:"], body: Data(text.utf8), timeoutSeconds: timeout)
        guard (200..<300).contains(response.status) else {
            throw CurlError(message: "Pushgateway \(Curl.host(gateway)) answered HTTP \(response.status)")
        }
    }
}
