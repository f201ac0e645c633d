import Foundation

/// When alerts go out: which levels (`ALERT_ON`), how long the same news stays quiet
/// (`ALERT_COOLDOWN`), and how many failures in a row it takes (`ALERT_AFTER_FAILURES`).
public struct AlertPolicy: Sendable {
    /// `failure` (failures only), `warning` (failures and warnings) or `always` (successes too).
    public var on: String
    /// The same level of the same kind is not repeated within this many seconds.
    public var cooldown: TimeInterval
    /// Failures in a row before the first failure alert.
    public var afterFailures: Int

    /// Creates a policy.
    public init(on: String = "failure", cooldown: TimeInterval = 3600, afterFailures: Int = 1) {
        self.on = on
        self.cooldown = cooldown
        self.afterFailures = afterFailures
    }
}

/// What the alerter remembers between runs about one kind of alert, in
/// `state/alerts-<kind>.json` (a file per kind, so a health check and a backup running at the
/// same time never overwrite each other's memory).
public struct AlertState: Codable, Sendable, Equatable {
    /// Per kind (`backup`, `health`, ...).
    public struct Stream: Codable, Sendable, Equatable {
        /// Failures in a row so far.
        public var consecutiveFailures = 0
        /// The level of the last alert sent, and when.
        public var lastSentLevel: AlertLevel?
        public var lastSentAt: Date?
        /// A failure or warning was reported and has not been cleared by a recovery alert.
        public var outstanding: AlertLevel?
    }
    /// By kind.
    public var streams: [String: Stream] = [:]

    /// Reads the state at `path`; a missing or unreadable file is a fresh start.
    public static func load(_ path: String) -> AlertState {
        guard let data = FileManager.default.contents(atPath: path),
              let s = try? BackstopJSON.decoder().decode(AlertState.self, from: data) else { return AlertState() }
        return s
    }

    /// Writes the state atomically (temp file, fsync, rename), creating its folder.
    public func save(_ path: String) throws {
        try FileOps.makeDirectory((path as NSString).deletingLastPathComponent)
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(self), to: path)
    }

    /// Decides what to send for `alert` under `policy` at `now`, and records it. Returns the
    /// alert to send (the alert itself, or a recovery notice) or nil, with the reason.
    public mutating func decide(_ alert: Alert, policy: AlertPolicy, now: Date) -> (Alert?, String) {
        var s = streams[alert.kind] ?? Stream()
        defer { streams[alert.kind] = s }
        func inCooldown(_ level: AlertLevel) -> Bool {
            s.lastSentLevel == level && s.lastSentAt.map { now.timeIntervalSince($0) < policy.cooldown } == true
        }
        func sent(_ level: AlertLevel) {
            s.lastSentLevel = level
            s.lastSentAt = now
        }
        switch alert.level {
        case .failure:
            s.consecutiveFailures += 1
            if s.consecutiveFailures < policy.afterFailures {
                return (nil, "failure \(s.consecutiveFailures) in a row; ALERT_AFTER_FAILURES=\(policy.afterFailures)")
            }
            if inCooldown(.failure) { return (nil, "the same failure was reported less than ALERT_COOLDOWN ago") }
            sent(.failure)
            s.outstanding = .failure
            return (alert, "failure")
        case .warning:
            s.consecutiveFailures = 0
            guard policy.on == "warning" || policy.on == "always" else {
                // A failure reported earlier is over, even if warnings remain.
                if s.outstanding == .failure { s.outstanding = nil; sent(.recovery); return (alert.recovered(after: .failure), "recovery") }
                return (nil, "ALERT_ON=\(policy.on) does not report warnings")
            }
            if inCooldown(.warning) { return (nil, "the same warnings were reported less than ALERT_COOLDOWN ago") }
            sent(.warning)
            s.outstanding = .warning
            return (alert, "warning")
        case .ok, .recovery:
            s.consecutiveFailures = 0
            if let previous = s.outstanding {
                s.outstanding = nil
                sent(.recovery)
                return (alert.recovered(after: previous), "recovery")
            }
            guard policy.on == "always" else { return (nil, "ALERT_ON=\(policy.on) does not report successes") }
            sent(.ok)
            return (alert, "success")
        }
    }
}

