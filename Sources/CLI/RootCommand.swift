import ArgumentParser
import BackupCore
import Foundation

/// The shared command tree, mounted by each executable with its `Frontend`.
public struct RootCommand<F: Frontend>: ParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: F.commandName,
            abstract: F.abstract,
            discussion: """
            \(F.configHelp)

            Exit codes: 0 success; 1 a target, verification or restore failed; 2 bad usage or \
            config; 3 another run holds the lock; 130/143 interrupted by SIGINT/SIGTERM. \
            health (and check --health) follow the Monitoring Plugins convention instead: \
            0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
            """,
            version: VersionText.text(commandName: F.commandName),
            subcommands: [
                BackupCommand<F>.self, ListCommand<F>.self, VerifyCommand<F>.self, RestoreCommand<F>.self,
                RemoveCommand<F>.self, PruneCommand<F>.self, StatsCommand<F>.self, CheckCommand<F>.self,
                HealthCommand<F>.self, AlertCommand<F>.self, ScheduleCommand<F>.self, DaemonCommand<F>.self,
                KeygenCommand<F>.self, LegacyCommand<F>.self, OffsiteCommand<F>.self,
            ]
        )
    }

    public init() {}

    /// Parses the command line, runs the command, and exits with the documented code.
    /// Errors become one line on stderr, never a stack trace.
    public static func runMain(arguments: [String]? = nil) -> Never {
        let arguments = F.withDefaultSubcommand(arguments ?? Array(CommandLine.arguments.dropFirst()))
        do {
            var command: ParsableCommand
            do { command = try parseAsRoot(arguments) } catch {
                // A check command with a bad flag is UNKNOWN to a monitor, not CRITICAL.
                let args = arguments
                let isHealth = args.first { !$0.hasPrefix("-") } == "health" || (args.first == "check" && args.contains("--health"))
                if isHealth && exitCode(for: error) != .success {
                    print("\(F.commandName.uppercased()) UNKNOWN - usage: \(message(for: error).split(separator: "\n").first ?? "")")
                    Glibc.exit(HealthStatus.unknown.rawValue)
                }
                throw error
            }
            try command.run()
            Glibc.exit(ExitStatus.success.rawValue)
        } catch let failed as CommandFailed {
            Glibc.exit(failed.status.rawValue)
        } catch let check as PluginExit {
            // health: the Monitoring Plugins convention, documented apart from the table above.
            Glibc.exit(check.status.rawValue)
        } catch let error as UserFacingError {
            FileHandle.standardError.write(Data("\(F.commandName): error: \(error.message)\n".utf8))
            Glibc.exit(error.exitStatus.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            FileHandle.standardError.write(Data("\(F.commandName): \(fullMessage(for: error))\n".utf8))
            Glibc.exit(code == .failure ? ExitStatus.failure.rawValue : ExitStatus.usage.rawValue)
        }
    }
}
