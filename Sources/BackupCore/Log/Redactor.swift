import Foundation

/// Removes secrets from text before it reaches a log, an alert or the terminal: every known
/// secret value from the config, `password=...`-style pairs, and passwords in URLs.
public struct Redactor: Sendable {
    private let secrets: [String]

    /// Creates a redactor for these secret values (values shorter than 3 characters are ignored).
    public init(secrets: [String] = []) {
        self.secrets = secrets.filter { $0.count >= 3 }.sorted { $0.count > $1.count }
    }

    /// The text with every secret replaced by `***`.
    public func redact(_ text: String) -> String {
        var out = text
        for s in secrets { out = out.replacingOccurrences(of: s, with: "***") }
        out = out.replacingOccurrences(of: #"(?i)\b(password|passwd|pwd|token|secret|api[_-]?key)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,]+)"#,
                                       with: "$1$2***", options: .regularExpression)
        out = out.replacingOccurrences(of: #"(://[^/\s:@]+):[^@\s/]+@"#, with: "$1:***@", options: .regularExpression)
        return out
    }
}
