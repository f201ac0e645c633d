import Foundation
import Logging

/// A source of data Backstop can back up, verify and restore.
///
/// Implementations are values built from config, one file per kind (like swift-log's
/// `LogHandler`s). The engine calls every target through these verbs without knowing its
/// kind; what a target needs to find its data again goes into its `TargetRecord`.
public protocol BackupTarget: Sendable {
    /// The configured name, unique in a deployment, e.g. `db`, `codebase`.
    var name: String { get }
    /// The kind, e.g. `sqlite`, `archive`. Stored in manifests.
    var kind: String { get }
    /// One line saying what this target backs up, for plans and dry runs.
    var summary: String { get }

    /// Checks what is missing or misconfigured before any work. Must not write anything.
    func preflight(_ context: PreflightContext) -> [Finding]

    /// Writes the backup into `context.directory` (a staging folder that exists and is empty)
    /// and returns what it produced. Artifacts must be written with `context.createArtifact`
    /// so they are hashed while they stream.
    func backup(_ context: BackupContext) throws -> TargetOutput

    /// Checks a stored backup. The default checks every artifact's size and checksum; targets
    /// add content checks with `context.checkArtifacts(_:content:)`.
    func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding]

    /// Restores a stored backup, taking a safety copy of whatever it would overwrite first and
    /// rolling back if it fails. With `context.options.dryRun` it only says what it would do.
    /// Default (for kinds with a plan step): `planRestore`, then `carryOutRestore` of that plan.
    func restore(_ record: TargetRecord, context: RestoreContext) throws -> RestoreReport

    /// Works out the restore without changing anything: destination, the lines and facts to
    /// show, the safety copy it needs and the kind's own details for `applyRestore`. The engine
    /// shows this value, asks once, and carries out the same value. Default (kinds without a
    /// plan step of their own): `restore` as a dry run, and the real `restore` when carried out.
    func planRestore(_ record: TargetRecord, context: RestoreContext) throws -> RestorePlan

    /// Takes the safety copy `plan.safetyCopy` names and returns its path (nil when the plan
    /// needs none; a folder when there are several). Throws, with nothing changed, when it
    /// cannot. What the later steps need from it goes in `progress` (`keepForRollback`).
    /// Default: none.
    func takeSafetyCopy(for plan: RestorePlan, context: RestoreContext, progress: RestoreProgress) throws -> String?

    /// Puts the backup in place as `plan` says, calling `progress.willChangeDestination()`
    /// before its first change; checks the result and throws if it is wrong. It never rolls
    /// back itself: the engine calls `rollBackRestore` when it throws after a change.
    func applyRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                      progress: RestoreProgress) throws -> RestoreOutcome

    /// Puts the destination back as it was before `applyRestore` changed it, from the safety
    /// copy (or, with none, by removing what the restore created).
    /// Called when a plan is carried out, before the safety copy: e.g. stops the application
    /// (MinIO's `STOP_CMD`). Throws, with nothing changed, to stop the restore. Default: nothing.
    func prepareRestore(_ plan: RestorePlan, context: RestoreContext) throws

    /// Called once the restore finished or was rolled back (or `prepareRestore` failed),
    /// whatever happened: e.g. starts the application again. Returns warnings for the report;
    /// a throw after a restore that worked fails the restore (the data stays restored), after
    /// one that failed it is logged. Default: nothing.
    func finishRestore(_ plan: RestorePlan, context: RestoreContext, succeeded: Bool) throws -> [String]

    /// `progress` holds what the earlier steps kept for it (`keepForRollback`). Returns what
    /// was put back, for the error message; throws when something could not be.
    func rollBackRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext, progress: RestoreProgress) throws -> [String]

    /// Whether this kind implements `restoreDrill`, so `verify --restore-test` can say which
    /// kinds have a drill before any backup exists. A kind that implements one sets it to true.
    /// Default: false.
    static var hasRestoreDrill: Bool { get }

    /// Puts back what an interrupted restore (killed before it could roll back) changed, from
    /// the journal it left (`RestoreJournal`). Default: refuses, for kinds that keep no journal.
    func rollBackInterruptedRestore(_ entry: RestoreJournal.Entry, context: RestoreContext) throws -> RestoreReport

    /// Checks an interrupted restore's journal before anything is rolled back: the journal is
    /// hostile input, so every path and name it holds must be one a restore of this target
    /// writes (its configured data or databases, or the `--to`/`--into` given again in
    /// `context.options`; safety copies in `context.safetyDirectory` named as a restore names
    /// them). Returns why the journal is refused, or nil. Default: nil.
    func journalProblem(_ entry: RestoreJournal.Entry, context: RestoreContext) -> String?

    /// Removes a scratch resource (e.g. a drill's scratch database) that a killed restore drill
    /// left behind, recorded in `state/drill-scratch.json`. Default: nothing to remove.
    func removeDrillLeftover(_ resource: String) throws

    /// Restores the backup into a scratch place, checks it against the manifest, and always
    /// cleans up: the restore drill of `verify --restore-test`. Returns nil when the kind has
    /// no drill. Default: nil.
    func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport?

    /// Called after the set holding this target's backup has been committed (renamed into place
    /// and its manifest written), e.g. to move a `latest` link. Default: nothing.
    func didCommit(_ record: TargetRecord, setDirectory: String, context: BackupContext) throws

    /// Called after sets were removed (`remove`, `prune`), under the lock: brings up to date what
    /// the target keeps beside its sets that may have pointed into a removed set (e.g. moves a
    /// `latest` link to the newest remaining backup, or removes it when none remains).
    /// Default: nothing.
    func didRemoveSets(repository: Repository) throws

    /// Facts about the source's state now, beyond what its last backup recorded, for `stats`
    /// and health checks (e.g. the WAL archive's newest segment and its age). Must be cheap and
    /// must not write. Default: none.
    func currentFacts(repository: Repository) -> [String: JSONValue]

    /// Called by retention after it decided which sets stay: removes (or, with `dryRun`, only
    /// reports) what this target keeps outside sets that no remaining backup needs, e.g. WAL
    /// older than the oldest kept base backup. `kept` are this target's remaining good records;
    /// it is never empty. Default: nothing.
    func pruneOutsideSets(keeping kept: [TargetRecord], dryRun: Bool) throws -> [PruneDecision]
}

