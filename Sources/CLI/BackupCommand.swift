import ArgumentParser
import BackupCore
import Foundation

/// `backup`: runs the configured targets into a new set.
struct BackupCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "backup", abstract: "Back up the configured targets into a new set.")
    }

    @OptionGroup var global: GlobalOptions
    @OptionGroup var extra: F.BackupFlags

    @Option(name: .long, parsing: .upToNextOption, help: "Back up only these targets.")
    var only: [String] = []

    @Option(name: .long, help: "The tier (folder) for the new set: daily, weekly, monthly or your own.")
    var tier: String = "daily"

    @Flag(name: .long, help: "Check config and sources and show what would be backed up; write nothing.")
    var dryRun = false

    @Flag(name: .long, help: "After a fully successful backup, apply the retention policy (never after a failed one).")
    var prune = false

    @Flag(name: .long, help: "Print the run summary as JSON on stdout.")
    var json = false

    func run() throws {
        let session: Session<F>
        let monitoring: MonitoringConfig
        do {
            session = try Session<F>(global, logToFile: !dryRun)
            monitoring = try session.monitoring()
        } catch {
            // A run that cannot start (a config error, say) still alerts and pings /fail.
            if !dryRun { StartFailure.report(error, options: global, command: "backup", frontend: F.self) }
            throw error
        }
        if prune && session.deployment.retention == nil {
            throw UsageError("--prune: no retention is configured (set KEEP_DAILY_DAYS, KEEP_DAILY, ... or RETENTION_DAYS)")
        }
        let selection = only + F.selection(extra)
        if let retention = session.deployment.retention, retention.mode == .tiers, retention.limits[tier] == nil {
            let k = "KEEP_" + tier.uppercased().replacingOccurrences(of: "-", with: "_")
            session.engine.logger.warning("no retention applies to tier \(tier): its backups are kept until removed (set \(k) or \(k)_DAYS\(["daily", "weekly", "monthly"].contains(tier) ? "" : ", with KEEP_TIERS=\(tier)"))")
        }
        if !dryRun { session.ping(.start) }
        let summary: RunSummary
        do {
            summary = try session.engine.backup(only: selection, tier: tier, dryRun: dryRun)
        } catch let error as UserFacingError where error.exitStatus != .usage {
            // The run could not finish (lock held, disk full, ...): people must hear of it.
            if !dryRun {
                let alert = Alert.error(error, command: "backup", context: session.alertContext, couldNotStart: error is LockHeldError)
                session.report(alert, memory: !(error is LockHeldError))
                session.ping(.fail, body: alert.text)
                session.publishMetrics(session.engine.health(monitoring.health, deployment: monitoring.deployment), monitoring: monitoring)
            }
            throw error
        }
        if !dryRun {
            do { try PrometheusMetrics.recordRun(summary, repository: session.engine.repository) } catch {
                session.engine.logger.error("backup counters not updated: \(error)")
            }
            // Warnings keep exit 0 (cron mails any output and treats non-zero as failure);
            // they are reported with ALERT_ON=warning, in `health` and in the metrics.
            let alert = Alert.backup(summary, context: session.alertContext)
            session.report(alert)
            session.ping(summary.succeeded ? .success : .fail, body: alert.text)
        }
        if json { try printJSON(summary) }
        if !summary.succeeded {
            if !dryRun { session.publishMetrics(session.engine.health(monitoring.health, deployment: monitoring.deployment), monitoring: monitoring) }
            throw CommandFailed(status: .failure)
        }
        if prune, let policy = session.deployment.retention, !dryRun {
            _ = try session.engine.prune(policy, dryRun: false)
            _ = try session.pruneLegacy(policy, dryRun: false)
        }
        // The off-site copy, after a fully successful run: a failure alerts and exits 1, and
        // the local backup stays good (the next push finishes the upload).
        if !dryRun, let id = summary.setID, let store = try session.offsite(), store.settings.auto {
            do {
                try session.pushOffsite(store, sets: [try session.engine.repository.find(id, tier: tier)])
            } catch let error as UserFacingError where !(error is InterruptedError) {
                let failure = OperationError("backup \(id) is good locally, but its off-site copy failed: \(error.message)")
                let alert = Alert.error(failure, command: "backup", context: session.alertContext, couldNotStart: false)
                session.report(alert)
                throw failure
            }
        }
        if !dryRun { session.publishMetrics(session.engine.health(monitoring.health, deployment: monitoring.deployment), monitoring: monitoring) }
    }
}

/// `check`: preflight only.
struct CheckCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "check", abstract: "Check config and every source without backing up.")
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print findings as JSON.")
    var json = false

    @Flag(name: .long, help: "Run the health check instead (as the health command does, with its exit codes 0-3).")
    var health = false

    @Option(name: .long, help: "With --health: also write the status document to this file, atomically.")
    var statusFile: String?

    @Flag(name: .long, help: "List every config key with its type, default and meaning, and stop (reads no config).")
    var keys = false

    func validate() throws {
        if statusFile != nil && !health { throw ValidationError("--status-file goes with --health") }
        if keys && (health || json) { throw ValidationError("--keys goes alone") }
    }

    func run() throws {
        if keys { return print(ConfigKeysHelp.full(sections: F.keySections, kinds: F.targetKinds)) }
        if health { return try HealthCheckRun<F>(global: global, json: json, statusFile: statusFile).run() }
        let session = try Session<F>(global, logToFile: false, warnInterrupted: false)
        _ = try session.monitoring()
        let context = PreflightContext(logger: session.engine.logger)
        var findings: [Finding] = []
        for entry in session.engine.interruptedRestores() {
            findings.append(Finding(.error, target: entry.target, RestoreJournal.warning(entry, command: F.commandName)))
        }
        // The backup directory itself: it must exist (or be creatable) and be writable.
        let root = session.engine.repository.root
        var existing = root
        while !FileOps.exists(existing) && existing != "/" { existing = (existing as NSString).deletingLastPathComponent }
        if access(existing, W_OK) != 0 {
            let why = String(cString: strerror(errno))
            findings.append(Finding(.error, target: "-", "backup directory \(root)\(existing == root ? "" : " (its parent \(existing))") is not writable: \(why)"))
        }
        if !json {
            print("\(findings.isEmpty ? "ok  " : "FAIL")  backup directory \(root)")
            for f in findings { print("      \(f.severity.rawValue): \(f.message)") }
        }
        // Near misses of declared keys (BACKUP_DRI): warnings, since the file may hold the
        // application's own keys too.
        let typos = ConfigKeysHelp.nearMisses(config: session.config, sections: F.keySections)
        findings += typos
        if !json && !typos.isEmpty {
            print("WARN  config keys")
            for f in typos { print("      \(f.severity.rawValue): \(f.message)") }
        }
        let encryption = ArtifactEncryption.shared.findings()
        findings += encryption
        if !json && !encryption.isEmpty {
            print("\(encryption.contains { $0.severity == .warning } ? "WARN" : "ok  ")  encryption")
            for f in encryption { print("      \(f.severity.rawValue): \(f.message)") }
        }
        for target in session.deployment.targets {
            let found = target.preflight(context)
            findings += found
            if !json {
                let worst = found.map(\.severity).max()
                print("\(worst == .error ? "FAIL" : worst == .warning ? "WARN" : "ok  ")  \(target.name): \(target.summary)")
                for f in found { print("      \(f.severity.rawValue): \(f.message)") }
            }
        }
        if json { try printJSON(findings) }
        if findings.contains(where: { $0.severity == .error }) { throw CommandFailed(status: .failure) }
    }
}
