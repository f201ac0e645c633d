import BackupCore
import Foundation

/// A WAL segment file name, `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the segment number split
/// in two halves whose split depends on the segment size.
public struct WalSegment: Comparable, Sendable, CustomStringConvertible {
    /// The timeline.
    public let timeline: UInt32
    /// The segment number on that timeline.
    public let number: UInt64
    /// Segments per 4 GiB "log file" (256 for the default 16 MiB segments).
    public let perLog: UInt64

    /// Parses a 24-hex-digit segment name; nil for anything else (history, .backup, .partial).
    public init?(name: String, segmentBytes: Int64 = 16 << 20) {
        guard name.count == 24, name.allSatisfy(\.isHexDigit), segmentBytes > 0,
              let tli = UInt32(name.prefix(8), radix: 16),
              let log = UInt64(name.dropFirst(8).prefix(8), radix: 16),
              let seg = UInt64(name.suffix(8), radix: 16) else { return nil }
        timeline = tli
        perLog = UInt64(0x1_0000_0000 / segmentBytes)
        number = log * perLog + seg
    }

    init(timeline: UInt32, number: UInt64, perLog: UInt64) {
        self.timeline = timeline
        self.number = number
        self.perLog = perLog
    }

    /// The file name.
    public var description: String {
        String(format: "%08X%08X%08X", timeline, UInt32(number / perLog), UInt32(number % perLog))
    }

    public static func < (a: WalSegment, b: WalSegment) -> Bool {
        (a.timeline, a.number) < (b.timeline, b.number)
    }
}

/// A folder that PostgreSQL's `archive_command` copies WAL segments into.
public struct WalArchive: Sendable {
    /// The folder.
    public let directory: String
    /// The server's `wal_segment_size` in bytes.
    public let segmentBytes: Int64

    /// Describes an archive folder.
    public init(directory: String, segmentBytes: Int64 = 16 << 20) {
        self.directory = directory
        self.segmentBytes = segmentBytes
    }

    /// Every segment in the folder with its modification time, oldest first. Compressed copies
    /// (`.gz`, `.zst`) count as the segment.
    public func segments() -> [(segment: WalSegment, modified: Date)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var found: [(WalSegment, Date)] = []
        for name in names {
            let base = name.split(separator: ".").first.map(String.init) ?? name
            guard name == base || name.hasSuffix(".gz") || name.hasSuffix(".zst"),
                  let seg = WalSegment(name: base, segmentBytes: segmentBytes) else { continue }
            var st = stat()
            guard stat(directory + "/" + name, &st) == 0 else { continue }
            found.append((seg, Date(timeIntervalSince1970: TimeInterval(st.st_mtim.tv_sec))))
        }
        return found.sorted { $0.0 < $1.0 }
    }

    /// The report kept in manifests and shown by `stats`: how many segments, the newest one's
    /// age, and any gap in the sequence from `since` (the oldest kept base backup's first
    /// segment) on its timeline.
    public func report(since: WalSegment?, now: Date = Date()) -> [String: JSONValue] {
        let all = segments()
        var out: [String: JSONValue] = ["directory": .string(directory), "segments": .number(Double(all.count))]
        guard let newest = all.last else {
            out["gaps"] = .array([])
            return out
        }
        out["oldest"] = .string(all[0].segment.description)
        out["newest"] = .string(newest.segment.description)
        out["newestAt"] = .string(Format.iso8601(newest.modified))
        out["newestAgeSeconds"] = .number(now.timeIntervalSince(newest.modified).rounded())
        out["gaps"] = .array(gaps(in: all.map(\.segment), since: since, branches: branchPoints()).map { .string($0) })
        return out
    }

    /// Missing ranges, as `FIRST..LAST` names: on the timeline of `since` (or of the oldest
    /// segment) from `since` up to its newest archived segment, then on every later timeline
    /// from where the one before it ended. After a point-in-time recovery the new timeline
    /// continues the old one's numbering; a missing first segment there is a gap too.
    public func gaps(in segments: [WalSegment], since: WalSegment?, branches: [UInt32: UInt64] = [:]) -> [String] {
        guard let first = since?.timeline ?? segments.first?.timeline else { return [] }
        let perLog = segments.first?.perLog ?? since?.perLog ?? 256
        var byTimeline: [UInt32: Set<UInt64>] = [:]
        for seg in segments where seg.timeline >= first { byTimeline[seg.timeline, default: []].insert(seg.number) }
        guard let onFirst = byTimeline[first], let firstMax = onFirst.max() else {
            return since.map { ["\($0) and later: none archived"] } ?? []
        }
        var start = since?.number ?? onFirst.min()!
        // A base backup's first segment is inside its tarball; it may be archived a moment later.
        if since != nil && !onFirst.contains(start) { start += 1 }
        var gaps = Self.missing(in: onFirst, from: start, to: firstMax, timeline: first, perLog: perLog)
        var previousEnd = firstMax
        for timeline in byTimeline.keys.sorted() where timeline > first {
            let numbers = byTimeline[timeline]!
            let end = numbers.max()!
            // Where this timeline branched off (its `.history` file), else where the one before ended.
            let from = branches[timeline] ?? min(previousEnd + 1, numbers.min()!)
            gaps += Self.missing(in: numbers, from: from, to: end, timeline: timeline, perLog: perLog)
            previousEnd = end
        }
        return gaps
    }

