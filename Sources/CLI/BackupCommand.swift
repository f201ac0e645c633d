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
        let session = try Session<F>(global, logToFile: !dryRun)
        if prune && session.deployment.retention == nil {
            throw UsageError("--prune: no retention is configured (set KEEP_DAILY, KEEP_DAILY_DAYS, ...)")
        }
        let selection = only + F.selection(extra)
        if let retention = session.deployment.retention, retention.limits[tier] == nil {
            let k = "KEEP_" + tier.uppercased().replacingOccurrences(of: "-", with: "_")
            session.engine.logger.warning("no retention applies to tier \(tier): its backups are kept until removed (set \(k) or \(k)_DAYS\(["daily", "weekly", "monthly"].contains(tier) ? "" : ", with KEEP_TIERS=\(tier)"))")
        }
        let summary: RunSummary
        do {
            summary = try session.engine.backup(only: selection, tier: tier, dryRun: dryRun)
        } catch let error as UserFacingError where error.exitStatus != .usage {
            // The run could not finish (lock held, disk full, ...): people must hear of it.
            if !dryRun { session.notify(.error(error, command: "backup", source: F.commandName)) }
            throw error
        }
        if !dryRun { session.notify(.backup(summary, source: F.commandName)) }
        if json { try printJSON(summary) }
        if !summary.succeeded { throw CommandFailed(status: .failure) }
        if prune, let policy = session.deployment.retention, !dryRun {
            _ = try session.engine.prune(policy, dryRun: false)
        }
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

    func run() throws {
        let session = try Session<F>(global, logToFile: false)
        let context = PreflightContext(logger: session.engine.logger)
        var findings: [Finding] = []
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