extension BackupTarget {
    public func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding] {
        context.checkArtifacts(record) { _, _ in }
    }

    public func didCommit(_ record: TargetRecord, setDirectory: String, context: BackupContext) throws {}

    public static var hasRestoreDrill: Bool { false }

    public func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport? { nil }

    public func currentFacts(repository: Repository) -> [String: JSONValue] { [:] }

    public func didRemoveSets(repository: Repository) throws {}

    public func rollBackInterruptedRestore(_ entry: RestoreJournal.Entry, context: RestoreContext) throws -> RestoreReport {
        throw OperationError("\(kind) targets keep no restore journal; nothing to roll back automatically: \(entry.summary)")
    }

    public func journalProblem(_ entry: RestoreJournal.Entry, context: RestoreContext) -> String? { nil }

    public func removeDrillLeftover(_ resource: String) throws {}

    public func pruneOutsideSets(keeping kept: [TargetRecord], dryRun: Bool) throws -> [PruneDecision] { [] }
}

/// The result of a restore drill: did the backup really restore, and how long did it take.
public struct DrillReport: Codable, Sendable {
    /// The target drilled.
    public var target: String
    /// The set drilled.
    public var setID: String
    /// Whether the restored data matched the manifest.
    public var passed: Bool
    /// Seconds the restore took: the measured recovery time.
    public var restoreSeconds: Double
    /// When the drill ran.
    public var at: Date
    /// What was checked, and any mismatch.
    public var lines: [String]

