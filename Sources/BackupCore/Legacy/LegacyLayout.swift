import Foundation

/// One file an earlier backup script wrote, as a legacy artifact of a target.
public struct LegacyFile: Sendable, Codable {
    /// The target that restores it (e.g. `db`).
    public var target: String
    /// Its name in the legacy folder.
    public var name: String
    /// Its size.
    public var bytes: Int64
    /// The artifact format the target reads (e.g. `pg_dump+sql-gzip`, `tar+gzip`).
    public var format: String
    /// The smallest size the old script accepted (it must be larger than this).
    public var minimumBytes: Int64
}

/// The files of one run of an earlier script, grouped by the timestamp in their names.
public struct LegacySet: Sendable, Codable {
    /// The timestamp as the names write it, e.g. `20240708_020000`.
    public var id: String
    /// When that was.
    public var date: Date
    /// Its files, one per target at most.
    public var files: [LegacyFile]
}

/// Where and how an earlier script kept its backups, so Backstop can list, verify, restore and
/// prune them in place without rewriting any of them (a cutover). A frontend provides one.
public protocol LegacyLayout: Sendable {
    /// The folder holding the files.
    var directory: String { get }
    /// The sets, newest first. Only regular files count: links (such as `FlatLinkedTarget`'s)
    /// are never legacy files.
    func sets() -> [LegacySet]
    /// What a target needs besides the artifact to restore `file` (e.g. the database name).
    func facts(for file: LegacyFile) -> [String: JSONValue]
}

/// A legacy layout of flat file names `<prefix><timestamp><suffix>` in one folder, one pattern
/// per target, timestamps written `yyyyMMdd_HHmmss` (optionally `_N`) in `timeZone`.
public struct FlatFileLayout: LegacyLayout {
    /// One kind of file.
    public struct Pattern: Sendable {
        /// The target restoring it.
        public var target: String
        /// The name before the timestamp, e.g. `db_schedgen_`.
        public var prefix: String
        /// The name after it, e.g. `.sql.gz`.
        public var suffix: String
        /// The artifact format the target reads.
        public var format: String
        /// The old script's size check: larger than this many bytes.
        public var minimumBytes: Int64
        /// Facts the target needs (e.g. `databases` for pg_dump), given the file's name.
        public var facts: @Sendable (String) -> [String: JSONValue]

        /// Describes one kind of file.
        public init(target: String, prefix: String, suffix: String, format: String, minimumBytes: Int64,
                    facts: @escaping @Sendable (String) -> [String: JSONValue] = { _ in [:] }) {
            self.target = target
            self.prefix = prefix
            self.suffix = suffix
            self.format = format
            self.minimumBytes = minimumBytes
            self.facts = facts
        }
    }

    public let directory: String
    /// The kinds of file.
    public let patterns: [Pattern]
    /// The zone the timestamps were written in (the old script's `date`).
    public let timeZone: TimeZone

    /// Describes the layout.
    public init(directory: String, patterns: [Pattern], timeZone: TimeZone) {
        self.directory = directory
        self.patterns = patterns
        self.timeZone = timeZone
    }

    /// The timestamp in `name` for `pattern`, or nil if the name is not of that pattern.
    func stamp(_ name: String, _ pattern: Pattern) -> (id: String, date: Date)? {
        guard name.hasPrefix(pattern.prefix), name.hasSuffix(pattern.suffix),
              name.count > pattern.prefix.count + pattern.suffix.count else { return nil }
        let id = String(name.dropFirst(pattern.prefix.count).dropLast(pattern.suffix.count))
        guard Repository.isSetID(id) else { return nil }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = timeZone
        f.dateFormat = "yyyyMMdd_HHmmss"
        guard let date = f.date(from: String(id.prefix(15))) else { return nil }
        return (id, date)
    }

    public func sets() -> [LegacySet] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var byID: [String: LegacySet] = [:]
        for name in names.sorted() {
            for pattern in patterns {
                guard let (id, date) = stamp(name, pattern) else { continue }
                var st = stat()
                guard lstat(directory + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
                let file = LegacyFile(target: pattern.target, name: name, bytes: Int64(st.st_size), format: pattern.format,
                                      minimumBytes: pattern.minimumBytes)
                byID[id, default: LegacySet(id: id, date: date, files: [])].files.append(file)
            }
        }
        return byID.values.sorted { ($0.date, $0.id) > ($1.date, $1.id) }
    }

    public func facts(for file: LegacyFile) -> [String: JSONValue] {
        patterns.first { $0.target == file.target && file.name.hasPrefix($0.prefix) }?.facts(file.name) ?? [:]
    }
}

/// Legacy sets seen through the engine: verified and restored by the targets that own them,
/// pruned by the same retention policy as Backstop's own sets.
extension BackupEngine {
    /// The legacy set `id`.
    public func legacySet(_ id: String, layout: any LegacyLayout) throws -> LegacySet {
        let sets = layout.sets()
        if id == "latest", let newest = sets.first { return newest }
        guard let set = sets.first(where: { $0.id == id }) else {
            throw UsageError("no legacy backup \(id) in \(layout.directory) (legacy list shows them)")
        }
        return set
    }

    /// A record for `file`, so its target can verify or restore it where it lies: the checksum
    /// is the file's as read now (the old script kept none).
    public func legacyRecord(_ file: LegacyFile, in set: LegacySet, layout: any LegacyLayout) throws -> TargetRecord {
        let target = try target(named: file.target)
        let reader = try HashingFileReader(path: layout.directory + "/" + file.name, decrypt: false)
        defer { reader.close() }
        try reader.drain()
        return TargetRecord(name: file.target, kind: target.kind, status: .ok, error: nil, startedAt: set.date, finishedAt: set.date,
                            artifacts: [Artifact(path: file.name, bytes: reader.bytesRead, sha256: reader.hexDigest(), format: file.format)],
                            warnings: [], facts: layout.facts(for: file), toolVersions: [:])
    }

