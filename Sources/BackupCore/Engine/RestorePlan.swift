import Foundation

/// How a restore keeps what it is about to overwrite, so a failure can be undone.
public enum SafetyCopyMethod: String, Codable, Sendable {
    /// Nothing is overwritten (a new file, an empty folder, another database).
    case none
    /// What is there is renamed aside and renamed back on failure.
    case renameAside
    /// A hard-link (or, across devices, full) copy of the destination tree.
    case hardLinkTree
    /// A tarball of the files the restore would overwrite.
    case tarballOfOverwritten
    /// A consistent copy of the live SQLite database through its online backup API.
    case sqliteOnlineCopy
    /// A dump of the database the restore replaces.
    case databaseDump
}

/// What a destination looked like when a restore plan was made: enough to tell, before the
/// confirmed plan is carried out, whether the place it decided about is still the same place
/// (the same file or folder, still there or still absent, still empty or not). Content inside
/// an existing destination may change; the safety copy is taken just before applying.
public struct DestinationState: Codable, Sendable, Equatable, CustomStringConvertible {
    /// Whether anything is at the path (not following a final symbolic link).
    public var exists: Bool
    /// `file`, `folder`, `link` or `other`; nil when absent.
    public var type: String?
    /// Device and inode: the same object, not only the same name.
    public var device: UInt64?
    /// The inode.
    public var inode: UInt64?
    /// Permission bits, owner and group (a restored file may take them over).
    public var mode: UInt32?
    /// The owner.
    public var uid: UInt32?
    /// The group.
    public var gid: UInt32?
    /// For a folder: whether it has no entries.
    public var empty: Bool?

    /// Reads the state of `path` now.
    public static func of(_ path: String) -> DestinationState {
        var st = stat()
        guard lstat(path, &st) == 0 else { return DestinationState(exists: false) }
        let kind: String
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = "file"
        case S_IFDIR: kind = "folder"
        case S_IFLNK: kind = "link"
        default: kind = "other"
        }
        var state = DestinationState(exists: true, type: kind, device: UInt64(st.st_dev), inode: UInt64(st.st_ino),
                                     mode: UInt32(st.st_mode & 0o7777), uid: st.st_uid, gid: st.st_gid)
        if kind == "folder" { state.empty = (RawPath(path).children() ?? []).isEmpty }
        return state
    }

    /// Creates a state.
    public init(exists: Bool, type: String? = nil, device: UInt64? = nil, inode: UInt64? = nil,
                mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, empty: Bool? = nil) {
        self.exists = exists
        self.type = type
        self.device = device
        self.inode = inode
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.empty = empty
    }

    public var description: String {
        guard exists, let type else { return "absent" }
        var text = type == "folder" ? (empty == true ? "an empty folder" : "a folder with entries") : "a \(type)"
        if let inode { text += " (inode \(inode)" + (mode.map { String(format: ", mode %04o", $0) } ?? "") + ")" }
        return text
    }
}

/// What a kind keeps in its plan for its own apply step: typed, and shown with `--json`.
public protocol RestorePlanDetails: Encodable, Sendable {}

/// A restore worked out before anything changes: what the administrator sees and confirms, and
/// exactly what the engine then carries out (`BackupEngine.carryOut(_:)`), without computing it
/// again. A kind makes it in `planRestore`; its `applyRestore` reads it back.
public struct RestorePlan: Encodable, Sendable {
    /// The target restored.
    public var target: String
    /// Its kind.
    public var kind: String
    /// The set restored from.
    public var setID: String
    /// Where the data goes.
    public var destination: String
    /// Lines to show: source, destination, what will be written, the safety copy.
    public var lines: [String]
    /// Numbers and settings worth showing.
    public var facts: [String: JSONValue]
    /// How what is overwritten is kept for a rollback.
    public var safetyCopy: SafetyCopyMethod
    /// The destination as it was when the plan was made; the engine refuses to carry out the
    /// plan when it is no longer so. Nil for kinds whose destination is not a path.
    public var destinationState: DestinationState?
    /// The kind's own data for its apply step.
    public var details: (any RestorePlanDetails)?
    /// What the safety copy holds, for the message when a rollback fails: "<this> in the
    /// safety copy PATH".
    public var safetyCopyHolds = "what was there before the restore is"

    /// The record and set the plan restores from, and the options it was made with.
    public internal(set) var record: TargetRecord?
    /// The set's folder.
    public internal(set) var setDirectory: String = ""
    /// The options the plan was made with.
    public internal(set) var options = RestoreOptions(dryRun: true)
    /// True when the kind has no plan step of its own yet: the plan is its old dry run, and
    /// carrying it out runs its old `restore`, which works the plan out again.
    public internal(set) var recomputedOnApply = false

