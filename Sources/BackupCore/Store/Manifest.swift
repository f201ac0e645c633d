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
    public var bytes: Int64 { artifacts.reduce(0) { $0 + $1.bytes } }

    /// The size of the backed-up data: the artifacts, or for a snapshot tree (whose artifact is
    /// only its file list) the files of the tree (`apparentBytes`). `backup`, `list` and `stats`
    /// call this "data"; "on disk" adds the set's manifest and checksum files.
    public var dataBytes: Int64 { facts["apparentBytes"]?.numberValue.map { Int64($0) } ?? bytes }
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
    public var bytes: Int64 { targets.reduce(0) { $0 + $1.bytes } }

    /// Total data of the set (see `TargetRecord.dataBytes`).
    public var dataBytes: Int64 { targets.reduce(0) { $0 + $1.dataBytes } }

    /// The record of `target`, if it ran in this set.
    public func record(for target: String) -> TargetRecord? { targets.first { $0.name == target } }
}
