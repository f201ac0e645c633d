import ArgumentParser
import BackupCore
import Foundation
import Logging

/// Flags every subcommand takes.
public struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "The config file (KEY=VALUE lines). Environment variables override it.")
    var config: String = "./.env"

    @Flag(name: .shortAndLong, help: "Log debug detail.")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Print only warnings and errors.")
    var quiet = false

    public init() {}
}

/// Everything a command needs once config is loaded.
struct Session<F: Frontend> {
    let config: Config
    let deployment: Deployment
    let engine: BackupEngine
    let sink: LogSink
    let alerter: Alerter

    /// Loads config, builds the deployment and a logger. `logToFile` adds the daily log file.
    init(_ options: GlobalOptions, logToFile: Bool, warnInterrupted: Bool = true) throws {
        Interrupts.shared.install()
        config = try F.loadConfig(options.config)
        for w in config.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        try ArtifactEncryption.shared.configure(config: config)
        deployment = try F.deployment(config: config)
        let repository = Repository(root: deployment.backupDirectory)
        sink = LogSink(redactor: Redactor(secrets: config.secretValues + OffsiteSettings.extraSecrets(config: config)),
                       // Never a log through a link out of the backup directory: the lock refuses it.
                       directory: logToFile && Repository.workingFolderProblem(repository.logDirectory) == nil ? repository.logDirectory : nil)
        let level: Logger.Level = options.verbose ? .debug : options.quiet ? .warning : .info
        let logger = Logger.backstop(sink: sink, level: level)
        engine = BackupEngine(repository: repository, targets: deployment.targets, frontend: F.commandName, logger: logger)
        alerter = try Alerter.from(config: config)
        // A restore killed before it could roll back: every command says so, once.
        if warnInterrupted {
            for entry in engine.interruptedRestores() { logger.warning("\(RestoreJournal.warning(entry, command: F.commandName))") }
        }
        // The handler prints its own line on stderr; the daily log gets one too.
        Interrupts.shared.onSignal { [sink] sig in
            sink.write(level: .error, "interrupted by \(sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal \(sig)"): stopped children and removed partial output", fileOnly: true)
        }
    }

}

/// Ends a command with a non-zero status after it has printed its own report.
struct CommandFailed: Error {
    let status: ExitStatus
}

/// Prints `value` as JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    print(try BackstopJSON.string(value), terminator: "")
}

/// Asks on the terminal; without a terminal, refuses unless `yes`.
func confirm(_ question: String, yes: Bool, flag: String = "--yes") throws {
    if yes { return }
    guard isatty(STDIN_FILENO) == 1 else {
        throw UsageError("refusing without confirmation: no terminal to ask on; pass \(flag) to proceed")
    }
    FileHandle.standardError.write(Data("\(question) [y/N] ".utf8))
    let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
    guard answer == "y" || answer == "yes" else { throw UsageError("cancelled: nothing was changed") }
}
