import ArgumentParser
import BackupCore
import Foundation

/// `legacy`: the backups an earlier script left in the backup directory (the frontend's
/// `LegacyLayout`), listed, verified and restored where they lie; `prune` removes them by the
/// same retention policy. Nothing of them is ever rewritten.
struct LegacyCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "legacy", abstract: "List, verify or restore the backups the replaced script wrote.",
                             subcommands: [LegacyListCommand<F>.self, LegacyVerifyCommand<F>.self, LegacyRestoreCommand<F>.self],
                             defaultSubcommand: LegacyListCommand<F>.self)
    }
}

/// The session and the frontend's legacy layout, or one line saying it has none.
func legacySession<F: Frontend>(_ global: GlobalOptions, logToFile: Bool, _: F.Type) throws -> (Session<F>, any LegacyLayout) {
    let session = try Session<F>(global, logToFile: logToFile)
    guard let layout = try F.legacyLayout(config: session.config) else {
        throw UsageError("\(F.commandName) knows no earlier script's backups: nothing to list")
    }
    return (session, layout)
}

/// `legacy list`.
struct LegacyListCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration { CommandConfiguration(commandName: "list", abstract: "List the legacy backups, newest first.") }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print them as JSON.")
    var json = false

    func run() throws {
        let (_, layout) = try legacySession(global, logToFile: false, F.self)
        let sets = layout.sets()
        if json { return try printJSON(sets) }
        if sets.isEmpty { print("no legacy backups in \(layout.directory)") }
        for set in sets {
            print("legacy/\(set.id)  \(Format.iso8601(set.date))  " + set.files.map { "\($0.target): \($0.name) (\(Format.bytes($0.bytes)))" }.joined(separator: ", "))
        }
    }
}

/// `legacy verify [ID]`.
struct LegacyVerifyCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "verify", abstract: "Check legacy backups as the old script did (sizes), and read every one through (gzip, tar).")
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The legacy backup's timestamp (YYYYMMDD_HHMMSS); all when omitted.")
    var id: String?

    func run() throws {
        let (session, layout) = try legacySession(global, logToFile: false, F.self)
        let sets = try id.map { [try session.engine.legacySet($0, layout: layout)] } ?? layout.sets()
        var failed = false
        for set in sets {
            let findings = session.engine.verifyLegacy(set, layout: layout)
            let errors = findings.filter { $0.severity == .error }
            failed = failed || !errors.isEmpty
            print("\(errors.isEmpty ? "ok  " : "FAIL")  legacy/\(set.id)  \(set.files.map(\.name).joined(separator: ", "))")
            for f in errors { print("      \(f)") }
        }
        if failed { throw CommandFailed(status: .failure) }
    }
}

/// `legacy restore TARGET ID`.
struct LegacyRestoreCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "restore", abstract: "Restore a target from a legacy backup (with the target's safety copy and rollback).")
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The target (see the list command).")
    var target: String

    @Argument(help: "The legacy backup's timestamp (YYYYMMDD_HHMMSS), or 'latest'.")
    var id: String = "latest"

    @Option(name: .long, help: "Restore into this directory instead (file targets).")
    var to: String?

    @Option(name: .long, help: "Database targets: restore into this database instead.")
    var into: String?

    @Flag(name: .long, help: "Overwrite where the target would otherwise refuse.")
    var force = false

    @Flag(name: .shortAndLong, help: "Do not ask for confirmation (required without a terminal).")
    var yes = false

    @Flag(name: .long, help: "Show what would be restored; change nothing.")
    var dryRun = false

    func run() throws {
        let (session, layout) = try legacySession(global, logToFile: !dryRun, F.self)
        let options = RestoreOptions(destination: to.map { URL(fileURLWithPath: $0).standardizedFileURL.path }, dryRun: dryRun, force: force,
                                     intoDatabase: into)
        if !dryRun {
            let set = try session.engine.legacySet(id, layout: layout)
            try confirm("Restore \(target) from legacy backup \(set.id)? A safety copy is taken first.", yes: yes)
        }
        let report = try session.engine.restoreLegacy(target: target, id: id, layout: layout, options: options)
        for line in report.lines { print(line) }
    }
}

extension Session {
    /// Prunes the frontend's legacy backups by `policy` (after its own sets were pruned) and
    /// prints nothing: the decisions are returned for the caller's report.
    func pruneLegacy(_ policy: RetentionPolicy, dryRun: Bool) throws -> [PruneDecision] {
        guard let layout = try F.legacyLayout(config: config) else { return [] }
        return try engine.pruneLegacy(policy, layout: layout, dryRun: dryRun)
    }
}
