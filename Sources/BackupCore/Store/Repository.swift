import Foundation

/// A set that was found on disk, complete (has a manifest) or not.
public struct StoredSet: Sendable {
    /// The set directory (absolute).
    public let directory: String
    /// The tier folder it is in.
    public let tier: String
    /// The directory name: the set ID.
    public let id: String
    /// The manifest, nil if the set is incomplete.
    public let manifest: SetManifest?
    /// Why the manifest could not be read, if it exists but is broken.
    public let problem: String?

    /// True when the set has a `manifest.json` that cannot be read (corrupt, or a format this
    /// version does not know). Such a set is never used and never removed automatically.
    public var manifestUnreadable: Bool { manifest == nil && problem != nil && problem != Repository.stagingProblem }
}

/// The backup directory: tiers of sets, a lock file, logs and pre-restore safety copies.
///
/// ```
/// BACKUP_DIR/
///   .backstop.lock
///   logs/backup-YYYY-MM-DD.log
///   daily/20240708_020000/manifest.json      <- written last
///   daily/20240708_020000/db/journal.db.gz   (+ .sha256 sidecar)
///   daily/.20240709_020000.partial/          <- a run in progress (or a crashed one)
///   pre-restore/                             <- safety copies taken before restores
///   tmp/                                     <- restore drills' scratch space
/// ```
public struct Repository: Sendable {
    /// The backup directory (absolute).
    public let root: String

    /// Opens the repository at `root`; nothing is created until a run needs it.
    public init(root: String) { self.root = root }

    /// The lock file path.
    public var lockPath: String { root + "/.backstop.lock" }
    /// The log directory.
    public var logDirectory: String { root + "/logs" }
    /// Where restores keep their safety copies.
    public var safetyDirectory: String { root + "/pre-restore" }
    /// Scratch space for restore drills (`tmp/`): each drill makes a private folder in it and
    /// removes it, and `removeStaleScratch()` clears what a killed drill left.
    public var scratchDirectory: String { root + "/tmp" }

