import Foundation

/// One file a target produced, checksummed while it was written.
public struct Artifact: Codable, Sendable, Equatable {
    /// Path relative to the set directory, e.g. `db/journal.db.gz`.
    public var path: String
    /// Size in bytes.
    public var bytes: Int64
    /// Lowercase hex SHA-256 of the file's bytes.
    public var sha256: String
    /// What the file holds, e.g. `tar+gzip`, `sqlite+gzip`.
    public var format: String

    /// Describes an artifact.
    public init(path: String, bytes: Int64, sha256: String, format: String) {
        self.path = path
        self.bytes = bytes
        self.sha256 = sha256
        self.format = format
    }
}

extension Artifact {
    /// The largest size a manifest may record: 2^60 bytes. A manifest is hostile input; a
    /// larger (or negative) size makes it unreadable, so sums of sizes never overflow.
    public static let maxBytes: Int64 = 1 << 60
    /// `maxBytes` as a Double, for checking numbers read from JSON.
    public static let maxBytesDouble: Double = 1_152_921_504_606_846_976

    /// `a + b`, stopping at `Int64.max` instead of trapping.
    public static func sum(_ a: Int64, _ b: Int64) -> Int64 {
        let (s, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : s
    }

    /// Why `path` cannot name a file inside a set (absolute, empty, `.` or `..` components,
    /// NUL), or nil when it is a plain relative path.
    public static func pathProblem(_ path: String) -> String? {
        if path.isEmpty { return "is empty" }
        if path.hasPrefix("/") { return "is absolute" }
        if path.contains("\0") { return "holds a NUL" }
        if path.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            return "has an empty, . or .. component"
        }
        return nil
    }
}

extension SetManifest {
    /// Why a manifest whose JSON decoded is still unusable (hostile or corrupt): see
    /// `TargetRecord.problem`. Nil when it is sound.
    public var problem: String? { targets.lazy.compactMap(\.problem).first }
}

extension TargetRecord {
    /// Why this record is unusable although its JSON decoded: an artifact with a negative size
    /// or one over 2^60 bytes, or a path that leaves the set directory. Nil when it is sound.
    public var problem: String? {
        for a in artifacts {
            if a.bytes < 0 || a.bytes > Artifact.maxBytes { return "artifact \(a.path) of \(name) has an impossible size (\(a.bytes) bytes)" }
            if let why = Artifact.pathProblem(a.path) { return "artifact path '\(a.path)' of \(name) \(why)" }
        }
        return nil
    }
}

/// Whether a target's part of a run succeeded.
public enum TargetStatus: String, Codable, Sendable {
    case ok
    case failed
}

/// What one target did in one run: the per-target manifest inside the set manifest.
public struct TargetRecord: Codable, Sendable {
    /// The target's configured name, e.g. `db`.
    public var name: String
    /// The target's kind, e.g. `sqlite`, `archive`.
    public var kind: String
    /// ok or failed.
    public var status: TargetStatus
    /// The one-line reason, when failed.
    public var error: String?
    /// When the target started.
    public var startedAt: Date
    /// When the target finished.
    public var finishedAt: Date
    /// The files produced.
    public var artifacts: [Artifact]
    /// Non-fatal problems (skipped paths, vanished files).
    public var warnings: [String]
    /// Facts about the source (git commit, row counts, member lists), shaped by the target.
    public var facts: [String: JSONValue]
    /// Versions of the tools and libraries that produced the artifacts.
    public var toolVersions: [String: String]

    /// Total artifact bytes.
    public var bytes: Int64 { artifacts.reduce(0) { Artifact.sum($0, $1.bytes) } }

    /// The size of the backed-up data: the artifacts, or for a snapshot tree (whose artifact is
    /// only its file list) the files of the tree (`apparentBytes`). `backup`, `list` and `stats`
    /// call this "data"; "on disk" adds the set's manifest and checksum files.
    public var dataBytes: Int64 { facts["apparentBytes"]?.sizeValue ?? bytes }
}

/// Whether every target of a run succeeded.
public enum SetStatus: String, Codable, Sendable {
    /// Every target succeeded.
    case complete
    /// At least one target failed; the others' backups are good.
    case partial
}

/// The run record: written last, atomically, into the set directory as `manifest.json`.
/// A set directory without it is incomplete and is never listed as good.
public struct SetManifest: Codable, Sendable {
    /// The manifest format; readers refuse formats they do not know.
    public var format: String = SetManifest.currentFormat
    /// The set's ID, `YYYYMMDD_HHMMSS` in UTC (with `_N` if two runs share a second).
    public var id: String
    /// The tier (folder) the set lives in: `daily`, `weekly`, `monthly`, or a custom one.
    public var tier: String
    /// Which executable made it.
    public var frontend: String
    /// The host it was made on.
    public var host: String
    /// Backstop's version.
    public var backstopVersion: String
    /// Run start.
    public var startedAt: Date
    /// Run end.
    public var finishedAt: Date
    /// complete or partial.
    public var status: SetStatus
    /// One record per target that ran.
    public var targets: [TargetRecord]

    /// The format this build writes.
    public static let currentFormat = "backstop-set/1"
    /// The file name of the manifest inside a set directory.
    public static let fileName = "manifest.json"

    /// Total artifact bytes of the set.
    public var bytes: Int64 { targets.reduce(0) { Artifact.sum($0, $1.bytes) } }

    /// Total data of the set (see `TargetRecord.dataBytes`).
    public var dataBytes: Int64 { targets.reduce(0) { Artifact.sum($0, $1.dataBytes) } }

    /// The record of `target`, if it ran in this set.
    public func record(for target: String) -> TargetRecord? { targets.first { $0.name == target } }
}