/// Sends alerts through every configured channel at once. A delivery failure is reported,
/// never silent, and never changes the command's own result; secrets are redacted first.
public struct Alerter: Sendable {
    /// The channels.
    public let channels: [any AlertChannel]
    /// The health-check pinger, if `HEALTHCHECK_URL` is set.
    public let pinger: HealthcheckPinger?
    /// When to send.
    public let policy: AlertPolicy
    /// Removes secrets from every alert and every problem line.
    public let redactor: Redactor

    /// Creates an alerter.
    public init(channels: [any AlertChannel], pinger: HealthcheckPinger? = nil, policy: AlertPolicy = AlertPolicy(), redactor: Redactor) {
        self.channels = channels
        self.pinger = pinger
        self.policy = policy
        self.redactor = redactor
    }

    /// The result of one delivery attempt.
    public struct Delivery: Sendable {
        /// The channel's label.
        public let channel: String
        /// nil when delivered; else one redacted line.
        public let problem: String?
    }

    /// Delivers `alert` through every channel regardless of policy (what `alert test` does).
    public func deliver(_ alert: Alert) -> [Delivery] {
        var clean = alert
        clean.subject = redactor.redact(alert.subject)
        clean.lines = alert.lines.map { redactor.redact($0) }
        return channels.map { channel in
            do {
                try channel.deliver(clean)
                return Delivery(channel: channel.label, problem: nil)
            } catch {
                return Delivery(channel: channel.label, problem: "alert via \(channel.label) failed: \(redactor.redact("\(error)"))")
            }
        }
    }

    /// Delivers `alert` regardless of policy; returns the problems (one line each) to log.
    public func send(_ alert: Alert) -> [String] { deliver(alert).compactMap(\.problem) }

    /// Applies the policy to `alert` with the state kept in `stateDirectory` (nil: no memory,
    /// so no cooldown or counting), then delivers what it decided. Returns the problems and a
    /// note saying what was decided, for the log.
    public func report(_ alert: Alert, stateDirectory: String?, now: Date = Date()) -> (problems: [String], note: String) {
        // A state folder that is a link out of the backup directory is not written: the alert
        // still goes out, without memory, and the problem is logged.
        let linkProblem = stateDirectory.flatMap(Repository.workingFolderProblem)
        let statePath = stateDirectory.flatMap { linkProblem == nil ? $0 : nil }.map { "\($0)/alerts-\(alert.kind.filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }).json" }
        var state = statePath.map(AlertState.load) ?? AlertState()
        let (toSend, reason) = state.decide(alert, policy: policy, now: now)
        var problems: [String] = linkProblem.map { [$0] } ?? []
        if let statePath {
            do { try state.save(statePath) } catch { problems.append("could not save alert state \(statePath): \(error)") }
        }
        guard let toSend else { return (problems, "alert not sent: \(reason)") }
        if channels.isEmpty { return (problems, "no alert channel is configured") }
        problems += send(toSend)
        return (problems, "alert sent (\(reason)) via \(channels.map(\.label).joined(separator: ", "))")
    }

    /// Pings the health-check URL, if one is set; returns a problem line or nil.
    public func ping(_ event: HealthcheckPinger.Event, body: String = "") -> String? {
        guard let pinger else { return nil }
        do { try pinger.ping(event, body: redactor.redact(body)); return nil } catch {
            return "ping of \(pinger.label) failed: \(redactor.redact("\(error)"))"
        }
    }
}

extension Alerter {
    /// The value of the first of `keys` that is set.
    private static func first(_ config: Config, _ keys: [String]) -> (key: String, value: String)? {
        for k in keys { if let v = config.string(k) { return (k, v) } }
        return nil
    }