    /// For every timeline with a `TTTTTTTT.history` file in the archive: the segment number in
    /// which it branched off its parent (the last line's switch point).
    public func branchPoints() -> [UInt32: UInt64] {
        var result: [UInt32: UInt64] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".history") {
            guard name.count == 16, let tli = UInt32(name.prefix(8), radix: 16),
                  let text = try? String(contentsOfFile: directory + "/" + name, encoding: .utf8) else { continue }
            // Lines: parentTLI <tab> switchpoint LSN (X/Y) <tab> reason; comments start with #.
            let last = text.split(separator: "\n").last { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            guard let fields = last?.split(whereSeparator: { $0 == "\t" || $0 == " " }), fields.count >= 2 else { continue }
            let lsn = fields[1].split(separator: "/")
            guard lsn.count == 2, let hi = UInt64(lsn[0], radix: 16), let lo = UInt64(lsn[1], radix: 16) else { continue }
            result[tli] = ((hi << 32) | lo) / UInt64(segmentBytes)
        }
        return result
    }

    private static func missing(in numbers: Set<UInt64>, from start: UInt64, to last: UInt64, timeline: UInt32, perLog: UInt64) -> [String] {
        var gaps: [String] = []
        var n = start
        while n <= last {
            if numbers.contains(n) { n += 1; continue }
            var end = n
            while end + 1 <= last && !numbers.contains(end + 1) { end += 1 }
            let a = WalSegment(timeline: timeline, number: n, perLog: perLog)
            let b = WalSegment(timeline: timeline, number: end, perLog: perLog)
            gaps.append(n == end ? a.description : "\(a)..\(b)")
            n = end + 1
        }
        return gaps
    }

    /// Checks the server's WAL settings for base backups and point-in-time recovery, as
    /// Alfresco's `wal_config_check` does: `wal_level`, `archive_mode`, `archive_command`,
    /// the archiver's health, and this archive folder.
    public static func settingsFindings(_ conn: PGConnection, archive: String?, target: String) -> [Finding] {
        var f: [Finding] = []
        func setting(_ name: String) -> String? { (try? conn.scalar("SELECT current_setting($1, true)", parameters: [name])) ?? nil }
        let level = setting("wal_level") ?? "?"
        if level == "minimal" {
            f.append(Finding(.error, target: target, "wal_level is minimal: base backups and point-in-time recovery need replica (set wal_level = replica in postgresql.conf and restart)"))
        } else {
            f.append(Finding(.info, target: target, "wal_level = \(level)"))
        }
        let mode = setting("archive_mode") ?? "off"
        let command = setting("archive_command") ?? ""
        let library = setting("archive_library") ?? ""
        if mode == "off" {
            f.append(Finding(.warning, target: target, "archive_mode is off: WAL is not archived, so point-in-time recovery is impossible (set archive_mode = on and archive_command, then restart)"))
        } else if command.isEmpty && library.isEmpty {
            f.append(Finding(.warning, target: target, "archive_mode is \(mode) but archive_command is empty: WAL piles up in pg_wal and nothing is archived"))
        } else {
            f.append(Finding(.info, target: target, "archive_mode = \(mode), archive_command = \(command.isEmpty ? "(archive_library \(library))" : command)"))
            if let archive, !command.isEmpty, !command.contains(archive) {
                f.append(Finding(.warning, target: target, "archive_command does not mention the WAL archive \(archive): is the server archiving somewhere else?"))
            }
        }
        if let row = try? conn.query("""
            SELECT failed_count, last_failed_wal, last_failed_time, last_archived_time,
                   coalesce(last_failed_time > coalesce(last_archived_time, 'epoch'), false)
            FROM pg_stat_archiver
            """).first, row.count == 5, row[4] == "t" {
            f.append(Finding(.warning, target: target, "the archiver is failing: \(row[0] ?? "?") failures, last one on \(row[1] ?? "?") at \(row[2] ?? "?")"))
        }
        if let senders = setting("max_wal_senders"), senders == "0" {
            f.append(Finding(.error, target: target, "max_wal_senders is 0: pg_basebackup cannot connect (set max_wal_senders = 3 or more and restart)"))
        }
        if let archive {
            if !FileOps.isDirectory(archive) {
                f.append(Finding(.error, target: target, "WAL archive folder \(archive) does not exist"))
            } else if access(archive, W_OK) != 0 {
                f.append(Finding(.warning, target: target, "WAL archive folder \(archive) is not writable by this user"))
            }
        }
        return f
    }
}
