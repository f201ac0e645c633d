import Foundation

/// A target whose restores run between two shell commands, e.g. schedgen's `docker compose stop
/// backend pdf-worker` and `docker compose start backend pdf-worker`: the application that uses
/// the data is stopped while it is replaced. Backups are not affected. The start command runs
/// whatever happens once the stop command succeeded; a failing stop command stops the restore
/// before anything is touched. Everything else is the wrapped target's.
public struct RestoreHookedTarget: BackupTarget {
    /// The wrapped target.
    public let inner: any BackupTarget
    /// Run with `/bin/sh -c` before a restore (not a dry run).
    public let stopCommand: String?
    /// Run with `/bin/sh -c` after it, whether it succeeded or not.
    public let startCommand: String?

    /// Wraps `inner`.
    public init(_ inner: any BackupTarget, stopCommand: String?, startCommand: String?) {
        self.inner = inner
        self.stopCommand = stopCommand
        self.startCommand = startCommand
    }

    public var name: String { inner.name }
    public var kind: String { inner.kind }
    public var summary: String { inner.summary }

    public func preflight(_ context: PreflightContext) -> [Finding] { inner.preflight(context) }
    public func backup(_ context: BackupContext) throws -> TargetOutput { try inner.backup(context) }
    public func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding] { inner.verify(record, context: context) }
    /// Wrapped targets that have none return nil from `restoreDrill`.
    public static var hasRestoreDrill: Bool { true }
    public func rollBackInterruptedRestore(_ entry: RestoreJournal.Entry, context: RestoreContext) throws -> RestoreReport {
        try inner.rollBackInterruptedRestore(entry, context: context)
    }
    public func removeDrillLeftover(_ resource: String) throws { try inner.removeDrillLeftover(resource) }
    public func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport? {
        try inner.restoreDrill(record, context: context)
    }
    public func didCommit(_ record: TargetRecord, setDirectory: String, context: BackupContext) throws {
        try inner.didCommit(record, setDirectory: setDirectory, context: context)
    }
    public func didRemoveSets(repository: Repository) throws { try inner.didRemoveSets(repository: repository) }
    public func currentFacts(repository: Repository) -> [String: JSONValue] { inner.currentFacts(repository: repository) }
    public func pruneOutsideSets(keeping kept: [TargetRecord], dryRun: Bool) throws -> [PruneDecision] {
        try inner.pruneOutsideSets(keeping: kept, dryRun: dryRun)
    }

    private func hook(_ label: String, _ command: String, context: RestoreContext) throws {
        context.logger.info("\(label) command: \(command)")
        let outcome = try ChildProcess("/bin/sh", ["-c", command]).run()
        if outcome.status != 0 { try Interrupts.shared.yieldToSignal() }
        guard outcome.status == 0 else {
            throw OperationError("\(label) command failed with \(outcome.termination): \(outcome.relevantLines.isEmpty ? "(no output)" : outcome.relevantLines.joined(separator: " | "))")
        }
    }

    public func restore(_ record: TargetRecord, context: RestoreContext) throws -> RestoreReport {
        if context.options.dryRun {
            var plan = try inner.restore(record, context: context)
            if let stopCommand { plan.lines.insert("before: \(stopCommand)", at: 0) }
            if let startCommand { plan.lines.append("after: \(startCommand)") }
            return plan
        }
        if let stopCommand {
            do { try hook("stop", stopCommand, context: context) } catch {
                throw OperationError("\(error); nothing was restored")
            }
        }
        var report: RestoreReport
        do { report = try inner.restore(record, context: context) } catch {
            if let startCommand {
                do { try hook("start", startCommand, context: context) } catch { context.logger.error("\(error)") }
            }
            throw error
        }
        if let startCommand {
            do { try hook("start", startCommand, context: context) } catch { report.lines.append("warning: \(error)") }
        }
        if let stopCommand { report.lines.insert("stopped first: \(stopCommand)", at: 0) }
        if let startCommand { report.lines.append("started again: \(startCommand)") }
        return report
    }
}
