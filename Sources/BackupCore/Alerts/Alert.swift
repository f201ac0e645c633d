import Foundation

/// How an alert reads: a success, a run that ended with warnings, a failure, or the all-clear
/// after a failure or warning was reported.
public enum AlertLevel: String, Codable, Sendable {
    case ok, warning, failure, recovery

    /// Whether things are good (a success or a recovery).
    public var isGood: Bool { self == .ok || self == .recovery }
}

/// Where an alert comes from, so its text can name the deployment, the log and the next step.
public struct AlertContext: Sendable {
    /// The deployment's name (`DEPLOYMENT_NAME`, default the executable's name), in subjects.
    public var deployment: String
    /// The executable (`backstop`, `journal-backup`), for the next command to run.
    public var executable: String
    /// The config file (absolute), for the next command to run.
    public var configPath: String
    /// Today's log file, if the command writes one.
    public var logFile: String?
    /// The host.
    public var host: String

    /// Creates a context.
    public init(deployment: String, executable: String, configPath: String, logFile: String? = nil,
                host: String = ProcessInfo.processInfo.hostName) {
        self.deployment = deployment
        self.executable = executable
        self.configPath = configPath
        self.logFile = logFile
        self.host = host
    }

    /// `executable ARGS --config FILE`, quoted for a shell where needed.
    public func command(_ args: String) -> String {
        let cfg = configPath.contains(where: { " '\"$`\\".contains($0) }) ? "'" + configPath.replacingOccurrences(of: "'", with: "'\\''") + "'" : configPath
        return "\(executable) \(args) --config \(cfg)"
    }
}

/// What happened, told to people and monitors.
public struct Alert: Codable, Sendable {
    /// How it reads.
    public var level: AlertLevel
    /// What produced it: `backup`, `verify`, `drill`, `health`, `test`; cooldowns and
    /// recoveries are tracked per kind.
    public var kind: String
    /// Which executable ran (e.g. `journal-backup`).
    public var source: String
    /// The deployment's name.
    public var deployment: String
    /// The host.
    public var host: String
    /// One line, e.g. `[shop] BACKUP FAILED on db1: db`.
    public var subject: String
    /// The details, one per line.
    public var lines: [String]

    /// Whether the news is good (kept in webhook bodies as `ok`).
    public var ok: Bool { level.isGood }

