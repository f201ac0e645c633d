import Foundation

/// What an unfinished restore has changed, kept in `state/restore-in-progress-<target>.json`
/// (written atomically before every change, removed when the restore is done or rolled back).
///
/// A restore killed with `kill -9`, or cut off by a crash or power loss, cannot roll itself
/// back; its journal stays. The next run of any command finds it and says so, `check` reports
/// it as an error, a new restore of that target refuses to start over it, and
/// `restore TARGET --resume-rollback` puts back what the journal says was there before.
public final class RestoreJournal: @unchecked Sendable {
    /// The journal's content.
    public struct Entry: Codable, Sendable {
        /// The target being restored.
        public var target: String
        /// Its kind.
        public var kind: String
        /// The set restored from.
        public var setID: String
        /// The process that restored.
        public var pid: Int32
        /// When the restore started.
        public var startedAt: Date
        /// When the journal was last written.
        public var updatedAt: Date
        /// What the target changed, in its own terms (databases, phases, safety copies).
        public var changes: [String: JSONValue]
        /// One line for administrators: what is left in which state.
        public var summary: String
    }

    /// The journal file.
    public let path: String
    private let lock = NSLock()
    private var entry: Entry
    private var written = false
    private var keep = false

    /// A journal for a restore of `target`; nothing is written until the first `record`.
    public init(repository: Repository, target: String, kind: String, setID: String) {
        path = Self.path(repository: repository, target: target)
        entry = Entry(target: target, kind: kind, setID: setID, pid: getpid(), startedAt: Date(), updatedAt: Date(),
                      changes: [:], summary: "")
    }

    /// Where the journal of `target` lives.
    public static func path(repository: Repository, target: String) -> String {
        "\(repository.root)/state/restore-in-progress-\(target).json"
    }

    /// The changes recorded so far.
    public var changes: [String: JSONValue] {
        lock.lock(); defer { lock.unlock() }
        return entry.changes
    }

    /// Records the state before the next change: `changes` replaces what was recorded, and
    /// `summary` says in one line what an interruption now would leave behind. Atomic (temp
    /// file, fsync, rename): a kill at any instant leaves the previous or the new journal.
    public func record(_ changes: [String: JSONValue], summary: String) throws {
        lock.lock(); defer { lock.unlock() }
        entry.changes = changes
        entry.summary = summary
        entry.updatedAt = Date()
        try FileOps.makeDirectory((path as NSString).deletingLastPathComponent)
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(entry), to: path)
        written = true
    }

    /// Keeps the journal after the restore ends: its rollback failed, so the next run must
    /// still point at what is left.
    public func keepAfterFailure() {
        lock.lock(); keep = true; lock.unlock()
    }

    /// Whether `keepAfterFailure` was called.
    public var kept: Bool {
        lock.lock(); defer { lock.unlock() }
        return keep
    }

    /// Removes the journal: the restore finished, or rolled back cleanly.
    public func finish() {
        lock.lock(); defer { lock.unlock() }
        if written || FileOps.exists(path) {
            unlink(path)
            FileOps.syncDirectory((path as NSString).deletingLastPathComponent)
        }
        written = false
    }

    /// The journals left in `repository` by restores that did not finish, by target. A journal
    /// whose restore is still running (it holds the lock) is not returned: `lockHeld` says
    /// whether another process holds the repository lock now.
    public static func interrupted(in repository: Repository, lockHeld: Bool) -> [Entry] {
        let folder = repository.root + "/state"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        var result: [Entry] = []
        for name in names.sorted() where name.hasPrefix("restore-in-progress-") && name.hasSuffix(".json") {
            guard let data = FileManager.default.contents(atPath: folder + "/" + name),
                  let entry = try? BackstopJSON.decoder().decode(Entry.self, from: data) else {
                result.append(Entry(target: String(name.dropFirst("restore-in-progress-".count).dropLast(5)), kind: "?", setID: "?",
                                    pid: 0, startedAt: Date(timeIntervalSince1970: 0), updatedAt: Date(timeIntervalSince1970: 0),
                                    changes: [:], summary: "its journal \(folder)/\(name) is unreadable"))
                continue
            }
            // Still running: its process holds the lock (a restore always does).
            if lockHeld && entry.pid != getpid() && kill(entry.pid, 0) == 0 { continue }
            result.append(entry)
        }
        return result
    }

    /// The one line every command prints for an interrupted restore.
    public static func warning(_ entry: Entry, command: String) -> String {
        "an interrupted restore of \(entry.target) (from backup \(entry.setID), started \(Format.iso8601(entry.startedAt)), process \(entry.pid) is gone)"
            + " left changes behind: \(entry.summary); run `\(command) restore \(entry.target) --resume-rollback` to put back what was there before"
    }
}

extension BackupEngine {
    /// Restores that were interrupted (killed) and left a journal, for the warning every
    /// command prints and for `check`.
    public func interruptedRestores() -> [RestoreJournal.Entry] {
        guard FileOps.exists(repository.root + "/state") else { return [] }
        return RestoreJournal.interrupted(in: repository, lockHeld: RunLock.isHeld(path: repository.lockPath))
    }

    /// Rolls back the interrupted restore of `name` from its journal, under the lock, and
    /// removes the journal when done.
    public func resumeRollback(target name: String, options: RestoreOptions) throws -> RestoreReport {
        let target = try target(named: name)
        let runLock: RunLock? = options.dryRun ? nil : try lock()
        defer { runLock?.release() }
        let path = RestoreJournal.path(repository: repository, target: name)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("there is no interrupted restore of \(name) to roll back (no \(path))")
        }
        let entry: RestoreJournal.Entry
        do { entry = try BackstopJSON.decoder().decode(RestoreJournal.Entry.self, from: data) } catch {
            throw OperationError("the journal \(path) is unreadable (\(error)); roll back by hand from the safety copies in \(repository.safetyDirectory)")
        }
        var tagged = logger
        tagged[metadataKey: "target"] = "\(name)"
        let context = RestoreContext(setDirectory: "", setID: entry.setID, safetyDirectory: repository.safetyDirectory,
                                     options: options, logger: tagged, showProgress: showProgress)
        if entry.target != name {
            throw UsageError("the journal \(path) is for target \(entry.target), not \(name); nothing was changed")
        }
        if let problem = target.journalProblem(entry, context: context) {
            throw UsageError("the journal \(path) \(problem); nothing was changed")
        }
        let report = try Interrupts.shared.deferring { try target.rollBackInterruptedRestore(entry, context: context) }
        if !options.dryRun {
            unlink(path)
            tagged.info("rolled back the interrupted restore of \(name) (from backup \(entry.setID))")
        }
        return report
    }
}
