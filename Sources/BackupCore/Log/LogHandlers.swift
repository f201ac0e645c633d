import Foundation
import Logging

/// Where log lines go: stderr and a daily file, both through one `Redactor`.
public final class LogSink: @unchecked Sendable {
    private let lock = NSLock()
    private let redactor: Redactor
    private let directory: String?
    private let toStderr: Bool
    private var fileDay = ""
    private var fd: Int32 = -1
    /// Metadata key that sends a log line to the log file only, for what a command already
    /// prints on stdout itself (so the terminal shows it once); `Logger.Metadata.logFileOnly`.
    public static let fileOnlyKey = "fileOnly"
    /// Every line written, redacted; kept for alerts and tests.
    public private(set) var lines: [String] = []

    /// Creates a sink. `directory` receives `backup-YYYY-MM-DD.log` files (0600); nil writes none.
    public init(redactor: Redactor, directory: String?, toStderr: Bool = true) {
        self.redactor = redactor
        self.directory = directory
        self.toStderr = toStderr
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Writes one line (a newline is added), redacted; with `fileOnly`, to the log file only.
    public func write(level: Logger.Level, _ message: String, fileOnly: Bool = false) {
        let clean = redactor.redact(message)
        let now = Date()
        let stamp = Self.timestamp(now)
        lock.lock(); defer { lock.unlock() }
        lines.append(clean)
        if toStderr && !fileOnly {
            let prefix = level >= .warning ? "\(level == .warning ? "warning" : "error"): " : ""
            FileHandle.standardError.write(Data((prefix + clean + "\n").utf8))
        }
        guard let directory else { return }
        let day = String(stamp.prefix(10))
        if day != fileDay {
            if fd >= 0 { close(fd); fd = -1 }
            try? FileOps.makeDirectory(directory)
            fd = open("\(directory)/backup-\(day).log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, FileOps.fileMode)
            fileDay = day
        }
        if fd >= 0 {
            let line = "\(stamp) [\(level.rawValue.uppercased())] \(clean)\n"
            _ = line.withCString { Foundation.write(fd, $0, strlen($0)) }
        }
    }

    static func timestamp(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f.string(from: date)
    }
}

/// A swift-log handler that writes through a `LogSink`.
public struct SinkLogHandler: LogHandler {
    /// The sink lines go to.
    public let sink: LogSink
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    /// Creates a handler for `sink`.
    public init(sink: LogSink, level: Logger.Level = .info) {
        self.sink = sink
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one event: `[target] message key=value ...`, the handler's metadata merged with the event's.
    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let target = all.removeValue(forKey: "target").map { "[\($0)] " } ?? ""
        let fileOnly = all.removeValue(forKey: LogSink.fileOnlyKey) != nil
        let tail = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        sink.write(level: event.level, "\(target)\(event.message)\(tail)", fileOnly: fileOnly)
    }
}

extension Logger.Metadata {
    /// Metadata for a line that goes to the log file but not to stderr, because the command
    /// prints the same fact on stdout (e.g. a restore report's safety copy path).
    public static var logFileOnly: Logger.Metadata { [LogSink.fileOnlyKey: "true"] }
}

extension Logger {
    /// A logger writing through `sink`.
    public static func backstop(sink: LogSink, level: Logger.Level = .info) -> Logger {
        Logger(label: "backstop") { _ in SinkLogHandler(sink: sink, level: level) }
    }
}
