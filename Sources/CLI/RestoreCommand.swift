import ArgumentParser
import BackupCore
import Foundation

/// `restore`: puts one target's backup (or a whole set) back, with a safety copy and rollback.
struct RestoreCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "restore",
                             abstract: "Restore a target from a backup (a safety copy of the current data is taken first).")
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The target to restore.")
    var target: String?

    @Flag(name: .long, help: "Restore every target of the set (the newest complete set, or --backup ID) together.")
    var all = false

    @Option(name: [.long, .customLong("timestamp")], help: "The backup ID, or 'latest' (the newest good backup of this target).")
    var backup: String = "latest"

    @Option(name: .long, help: "Restore into this directory (or file) instead of the original location; with --all, each target goes to DIR/TARGET.")
    var to: String?

    @Option(name: .long, help: "Restore only entries under this relative path (repeatable).")
    var path: [String] = []

    @Option(name: .long, help: "Database targets: restore into this database instead; the original stays untouched.")
    var into: String?

    @Option(name: .long, help: "Point-in-time recovery: recover to this time (ISO 8601, e.g. 2024-07-08T14:30:00Z, or 'YYYY-MM-DD HH:MM:SS' local).")
    var toTime: String?

    @Flag(name: .long, help: "Point-in-time recovery: replay every archived WAL segment.")
    var toLatest = false

    @Option(name: .long, help: "File targets: give restored files this owner.")
    var owner: String?

    @Option(name: .long, help: "File targets: give restored files this group.")
    var group: String?

    @Flag(name: .long, help: "Archive targets: keep set-user-ID and set-group-ID bits on restored files (removed by default).")
    var keepSetuid = false

    @Flag(name: .long, help: "After restoring, check the restored data against the manifest thoroughly.")
    var verify = false

    @Flag(name: .shortAndLong, help: "Do not ask for confirmation (required without a terminal).")
    var yes = false

    @Flag(name: .long, help: "Overwrite where the target would otherwise refuse.")
    var force = false

    @Flag(name: .long, help: "Show what would be restored; change nothing.")
    var dryRun = false

    @Option(name: .long, help: "'offsite': first download the set from the bucket (OFFSITE) into this machine's backup directory, each file checked as it streams, then restore from it as usual. Works on a new machine with only the config file.")
    var from: String?

    @Flag(name: .long, help: "Print the restore report as JSON.")
    var json = false

    @Flag(name: .long, help: "Roll back what an interrupted (killed) restore of TARGET changed, from the journal it left; every command warns about one.")
    var resumeRollback = false

    func validate() throws {
        if all && target != nil { throw ValidationError("name a target or use --all, not both") }
        if !all && target == nil { throw ValidationError("name the target to restore, or use --all for the whole set") }
        if let from, from != "offsite" && from != "local" { throw ValidationError("--from takes 'offsite' or 'local'") }
        if from == "offsite" && resumeRollback { throw ValidationError("--from offsite does not go with --resume-rollback") }
        if resumeRollback && (all || target == nil) { throw ValidationError("--resume-rollback needs the target whose restore was interrupted") }
        if all && (!path.isEmpty || into != nil || toTime != nil || toLatest) {
            throw ValidationError("--path, --into, --to-time and --to-latest apply to one target; name it instead of --all")
        }
    }

    func run() throws {
        // An empty value would mean the current directory (or every database): never a guess.
        if to == "" { throw UsageError("--to is empty; give the directory (or file) to restore into") }
        if into == "" { throw UsageError("--into is empty; give the name of the database to restore into") }
        if path.contains("") { throw UsageError("--path is empty; give a relative path (or database) to restore") }
        let session = try Session<F>(global, logToFile: !dryRun, warnInterrupted: !resumeRollback)
        if resumeRollback { return try rollBackInterrupted(session) }
        var backup = self.backup
        if from == "offsite" { backup = try fetchFromOffsite(session) }
        if all { return try restoreSet(session, backup: backup) }
        let target = self.target!
        let destination = to.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
        if toTime != nil && toLatest { throw UsageError("--to-time and --to-latest exclude each other") }
        let targetTime = try toTime.map { raw -> Date in
            guard let d = parseTime(raw) else {
                throw UsageError("--to-time: cannot read '\(raw)'; use ISO 8601 (2024-07-08T14:30:00Z) or 'YYYY-MM-DD HH:MM:SS' (local time)")
            }
            return d
        }
        let options = RestoreOptions(destination: destination, dryRun: dryRun, force: force, paths: path,
                                     intoDatabase: into, targetTime: targetTime, toLatest: toLatest,
                                     owner: owner, group: group, verifyAfter: verify, keepSetuid: keepSetuid)
        // The plan is worked out once: shown, confirmed, and then carried out as it is.
        let plan = try session.engine.planRestore(target: target, id: backup, options: options)
        if dryRun {
            if json { try printJSON(plan) } else { printPlan(plan) }
            return
        }
        if !json { printPlan(plan) }
        fflush(nil)  // the plan comes before anything the restore logs on stderr
        try confirm("Restore \(target) as shown above?", yes: yes)
        let report = try session.engine.carryOut(plan)
        if json { try printJSON(report) } else { printReport(report, after: plan) }
    }

    /// Restores every target of one set, in configured order: plans first, one confirmation,
    /// then each target with its own safety copy. Stops at the first failure (that target is
    /// rolled back; the ones before it stay restored, and the report says so).
    /// `--from offsite`: brings the set back from the bucket into the local repository (staged
    /// in its scratch space, every file hash-checked, the manifest written last) and returns its
    /// ID, so the restore that follows is the usual one (plan, safety copy, rollback).
    private func fetchFromOffsite(_ session: Session<F>) throws -> String {
        let store = try session.requireOffsite()
        let (remote, manifest) = try store.findRemote(backup, target: all ? nil : target)
        let local = session.engine.repository.completeSets().first { $0.id == remote.id && $0.tier == remote.tier }
        if local != nil {
            session.engine.logger.info("off-site: \(remote.tier)/\(remote.id) is here already; restoring from the local copy")
            return "\(remote.tier)/\(remote.id)"
        }
        if dryRun {
            print("Would download \(remote.tier)/\(remote.id) (\(remote.files.count) file(s), \(Format.bytes(remote.bytes)) plus snapshot objects) from \(store.settings.display)")
            throw CommandFailed(status: .success)
        }
        try session.engine.repository.prepare()
        let lock = try session.engine.lock()
        defer { lock.release() }
        let set = try store.fetch(remote, manifest: manifest)
        print("Downloaded \(set.tier)/\(set.id) from \(store.settings.display) into \(set.directory)")
        return "\(set.tier)/\(set.id)"
    }

    private func restoreSet(_ session: Session<F>, backup: String) throws {
        let repo = session.engine.repository
        let set = backup == "latest"
            ? try repo.completeSets().first { $0.manifest?.status == .complete }
                ?? { throw OperationError("no complete backup set in \(repo.root)") }()
            : try repo.find(backup)
        let names = session.deployment.targets.map(\.name).filter { set.manifest?.record(for: $0)?.status == .ok }
        guard !names.isEmpty else { throw OperationError("backup \(set.id) holds no good backup of a configured target") }
        let base = to.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
        func options(_ name: String) -> RestoreOptions {
            // A trailing slash tells single-file targets that this is a folder to write into.
            RestoreOptions(destination: base.map { "\($0)/\(name)/" }, dryRun: dryRun, force: force, owner: owner, group: group,
                           verifyAfter: verify, keepSetuid: keepSetuid)
        }
        var plans: [RestorePlan] = []
        for name in names {
            plans.append(try session.engine.planRestore(target: name, id: set.id, options: options(name)))
        }
        if dryRun && json { return try printJSON(plans) }
        if dryRun || !json { plans.forEach { printPlan($0) } }
        fflush(nil)
        if dryRun { return }
        try confirm("Restore \(names.joined(separator: ", ")) from backup \(set.id) as shown above?", yes: yes)
        var reports: [RestoreReport] = []
        for plan in plans {
            do {
                reports.append(try session.engine.carryOut(plan))
            } catch {
                if !reports.isEmpty {
                    // Whether its own rollback worked is in the error itself (ROLLBACK FAILED if not).
                    session.engine.logger.error("restore of \(plan.target) failed (see the error below); already restored from \(set.id), and left so: \(reports.map(\.target).joined(separator: ", "))")
                }
                throw error
            }
        }
        if json {
            try printJSON(reports)
        } else {
            for report in reports { printReport(report, after: plans.first { $0.target == report.target }) }
        }
    }

    /// Prints a plan: the lines the administrator confirms.
    private func printPlan(_ plan: RestorePlan) {
        print("Restore plan for \(plan.target):")
        for line in plan.lines { print("  \(line)") }
    }

    /// Prints a plan, or a report; a report printed after its plan leaves out the plan's lines.
    /// A safety copy's path is printed once, however many lines of the report name it.
    private func printReport(_ report: RestoreReport, after plan: RestorePlan? = nil) {
        print("Restore report for \(report.target):")
        let shown = Set(plan?.lines ?? [])
        var printed: [String] = []
        for line in report.lines where !shown.contains(line) {
            if line.hasPrefix("safety copy: ") {
                let path = String(line.dropFirst("safety copy: ".count))
                if printed.contains(where: { $0.hasSuffix(": " + path) }) { continue }
            }
            print("  \(line)")
            printed.append(line)
        }
    }
}

/// Parses ISO 8601 or `YYYY-MM-DD HH:MM:SS` (local time).
func parseTime(_ raw: String) -> Date? {
    if let d = Format.parseISO8601(raw) { return d }
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    for pattern in ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm"] {
        f.dateFormat = pattern
        if let d = f.date(from: raw) { return d }
    }
    return nil
}