    /// Builds the alerter from config (every channel that has its keys):
    /// `ALERT_WEBHOOK_URL` (or schedgen's `BACKUP_ALERT_WEBHOOK_URL`), `SLACK_WEBHOOK_URL`,
    /// `DISCORD_WEBHOOK_URL`, `NTFY_URL` (+ `NTFY_TOKEN`), `GOTIFY_URL` + `GOTIFY_TOKEN`,
    /// `HEALTHCHECK_URL`, `ALERT_EMAIL_TO` with `SMTP_URL` (or the local `SENDMAIL`);
    /// `ALERT_ON`, `ALERT_COOLDOWN`, `ALERT_AFTER_FAILURES`, `ALERT_TIMEOUT`.
    public static func from(config: Config) throws -> Alerter {
        let on = try config.choice("ALERT_ON", ["failure", "warning", "always"], default: "failure")
        let cooldown = try config.duration("ALERT_COOLDOWN", default: 3600)!
        let after = try config.int("ALERT_AFTER_FAILURES", default: 1, range: 1...1000)
        let timeout = max(1, Int(try config.duration("ALERT_TIMEOUT", default: 20)!))
        var channels: [any AlertChannel] = []
        var urls: [String] = []
        func url(_ keys: [String]) throws -> String? {
            guard let (key, value) = first(config, keys) else { return nil }
            guard let u = URL(string: value), u.host != nil, ["http", "https"].contains(u.scheme?.lowercased() ?? "") else {
                throw ConfigError.invalidValue(key: key, file: config.origin(key), value: "(hidden)", expected: "an http:// or https:// URL")
            }
            urls.append(value)
            // A webhook's token is its last path component or its query: redact those wherever
            // they appear (short ones such as `/backups` are names, not tokens).
            if let comps = URLComponents(string: value) {
                let last = comps.percentEncodedPath.split(separator: "/").last.map(String.init) ?? ""
                urls += [last, comps.percentEncodedQuery ?? ""].filter { $0.count >= 12 }
            }
            return value
        }
        if let u = try url(["ALERT_WEBHOOK_URL", "BACKUP_ALERT_WEBHOOK_URL"]) { channels.append(WebhookChannel(url: u, timeout: timeout)) }
        if let u = try url(["SLACK_WEBHOOK_URL", "SLACK_WEBHOOK"]) { channels.append(SlackChannel(url: u, timeout: timeout)) }
        if let u = try url(["DISCORD_WEBHOOK_URL", "DISCORD_WEBHOOK"]) { channels.append(DiscordChannel(url: u, timeout: timeout)) }
        if let u = try url(["NTFY_URL"]) { channels.append(NtfyChannel(url: u, token: config.string("NTFY_TOKEN"), timeout: timeout)) }
        if let u = try url(["GOTIFY_URL"]) {
            channels.append(GotifyChannel(url: u, token: try config.require("GOTIFY_TOKEN"), timeout: timeout))
        }
        let pinger = try url(["HEALTHCHECK_URL"]).map { HealthcheckPinger(url: $0, timeout: min(timeout, 10)) }
        let toKey = first(config, ["ALERT_EMAIL_TO", "ALERT_EMAIL", "BACKUP_ALERT_EMAIL"])?.key ?? "ALERT_EMAIL_TO"
        let to = config.list(toKey)
        if !to.isEmpty {
            if let smtp = config.string("SMTP_URL") {
                guard smtp.hasPrefix("smtp://") || smtp.hasPrefix("smtps://"), URL(string: smtp)?.host != nil else {
                    throw ConfigError.invalidValue(key: "SMTP_URL", file: config.origin("SMTP_URL"), value: smtp, expected: "smtp://host:port or smtps://host:port")
                }
                channels.append(EmailChannel(url: smtp, from: try config.require("ALERT_EMAIL_FROM"), to: to,
                                             user: config.string("SMTP_USER"), password: config.string("SMTP_PASSWORD"), timeout: max(timeout, 30)))
            } else {
                let program = config.string("SENDMAIL") ?? "/usr/sbin/sendmail"
                guard ChildProcess.which(program) != nil else {
                    throw ConfigError.invalidValue(key: toKey, file: config.origin(toKey), value: to.joined(separator: " "),
                                                   expected: "SMTP_URL to send through, or a sendmail program (\(program) is not installed; set SENDMAIL)")
                }
                channels.append(SendmailChannel(program: program, from: config.string("ALERT_EMAIL_FROM") ?? "backstop@\(ProcessInfo.processInfo.hostName)",
                                                to: to, timeout: max(timeout, 30)))
            }
        }
        return Alerter(channels: channels, pinger: pinger, policy: AlertPolicy(on: on, cooldown: cooldown, afterFailures: after),
                       redactor: Redactor(secrets: config.secretValues + urls))
    }
}
