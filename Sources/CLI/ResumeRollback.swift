import BackupCore
import Foundation

extension RestoreCommand {
    /// `restore TARGET --resume-rollback`: shows what the interrupted restore's journal says it
    /// changed, asks, then puts back what was there before and removes the journal.
    func rollBackInterrupted(_ session: Session<F>) throws {
        let name = target!
        // The original restore's --to / --into, given again: the only places besides the
        // configured ones that the journal may name.
        let destination = to.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
        let plan = try session.engine.resumeRollback(target: name, options: RestoreOptions(destination: destination, dryRun: true, intoDatabase: into))
        if !json || dryRun {
            if json { return try printJSON(plan) }
            print("Rollback plan for the interrupted restore of \(name):")
            for line in plan.lines { print("  \(line)") }
        }
        if dryRun { return }
        fflush(nil)
        try confirm("Roll back the interrupted restore of \(name) as shown above?", yes: yes)
        let report = try session.engine.resumeRollback(target: name, options: RestoreOptions(destination: destination, intoDatabase: into))
        if json { return try printJSON(report) }
        print("Rollback report for \(name):")
        for line in report.lines { print("  \(line)") }
    }
}
