import Foundation

/// Writes the schedules as systemd units (a `.service` and a `.timer` per schedule) or as one
/// `/etc/cron.d` file, into the real system or a staging tree (`root`).
///
/// Every file starts with a marker line naming the prefix and the config, so `uninstall` and
/// a later `install` remove only what an install wrote.
public struct ScheduleInstaller: Sendable {
    /// systemd timers or cron.
    public enum Kind: String, Sendable, CaseIterable {
        case systemd, cron
    }

    /// A file to write.
    public struct File: Sendable, Equatable {
        /// Its path on the target system (without the staging root).
        public var path: String
        /// Its contents.
        public var contents: String
    }

    /// The executable the schedules run (absolute).
    public var executable: String
    /// The config file they run with (absolute).
    public var config: String
    /// Unit and cron file names start with this (`backstop-daily.timer`, `/etc/cron.d/backstop`).
    public var prefix: String
    /// The schedules.
    public var schedules: [Schedule]
    /// An IANA time zone for the timers (`TZ`), or nil for the system's.
    public var timeZone: String?
    /// systemd user units instead of system units.
    public var user: Bool
    /// The user cron runs the commands as.
    public var cronUser: String
    /// The user's home, for user units.
    public var home: String

    /// Describes an installation.
    public init(executable: String, config: String, prefix: String, schedules: [Schedule], timeZone: String? = nil,
                user: Bool = false, cronUser: String = "root", home: String = NSHomeDirectory()) {
        self.executable = executable
        self.config = config
        self.prefix = prefix
        self.schedules = schedules
        self.timeZone = timeZone
        self.user = user
        self.cronUser = cronUser
        self.home = home
    }

    /// The marker on the first line of every file written.
    public var marker: String { "# backstop-schedule: prefix=\(prefix) config=\(config)" }
    /// What marks a file as written by an install with this prefix, whatever its config.
    var markerPrefix: String { "# backstop-schedule: prefix=\(prefix) " }

    /// Where units go: `/etc/systemd/system`, or `~/.config/systemd/user` with `user`.
    public var unitDirectory: String { user ? home + "/.config/systemd/user" : "/etc/systemd/system" }
    /// The cron file.
    public var cronFile: String { "/etc/cron.d/" + prefix }

    /// The unit name stem of a schedule: `backstop-daily`.
    public func unitName(_ s: Schedule) -> String { "\(prefix)-\(s.name)" }

