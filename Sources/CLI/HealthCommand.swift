import ArgumentParser
import BackupCore
import Foundation

/// `health`: the verdict a monitor can trust, as a Monitoring Plugins check command.
struct HealthCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "health",
            abstract: "Check freshness, last runs, sizes, checksums, disk, WAL archive and drills; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            discussion: """
            The first line of the output is the Monitoring Plugins summary with performance data \
            (Nagios, Icinga, Zabbix and Checkmk read it as is); a table and every finding follow. \
            Exit codes follow that convention, not the table of the other commands: 0 OK, \
            1 WARNING, 2 CRITICAL, 3 UNKNOWN (the check could not run, e.g. an unreadable config).
            """)
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print the status document (overall_status, critical_issues, warnings, checks, ...) as JSON.")
    var json = false

    @Option(name: .long, help: "Also write the status document to this file, atomically.")
    var statusFile: String?

    @Flag(name: .long, help: "Also run a full verify of each target's newest good backup (re-reads every artifact).")
    var verify = false

    @Flag(name: .long, help: "Do not send alerts (metrics are still written).")
    var noAlert = false

    func run() throws {
        try HealthCheckRun<F>(global: global, json: json, statusFile: statusFile, verify: verify, alert: !noAlert).run()
    }
}

/// One health check, shared by `health` and `check --health`.
struct HealthCheckRun<F: Frontend> {
    var global: GlobalOptions
    var json: Bool
    var statusFile: String? = nil
    var verify = false
    var alert = true

    var service: String { F.commandName.uppercased() }

    func run() throws {
        let session: Session<F>
        let monitoring: MonitoringConfig
        do {
            session = try Session<F>(global, logToFile: false)
            monitoring = try session.monitoring()
            // A monitor running as another user that cannot read the backups must not report
            // "no good backup": it cannot tell.
            let root = session.engine.repository.root
            if FileOps.exists(root) && access(root, R_OK | X_OK) != 0 {
                throw OperationError("cannot read the backup directory \(root): \(String(cString: strerror(errno))); run the check as the user that owns the backups")
            }
        } catch {
            // The check itself could not run: UNKNOWN, never a silent OK.
            let message = (error as? UserFacingError)?.message ?? "\(error)"
            let report = HealthReport.unknown(message, deployment: F.commandName)
            try emit(report)
            throw PluginExit(status: .unknown)
        }
        let report = session.engine.health(monitoring.health, deployment: monitoring.deployment, verify: verify)
        try emit(report)
        if alert { session.report(.health(report, context: session.alertContext)) }
        session.publishMetrics(report, monitoring: monitoring)
        if report.overallStatus != .ok { throw PluginExit(status: report.overallStatus) }
    }

    private func emit(_ report: HealthReport) throws {
        if let statusFile {
            do {
                try FileOps.writeAtomically(Data(try BackstopJSON.string(report).utf8), to: statusFile, mode: 0o644)
            } catch {
                FileHandle.standardError.write(Data("\(F.commandName): error: status file \(statusFile) not written: \(error)\n".utf8))
            }
        }
        if json { return try printJSON(report) }
        let plugin = report.pluginOutput(service: service)
        print(plugin.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? plugin)
        print(report.table)
    }
}