    /// Creates a drill report.
    public init(target: String, setID: String, passed: Bool, restoreSeconds: Double, at: Date = Date(), lines: [String]) {
        self.target = target
        self.setID = setID
        self.passed = passed
        self.restoreSeconds = restoreSeconds
        self.at = at
        self.lines = lines
    }
}

/// One problem or observation from preflight or verify.
public struct Finding: Codable, Sendable, Equatable, CustomStringConvertible {
    /// How serious it is.
    public enum Severity: String, Codable, Sendable, Comparable {
        case info, warning, error
        public static func < (a: Severity, b: Severity) -> Bool {
            let order: [Severity] = [.info, .warning, .error]
            return order.firstIndex(of: a)! < order.firstIndex(of: b)!
        }
    }
    /// How serious it is.
    public var severity: Severity
    /// The target it concerns.
    public var target: String
    /// One line.
    public var message: String

    /// Creates a finding.
    public init(_ severity: Severity, target: String, _ message: String) {
        self.severity = severity
        self.target = target
        self.message = message
    }

    public var description: String { "\(severity.rawValue): [\(target)] \(message)" }
}

/// What a target's backup produced, before the engine adds it to the manifest.
public struct TargetOutput: Sendable {
    /// The files, with paths relative to the target's directory.
    public var artifacts: [Artifact] = []
    /// Non-fatal problems.
    public var warnings: [String] = []
    /// Facts about the source.
    public var facts: [String: JSONValue] = [:]
    /// Versions of the tools used.
    public var toolVersions: [String: String] = [:]

    /// An empty output to fill in.
    public init() {}
}

/// What preflight gets.
public struct PreflightContext: Sendable {
    /// The logger.
    public let logger: Logger
    /// Creates a preflight context.
    public init(logger: Logger) { self.logger = logger }
}

/// What a backup gets: where to write, the previous good backup of the same target, a logger.
public struct BackupContext: Sendable {
    /// The set being made.
    public let setID: String
    /// The staging folder for this target's files (absolute, exists, 0700).
    public let directory: String
    /// The newest earlier good backup of this target (its record and absolute target folder).
    public let previous: (record: TargetRecord, directory: String)?
    /// The logger (tagged with the target).
    public let logger: Logger
    /// Whether a progress line may be drawn.
    public let showProgress: Bool
    /// The repository, for targets that keep state beside their sets (e.g. a `latest` link).
    public let repository: Repository
    /// The artifacts `createArtifact` encrypted: their stored names end in `.age`.
    public let encryptedArtifacts = EncryptedArtifactNames()

    /// Creates a backup context.
    public init(setID: String, directory: String, previous: (record: TargetRecord, directory: String)?,
                logger: Logger, showProgress: Bool, repository: Repository) {
        self.setID = setID
        self.directory = directory
        self.previous = previous
        self.logger = logger
        self.showProgress = showProgress
        self.repository = repository
    }

    /// Creates `name` (0600, exclusive) in the target's folder, hashing whatever is written.
    /// When `ENCRYPT_TO` is set (and `encrypted` is not false), the file is `name.age` and what
    /// is written is encrypted to the recipients first; the target still names it `name` in
    /// its output and the engine records the stored name.
    public func createArtifact(_ name: String, label: String? = nil, expectedBytes: Int64? = nil,
                               encrypted: Bool = true) throws -> HashingFileWriter {
        let progress = showProgress ? Progress(label: label ?? name, total: expectedBytes) : nil
        let recipients = encrypted ? ArtifactEncryption.shared.recipients : []
        guard !recipients.isEmpty else { return try HashingFileWriter(path: directory + "/" + name, progress: progress) }
        encryptedArtifacts.insert(name)
        return try HashingFileWriter(path: directory + "/" + name + ArtifactEncryption.suffix, progress: progress,
                                     encryptTo: recipients)
    }