    enum CodingKeys: String, CodingKey { case level, kind, source, deployment, host, subject, lines, ok }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(level, forKey: .level)
        try c.encode(kind, forKey: .kind)
        try c.encode(source, forKey: .source)
        try c.encode(deployment, forKey: .deployment)
        try c.encode(host, forKey: .host)
        try c.encode(subject, forKey: .subject)
        try c.encode(lines, forKey: .lines)
        try c.encode(ok, forKey: .ok)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        level = try c.decode(AlertLevel.self, forKey: .level)
        kind = try c.decode(String.self, forKey: .kind)
        source = try c.decode(String.self, forKey: .source)
        deployment = try c.decode(String.self, forKey: .deployment)
        host = try c.decode(String.self, forKey: .host)
        subject = try c.decode(String.self, forKey: .subject)
        lines = try c.decode([String].self, forKey: .lines)
    }

    /// Creates an alert.
    public init(level: AlertLevel, kind: String, source: String, deployment: String? = nil,
                host: String = ProcessInfo.processInfo.hostName, subject: String, lines: [String]) {
        self.level = level
        self.kind = kind
        self.source = source
        self.deployment = deployment ?? source
        self.host = host
        self.subject = subject
        self.lines = lines
    }

    /// Creates a failure (`ok == false`) or success alert.
    public init(ok: Bool, kind: String = "run", source: String, host: String = ProcessInfo.processInfo.hostName, subject: String, lines: [String]) {
        self.init(level: ok ? .ok : .failure, kind: kind, source: source, host: host, subject: subject, lines: lines)
    }

    /// The last `count` non-empty lines of an error, each trimmed.
    static func tail(_ text: String, _ count: Int = 5) -> [String] {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.suffix(count).map { $0 }
    }

    /// Describes a backup run: each target's status, size and duration, warnings, what failed
    /// with the last lines of its error, the log file and the next command to run.
    public static func backup(_ summary: RunSummary, context: AlertContext) -> Alert {
        let failed = summary.targets.filter { $0.status == .failed }
        // A target's own warnings; its preflight warnings only when it recorded none (they
        // usually say the same thing twice).
        let warnings = summary.targets.flatMap { t in
            (t.warnings.isEmpty ? summary.findings.filter { $0.target == t.name && $0.severity == .warning }.map(\.message) : t.warnings)
                .map { "\(t.name): \($0)" }
        }
        let id = summary.setID ?? "(none kept)"
        let level: AlertLevel = !failed.isEmpty || summary.targets.isEmpty ? .failure : warnings.isEmpty ? .ok : .warning
        let subject: String
        switch level {
        case .failure: subject = "[\(context.deployment)] BACKUP FAILED on \(context.host): \(failed.map(\.name).joined(separator: ", "))"
        case .warning: subject = "[\(context.deployment)] backup \(id) completed with \(warnings.count) warning\(warnings.count == 1 ? "" : "s") on \(context.host)"
        default: subject = "[\(context.deployment)] backup \(id) OK on \(context.host)"
        }
        var lines = ["deployment: \(context.deployment), host: \(context.host), set: \(id)"]
        if let start = summary.targets.map(\.startedAt).min(), let end = summary.targets.map(\.finishedAt).max() {
            lines.append("run: \(Format.iso8601(start)) to \(Format.iso8601(end))")
        }
        for t in summary.targets {
            let took = Format.seconds(t.finishedAt.timeIntervalSince(t.startedAt))
            if t.status == .ok {
                lines.append("\(t.name) (\(t.kind)): ok, \(Format.bytes(BackupEngine.contentBytes(t))) in \(took)")
            } else {
                lines.append("\(t.name) (\(t.kind)): FAILED after \(took):")
                lines += tail(t.error ?? "unknown error").map { "    " + $0 }
            }
        }
        if !warnings.isEmpty { lines.append("warnings:"); lines += warnings.prefix(10).map { "    " + $0 } }
        if let log = context.logFile { lines.append("log: \(log)") }
        if !failed.isEmpty {
            lines.append("next: \(context.command("check")), then: \(context.command("backup --only " + failed.map(\.name).joined(separator: " ")))")
        } else if level == .warning {
            lines.append("next: read the warnings in the log, then: \(context.command("health"))")
        }
        return Alert(level: level, kind: "backup", source: context.executable, deployment: context.deployment, host: context.host,
                     subject: subject, lines: lines)
    }

    /// Describes a command that stopped with an error before it could finish (or start).
    public static func error(_ error: Error, command: String, context: AlertContext, couldNotStart: Bool = false) -> Alert {
        var lines = ["deployment: \(context.deployment), host: \(context.host)", "\(command) \(couldNotStart ? "could not start" : "stopped"):"]
        lines += tail("\(error)").map { "    " + $0 }
        if let log = context.logFile { lines.append("log: \(log)") }
        lines.append("next: \(context.command("check"))")
        return Alert(level: .failure, kind: command, source: context.executable, deployment: context.deployment, host: context.host,
                     subject: "[\(context.deployment)] \(command.uppercased()) \(couldNotStart ? "COULD NOT START" : "FAILED") on \(context.host)",
                     lines: lines)
    }

    /// Describes a health verdict (`health`, `check --health`).
    public static func health(_ report: HealthReport, context: AlertContext) -> Alert {
        let level: AlertLevel = report.overallStatus == .ok ? .ok : report.overallStatus == .warning ? .warning : .failure
        var lines = ["deployment: \(context.deployment), host: \(context.host), health: \(report.overallStatus.label)"]
        for t in report.targets {
            lines.append("\(t.name) (\(t.kind)): \(t.status.label), last good backup "
                         + (t.lastSuccessID.map { "\($0), \(Format.age(t.ageSeconds ?? 0)) ago, \(Format.bytes(t.bytes ?? 0))" } ?? "none")
                         + (t.lastRunSeconds.map { ", last run took \(Format.seconds($0))" } ?? ""))
        }
        for i in report.issues.sorted(by: { $0.status > $1.status }) { lines.append("\(i.status.label): \(i.check) \(i.aspect): \(i.message)") }
        if level != .ok { lines.append("next: \(context.command("health"))") }
        return Alert(level: level, kind: "health", source: context.executable, deployment: context.deployment, host: context.host,
                     subject: "[\(context.deployment)] BACKUP HEALTH \(report.overallStatus.label) on \(context.host)", lines: lines)
    }

    /// The all-clear for an earlier alert of the same kind.
    public func recovered(after previous: AlertLevel) -> Alert {
        var copy = self
        copy.level = .recovery
        copy.subject = "[\(deployment)] RECOVERED: \(kind) is OK again on \(host)"
        copy.lines = ["the \(kind) \(previous == .warning ? "warnings" : "failure") reported earlier \(previous == .warning ? "are" : "is") resolved"] + lines
        return copy
    }

    /// The text body: subject, then the lines.
    public var text: String { ([subject] + lines).joined(separator: "\n") }
}
