import Foundation

/// A way to deliver alerts: a chat webhook, a push service, e-mail. Whether an alert goes out
/// at all (ALERT_ON, cooldown, consecutive failures) is the `Alerter`'s decision, not the channel's.
public protocol AlertChannel: Sendable {
    /// A short name for logs that never shows a secret, e.g. `Slack hooks.slack.com` (no path).
    var label: String { get }
    /// Delivers the alert (already redacted); throws with one line when it could not.
    func deliver(_ alert: Alert) throws
}

/// Posts `body` as JSON to `url`; a non-2xx answer is an error.
private func postJSON(_ url: String, _ body: [String: JSONValue], label: String, timeout: Int, headers: [String] = []) throws {
    let data = try BackstopJSON.encoder().encode(body)
    // "Expect:" off: no one-second wait for a 100-continue that many servers never send.
    let response = try Curl.http(url: url, headers: ["Content-Type: application/json", "Expect:"] + headers, body: data, timeoutSeconds: timeout)
    guard (200..<300).contains(response.status) else { throw CurlError(message: "\(label) answered HTTP \(response.status)") }
}

/// A generic JSON webhook (schedgen's `BACKUP_ALERT_WEBHOOK_URL`): `text` (Slack-compatible),
/// `content` (Discord-compatible) and the structured fields `level`, `ok`, `kind`,
/// `deployment`, `host`, `subject`, `lines`.
public struct WebhookChannel: AlertChannel {
    /// The URL (a secret: never logged).
    public let url: String
    /// Seconds before the request is abandoned.
    public let timeout: Int
    /// Creates the channel.
    public init(url: String, timeout: Int = 20) { self.url = url; self.timeout = timeout }
    public var label: String { "webhook \(Curl.host(url))" }
    public func deliver(_ alert: Alert) throws {
        try postJSON(url, [
            "text": .string(alert.text), "content": .string(String(alert.text.prefix(1900))),
            "ok": .bool(alert.ok), "level": .string(alert.level.rawValue), "kind": .string(alert.kind),
            "source": .string(alert.source), "deployment": .string(alert.deployment), "host": .string(alert.host),
            "subject": .string(alert.subject), "lines": .array(alert.lines.map { .string($0) }),
        ], label: label, timeout: timeout)
    }
}

/// A Slack incoming webhook: one colour-coded attachment (green OK, orange warning, red failure).
public struct SlackChannel: AlertChannel {
    /// The URL (a secret: never logged).
    public let url: String
    /// Seconds before the request is abandoned.
    public let timeout: Int
    /// Creates the channel.
    public init(url: String, timeout: Int = 20) { self.url = url; self.timeout = timeout }
    public var label: String { "Slack \(Curl.host(url))" }
    /// Slack's colour names for each level.
    public static func color(_ level: AlertLevel) -> String {
        switch level {
        case .ok, .recovery: "good"
        case .warning: "warning"
        case .failure: "danger"
        }
    }
    public func deliver(_ alert: Alert) throws {
        try postJSON(url, [
            "text": .string(alert.subject),
            "attachments": .array([.object([
                "color": .string(Self.color(alert.level)), "title": .string(alert.subject),
                "text": .string("```\n" + alert.lines.joined(separator: "\n") + "\n```"),
                "footer": .string("\(alert.source) on \(alert.host)"), "ts": .number(Date().timeIntervalSince1970.rounded()),
                "fallback": .string(alert.subject),
            ])]),
        ], label: label, timeout: timeout)
    }
}

/// A Discord webhook: one embed, colour-coded like Slack's attachment.
public struct DiscordChannel: AlertChannel {
    /// The URL (a secret: never logged).
    public let url: String
    /// Seconds before the request is abandoned.
    public let timeout: Int
    /// Creates the channel.
    public init(url: String, timeout: Int = 20) { self.url = url; self.timeout = timeout }
    public var label: String { "Discord \(Curl.host(url))" }
    /// The embed colour (RGB) for each level.
    public static func color(_ level: AlertLevel) -> Int {
        switch level {
        case .ok, .recovery: 0x2EB67D
        case .warning: 0xECB22E
        case .failure: 0xE01E5A
        }
    }
    public func deliver(_ alert: Alert) throws {
        // Discord's limits: title 256, description 4096 characters.
        try postJSON(url, [
            "embeds": .array([.object([
                "title": .string(String(alert.subject.prefix(256))),
                "description": .string(String(alert.lines.joined(separator: "\n").prefix(4000))),
                "color": .number(Double(Self.color(alert.level))),
                "timestamp": .string(Format.iso8601(Date())),
                "footer": .object(["text": .string("\(alert.source) on \(alert.host)")]),
            ])]),
        ], label: label, timeout: timeout)
    }
}

/// ntfy (or anything taking a plain-text POST): the lines as the body, the subject in the
/// `Title` header, a priority and a tag by level; an access token goes in `Authorization`.
public struct NtfyChannel: AlertChannel {
    /// The topic URL (a secret: never logged).
    public let url: String
    /// The access token, if the server needs one.
    public let token: String?
    /// Seconds before the request is abandoned.
    public let timeout: Int
    /// Creates the channel.
    public init(url: String, token: String?, timeout: Int = 20) { self.url = url; self.token = token; self.timeout = timeout }
    public var label: String { "ntfy \(Curl.host(url))" }
    public func deliver(_ alert: Alert) throws {
        let (priority, tag) = alert.level == .failure ? ("5", "rotating_light") : alert.level == .warning ? ("4", "warning") : ("3", "white_check_mark")
        // HTTP headers must be one line of ASCII-safe text.
        let title = String(alert.subject.replacingOccurrences(of: "\n", with: " ").unicodeScalars.filter { $0.isASCII && $0.value >= 32 })
        var headers = ["Content-Type: text/plain; charset=utf-8", "Expect:", "Title: \(title)", "Priority: \(priority)", "Tags: \(tag)"]
        if let token { headers.append("Authorization: Bearer \(token)") }
        let response = try Curl.http(url: url, headers: headers, body: Data(alert.lines.joined(separator: "\n").utf8), timeoutSeconds: timeout)
        guard (200..<300).contains(response.status) else { throw CurlError(message: "\(label) answered HTTP \(response.status)") }
    }
}

