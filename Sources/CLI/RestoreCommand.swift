import ArgumentParser
import BackupCore
import Foundation

/// `restore`: puts one target's backup back, with a safety copy and rollback.
struct RestoreCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "restore",
                             abstract: "Restore a target from a backup (a safety copy of the current data is taken first).")
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The target to restore.")
    var target: String

    @Option(name: [.long, .customLong("timestamp")], help: "The backup ID, or 'latest' (the newest good backup of this target).")
    var backup: String = "latest"

    @Option(name: .long, help: "Restore into this directory (or file) instead of the original location.")
    var to: String?

    @Option(name: .long, help: "Restore only entries under this relative path (repeatable).")
    var path: [String] = []

    @Flag(name: .shortAndLong, help: "Do not ask for confirmation (required without a terminal).")
    var yes = false

    @Flag(name: .long, help: "Overwrite where the target would otherwise refuse.")
    var force = false

    @Flag(name: .long, help: "Show what would be restored; change nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print the restore report as JSON.")
    var json = false

    func run() throws {
        let session = try Session<F>(global, logToFile: !dryRun)
        let destination = to.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
        var options = RestoreOptions(destination: destination, dryRun: true, force: force, paths: path)
        // Always show the plan first.
        let plan = try session.engine.restore(target: target, id: backup, options: options)
        if dryRun {
            if json { try printJSON(plan) } else { printReport(plan) }
            return
        }
        if !json { printReport(plan) }
        try confirm("Restore \(target) as shown above?", yes: yes)
        options.dryRun = false
        let report = try session.engine.restore(target: target, id: backup, options: options)
        if json { try printJSON(report) } else { printReport(report) }
    }

    private func printReport(_ report: RestoreReport) {
        print(report.dryRun ? "Restore plan for \(report.target):" : "Restore report for \(report.target):")
        for line in report.lines { print("  \(line)") }
    }
}
