import ArgumentParser
import BackupCore
import Foundation
import Targets

/// `verify`: checksums, full archive reads, database integrity checks.
struct VerifyCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "verify",
                             abstract: "Verify backups: checksums, a full read of every archive, database integrity.")
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The backup ID to verify (default: the newest).")
    var backup: String?

    @Option(name: [.customLong("timestamp"), .customLong("backup")], help: "Same as BACKUP (--timestamp is the journal scripts' spelling; --backup as restore spells it).")
    var timestamp: String?

    @Flag(name: .long, help: "Verify every backup.")
    var all = false

    @Option(name: .long, parsing: .upToNextOption, help: "Verify only these targets.")
    var only: [String] = []

    @Flag(name: .long, help: "Also do the expensive checks some targets offer.")
    var deep = false

    @Flag(name: .long, help: "Restore drill: restore the newest backup into a scratch place, compare it with the manifest, clean up, and report the restore time.")
    var restoreTest = false

    @Flag(name: .long, help: "Print results as JSON.")
    var json = false

    @Flag(name: .long, help: "Verify the off-site copy in the bucket instead: every object exists with the right size and x-amz-meta-sha256 (with --deep: streamed back and re-hashed); missing, changed and extra objects are named.")
    var remote = false

    /// `verify --remote`: the bucket's copy, without downloading it (unless `--deep`).
    private func verifyRemote(_ session: Session<F>) throws {
        let store = try session.requireOffsite()
        let named = backup ?? timestamp
        let results = try store.verify(ids: all || named == nil ? (all ? nil : ["latest"]) : [named!], deep: deep)
        if json {
            try printJSON(results)
        } else {
            print(store.settings.display)
            for r in results {
                print("\(r.ok ? "OK  " : "FAIL")  \(r.tier)/\(r.id)  \(r.checked) object(s) checked\(deep ? ", re-hashed" : "")")
                for f in r.findings { print("      \(f)") }
            }
            if results.isEmpty { print("(no sets in the bucket)") }
        }
        if results.contains(where: { !$0.ok }) {
            let context = session.alertContext
            let lines = results.filter { !$0.ok }.flatMap { r in r.findings.map { "\(r.tier)/\(r.id): \($0)" } }
            session.report(Alert(level: .failure, kind: "verify-remote", source: F.commandName, deployment: context.deployment,
                                 subject: "[\(context.deployment)] OFF-SITE VERIFY FAILED on \(context.host)",
                                 lines: ["off-site copy: \(store.settings.display)"] + Array(lines.prefix(50))))
            throw CommandFailed(status: .failure)
        }
    }

    func validate() throws {
        if remote && (restoreTest || !only.isEmpty) { throw ValidationError("--remote goes with ID, --all and --deep only") }
        if backup != nil && timestamp != nil { throw ValidationError("give the backup either as an argument or with --timestamp, not both") }
        if all && (backup != nil || timestamp != nil) { throw ValidationError("--all verifies every backup; do not name one too") }
    }

    func run() throws {
        let session = try Session<F>(global, logToFile: restoreTest)
        // Missing or unreadable is an error, never "no backups"; the drill creates nothing.
        try session.engine.repository.checkReadable()
        if restoreTest { return try runDrill(session) }
        if remote { return try verifyRemote(session) }
        let repo = session.engine.repository
        let sets: [StoredSet] = all ? repo.allSets() : [try repo.find(backup ?? timestamp ?? "latest")]
        if sets.isEmpty { throw OperationError("no backups in \(repo.root) to verify") }
        let results = try session.engine.verify(sets, only: only, deep: deep)
        if json {
            try printJSON(results)
        } else {
            for r in results {
                print("\(r.ok ? "OK  " : "FAIL")  \(r.tier)/\(r.id)  \(r.targets.joined(separator: ","))")
                for f in r.findings { print("      \(f)") }
            }
        }
        let context = session.alertContext
        if results.contains(where: { !$0.ok }) {
            let lines = results.filter { !$0.ok }.flatMap { r in r.findings.map { "\(r.tier)/\(r.id): \($0)" } }
            session.report(Alert(level: .failure, kind: "verify", source: F.commandName, deployment: context.deployment,
                                 subject: "[\(context.deployment)] VERIFY FAILED on \(context.host)",
                                 lines: lines + ["next: \(context.command("verify --all"))"]))
            throw CommandFailed(status: .failure)
        }
        session.report(Alert(level: .ok, kind: "verify", source: F.commandName, deployment: context.deployment,
                             subject: "[\(context.deployment)] verify OK on \(context.host)",
                             lines: results.map { "\($0.tier)/\($0.id): ok (\($0.targets.joined(separator: ", ")))" }))
    }

    private func runDrill(_ session: Session<F>) throws {
        let reports = try session.engine.drill(id: backup ?? timestamp, only: only, kindsWithDrill: TargetRegistry.kindsWithRestoreDrill)
        if json {
            try printJSON(reports)
        } else {
            for r in reports {
                let took = r.passed || r.restoreSeconds > 0 ? "restored in \(Format.seconds(r.restoreSeconds))" : "did not restore"
                print("\(r.passed ? "PASS" : "FAIL")  restore drill of \(r.target) from \(r.setID): \(took)")
                for line in r.lines { print("      \(line)") }
            }
        }
        let context = session.alertContext
        if let monitoring = try? session.monitoring() {
            session.publishMetrics(session.engine.health(monitoring.health, deployment: monitoring.deployment), monitoring: monitoring)
        }
        if reports.contains(where: { !$0.passed }) {
            let lines = reports.filter { !$0.passed }.flatMap { r in ["\(r.target) from \(r.setID):"] + r.lines }
            session.report(Alert(level: .failure, kind: "drill", source: F.commandName, deployment: context.deployment,
                                 subject: "[\(context.deployment)] RESTORE DRILL FAILED on \(context.host)",
                                 lines: lines + (context.logFile.map { ["log: \($0)"] } ?? []) + ["next: \(context.command("verify --restore-test"))"]))
            throw CommandFailed(status: .failure)
        }
        session.report(Alert(level: .ok, kind: "drill", source: F.commandName, deployment: context.deployment,
                             subject: "[\(context.deployment)] restore drill passed on \(context.host)",
                             lines: reports.map { "\($0.target) from \($0.setID): restored in \(Format.seconds($0.restoreSeconds))" }))
    }
}