/// Gotify: `POST URL/message` with the application token in `X-Gotify-Key`.
public struct GotifyChannel: AlertChannel {
    /// The server's base URL.
    public let url: String
    /// The application token (a secret).
    public let token: String
    /// Seconds before the request is abandoned.
    public let timeout: Int
    /// Creates the channel.
    public init(url: String, token: String, timeout: Int = 20) { self.url = url; self.token = token; self.timeout = timeout }
    public var label: String { "Gotify \(Curl.host(url))" }
    public func deliver(_ alert: Alert) throws {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        try postJSON(base + "/message", [
            "title": .string(alert.subject), "message": .string(alert.lines.joined(separator: "\n")),
            "priority": .number(alert.level == .failure ? 8 : alert.level == .warning ? 5 : 2),
        ], label: label, timeout: timeout, headers: ["X-Gotify-Key: \(token)"])
    }
}

/// An RFC 5322 message for e-mail channels.
enum MailMessage {
    static func render(_ alert: Alert, from: String, to: [String]) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let headers = [
            "Date: \(f.string(from: Date()))",
            "From: \(from)",
            "To: \(to.joined(separator: ", "))",
            "Subject: \(alert.subject.replacingOccurrences(of: "\n", with: " "))",
            "Message-ID: <\(UUID().uuidString)@\(alert.host)>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
        ]
        // A line holding only "." would end the message early over SMTP; libcurl and
        // sendmail -i both handle it, and lines must end in CRLF.
        return (headers + [""] + alert.lines).joined(separator: "\r\n") + "\r\n"
    }
}

/// Sends alerts by e-mail through an SMTP server (libcurl; STARTTLS when offered).
public struct EmailChannel: AlertChannel {
    /// `smtp://host:port` or `smtps://host:port`.
    public let url: String
    /// Sender address.
    public let from: String
    /// Recipients.
    public let to: [String]
    /// SMTP user, if the server needs one.
    public let user: String?
    /// SMTP password (a secret).
    public let password: String?
    /// Seconds before the transfer is abandoned.
    public let timeout: Int

    /// Creates the channel.
    public init(url: String, from: String, to: [String], user: String?, password: String?, timeout: Int = 30) {
        self.url = url
        self.from = from
        self.to = to
        self.user = user
        self.password = password
        self.timeout = timeout
    }

    public var label: String { "e-mail via \(Curl.host(url))" }

    public func deliver(_ alert: Alert) throws {
        let message = MailMessage.render(alert, from: from, to: to)
        try Curl.sendMail(url: url, from: from, to: to, user: user, password: password, message: Data(message.utf8), timeoutSeconds: timeout)
    }
}

/// Sends alerts through the local `sendmail` (`sendmail -t -i`, the message on stdin), for
/// hosts with a mail transfer agent but no SMTP server to name. Bounded by `timeout`.
public struct SendmailChannel: AlertChannel {
    /// The sendmail program.
    public let program: String
    /// Sender address.
    public let from: String
    /// Recipients (in the `To` header; `-t` reads them from there).
    public let to: [String]
    /// Seconds before sendmail is stopped.
    public let timeout: Int

    /// Creates the channel.
    public init(program: String, from: String, to: [String], timeout: Int = 30) {
        self.program = program
        self.from = from
        self.to = to
        self.timeout = timeout
    }

    public var label: String { "e-mail via \(program)" }

    public func deliver(_ alert: Alert) throws {
        let message = Data(MailMessage.render(alert, from: from, to: to).utf8)
        // coreutils' timeout bounds a sendmail stuck on its own network connection.
        let (exe, args) = ChildProcess.which("timeout").map { ($0, ["\(timeout)", program, "-t", "-i"]) } ?? (program, ["-t", "-i"])
        let outcome = try ChildProcess(exe, args, input: .producer { write in
            try message.withUnsafeBytes { try write($0) }
        }).run()
        if outcome.status == 124 { throw OperationError("\(label) did not finish within \(timeout) s") }
        guard outcome.status == 0 else { throw OperationError("\(label) exited with status \(outcome.status): \(outcome.lastErrorLine)") }
    }
}

/// Pings a health-check URL (the healthchecks.io convention): `URL/start` when a run begins,
/// the URL itself on success, `URL/fail` on failure, with the summary as the body. A monitor
/// that stops hearing pings raises its own alarm, which catches runs that never happen.
public struct HealthcheckPinger: Sendable {
    /// What is being reported.
    public enum Event: String, Sendable { case start, success, fail }
    /// The ping URL (a secret: never logged).
    public let url: String
    /// Seconds before the request is abandoned.
    public let timeout: Int
    /// Creates the pinger.
    public init(url: String, timeout: Int = 10) { self.url = url; self.timeout = timeout }
    /// A short name for logs.
    public var label: String { "health check \(Curl.host(url))" }

    /// Sends one ping.
    public func ping(_ event: Event, body: String = "") throws {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        let target = event == .success ? url : base + "/" + event.rawValue
        let response = try Curl.http(url: target, headers: ["Content-Type: text/plain", "Expect:"], body: Data(String(body.prefix(10_000)).utf8),
                                     timeoutSeconds: timeout)
        guard (200..<300).contains(response.status) else { throw CurlError(message: "\(label) answered HTTP \(response.status)") }
    }
}
