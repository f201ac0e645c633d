import ArgumentParser
import BackupCore
import Foundation

/// `schedule install|uninstall|status|show`: systemd timers or a cron.d file for the
/// configured schedules.
struct ScheduleCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "schedule",
                             abstract: "Install, remove and inspect the schedules (systemd timers or /etc/cron.d).",
                             subcommands: [ScheduleInstall<F>.self, ScheduleUninstall<F>.self, ScheduleStatus<F>.self, ScheduleShow<F>.self])
    }
}

/// Flags the schedule subcommands share.
struct ScheduleOptions: ParsableArguments {
    @Flag(name: .long, help: "systemd timers (default when systemd runs this machine).")
    var systemd = false

    @Flag(name: .long, help: "One /etc/cron.d file (default without systemd).")
    var cron = false

    @Option(name: .long, help: "Write into this staging tree instead of / (for tests and packagers); runs no systemctl.")
    var root: String?

    @Flag(name: .long, help: "systemd user units (~/.config/systemd/user, systemctl --user).")
    var user = false

    @Option(name: .long, help: "Unit and cron file name prefix (default: the executable's name).")
    var prefix: String?

    func validate() throws {
        if systemd && cron { throw ValidationError("--systemd and --cron exclude each other") }
    }

    /// The kind asked for, or the one this machine uses.
    var kind: ScheduleInstaller.Kind {
        systemd ? .systemd : cron ? .cron : ScheduleOptions.systemdRuns ? .systemd : .cron
    }

    /// The kinds to look at when none was asked for (uninstall, status).
    var kinds: [ScheduleInstaller.Kind] { systemd ? [.systemd] : cron ? [.cron] : [.systemd, .cron] }

    /// True when systemd is the init system here.
    static var systemdRuns: Bool { FileOps.isDirectory("/run/systemd/system") }

    /// The staging root without a trailing slash ("" for the real system).
    var stagingRoot: String {
        guard let root else { return "" }
        let abs = URL(fileURLWithPath: root).standardizedFileURL.path
        return abs == "/" ? "" : abs
    }
}

/// The config, its schedules (each checked against the command tree) and the installer.
struct ScheduleSetup<F: Frontend> {
    let config: Config
    let configPath: String
    let schedules: [Schedule]
    let timeZone: TimeZone
    let installer: ScheduleInstaller

    init(_ global: GlobalOptions, _ options: ScheduleOptions?, requireFile: Bool) throws {
        configPath = URL(fileURLWithPath: global.config).standardizedFileURL.path
        config = try F.loadConfig(global.config)
        for w in config.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        if requireFile && !FileOps.exists(configPath) {
            throw UsageError("config file \(configPath) does not exist; the schedules run with --config \(configPath) (pass --config FILE)")
        }
        _ = try F.deployment(config: config)   // the schedules run with this config: it must be good
        schedules = try ScheduleSetup.load(config, configPath: configPath)
        timeZone = try RetentionPolicy.timeZone(config)
        let tzName = try RetentionPolicy.timeZoneName(config)
        let exe = ScheduleSetup.selfExecutable
        var userName = "root"
        if let pw = getpwuid(geteuid()), let name = pw.pointee.pw_name { userName = String(cString: name) }
        installer = ScheduleInstaller(executable: exe, config: configPath, prefix: options?.prefix ?? F.commandName,
                                      schedules: schedules, timeZone: tzName, user: options?.user ?? false, cronUser: userName)
    }

    /// The schedules of `config`, each command checked by parsing it as this executable would.
    static func load(_ config: Config, configPath: String) throws -> [Schedule] {
        let schedules = try Schedule.from(config: config, defaults: F.defaultSchedules(config: config))
        for s in schedules {
            do {
                _ = try RootCommand<F>.parseAsRoot(s.arguments + ["--config", configPath])
            } catch {
                let key = s.key ?? "SCHEDULE_\(s.name.uppercased().replacingOccurrences(of: "-", with: "_"))"
                let why = RootCommand<F>.message(for: error).split(separator: "\n").first.map(String.init) ?? "not a command"
                throw ConfigError.invalidValue(key: key, file: config.origin(key), value: s.line,
                                               expected: "a command \(F.commandName) accepts: \(why)")
            }
        }
        return schedules
    }

    /// This executable's absolute path.
    static var selfExecutable: String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 { return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }

    /// Runs systemctl; a failure is one line naming the command.
    static func systemctl(_ args: [String], user: Bool) throws {
        let full = (user ? ["--user"] : []) + args
        let outcome = try ChildProcess("systemctl", full).run()
        if outcome.status != 0 {
            throw OperationError("systemctl \(full.joined(separator: " ")) failed (exit \(outcome.status)): \(outcome.lastErrorLine)")
        }
    }

    /// One line per schedule: name, cron, command, next run.
    func table() -> [String] {
        let now = Date()
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = timeZone
        f.dateFormat = "yyyy-MM-dd HH:mm ZZZZZ"
        return schedules.map { s in
            let next = s.cron.next(after: now, in: timeZone).map(f.string) ?? "never"
            return "\(s.name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(s.cron.source.padding(toLength: 16, withPad: " ", startingAt: 0)) next \(next)  \(F.commandName) \(s.arguments.joined(separator: " "))  [\(s.key ?? "default")]"
        }
    }
}