    /// The name the artifact a target named `name` has on disk (`name.age` when encrypted).
    public func storedName(_ name: String) -> String {
        encryptedArtifacts.contains(name) ? name + ArtifactEncryption.suffix : name
    }
}

/// What verify gets.
public struct VerifyContext: Sendable {
    /// The complete set directory.
    public let setDirectory: String
    /// Whether to do the expensive checks too (e.g. re-hash every file of a tree).
    public let deep: Bool
    /// The logger.
    public let logger: Logger
    /// Whether a progress line may be drawn.
    public let showProgress: Bool
    /// Where restore drills may make their scratch folders (the repository's `tmp/`); nil
    /// for plain verification, which never writes.
    public let scratchDirectory: String?

    /// Whether each artifact's `.sha256` sidecar is compared with the manifest (`verify` does;
    /// a restore does not need the sidecars, only the manifest's checksums).
    public let checkSidecars: Bool

    /// Creates a verify context.
    public init(setDirectory: String, deep: Bool, logger: Logger, showProgress: Bool, scratchDirectory: String? = nil,
                checkSidecars: Bool = true) {
        self.setDirectory = setDirectory
        self.deep = deep
        self.logger = logger
        self.showProgress = showProgress
        self.scratchDirectory = scratchDirectory
        self.checkSidecars = checkSidecars
    }

    /// The set's ID (its folder's name).
    public var setID: String { (setDirectory as NSString).lastPathComponent }

