import ArgumentParser
import BackupCore
import Foundation

/// `prune` (alias `cleanup`): applies the retention policy.
struct PruneCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "prune",
                             abstract: "Remove backups the retention policy no longer keeps (never the last good backup of a target).",
                             aliases: ["cleanup"])
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Show what would be removed; remove nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print the decisions as JSON.")
    var json = false

    func run() throws {
        let session = try Session<F>(global, logToFile: !dryRun)
        guard let policy = session.deployment.retention else {
            throw UsageError("no retention is configured: set KEEP_<TIER> and/or KEEP_<TIER>_DAYS (e.g. KEEP_DAILY_DAYS=7), or RETENTION_DAYS, or RETENTION=gfs with KEEP_LAST, KEEP_DAILY, ...")
        }
        let decisions = try session.engine.prune(policy, dryRun: dryRun) + session.pruneLegacy(policy, dryRun: dryRun)
        if json { return try printJSON(decisions) }
        let removed = decisions.filter { $0.remove && $0.target == nil }
        let extra = decisions.filter { $0.remove && $0.target != nil }
        print("retention \(policy.summary)")
        for d in decisions {
            let what = d.target.map { "\($0): \(d.id)" } ?? "\(d.tier)/\(d.id)"
            print("\(d.remove ? (dryRun ? "would remove" : "removed     ") : "keep        ")  \(what)  \(d.reason)")
        }
        print("\(dryRun ? "would free" : "freed") \(Format.bytes(removed.reduce(0) { $0 + $1.bytes })) in \(removed.count) backup(s)"
              + (extra.isEmpty ? "" : ", and \(Format.bytes(extra.reduce(0) { $0 + $1.bytes })) beside them (\(extra.map { $0.target ?? "" }.joined(separator: ", ")))"))
    }
}
