import ArgumentParser
import BackupCore
import Foundation

/// `daemon`: runs the schedules in the foreground, for containers without cron or systemd.
struct DaemonCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "daemon",
                             abstract: "Run the schedules in the foreground (for containers without cron); logs every decision on stdout.",
                             discussion: """
                             Runs one command at a time, never two at once; a time missed while the machine \
                             slept runs once on waking. SIGTERM (or SIGINT) while idle exits 0; during a run it \
                             is passed to the run, which stops and removes its partial output, and the daemon \
                             then exits 143 (130 for SIGINT).
                             """)
    }

    @OptionGroup var global: GlobalOptions

    /// Tests: read the time from this file (seconds since 1970) instead of the system clock.
    @Option(name: .long, help: .hidden)
    var clockFile: String?

    func run() throws {
        let configPath = URL(fileURLWithPath: global.config).standardizedFileURL.path
        let configFileExists = FileOps.exists(configPath)
        let config = try F.loadConfig(global.config)
        for w in config.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        _ = try F.deployment(config: config)
        let schedules = try ScheduleSetup<F>.load(config, configPath: configPath)
        let timeZone = try RetentionPolicy.timeZone(config)
        let zoneName = try RetentionPolicy.timeZoneName(config) ?? "the system's (\(timeZone.identifier))"
        let clock: any DaemonClock = clockFile.map { FileClock(path: $0) } ?? SystemClock()
        StopSignals.install()
        let exe = ScheduleSetup<F>.selfExecutable
        let stamps = DateFormatter()
        stamps.locale = Locale(identifier: "en_US_POSIX")
        stamps.timeZone = timeZone
        stamps.dateFormat = "yyyy-MM-dd HH:mm:ss ZZZZZ"
        let daemon = ScheduleDaemon(
            schedules: schedules, timeZone: timeZone, zoneName: zoneName, clock: clock,
            log: { line in
                let stamp = stamps.string(from: clock.now())
                FileHandle.standardOutput.write(Data("\(stamp) \(F.commandName) daemon: \(line)\n".utf8))
            },
            stop: { StopSignals.received != nil },
            interruptedStatus: { StopSignals.received == SIGINT ? ExitStatus.interrupted.rawValue : ExitStatus.terminated.rawValue },
            // A container may have no config file at all (the environment alone, as docker's
            // env_file gives it): then the runs read the environment alone too, not a missing file.
            runner: { schedule in runSupervised(exe, schedule.arguments + (configFileExists ? ["--config", configPath] : [])) })
        let status = daemon.run()
        switch status {
        case 0: return
        case ExitStatus.terminated.rawValue: throw CommandFailed(status: .terminated)
        case ExitStatus.interrupted.rawValue: throw CommandFailed(status: .interrupted)
        default: throw CommandFailed(status: .usage)
        }
    }
}

/// Runs the executable with `arguments`, its output going to ours, and waits; the child is
/// registered with `StopSignals` so SIGTERM reaches it.
func runSupervised(_ executable: String, _ arguments: [String]) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
    do { try p.run() } catch {
        FileHandle.standardError.write(Data("cannot start \(executable): \(error)\n".utf8))
        return ExitStatus.failure.rawValue
    }
    StopSignals.supervise(p.processIdentifier)
    p.waitUntilExit()
    StopSignals.supervise(nil)
    return p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
}
