import BackupCore
import Foundation

extension RestoreCommand {
    /// `restore TARGET --resume-rollback`: shows what the interrupted restore's journal says it
    /// changed, asks, then puts back what was there before and removes the journal.
    func rollBackInterrupted(_ session: Session<F>) throws {
        let name = target!
        let plan = try session.engine.resumeRollback(target: name, options: RestoreOptions(dryRun: true))
        if !json || dryRun {
            if json { return try printJSON(plan) }
            print("Rollback plan for the interrupted restore of \(name):")
            for line in plan.lines { print("  \(line)") }
        }
        if dryRun { return }
        fflush(nil)
        try confirm("Roll back the interrupted restore of \(name) as shown above?", yes: yes)
        let report = try session.engine.resumeRollback(target: name, options: RestoreOptions())
        if json { return try printJSON(report) }
        print("Rollback report for \(name):")
        for line in report.lines { print("  \(line)") }
    }
}