    /// The old script's checks on every file of `set` (its size threshold), then the target's
    /// own content checks (a full gzip read of a SQL dump, a full tar read of a tarball).
    public func verifyLegacy(_ set: LegacySet, layout: any LegacyLayout) -> [Finding] {
        var findings: [Finding] = []
        for file in set.files {
            if file.bytes <= file.minimumBytes {
                findings.append(Finding(.error, target: file.target, "\(file.name): \(file.bytes) bytes, not more than \(file.minimumBytes)"))
            }
            do {
                let record = try legacyRecord(file, in: set, layout: layout)
                let context = VerifyContext(setDirectory: layout.directory, deep: true, logger: logger, showProgress: false, checkSidecars: false)
                findings += try target(named: file.target).verify(record, context: context)
            } catch {
                findings.append(Finding(.error, target: file.target, "\(file.name): \(error)"))
            }
        }
        return findings
    }

    /// Restores `target` from legacy set `id`, under the lock, after checking the file: the
    /// target takes its safety copy and rolls back on failure, as for its own backups.
    public func restoreLegacy(target name: String, id: String, layout: any LegacyLayout, options: RestoreOptions) throws -> RestoreReport {
        let target = try target(named: name)
        let set = try legacySet(id, layout: layout)
        guard let file = set.files.first(where: { $0.target == name }) else {
            throw UsageError("legacy backup \(set.id) has no file for '\(name)' (it has: \(set.files.map(\.name).joined(separator: ", ")))")
        }
        let runLock: RunLock? = options.dryRun ? nil : try lock()
        defer { runLock?.release() }
        // As for Backstop's own backups: never restore over what an interrupted restore left.
        if let left = RestoreJournal.interrupted(in: repository, lockHeld: false).first(where: { $0.target == name }) {
            throw OperationError("an interrupted restore of \(name) (from backup \(left.setID)) left changes behind: \(left.summary); "
                                 + "roll it back first with `restore \(name) --resume-rollback`, then restore again")
        }
        if !options.dryRun, let problem = verifyLegacy(LegacySet(id: set.id, date: set.date, files: [file]), layout: layout)
            .first(where: { $0.severity == .error }) {
            throw OperationError("legacy backup \(file.name) failed verification, not restoring: \(problem.message)")
        }
        let record = try legacyRecord(file, in: set, layout: layout)
        var tagged = logger
        tagged[metadataKey: "target"] = "\(name)"
        let journal = options.dryRun ? nil : RestoreJournal(repository: repository, target: name, kind: target.kind, setID: "legacy-" + set.id)
        let context = RestoreContext(setDirectory: layout.directory, setID: "legacy " + set.id, safetyDirectory: repository.safetyDirectory,
                                     options: options, logger: tagged, showProgress: showProgress, journal: journal)
        if !options.dryRun { tagged.info("restoring \(name) from legacy backup \(file.name)") }
        return try Interrupts.shared.deferring {
            do {
                let report = try target.restore(record, context: context)
                journal?.finish()
                return report
            } catch {
                if let journal, !journal.kept { journal.finish() }
                throw error
            }
        }
    }

    /// Removes (or with `dryRun` only reports) the legacy sets `policy` no longer keeps, judged
    /// together with Backstop's own sets: the newest good backup of each target, legacy or not,
    /// is never removed. Only regular files named by the layout are unlinked; nothing is rewritten.
    public func pruneLegacy(_ policy: RetentionPolicy, layout: any LegacyLayout, dryRun: Bool, now: Date = Date()) throws -> [PruneDecision] {
        let runLock: RunLock? = dryRun ? nil : try lock()
        defer { runLock?.release() }
        let legacy = layout.sets()
        guard !legacy.isEmpty else { return [] }
        let own = repository.completeSets().map { s in
            RetentionCandidate(key: "\(s.tier)/\(s.id)", id: s.id, tier: s.tier, startedAt: s.manifest!.startedAt,
                               targets: s.manifest!.targets.map { ($0.name, $0.status == .ok) })
        }
        // The old script's runs count as daily runs; every file of it counts as good (verify tells otherwise).
        let old = legacy.map { s in
            RetentionCandidate(key: "legacy/\(s.id)", id: s.id, tier: "daily", startedAt: s.date, targets: s.files.map { ($0.target, true) })
        }
        let verdicts = policy.decide(own + old, now: now)
        var decisions: [PruneDecision] = []
        for set in legacy {
            guard let v = verdicts.first(where: { $0.key == "legacy/\(set.id)" }) else { continue }
            let bytes = set.files.reduce(0) { $0 + $1.bytes }
            decisions.append(PruneDecision(id: set.id, tier: "legacy", remove: !v.keep, reason: v.reason, bytes: v.keep ? 0 : bytes, keptBy: v.keptBy))
            guard !v.keep else { continue }
            for file in set.files {
                let path = layout.directory + "/" + file.name
                if dryRun {
                    logger.info("would remove legacy \(file.name) (\(Format.bytes(file.bytes))): \(v.reason)")
                    continue
                }
                var st = stat()
                guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
                if unlink(path) != 0 && errno != ENOENT { throw SystemError("unlink", path) }
                logger.info("removed legacy \(file.name) (\(Format.bytes(file.bytes))): \(v.reason)")
            }
        }
        return decisions
    }
}