    /// Makes a new private (0700) folder for a restore drill in the scratch space and registers
    /// it for removal on SIGINT/SIGTERM; the caller removes it with `removeDrillScratch(_:)`.
    public func makeDrillScratch(_ label: String) throws -> String {
        guard let scratchDirectory else { throw OperationError("no scratch space for a restore drill") }
        try FileOps.makeDirectory(scratchDirectory)
        var template = Array("\(scratchDirectory)/drill-\(label).XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw SystemError("mkdtemp", scratchDirectory) }
        let path = String(cString: p)
        Interrupts.shared.registerPartial(path)
        return path
    }

    /// Removes a folder made by `makeDrillScratch(_:)`, whatever is in it.
    public func removeDrillScratch(_ path: String) {
        do { try FileOps.removeTree(path) } catch { logger.error("cannot remove the drill's scratch folder \(path): \(error)") }
        Interrupts.shared.unregisterPartial(path)
    }

    /// Compares the `sha256sum -c` sidecar of `artifact` with the manifest (see `SidecarCheck`).
    func checkSidecar(_ artifact: Artifact, target: String) -> Finding? {
        guard let problem = SidecarCheck.problem(artifact, setDirectory: setDirectory) else { return nil }
        return Finding(.error, target: target, "\(artifact.path).sha256: \(problem.message)")
    }

    /// An error's text without the leading file name the reader adds (the finding names the artifact).
    private static func withoutFileName(_ error: Error, _ artifact: Artifact) -> String {
        let text = "\(error)", name = (artifact.path as NSString).lastPathComponent + ": "
        return text.hasPrefix(name) ? String(text.dropFirst(name.count)) : text
    }

    /// Checks every artifact of `record`: present, right size, right SHA-256. `content` may read
    /// from the reader (e.g. through libarchive) to check the content in the same pass; whatever
    /// it leaves unread is read afterwards so the checksum always covers the whole file.
    ///
    /// An encrypted artifact is decrypted for `content` when `DECRYPT_IDENTITY_FILE` is set, and
    /// every chunk is authenticated; without it, only size and checksum are checked and one
    /// info finding per target says the content checks were skipped.
    public func checkArtifacts(_ record: TargetRecord,
                               content: (Artifact, HashingFileReader) throws -> Void) -> [Finding] {
        var findings: [Finding] = []
        var skippedContent = false
        for artifact in record.artifacts {
            let path = setDirectory + "/" + artifact.path
            let sealedWithoutKey = artifact.path.hasSuffix(ArtifactEncryption.suffix) && !ArtifactEncryption.shared.canDecrypt
            guard let size = FileOps.size(path) else {
                findings.append(Finding(.error, target: record.name, "\(artifact.path): missing"))
                continue
            }
            if checkSidecars, let problem = checkSidecar(artifact, target: record.name) { findings.append(problem) }
            if size != artifact.bytes {
                findings.append(Finding(.error, target: record.name, "\(artifact.path): size \(size) bytes, manifest says \(artifact.bytes)"))
                continue
            }
            do {
                let progress = showProgress ? Progress(label: "verify \(artifact.path)", total: size) : nil
                let reader = try HashingFileReader(path: path, progress: progress, decrypt: !sealedWithoutKey)
                defer { reader.close(); progress?.finish() }
                var contentError: Error?
                if sealedWithoutKey {
                    skippedContent = true
                } else {
                    do {
                        try content(artifact, reader)
                        if reader.isDecrypting { try reader.readToEnd() }
                    } catch { contentError = error }
                }
                try reader.drain()
                if reader.hexDigest() != artifact.sha256 {
                    findings.append(Finding(.error, target: record.name, "\(artifact.path): checksum mismatch (SHA-256 \(reader.hexDigest()), manifest says \(artifact.sha256))"))
                } else if let contentError {
                    findings.append(Finding(.error, target: record.name, "\(artifact.path): \(Self.withoutFileName(contentError, artifact))"))
                }
            } catch {
                findings.append(Finding(.error, target: record.name, "\(artifact.path): \(Self.withoutFileName(error, artifact))"))
            }
        }
        if skippedContent {
            findings.append(Finding(.info, target: record.name, "encrypted artifacts: sizes and checksums checked, content checks skipped (set DECRYPT_IDENTITY_FILE to check the content)"))
        }
        return findings
    }
}

/// How the user asked for a restore.
public struct RestoreOptions: Sendable {
    /// Restore somewhere else than the original location (a directory, or a file path for
    /// single-file targets).
    public var destination: String?
    /// Only say what would happen.
    public var dryRun: Bool
    /// Overwrite even where the target would normally refuse.
    public var force: Bool
    /// Restore only these relative path prefixes, where the target supports it.
    public var paths: [String]
    /// Database targets: restore into this database instead, leaving the original untouched.
    public var intoDatabase: String?
    /// Point-in-time recovery: recover up to this moment.
    public var targetTime: Date?
    /// Point-in-time recovery: replay all archived WAL.
    public var toLatest: Bool
    /// File targets: owner (user name or uid) to give restored files.
    public var owner: String?
    /// File targets: group (name or gid) to give restored files.
    public var group: String?
    /// Check restored data against the manifest thoroughly (e.g. re-hash every file).
    public var verifyAfter: Bool
    /// Archive targets: keep set-user-ID and set-group-ID bits of restored files (removed by
    /// default).
    public var keepSetuid: Bool

    /// Creates restore options.
    public init(destination: String? = nil, dryRun: Bool = false, force: Bool = false, paths: [String] = [],
                intoDatabase: String? = nil, targetTime: Date? = nil, toLatest: Bool = false,
                owner: String? = nil, group: String? = nil, verifyAfter: Bool = false, keepSetuid: Bool = false) {
        self.destination = destination
        self.dryRun = dryRun
        self.force = force
        self.paths = paths
        self.intoDatabase = intoDatabase
        self.targetTime = targetTime
        self.toLatest = toLatest
        self.owner = owner
        self.group = group
        self.verifyAfter = verifyAfter
        self.keepSetuid = keepSetuid
    }
}

/// What restore gets.
public struct RestoreContext: Sendable {
    /// The complete set directory holding the backup.
    public let setDirectory: String
    /// The set's ID.
    public let setID: String
    /// Where to put safety copies (created on demand, 0700).
    public let safetyDirectory: String
    /// The user's options.
    public let options: RestoreOptions
    /// The logger.
    public let logger: Logger
    /// Whether a progress line may be drawn.
    public let showProgress: Bool
    /// Where a restore that changes something outside a folder it can put back by itself (a
    /// database) records each change before making it; nil for dry runs and tests.
    public let journal: RestoreJournal?

