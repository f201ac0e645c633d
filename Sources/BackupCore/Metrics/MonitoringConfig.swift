import Foundation

/// The monitoring side of the config: the deployment's name, the health thresholds and where
/// metrics go. Read before a run starts, so a typo in a monitoring key is caught up front.
public struct MonitoringConfig: Sendable {
    /// `DEPLOYMENT_NAME` (default: the executable's name): alert subjects, metric labels.
    public var deployment: String
    /// The health thresholds.
    public var health: HealthSettings
    /// `METRICS_FILE`: the node_exporter textfile-collector file (should end in `.prom`).
    public var metricsFile: String?
    /// `PUSHGATEWAY_URL`: a Prometheus Pushgateway.
    public var pushgateway: String?

    /// Reads `DEPLOYMENT_NAME`, `METRICS_FILE`, `PUSHGATEWAY_URL` and the health keys.
    public static func from(config: Config, targets: [String], defaultName: String) throws -> MonitoringConfig {
        let name = config.string("DEPLOYMENT_NAME") ?? defaultName
        guard !name.contains(where: { $0.isNewline }) else {
            throw ConfigError.invalidValue(key: "DEPLOYMENT_NAME", file: config.origin("DEPLOYMENT_NAME"), value: name, expected: "one line")
        }
        if let file = config.string("METRICS_FILE"), !file.hasSuffix(".prom") {
            throw ConfigError.invalidValue(key: "METRICS_FILE", file: config.origin("METRICS_FILE"), value: file,
                                           expected: "a file name ending in .prom (node_exporter's textfile collector reads only those)")
        }
        if let url = config.string("PUSHGATEWAY_URL") {
            guard let u = URL(string: url), u.host != nil, ["http", "https"].contains(u.scheme?.lowercased() ?? "") else {
                throw ConfigError.invalidValue(key: "PUSHGATEWAY_URL", file: config.origin("PUSHGATEWAY_URL"), value: "(hidden)", expected: "an http:// or https:// URL")
            }
        }
        return MonitoringConfig(deployment: name, health: try HealthSettings.from(config: config, targets: targets),
                                metricsFile: try config.path("METRICS_FILE"), pushgateway: config.string("PUSHGATEWAY_URL"))
    }
}