    /// Creates a plan.
    public init(target: String, kind: String, setID: String, destination: String, lines: [String] = [],
                facts: [String: JSONValue] = [:], safetyCopy: SafetyCopyMethod, destinationState: DestinationState? = nil,
                details: (any RestorePlanDetails)? = nil) {
        self.target = target
        self.kind = kind
        self.setID = setID
        self.destination = destination
        self.lines = lines
        self.facts = facts
        self.safetyCopy = safetyCopy
        self.destinationState = destinationState
        self.details = details
    }

    /// The kind's details, as the type it put in.
    public func details<D: RestorePlanDetails>(as type: D.Type) throws -> D {
        guard let d = details as? D else { throw OperationError("the restore plan of \(target) holds no \(D.self); it was not made by this kind") }
        return d
    }

    /// The plan as a dry-run report (what `--dry-run` showed before plans existed).
    public var report: RestoreReport {
        RestoreReport(target: target, destination: destination, dryRun: true, lines: lines, facts: facts)
    }

    private enum CodingKeys: String, CodingKey {
        case target, kind, setID, destination, dryRun, lines, facts, safetyCopyMethod, destinationState, details
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(target, forKey: .target)
        try c.encode(kind, forKey: .kind)
        try c.encode(setID, forKey: .setID)
        try c.encode(destination, forKey: .destination)
        try c.encode(true, forKey: .dryRun)
        try c.encode(lines, forKey: .lines)
        try c.encode(facts, forKey: .facts)
        try c.encode(safetyCopy, forKey: .safetyCopyMethod)
        try c.encodeIfPresent(destinationState, forKey: .destinationState)
        if let details { try details.encode(to: c.superEncoder(forKey: .details)) }
    }
}

/// Passed to a kind's apply step: it says when the destination starts to change, so the engine
/// rolls back only what was changed (a failure before that leaves everything as it was).
public final class RestoreProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var changing = false

    /// Creates a progress marker.
    public init() {}

    /// Call just before the first write, rename or delete in the destination.
    public func willChangeDestination() { lock.lock(); changing = true; lock.unlock() }

    /// Whether the destination may have been changed.
    public var changedDestination: Bool { lock.lock(); defer { lock.unlock() }; return changing }

    private var undo: Any?

    /// Keeps what the apply step knows that its rollback needs (e.g. what it created).
    public func keepForRollback(_ value: Any) { lock.lock(); undo = value; lock.unlock() }

    /// What the apply step kept for the rollback, as its type; nil if it kept nothing.
    public func keptForRollback<T>(as type: T.Type) -> T? { lock.lock(); defer { lock.unlock() }; return undo as? T }
}

/// What a kind's apply step reports: lines and numbers added to the plan's.
public struct RestoreOutcome: Sendable {
    /// Lines describing what was done.
    public var lines: [String]
    /// Numbers: files, bytes, rows.
    public var facts: [String: JSONValue]

    /// Creates an outcome.
    public init(lines: [String] = [], facts: [String: JSONValue] = [:]) {
        self.lines = lines
        self.facts = facts
    }
}

extension BackupTarget {
    /// Kinds that have not got a plan step of their own: the plan is their `restore` run as a
    /// dry run, and `applyRestore` is never called (the engine runs `restore` again).
    public func planRestore(_ record: TargetRecord, context: RestoreContext) throws -> RestorePlan {
        var options = context.options
        options.dryRun = true
        let dry = try restore(record, context: context.with(options: options))
        var plan = RestorePlan(target: name, kind: kind, setID: context.setID, destination: dry.destination,
                               lines: dry.lines, facts: dry.facts, safetyCopy: .none)
        plan.recomputedOnApply = true
        return plan
    }

    public func takeSafetyCopy(for plan: RestorePlan, context: RestoreContext, progress: RestoreProgress) throws -> String? { nil }

    public func prepareRestore(_ plan: RestorePlan, context: RestoreContext) throws {}

    public func finishRestore(_ plan: RestorePlan, context: RestoreContext, succeeded: Bool) throws -> [String] { [] }

