import Foundation

/// What happened in a run, told to people and monitors.
public struct Alert: Codable, Sendable {
    /// Whether the run succeeded.
    public var ok: Bool
    /// Which executable ran (e.g. `journal-backup`).
    public var source: String
    /// The host.
    public var host: String
    /// One line, e.g. `backup 20240708_020000 failed: db`.
    public var subject: String
    /// The details, one per line.
    public var lines: [String]

    /// Creates an alert.
    public init(ok: Bool, source: String, host: String = ProcessInfo.processInfo.hostName, subject: String, lines: [String]) {
        self.ok = ok
        self.source = source
        self.host = host
        self.subject = subject
        self.lines = lines
    }

    /// Describes a backup run.
    public static func backup(_ summary: RunSummary, source: String) -> Alert {
        let failed = summary.targets.filter { $0.status == .failed }
        let id = summary.setID ?? "(none kept)"
        let subject = failed.isEmpty
            ? "[\(source)] backup \(id) OK on \(ProcessInfo.processInfo.hostName)"
            : "[\(source)] BACKUP FAILED on \(ProcessInfo.processInfo.hostName): \(failed.map(\.name).joined(separator: ", "))"
        var lines = summary.targets.map { t in
            t.status == .ok ? "\(t.name): ok, \(Format.bytes(t.bytes))" : "\(t.name): FAILED: \(t.error ?? "unknown")"
        }
        lines.append("set: \(id)")
        return Alert(ok: failed.isEmpty && !summary.targets.isEmpty, source: source, subject: subject, lines: lines)
    }

    /// Describes a run that stopped with an error before it could finish.
    public static func error(_ error: Error, command: String, source: String) -> Alert {
        Alert(ok: false, source: source, subject: "[\(source)] \(command.uppercased()) FAILED on \(ProcessInfo.processInfo.hostName)",
              lines: ["\(error)"])
    }

    /// The text body: subject, then the lines.
    public var text: String { ([subject] + lines).joined(separator: "\n") }
}

/// A way to deliver alerts: a webhook, a health-check ping, e-mail.
public protocol AlertChannel: Sendable {
    /// A short name for logs, e.g. `webhook hooks.slack.com`.
    var label: String { get }
    /// Whether this channel wants this alert (e.g. failures only).
    func wants(_ alert: Alert) -> Bool
    /// Delivers the alert (already redacted).
    func deliver(_ alert: Alert) throws
}

/// Sends an alert through every channel that wants it. A delivery failure is logged, never
/// silent, and never hides the run's own result.
public struct Alerter: Sendable {
    /// The channels.
    public let channels: [any AlertChannel]
    /// Removes secrets from every alert before it leaves.
    public let redactor: Redactor

    /// Creates an alerter.
    public init(channels: [any AlertChannel], redactor: Redactor) {
        self.channels = channels
        self.redactor = redactor
    }

    /// Delivers `alert`; returns the problems (one line each) for the caller to log.
    public func send(_ alert: Alert) -> [String] {
        var clean = alert
        clean.subject = redactor.redact(alert.subject)
        clean.lines = alert.lines.map { redactor.redact($0) }
        var problems: [String] = []
        for channel in channels where channel.wants(clean) {
            do { try channel.deliver(clean) } catch {
                problems.append("alert via \(channel.label) failed: \(redactor.redact("\(error)"))")
            }
        }
        return problems
    }
}