    /// The files an install of `kind` writes.
    public func files(_ kind: Kind) throws -> [File] {
        guard prefix.range(of: #"^[a-z0-9][a-z0-9-]*$"#, options: .regularExpression) != nil else {
            throw UsageError("schedule prefix '\(prefix)' must be lowercase letters, digits and dashes")
        }
        switch kind {
        case .systemd:
            return try schedules.flatMap { s -> [File] in
                let calendars: [String]
                do { calendars = try s.cron.systemdCalendar(timeZone: timeZone) } catch let e as CronError {
                    throw UsageError("schedule \(s.name) (\(s.key ?? "default")): systemd cannot express '\(s.cron.source)': \(e.reason)")
                }
                return [File(path: "\(unitDirectory)/\(unitName(s)).service", contents: service(s)),
                        File(path: "\(unitDirectory)/\(unitName(s)).timer", contents: timer(s, calendars))]
            }
        case .cron:
            guard !user else {
                throw UsageError("--user with --cron: user crontabs are not files to install; use --systemd --user, or put the lines from 'schedule show --cron' into crontab -e")
            }
            var lines = [marker, "# Written by '\(prefix) schedule install --cron'; change the SCHEDULE_ keys and install again.",
                         "SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
            if let timeZone { lines.append("# The times are in the system's time zone (cron ignores TZ=\(timeZone)).") }
            for s in schedules {
                let words = [executable] + s.arguments + ["--config", config, "-q"]
                lines.append("# \(s.name)\(s.key.map { " (\($0))" } ?? " (default)")")
                lines.append("\(s.cron.source)  \(cronUser)  " + words.map(ScheduleInstaller.cronWord).joined(separator: " "))
            }
            return [File(path: cronFile, contents: lines.joined(separator: "\n") + "\n")]
        }
    }

    /// The `.service` of a schedule: one run, logged to the journal.
    func service(_ s: Schedule) -> String {
        let exec = ([executable] + s.arguments + ["--config", config]).map(ScheduleInstaller.systemdWord).joined(separator: " ")
        var lines = [marker, "[Unit]", "Description=\(prefix) schedule \(s.name): \(s.arguments.joined(separator: " "))"]
        if !user { lines += ["Wants=network-online.target", "After=network-online.target"] }
        lines += ["", "[Service]", "Type=oneshot", "ExecStart=\(exec)",
                  "# Exit codes: 0 success, 1 a target or check failed, 2 bad config, 3 another run holds the lock,",
                  "# 143 stopped by SIGTERM (children stopped, partial output removed). Anything but 0 marks the unit failed.",
                  "StandardOutput=journal", "StandardError=journal", "SyslogIdentifier=\(unitName(s))",
                  "TimeoutStopSec=10min", "Nice=10", "IOSchedulingClass=best-effort", "IOSchedulingPriority=7"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The `.timer` of a schedule.
    func timer(_ s: Schedule, _ calendars: [String]) -> String {
        var lines = [marker, "[Unit]", "Description=\(prefix) schedule \(s.name) (cron: \(s.cron.source))", "", "[Timer]"]
        lines += calendars.map { "OnCalendar=\($0)" }
        lines += ["# A run missed while the machine was off starts once at boot.", "Persistent=true",
                  "RandomizedDelaySec=2min", "AccuracySec=1min", "Unit=\(unitName(s)).service",
                  "", "[Install]", "WantedBy=timers.target"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// A word for a cron command line (run by /bin/sh): quoted when needed, `%` escaped.
    static func cronWord(_ w: String) -> String {
        let plain = !w.isEmpty && w.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_@+=:,./-".contains($0)) }
        let quoted = plain ? w : "'" + w.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
        return quoted.replacingOccurrences(of: "%", with: #"\%"#)
    }

    /// A word for `ExecStart=`: quoted when needed, `%` and `$` escaped.
    static func systemdWord(_ w: String) -> String {
        var q = w.replacingOccurrences(of: "%", with: "%%").replacingOccurrences(of: "$", with: "$$")
        if q.isEmpty || q.contains(where: { $0 == " " || $0 == "\t" || $0 == "\"" || $0 == "'" || $0 == "\\" || $0 == ";" }) {
            q = "\"" + q.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return q
    }

    /// Files in the unit directory (or the cron file) that an install with this prefix wrote,
    /// under `root` ("" for the real system).
    public func installed(_ kind: Kind, root: String) -> [String] {
        let candidates: [String]
        switch kind {
        case .systemd:
            let dir = root + unitDirectory
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            candidates = names.filter { $0.hasPrefix(prefix + "-") && ($0.hasSuffix(".service") || $0.hasSuffix(".timer")) }
                .sorted().map { unitDirectory + "/" + $0 }
        case .cron:
            candidates = [cronFile]
        }
        return candidates.filter { path in
            guard let data = FileManager.default.contents(atPath: root + path) else { return false }
            return String(decoding: data.prefix(4096), as: UTF8.self).hasPrefix(markerPrefix)
        }
    }

    /// Writes `kind`'s files under `root` (atomically, mode 0644: units hold no secrets) and
    /// removes files an earlier install wrote that are no longer wanted. Returns
    /// (written, removed) paths without the root.
    public func write(_ kind: Kind, root: String) throws -> (written: [String], removed: [String]) {
        let wanted = try files(kind)
        var written: [String] = []
        for f in wanted {
            let path = root + f.path
            let dir = (path as NSString).deletingLastPathComponent
            if !FileOps.exists(dir) {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            }
            if let existing = FileManager.default.contents(atPath: path), !String(decoding: existing.prefix(4096), as: UTF8.self).hasPrefix(markerPrefix) {
                throw OperationError("\(path) exists and was not written by schedule install; not overwriting it (move it away first)")
            }
            try FileOps.writeAtomically(Data(f.contents.utf8), to: path, mode: 0o644)
            written.append(f.path)
        }
        let stale = installed(kind, root: root).filter { !written.contains($0) }
        for path in stale where unlink(root + path) != 0 { throw SystemError("unlink", root + path) }
        return (written, stale)
    }

    /// Removes every file an install with this prefix wrote. Returns the paths removed.
    public func remove(_ kind: Kind, root: String) throws -> [String] {
        let found = installed(kind, root: root)
        for path in found where unlink(root + path) != 0 { throw SystemError("unlink", root + path) }
        return found
    }
}