    public func applyRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                             progress: RestoreProgress) throws -> RestoreOutcome {
        throw OperationError("\(kind) targets restore through restore(_:context:), not a plan")
    }

    public func rollBackRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                                progress: RestoreProgress) throws -> [String] {
        throw OperationError("\(kind) targets have no rollback step")
    }

    /// For kinds with a plan step: plans, then (unless a dry run) carries out that plan.
    public func restore(_ record: TargetRecord, context: RestoreContext) throws -> RestoreReport {
        var plan = try planRestore(record, context: context)
        plan.record = record
        plan.setDirectory = context.setDirectory
        plan.options = context.options
        if context.options.dryRun { return plan.report }
        return try carryOutRestore(plan, context: context)
    }

    /// Carries out `plan`, as confirmed: refuses if its destination is no longer what the plan
    /// saw, prepares (e.g. stops the application), takes the safety copy, applies, and on
    /// failure rolls back what changed (saying ROLLBACK FAILED, with the safety copy's path,
    /// when that fails too), then finishes (e.g. starts the application) whatever happened.
    /// The one rollback sequence every kind with a plan step shares.
    public func carryOutRestore(_ plan: RestorePlan, context: RestoreContext) throws -> RestoreReport {
        if plan.recomputedOnApply, let record = plan.record {
            var options = plan.options
            options.dryRun = false
            return try restore(record, context: context.with(options: options))
        }
        if let seen = plan.destinationState {
            let now = DestinationState.of(plan.destination)
            guard now == seen else {
                throw OperationError("\(plan.destination) changed after the restore plan was made (it was \(seen), now it is \(now)); "
                                     + "nothing was restored: run the restore again to see a new plan")
            }
        }
        let started = Date()
        var succeeded = false
        var warnings: [String] = []
        func finishAfterFailure() {
            do {
                for line in try finishRestore(plan, context: context, succeeded: false) { context.logger.warning("\(line)") }
            } catch {
                context.logger.error("after the failed restore of \(name): \(error)")
            }
        }
        do {
            try prepareRestore(plan, context: context)
        } catch {
            finishAfterFailure()
            throw error
        }
        defer { if !succeeded { finishAfterFailure() } }
        let progress = RestoreProgress()
        let safety = try takeSafetyCopy(for: plan, context: context, progress: progress)
        if let safety {
            context.logger.info("safety copy (\(plan.safetyCopy.rawValue)) of \(plan.destination): \(safety)", metadata: .logFileOnly)
        }
        let outcome: RestoreOutcome
        do {
            outcome = try applyRestore(plan, safetyCopy: safety, context: context, progress: progress)
        } catch {
            guard progress.changedDestination else {
                // Nothing was changed: nothing to roll back, and the error keeps its own exit code.
                if let safety { context.logger.info("the restore of \(name) failed before it changed \(plan.destination); the safety copy \(safety) is kept") }
                throw error
            }
            context.logger.error("restore failed (\(error)); rolling back")
            let undone: [String]
            do {
                undone = try rollBackRestore(plan, safetyCopy: safety, context: context, progress: progress)
            } catch let rollbackError {
                // The next run must see what is left: the journal (if the kind wrote one) stays.
                context.journal?.keepAfterFailure()
                let kept = safety.map { "; \(plan.safetyCopyHolds) in the safety copy \($0)" } ?? "; there is no safety copy (nothing was overwritten)"
                let message = "restore of \(name) into \(plan.destination) failed (\(error)) AND THE ROLLBACK FAILED (\(rollbackError)); "
                    + "\(plan.destination) is NOT as it was\(kept)"
                context.logger.critical("\(message)")
                throw OperationError(message)
            }
            let to = safety.map { " to the safety copy \($0)" } ?? ""
            let done = undone.isEmpty ? "" : " (\(undone.joined(separator: "; ")))"
            context.logger.error("restore of \(name) failed; rolled back\(to)\(done)")
            throw OperationError("restore of \(name) into \(plan.destination) failed and was rolled back\(to)\(done): \(error)")
        }
        succeeded = true
        warnings = try finishRestore(plan, context: context, succeeded: true)
        let seconds = Date().timeIntervalSince(started)
        var report = RestoreReport(target: name, destination: plan.destination, safetyCopy: safety, dryRun: false,
                                   lines: plan.lines + outcome.lines, facts: plan.facts.merging(outcome.facts) { $1 })
        report.facts["seconds"] = .number(seconds)
        report.lines.append("restored in \(Format.seconds(seconds))")
        report.lines.append(safety.map { "safety copy: \($0)" } ?? "safety copy: none (nothing was overwritten)")
        report.lines += warnings.map { "warning: \($0)" }
        return report
    }
}

extension RestoreContext {
    /// The same context with other options.
    func with(options: RestoreOptions) -> RestoreContext {
        RestoreContext(setDirectory: setDirectory, setID: setID, safetyDirectory: safetyDirectory, options: options,
                       logger: logger, showProgress: showProgress, journal: journal)
    }
}
