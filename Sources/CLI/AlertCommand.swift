import ArgumentParser
import BackupCore
import Foundation

/// `alert`: alert tools.
struct AlertCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "alert", abstract: "Alert tools: send a test alert through every channel.",
                             subcommands: [AlertTestCommand<F>.self])
    }
}

/// `alert test`: one test message through every configured channel, each result printed.
struct AlertTestCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "test", abstract: "Send a test alert through every configured channel and print each result (exit 1 if any failed).")
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Also ping HEALTHCHECK_URL (a success ping, which marks the check as up).")
    var ping = false

    func run() throws {
        let session = try Session<F>(global, logToFile: false)
        let context = session.alertContext
        let alert = Alert(level: .ok, kind: "test", source: F.commandName, deployment: context.deployment,
                          subject: "[\(context.deployment)] TEST ALERT from \(context.host)",
                          lines: ["deployment: \(context.deployment), host: \(context.host)",
                                  "This is a test of Backstop's alert channels; nothing is wrong.",
                                  "sent by: \(context.command("alert test"))"])
        let results = session.alerter.deliver(alert)
        var failed = results.contains { $0.problem != nil }
        for r in results { print(r.problem == nil ? "ok    \(r.channel)" : "FAIL  \(r.problem!)") }
        if let pinger = session.alerter.pinger {
            if ping {
                let problem = session.alerter.ping(.success, body: alert.text)
                print(problem == nil ? "ok    \(pinger.label)" : "FAIL  \(problem!)")
                failed = failed || problem != nil
            } else {
                print("skip  \(pinger.label) (pass --ping to ping it)")
            }
        }
        if results.isEmpty && session.alerter.pinger == nil {
            print("no alert channel is configured (see the README's Alerts section)")
            throw CommandFailed(status: .failure)
        }
        if failed { throw CommandFailed(status: .failure) }
    }
}
