import ArgumentParser
import BackupCore
import Foundation

/// `remove`: deletes one set, never the last good backup of a target unless forced.
struct RemoveCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "remove", abstract: "Remove a backup (never the last good backup of a target, unless --force).")
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The backup ID (TIER/ID if it exists in several tiers).")
    var backup: String

    @Flag(name: .long, help: "Also remove the last good backup of a target.")
    var force = false

    @Flag(name: .long, help: "Show what would be removed; remove nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    func run() throws {
        let session = try Session<F>(global, logToFile: !dryRun)
        let plan = try session.engine.remove(id: backup, force: force, dryRun: dryRun)
        if json { return try printJSON(plan) }
        print("\(dryRun ? "would remove" : "removed") \(plan.directory) (\(Format.bytes(plan.bytes)))")
    }
}
