import Foundation

/// Posts a JSON alert to a webhook. The body carries `text` (Slack), `content` (Discord) and
/// structured fields for anything else.
public struct WebhookChannel: AlertChannel {
    /// The webhook URL (a secret: never logged).
    public let url: String
    /// Also send successes.
    public let always: Bool

    /// Creates the channel.
    public init(url: String, always: Bool) {
        self.url = url
        self.always = always
    }

    public var label: String { "webhook \(Curl.host(url))" }
    public func wants(_ alert: Alert) -> Bool { always || !alert.ok }

    public func deliver(_ alert: Alert) throws {
        let payload: [String: JSONValue] = [
            "text": .string(alert.text), "content": .string(String(alert.text.prefix(1900))),
            "ok": .bool(alert.ok), "source": .string(alert.source), "host": .string(alert.host),
            "subject": .string(alert.subject), "lines": .array(alert.lines.map { .string($0) }),
        ]
        let body = try BackstopJSON.encoder().encode(payload)
        let response = try Curl.http(url: url, headers: ["Content-Type: application/json"], body: body)
        guard (200..<300).contains(response.status) else {
            throw CurlError(message: "\(label) answered HTTP \(response.status)")
        }
    }
}

/// Pings a health-check URL after every run: the URL itself on success, `URL/fail` on failure
/// (the healthchecks.io convention), with the summary as the body. A monitor that stops
/// hearing pings raises its own alarm, which catches the runs that never started.
public struct HealthcheckChannel: AlertChannel {
    /// The ping URL (a secret: never logged).
    public let url: String

    /// Creates the channel.
    public init(url: String) { self.url = url }

    public var label: String { "health check \(Curl.host(url))" }
    public func wants(_ alert: Alert) -> Bool { true }

    public func deliver(_ alert: Alert) throws {
        let target = alert.ok ? url : (url.hasSuffix("/") ? url + "fail" : url + "/fail")
        let response = try Curl.http(url: target, headers: ["Content-Type: text/plain"], body: Data(alert.text.utf8))
        guard (200..<300).contains(response.status) else {
            throw CurlError(message: "\(label) answered HTTP \(response.status)")
        }
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
    /// Also send successes.
    public let always: Bool

    /// Creates the channel.
    public init(url: String, from: String, to: [String], user: String?, password: String?, always: Bool) {
        self.url = url
        self.from = from
        self.to = to
        self.user = user
        self.password = password
        self.always = always
    }

    public var label: String { "e-mail via \(Curl.host(url))" }
    public func wants(_ alert: Alert) -> Bool { always || !alert.ok }

    public func deliver(_ alert: Alert) throws {
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
        // Dot-stuffing is done by libcurl; lines must end in CRLF.
        let message = (headers + [""] + alert.lines).joined(separator: "\r\n") + "\r\n"
        try Curl.sendMail(url: url, from: from, to: to, user: user, password: password, message: Data(message.utf8))
    }
}

extension Alerter {
    /// Builds the channels from config: `ALERT_WEBHOOK_URL` (Slack, Discord or any JSON
    /// endpoint), `HEALTHCHECK_URL`, `ALERT_EMAIL_TO` with `SMTP_URL`, `ALERT_EMAIL_FROM`,
    /// `SMTP_USER`, `SMTP_PASSWORD`; `ALERT_ON` is `failure` (default) or `always`.
    public static func from(config: Config) throws -> Alerter {
        let always = try config.choice("ALERT_ON", ["failure", "always"], default: "failure") == "always"
        var channels: [any AlertChannel] = []
        for key in ["ALERT_WEBHOOK_URL", "HEALTHCHECK_URL", "SMTP_URL"] {
            if let url = config.string(key), URL(string: url)?.host == nil {
                throw ConfigError.invalidValue(key: key, file: config.file, value: key == "SMTP_URL" ? url : "(hidden)", expected: "a URL such as https://host/path")
            }
        }
        if let url = config.string("ALERT_WEBHOOK_URL") { channels.append(WebhookChannel(url: url, always: always)) }
        if let url = config.string("HEALTHCHECK_URL") { channels.append(HealthcheckChannel(url: url)) }
        let to = config.list("ALERT_EMAIL_TO")
        if !to.isEmpty {
            let smtp = try config.require("SMTP_URL")
            guard smtp.hasPrefix("smtp://") || smtp.hasPrefix("smtps://") else {
                throw ConfigError.invalidValue(key: "SMTP_URL", file: config.file, value: smtp, expected: "smtp://host:port or smtps://host:port")
            }
            channels.append(EmailChannel(url: smtp, from: try config.require("ALERT_EMAIL_FROM"), to: to,
                                         user: config.string("SMTP_USER"), password: config.string("SMTP_PASSWORD"), always: always))
        }
        return Alerter(channels: channels, redactor: Redactor(secrets: config.secretValues + [config.string("ALERT_WEBHOOK_URL"), config.string("HEALTHCHECK_URL")].compactMap { $0 }))
    }
}
