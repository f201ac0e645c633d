import ArgumentParser
import BackupCore
import Foundation

/// Ends a check command with a Monitoring Plugins exit code (0 OK, 1 WARNING, 2 CRITICAL,
/// 3 UNKNOWN) after it has printed its own output.
struct PluginExit: Error {
    let status: HealthStatus
}

/// The absolute path of a config file as given on the command line.
func absoluteConfigPath(_ path: String) -> String {
    URL(fileURLWithPath: path).standardizedFileURL.path
}

extension Session {
    /// The deployment's monitoring settings (names, thresholds, metric destinations).
    func monitoring() throws -> MonitoringConfig {
        try MonitoringConfig.from(config: config, targets: deployment.targets.map(\.name), defaultName: F.commandName)
    }

    /// What alerts say about where they come from.
    var alertContext: AlertContext {
        let day = DateFormatter()
        day.locale = Locale(identifier: "en_US_POSIX")
        day.dateFormat = "yyyy-MM-dd"
        let log = engine.repository.logDirectory + "/backup-\(day.string(from: Date())).log"
        return AlertContext(deployment: config.string("DEPLOYMENT_NAME") ?? F.commandName, executable: F.commandName,
                            configPath: absoluteConfigPath(config.file), logFile: FileOps.exists(log) ? log : nil)
    }

    /// Where alert state is kept; nil while the backup directory does not exist (a health
    /// check never creates it).
    var alertStateDirectory: String? {
        FileOps.isDirectory(engine.repository.root) ? engine.repository.root + "/state" : nil
    }

    /// Sends `alert` if the policy says so (cooldown, consecutive failures, recovery); logs the
    /// decision and any delivery problem. Never throws: an alert never changes a result.
    /// With `memory` false the alert is decided without the alert state (no cooldown, no
    /// counting) and nothing is written: for a run refused because another holds the lock,
    /// which must not write into the repository.
    func report(_ alert: Alert, memory: Bool = true) {
        let (problems, note) = alerter.report(alert, stateDirectory: memory ? alertStateDirectory : nil)
        engine.logger.debug("\(note)")
        for p in problems { engine.logger.error("\(p)") }
    }

    /// Pings the health-check URL, logging a failure.
    func ping(_ event: HealthcheckPinger.Event, body: String = "") {
        if let problem = alerter.ping(event, body: body) { engine.logger.error("\(problem)") }
    }

    /// Writes `METRICS_FILE` and pushes to `PUSHGATEWAY_URL` (whichever are set) from
    /// `report`; failures are logged, never thrown.
    func publishMetrics(_ report: HealthReport, monitoring: MonitoringConfig) {
        guard monitoring.metricsFile != nil || monitoring.pushgateway != nil else { return }
        let text = PrometheusMetrics.render(report, counters: PrometheusMetrics.counters(engine.repository), includeHealth: true)
        if let file = monitoring.metricsFile {
            do { try PrometheusMetrics.writeFile(text, to: file) } catch { engine.logger.error("metrics file \(file) not written: \(error)") }
        }
        if let gateway = monitoring.pushgateway {
            do { try PrometheusMetrics.push(text, gateway: gateway, deployment: monitoring.deployment) } catch {
                engine.logger.error("metrics not pushed: \(Redactor(secrets: [gateway]).redact("\(error)"))")
            }
        }
    }
}

/// A command that could not start (bad config, say) still tells people, whenever the alert
/// settings themselves can be read: an alert through every channel and a `/fail` ping.
enum StartFailure {
    static func report<F: Frontend>(_ error: Error, options: GlobalOptions, command: String, frontend: F.Type) {
        guard let config = try? F.loadConfig(options.config),
              let alerter = try? Alerter.from(config: config) else { return }
        let context = AlertContext(deployment: config.string("DEPLOYMENT_NAME") ?? F.commandName, executable: F.commandName,
                                   configPath: absoluteConfigPath(options.config))
        let alert = Alert.error(error, command: command, context: context, couldNotStart: true)
        var stateDirectory: String?
        if let dir = try? config.path("BACKUP_DIR"), FileOps.isDirectory(dir) { stateDirectory = dir + "/state" }
        var problems = alerter.report(alert, stateDirectory: stateDirectory).problems
        if let p = alerter.ping(.fail, body: alerter.redactor.redact(alert.text)) { problems.append(p) }
        for p in problems { FileHandle.standardError.write(Data("error: \(p)\n".utf8)) }
    }
}