    /// Removes everything in the scratch folder (left by a drill that was killed). Call only
    /// while holding the lock.
    public func removeStaleScratch() throws {
        guard Repository.isRealDirectory(scratchDirectory) else { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: scratchDirectory)) ?? [] {
            try FileOps.removeTree(scratchDirectory + "/" + name)
        }
    }

    /// Folders of the backup directory that are never tiers.
    public static let reserved: Set<String> = ["logs", "pre-restore", "state", "links", "wal", "tmp"]

    /// True for names the engine gives sets: `YYYYMMDD_HHMMSS`, optionally `_N`.
    public static func isSetID(_ name: String) -> Bool {
        name.range(of: #"^[0-9]{8}_[0-9]{6}(_[0-9]+)?$"#, options: .regularExpression) != nil
    }

    /// A real directory (not a symlink to one).
    static func isRealDirectory(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// A valid tier name: lowercase letters, digits and dashes, not a reserved folder.
    public static func isValidTier(_ tier: String) -> Bool {
        !tier.isEmpty && !reserved.contains(tier) && tier.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
    }

    /// Creates the root (0700) if missing, and checks its working folders (see
    /// `checkWorkingFolders`). Every run that writes calls it (through the lock).
    public func prepare() throws {
        try FileOps.makeDirectory(root)
        try checkWorkingFolders()
    }

    /// The folders Backstop writes into beside the sets: `links/` (and each `links/<target>`),
    /// `tmp/`, `state/`, `pre-restore/` and `logs/`. Each one that exists must be a real
    /// directory (not a symbolic link) owned by the user running Backstop: a link would make a
    /// backup, drill or restore write or delete outside the backup directory. Throws one line.
    public func checkWorkingFolders() throws {
        var folders = ["links", "tmp", "state", "pre-restore", "logs"].map { root + "/" + $0 }
        if Repository.isRealDirectory(root + "/links") {
            folders += ((try? FileManager.default.contentsOfDirectory(atPath: root + "/links")) ?? []).map { root + "/links/" + $0 }
        }
        if let problem = folders.lazy.compactMap(Repository.workingFolderProblem).first { throw OperationError(problem) }
    }

    /// For commands that only read (list, stats, verify): throws one line when the backup
    /// directory is missing (not mounted?), not a directory, or cannot be read, so that it is
    /// never taken for an empty one. Creates nothing.
    public func checkReadable() throws {
        var st = stat()
        guard stat(root, &st) == 0 else {
            if errno == ENOENT { throw OperationError("BACKUP_DIR \(root) does not exist (not mounted?)") }
            throw OperationError("cannot read BACKUP_DIR \(root): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw OperationError("BACKUP_DIR \(root) is not a directory") }
        guard let handle = opendir(root) else {
            throw OperationError("cannot read BACKUP_DIR \(root): \(String(cString: strerror(errno)))")
        }
        closedir(handle)
    }

    /// Why `folder` may not be written into (a symbolic link, not a directory, or owned by
    /// another user), or nil when it is a real directory of ours or does not exist yet.
    public static func workingFolderProblem(_ folder: String) -> String? {
        var st = stat()
        guard lstat(folder, &st) == 0 else { return nil }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            return "\(folder) is a symbolic link; Backstop writes there and never follows links out of the backup directory: remove it (a real folder is made when needed)"
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return "\(folder) is not a directory; move it out of the way" }
        guard st.st_uid == geteuid() else {
            return "\(folder) belongs to uid \(st.st_uid), not to the user running Backstop (uid \(geteuid())); fix its owner"
        }
        return nil
    }

    /// Every set on disk, newest first; incomplete ones included (with `manifest == nil`).
    public func allSets() -> [StoredSet] {
        guard let tiers = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        var result: [StoredSet] = []
        for tier in tiers where Repository.isValidTier(tier) && Repository.isRealDirectory(root + "/" + tier) {
            let tierDir = root + "/" + tier
            for name in (try? FileManager.default.contentsOfDirectory(atPath: tierDir)) ?? [] {
                let dir = tierDir + "/" + name
                if name.hasPrefix(".") && name.hasSuffix(".partial"), Repository.isSetID(String(name.dropFirst().dropLast(8))),
                   Repository.isRealDirectory(dir) {
                    // Shown so a crashed run's leftovers are visible; never used, and removed by the next run.
                    result.append(StoredSet(directory: dir, tier: tier, id: String(name.dropFirst().dropLast(8)), manifest: nil,
                                            problem: Repository.stagingProblem))
                    continue
                }
                guard Repository.isSetID(name), Repository.isRealDirectory(dir) else { continue }
                let (manifest, problem) = Repository.readManifest(dir)
                result.append(StoredSet(directory: dir, tier: tier, id: name, manifest: manifest, problem: problem))
            }
        }
        return result.sorted { ($0.id, $0.tier) > ($1.id, $1.tier) }
    }

    /// Where failures of runs that kept no set are recorded (the newest 100).
    public var failuresPath: String { root + "/state/failures.json" }

    /// Records failed targets of a run that kept nothing, for `stats`. Best effort.
    public func recordFailures(_ records: [TargetRecord]) {
        guard !records.isEmpty else { return }
        let all = Array((failures() + records).suffix(100))
        try? FileOps.makeDirectory(root + "/state")
        if let data = try? BackstopJSON.encoder().encode(all) { try? FileOps.writeAtomically(data, to: failuresPath) }
    }

    /// Failed target records of runs that kept no set, oldest first.
    public func failures() -> [TargetRecord] {
        guard let data = FileManager.default.contents(atPath: failuresPath) else { return [] }
        // Hostile sizes or paths (see SetManifest.problem) drop the record.
        return ((try? BackstopJSON.decoder().decode([TargetRecord].self, from: data)) ?? []).filter { $0.problem == nil }
    }

    /// The `problem` of a staging folder: a run in progress, or a crashed one.
    public static let stagingProblem = "staging folder of a backup in progress, or of a crashed run (the next backup removes it)"

    /// Complete sets only, newest first.
    public func completeSets() -> [StoredSet] { allSets().filter { $0.manifest != nil } }

    static func readManifest(_ dir: String) -> (SetManifest?, String?) {
        let path = dir + "/" + SetManifest.fileName
        guard let data = FileManager.default.contents(atPath: path) else { return (nil, nil) }
        do {
            let m = try BackstopJSON.decoder().decode(SetManifest.self, from: data)
            guard m.format == SetManifest.currentFormat else { return (nil, "manifest unreadable: unknown manifest format \(m.format)") }
            if let problem = m.problem { return (nil, "manifest unreadable: \(problem)") }
            return (m, nil)
        } catch {
            return (nil, "manifest unreadable: \(Repository.describeDecodingError(error))")
        }
    }

    /// A short reason for a manifest that failed to decode (not Swift's whole debug dump).
    static func describeDecodingError(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c): return "not valid JSON (\(c.debugDescription))"
        case DecodingError.keyNotFound(let key, _): return "key '\(key.stringValue)' is missing"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "bad value at '\(c.codingPath.map(\.stringValue).joined(separator: "."))' (\(c.debugDescription))"
        default: return "\(error)"
        }
    }

    /// Finds a set by ID (`latest` means the newest complete set), optionally within one tier.
    public func find(_ id: String, tier: String? = nil) throws -> StoredSet {
        let sets = completeSets().filter { tier == nil || $0.tier == tier }
        if id == "latest" {
            guard let s = sets.first else { throw OperationError("no complete backup in \(root)") }
            return s
        }
        let matches = sets.filter { $0.id == id || "\($0.tier)/\($0.id)" == id }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 {
            throw UsageError("backup \(id) exists in several tiers (\(matches.map(\.tier).joined(separator: ", "))); name it as TIER/\(id)")
        }
        let unusable = allSets().filter { ($0.id == id || "\($0.tier)/\($0.id)" == id) && $0.manifest == nil }
        if let broken = unusable.first(where: \.manifestUnreadable) {
            throw OperationError("backup \(id): \(broken.problem ?? "manifest unreadable"); it cannot be used, and it is never removed automatically")
        }
        if !unusable.isEmpty {
            throw OperationError("backup \(id) is incomplete (it has no manifest) and cannot be used")
        }
        throw UsageError("no backup named \(id) in \(root); see the list command")
    }

    /// The newest set in which `target` succeeded, with its record.
    public func latestGood(target: String, before id: String? = nil) -> (StoredSet, TargetRecord)? {
        for s in completeSets() {
            if let id, s.id >= id { continue }
            if let r = s.manifest?.record(for: target), r.status == .ok { return (s, r) }
        }
        return nil
    }

    /// Removes staging folders and sets without a manifest, left by crashed or killed runs.
    /// Call only while holding the lock. Returns what was removed.
    public func removeIncomplete() throws -> [String] {
        var removed: [String] = []
        guard let tiers = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        // Only names the engine itself creates are ever removed.
        for tier in tiers where Repository.isValidTier(tier) && Repository.isRealDirectory(root + "/" + tier) {
            let tierDir = root + "/" + tier
            for name in (try? FileManager.default.contentsOfDirectory(atPath: tierDir)) ?? [] {
                let path = tierDir + "/" + name
                let staging = name.hasPrefix(".") && name.hasSuffix(".partial") && Repository.isSetID(String(name.dropFirst().dropLast(8)))
                let stale = (staging && Repository.isRealDirectory(path))
                    || (Repository.isSetID(name) && Repository.isRealDirectory(path) && !FileOps.exists(path + "/" + SetManifest.fileName))
                if stale {
                    try FileOps.removeTree(path)
                    removed.append(path)
                }
            }
        }
        return removed
    }

    /// A new, unused set ID for `date` in `tier`.
    public func newSetID(at date: Date, tier: String) -> String {
        // UTC, so IDs sort in time order across daylight-saving changes.
        let base = SetIDTime.string(from: date)
        var id = base
        var n = 2
        let existing = Set(allSets().map(\.id))
        while existing.contains(id) || FileOps.exists("\(root)/\(tier)/.\(id).partial") {
            id = "\(base)_\(n)"
            n += 1
        }
        return id
    }

    /// Writes `manifest` into `directory` atomically (temp file, fsync, rename, fsync dir).
    public func writeManifest(_ manifest: SetManifest, in directory: String) throws {
        let data = try BackstopJSON.encoder().encode(manifest)
        try FileOps.writeAtomically(data, to: directory + "/" + SetManifest.fileName)
    }

    /// Deletes a set: the manifest first, so a crash midway leaves an incomplete set that the
    /// next run cleans up, never a set that looks complete but is missing files.
    public func delete(_ set: StoredSet) throws {
        let manifest = set.directory + "/" + SetManifest.fileName
        if unlink(manifest) != 0 && errno != ENOENT { throw SystemError("unlink", manifest) }
        FileOps.syncDirectory(set.directory)
        try FileOps.removeTree(set.directory)
    }
}