/// `schedule install`.
struct ScheduleInstall<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "install", abstract: "Write the timers (or the cron.d file) and enable them.")
    }
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ScheduleOptions

    func run() throws {
        let setup = try ScheduleSetup<F>(global, options, requireFile: true)
        let root = options.stagingRoot, kind = options.kind, installer = setup.installer
        let live = root.isEmpty
        let timers = { (paths: [String]) in paths.filter { $0.hasSuffix(".timer") }.map { ($0 as NSString).lastPathComponent } }
        if live && kind == .systemd {
            let wanted = Set(try installer.files(.systemd).map(\.path))
            let stale = timers(installer.installed(.systemd, root: "").filter { !wanted.contains($0) })
            if !stale.isEmpty { try ScheduleSetup<F>.systemctl(["disable", "--now"] + stale, user: options.user) }
        }
        let (written, removed) = try installer.write(kind, root: root)
        for p in written { print("wrote   \(root)\(p)") }
        for p in removed { print("removed \(root)\(p)") }
        if kind == .systemd {
            let enable = timers(written)
            if live {
                try ScheduleSetup<F>.systemctl(["daemon-reload"], user: options.user)
                try ScheduleSetup<F>.systemctl(["enable", "--now"] + enable, user: options.user)
                print("enabled \(enable.joined(separator: " "))")
            } else {
                print("staged; on the target system run: systemctl\(options.user ? " --user" : "") daemon-reload && systemctl\(options.user ? " --user" : "") enable --now \(enable.joined(separator: " "))")
            }
        } else if live {
            print("cron reads \(installer.cronFile) by itself; nothing to reload")
        }
        for line in setup.table() { print(line) }
    }
}

/// `schedule uninstall`.
struct ScheduleUninstall<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "uninstall", abstract: "Disable and remove what schedule install wrote.")
    }
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ScheduleOptions

    func run() throws {
        // Only the prefix matters: uninstall works even when the config no longer loads.
        let installer = ScheduleInstaller(executable: "", config: URL(fileURLWithPath: global.config).standardizedFileURL.path,
                                          prefix: options.prefix ?? F.commandName, schedules: [], user: options.user)
        let root = options.stagingRoot
        var removed: [String] = []
        for kind in options.kinds {
            let found = installer.installed(kind, root: root)
            if kind == .systemd && root.isEmpty && !found.isEmpty {
                let timers = found.filter { $0.hasSuffix(".timer") }.map { ($0 as NSString).lastPathComponent }
                if !timers.isEmpty { try ScheduleSetup<F>.systemctl(["disable", "--now"] + timers, user: options.user) }
            }
            removed += try installer.remove(kind, root: root)
            if kind == .systemd && root.isEmpty && !found.isEmpty { try ScheduleSetup<F>.systemctl(["daemon-reload"], user: options.user) }
        }
        for p in removed { print("removed \(root)\(p)") }
        if removed.isEmpty { print("nothing installed with prefix \(installer.prefix) under \(root.isEmpty ? "/" : root)") }
    }
}

/// `schedule show`: what install would write.
struct ScheduleShow<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "show", abstract: "Print the schedules and the files install would write.")
    }
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ScheduleOptions

    func run() throws {
        let setup = try ScheduleSetup<F>(global, options, requireFile: false)
        for line in setup.table() { print(line) }
        for f in try setup.installer.files(options.kind) {
            print("\n==> \(options.stagingRoot)\(f.path) <==")
            print(f.contents, terminator: "")
        }
    }
}

/// `schedule status`: installed or not, up to date or not, next and last runs.
struct ScheduleStatus<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "status",
                             abstract: "Show whether the schedules are installed and current (exit 0), or not (exit 1), and when they run.")
    }
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ScheduleOptions

    func run() throws {
        let setup = try ScheduleSetup<F>(global, options, requireFile: false)
        let root = options.stagingRoot, installer = setup.installer
        for line in setup.table() { print(line) }
        var current = false
        for kind in options.kinds {
            let found = installer.installed(kind, root: root)
            guard !found.isEmpty else {
                print("\(kind.rawValue): not installed")
                continue
            }
            let wanted = try installer.files(kind)
            let same = Set(found) == Set(wanted.map(\.path)) && wanted.allSatisfy { f in
                FileManager.default.contents(atPath: root + f.path).map { String(decoding: $0, as: UTF8.self) } == f.contents
            }
            current = current || same
            print("\(kind.rawValue): installed (\(found.count) file(s) under \(root.isEmpty ? "/" : root)), "
                  + (same ? "up to date" : "DIFFERS from the config: run schedule install again"))
            if kind == .systemd && root.isEmpty {
                for timer in found.filter({ $0.hasSuffix(".timer") }).map({ ($0 as NSString).lastPathComponent }) {
                    let service = timer.replacingOccurrences(of: ".timer", with: ".service")
                    let shown = (try? ScheduleStatus.capture("systemctl", (options.user ? ["--user"] : []) + ["show", timer, service,
                        "-p", "Id,ActiveState,NextElapseUSecRealtime,LastTriggerUSec,Result,ExecMainStatus"])) ?? nil
                    if let shown {
                        print("  " + shown.split(separator: "\n").filter { !$0.hasSuffix("=") }.joined(separator: "  "))
                    } else {
                        print("  \(timer): systemctl cannot tell (is systemd running here?)")
                    }
                }
            }
        }
        if !current { throw CommandFailed(status: .failure) }
    }

    /// A child's stdout, or nil when it fails.
    static func capture(_ program: String, _ args: [String]) throws -> String? {
        var out = Data()
        let outcome = try ChildProcess(program, args).run { chunk in out.append(contentsOf: chunk) }
        return outcome.status == 0 ? String(decoding: out, as: UTF8.self) : nil
    }
}
