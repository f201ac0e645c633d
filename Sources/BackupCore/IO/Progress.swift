import Foundation

/// Byte progress for long work, drawn on stderr only when stderr is a terminal (never in
/// cron mail or the log file). Thread-safe.
public final class Progress: @unchecked Sendable {
    private let label: String
    private let total: Int64?
    private let enabled: Bool
    private let lock = NSLock()
    private var done: Int64 = 0
    private let start = Date()
    private var lastDraw = Date.distantPast

    /// Creates a progress line labelled `label`; `total` enables a percentage.
    public init(label: String, total: Int64? = nil, enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.label = label
        self.total = total
        self.enabled = enabled
    }

    /// Records `bytes` more done and redraws at most four times a second.
    public func advance(by bytes: Int64) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        done += bytes
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.25 else { return }
        lastDraw = now
        draw(now: now)
    }

    private func draw(now: Date) {
        let elapsed = max(now.timeIntervalSince(start), 0.001)
        var line = "\r\(label): \(Format.bytes(done))"
        if let total, total > 0 { line += " / \(Format.bytes(total)) (\(min(100, done * 100 / total))%)" }
        line += "  \(Format.bytes(Int64(Double(done) / elapsed)))/s   "
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Clears the progress line.
    public func finish() {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        if lastDraw != .distantPast { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// Human-readable formatting shared by every command.
public enum Format {
    /// `1.5 MiB`-style sizes.
    public static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }

    /// `1.23 s`-style durations.
    public static func seconds(_ t: TimeInterval) -> String { String(format: "%.2f s", t) }

    /// An age for people: `42 s`, `5 min`, `3.2 h`, `2.1 days`.
    public static func age(_ t: TimeInterval) -> String {
        if t < 120 { return "\(Int(t)) s" }
        if t < 7200 { return "\(Int(t / 60)) min" }
        if t < 172_800 { return String(format: "%.1f h", t / 3600) }
        return String(format: "%.1f days", t / 86400)
    }

    /// How long ago, for people: `just now` under a minute, then `5 min ago`, `3.2 h ago`, `2.1 days ago`.
    public static func ago(_ t: TimeInterval) -> String {
        if t < 60 { return "just now" }
        if t < 3600 { return "\(Int(t / 60)) min ago" }
        return age(t) + " ago"
    }

    /// ISO 8601 in UTC with fractional seconds.
    public static func iso8601(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    /// Parses what `iso8601(_:)` writes (with or without fractional seconds).
    public static func parseISO8601(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }
}