    /// Creates a restore context.
    public init(setDirectory: String, setID: String, safetyDirectory: String, options: RestoreOptions,
                logger: Logger, showProgress: Bool, journal: RestoreJournal? = nil) {
        self.setDirectory = setDirectory
        self.setID = setID
        self.safetyDirectory = safetyDirectory
        self.options = options
        self.logger = logger
        self.showProgress = showProgress
        self.journal = journal
    }

    /// A fresh path for a safety copy named after the target and the time.
    public func safetyPath(target: String, suffix: String) throws -> String {
        try FileOps.makeDirectory(safetyDirectory)
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyyMMdd_HHmmss"
        var path = "\(safetyDirectory)/\(target)-\(f.string(from: Date()))\(suffix)"
        var n = 2
        while FileOps.exists(path) {
            path = "\(safetyDirectory)/\(target)-\(f.string(from: Date()))_\(n)\(suffix)"
            n += 1
        }
        return path
    }
}

/// What a restore did, printed as the restore report.
public struct RestoreReport: Codable, Sendable {
    /// The target restored.
    public var target: String
    /// Where the data went.
    public var destination: String
    /// The safety copy of what was there before, if anything was.
    public var safetyCopy: String?
    /// Whether this was only a plan.
    public var dryRun: Bool
    /// Lines describing what happened (or would happen).
    public var lines: [String]
    /// Numbers worth showing: files, bytes, rows, seconds.
    public var facts: [String: JSONValue]

    /// Creates a report.
    public init(target: String, destination: String, safetyCopy: String? = nil, dryRun: Bool,
                lines: [String] = [], facts: [String: JSONValue] = [:]) {
        self.target = target
        self.destination = destination
        self.safetyCopy = safetyCopy
        self.dryRun = dryRun
        self.lines = lines
        self.facts = facts
    }
}

/// The `sha256sum -c` sidecar of an artifact, compared with the manifest: it must exist and hold
/// exactly one line `<manifest SHA-256>  <file name>` (or ` *<file name>`). One parser for
/// `verify` and `health`.
public enum SidecarCheck {
    /// What is wrong with a sidecar.
    public enum Problem: Sendable, Equatable {
        /// There is none.
        case missing
        /// It is there but `sha256sum -c` would fail on it; the text says why.
        case damaged(String)

        /// One line, without the sidecar's name.
        public var message: String {
            switch self {
            case .missing: return "missing (sha256sum -c needs it)"
            case let .damaged(why): return "damaged: \(why); sha256sum -c fails on it"
            }
        }
    }

    /// The problem with the sidecar of `artifact` in `setDirectory`, or nil when it is right.
    public static func problem(_ artifact: Artifact, setDirectory: String) -> Problem? {
        guard let data = FileManager.default.contents(atPath: setDirectory + "/" + artifact.path + ".sha256") else { return .missing }
        let base = (artifact.path as NSString).lastPathComponent
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        guard lines.count == 1, let line = lines.first, line.count > 66 else {
            return .damaged("not one `SHA-256  name` line")
        }
        let hash = String(line.prefix(64)).lowercased()
        let rest = line.dropFirst(64)
        let name = rest.hasPrefix("  ") || rest.hasPrefix(" *") ? String(rest.dropFirst(2)) : nil
        if hash != artifact.sha256.lowercased() {
            return .damaged("it says \(hash), the manifest says \(artifact.sha256)")
        }
        if name != base {
            return .damaged("it names \(name.map { "'\($0)'" } ?? "no file"), not \(base)")
        }
        return nil
    }
}
