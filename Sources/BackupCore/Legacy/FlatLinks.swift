import Foundation

/// A target whose artifacts also appear, after each commit, as links in the top of the backup
/// directory under their own names: `BACKUP_DIR/db_schedgen_<ID>.sql.gz -> daily/<ID>/db/...`.
///
/// For a script's users who look for its flat file names (`ls backups/`, `gunzip -c
/// backups/db_*.sql.gz`) while Backstop keeps its set layout (manifest last, one folder per
/// run). The links are relative, so the backup directory can move or be mounted elsewhere.
/// Everything else is the wrapped target's.
///
/// Only symbolic links are ever created, replaced or removed here, and only names matching
/// `pattern`; a regular file of the same name (one the old script wrote) is never touched. A
/// link is removed with `unlink`, which never follows it.
public struct FlatLinkedTarget: BackupTarget {
    /// The wrapped target.
    public let inner: any BackupTarget
    /// Which artifact file names get a link (a regular expression on the name).
    public let pattern: String

    /// Wraps `inner`, linking its artifacts whose names match `pattern`.
    public init(_ inner: any BackupTarget, linking pattern: String) {
        self.inner = inner
        self.pattern = pattern
    }

    public var name: String { inner.name }
    public var kind: String { inner.kind }
    public var summary: String { inner.summary + "; linked at the top of the backup directory under its own name" }

    public func preflight(_ context: PreflightContext) -> [Finding] { inner.preflight(context) }
    public func backup(_ context: BackupContext) throws -> TargetOutput { try inner.backup(context) }
    public func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding] { inner.verify(record, context: context) }
    public func restore(_ record: TargetRecord, context: RestoreContext) throws -> RestoreReport {
        try inner.restore(record, context: context)
    }
    /// The wrapped targets Backstop uses here (pg_dump, minio) have drills; a kind without one
    /// returns nil from `restoreDrill`, which the drill reports as such.
    public static var hasRestoreDrill: Bool { true }
    public func rollBackInterruptedRestore(_ entry: RestoreJournal.Entry, context: RestoreContext) throws -> RestoreReport {
        try inner.rollBackInterruptedRestore(entry, context: context)
    }
    public func removeDrillLeftover(_ resource: String) throws { try inner.removeDrillLeftover(resource) }
    public func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport? {
        try inner.restoreDrill(record, context: context)
    }
    public func currentFacts(repository: Repository) -> [String: JSONValue] { inner.currentFacts(repository: repository) }
    public func pruneOutsideSets(keeping kept: [TargetRecord], dryRun: Bool) throws -> [PruneDecision] {
        try inner.pruneOutsideSets(keeping: kept, dryRun: dryRun)
    }

    func matches(_ fileName: String) -> Bool {
        fileName.range(of: pattern, options: .regularExpression) != nil
    }

    public func didCommit(_ record: TargetRecord, setDirectory: String, context: BackupContext) throws {
        try inner.didCommit(record, setDirectory: setDirectory, context: context)
        let root = context.repository.root
        guard setDirectory.hasPrefix(root + "/") else { return }
        let setRelative = String(setDirectory.dropFirst(root.count + 1))
        for artifact in record.artifacts {
            let fileName = (artifact.path as NSString).lastPathComponent
            guard matches(fileName) || matches(fileName.replacingOccurrences(of: ArtifactEncryption.suffix, with: "")) else { continue }
            try FlatLinks.link(root: root, name: fileName, to: setRelative + "/" + artifact.path)
        }
    }

    public func didRemoveSets(repository: Repository) throws {
        try inner.didRemoveSets(repository: repository)
        try FlatLinks.removeDangling(root: repository.root) { matches($0) }
    }
}

/// The link operations of `FlatLinkedTarget`.
public enum FlatLinks {
    /// Points `root/name` at `destination` (relative to `root`), replacing a link of that name
    /// atomically; a file or folder of that name (not a link) is left alone.
    static func link(root: String, name: String, to destination: String) throws {
        let path = root + "/" + name
        var st = stat()
        if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFLNK { return }   // the old script's file: never ours
        let temporary = root + "/.\(name).link-\(getpid())"
        unlink(temporary)
        guard symlink(destination, temporary) == 0 else { throw SystemError("symlink", temporary) }
        guard rename(temporary, path) == 0 else {
            let error = SystemError("rename", path)
            unlink(temporary)
            throw error
        }
    }

    /// The links at the top of `root` whose names `wanted` accepts, with where they point.
    /// Only symbolic links; never follows one.
    public static func links(root: String, _ wanted: (String) -> Bool) -> [(name: String, destination: String)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        return names.sorted().compactMap { name in
            guard wanted(name) else { return nil }
            var st = stat()
            guard lstat(root + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK else { return nil }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(root + "/" + name, &buffer, Int(PATH_MAX))
            guard n > 0 else { return nil }
            return (name, String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }

    /// Removes the links whose names `wanted` accepts and that point at nothing inside `root`
    /// any more (their set was removed). A link that points outside `root` (absolute, or with
    /// `..`) was not made here and is left alone. Nothing is followed: `unlink` removes the link.
    public static func removeDangling(root: String, _ wanted: (String) -> Bool) throws {
        for (name, destination) in links(root: root, wanted) {
            let parts = destination.split(separator: "/")
            guard !destination.hasPrefix("/"), !parts.contains(".."), !parts.isEmpty else { continue }
            var st = stat()
            // Each component below root, without following links, must still exist.
            var current = root
            var present = true
            for part in parts {
                current += "/" + part
                if lstat(current, &st) != 0 { present = false; break }
                if (st.st_mode & S_IFMT) == S_IFLNK { break }   // a link inside: leave it to its owner
            }
            if !present {
                if unlink(root + "/" + name) != 0 && errno != ENOENT { throw SystemError("unlink", root + "/" + name) }
            }
        }
    }
}
