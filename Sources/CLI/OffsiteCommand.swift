import ArgumentParser
import BackupCore
import Foundation
import Targets

extension Session {
    /// The off-site copy, or nil when none is configured (`OFFSITE` unset).
    func offsite() throws -> OffsiteStore? {
        guard let settings = try OffsiteSettings.from(config: config, deploymentName: config.string("DEPLOYMENT_NAME") ?? F.commandName) else {
            return nil
        }
        return OffsiteStore(settings: settings, repository: engine.repository, codecs: OffsiteTrees.codecs, logger: engine.logger)
    }

    /// The off-site copy, or a usage error naming the key to set.
    func requireOffsite() throws -> OffsiteStore {
        guard let store = try offsite() else {
            throw ConfigError.missingKey(key: "OFFSITE", file: config.file)
        }
        return store
    }

    /// Pushes `sets` (all complete sets when nil) under the repository lock and prints a summary.
    @discardableResult
    func pushOffsite(_ store: OffsiteStore, sets: [StoredSet]? = nil, json: Bool = false) throws -> OffsitePushReport {
        let lock = try engine.lock()
        defer { lock.release() }
        let report = try store.push(sets ?? engine.repository.completeSets())
        if json { try printJSON(report) } else {
            engine.logger.info("off-site: \(report.pushed.count) set(s) pushed to \(store.settings.display)\(report.alreadyThere.isEmpty ? "" : ", \(report.alreadyThere.count) already there"); \(report.filesUploaded) file(s) and \(report.objectsUploaded) snapshot object(s) uploaded, \(report.objectsSkipped) object(s) already there; \(Format.bytes(report.bytesSent)) sent")
        }
        return report
    }
}

/// `offsite`: the copy in an S3-compatible bucket.
struct OffsiteCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "offsite", abstract: "Copies of complete sets in an S3-compatible bucket (OFFSITE=s3://bucket/prefix).",
                             subcommands: [OffsitePushCommand<F>.self, OffsiteListCommand<F>.self, OffsiteProbeCommand<F>.self, OffsitePruneCommand<F>.self])
    }
}

/// `offsite push [ID]`.
struct OffsitePushCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "push", abstract: "Upload complete sets that the bucket does not hold completely yet (every one, or ID).")
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The set to push (default: every complete set not yet in the bucket).")
    var backup: String?

    @Flag(name: .long, help: "Print the report as JSON.")
    var json = false

    func run() throws {
        let session = try Session<F>(global, logToFile: true)
        let store = try session.requireOffsite()
        let sets = try backup.map { [try session.engine.repository.find($0)] }
        try session.pushOffsite(store, sets: sets, json: json)
    }
}

/// One row of `offsite list`.
struct OffsiteListRow: Codable {
    var id: String, tier: String, status: String, files: Int, bytes: Int64
}

/// `offsite list`.
struct OffsiteListCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "list", abstract: "List the sets in the bucket, newest first; incomplete ones are marked.")
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print as JSON.")
    var json = false

    func run() throws {
        let session = try Session<F>(global, logToFile: false)
        let store = try session.requireOffsite()
        let rows = try store.remoteSets().map {
            OffsiteListRow(id: $0.id, tier: $0.tier, status: $0.complete ? "complete" : "INCOMPLETE", files: $0.files.count, bytes: $0.bytes)
        }
        if json { return try printJSON(rows) }
        print("\(store.settings.display)")
        print("ID                  TIER      STATUS      FILES  SIZE")
        for r in rows {
            print("\(r.id.padding(toLength: 19, withPad: " ", startingAt: 0)) \(r.tier.padding(toLength: 9, withPad: " ", startingAt: 0)) \(r.status.padding(toLength: 11, withPad: " ", startingAt: 0)) \(String(r.files).padding(toLength: 6, withPad: " ", startingAt: 0)) \(Format.bytes(r.bytes))")
        }
        if rows.isEmpty { print("(no sets)") }
    }
}

/// `offsite probe`: what the endpoint supports, in one table.
struct OffsiteProbeCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "probe", abstract: "Show what the S3 endpoint supports: auth, addressing, multipart, multi-object delete, checksum validation.")
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print as JSON.")
    var json = false

    func run() throws {
        let session = try Session<F>(global, logToFile: false)
        let store = try session.requireOffsite()
        let lines = store.probe()
        if json { try printJSON(lines) } else {
            print("\(store.settings.s3.endpoint)  \(store.settings.display)")
            printTable([["CHECK", "RESULT", "DETAIL"]] + lines.map { [$0.check, $0.result, $0.detail] })
        }
        if lines.contains(where: { $0.result == "error" }) { throw CommandFailed(status: .failure) }
    }
}

/// `offsite prune`: the local retention policy applied to the bucket.
struct OffsitePruneCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "prune", abstract: "Apply the retention policy to the sets in the bucket, then remove snapshot objects no set references (older than OFFSITE_GC_GRACE).")
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Show what would be removed; remove nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print as JSON.")
    var json = false

    struct Report: Codable {
        var sets: [OffsiteStore.PruneLine]
        var objectsRemoved: [String]
    }

    func run() throws {
        let session = try Session<F>(global, logToFile: !dryRun)
        let store = try session.requireOffsite()
        guard let policy = session.deployment.retention else {
            throw UsageError("offsite prune: no retention is configured (set KEEP_DAILY_DAYS, KEEP_DAILY, ... or RETENTION_DAYS)")
        }
        let grace = try session.config.duration("OFFSITE_GC_GRACE", default: 86400)!
        let lock = try session.engine.lock()
        defer { lock.release() }
        let (lines, removed) = try store.prune(policy: policy, grace: grace, dryRun: dryRun)
        if json { return try printJSON(Report(sets: lines, objectsRemoved: removed)) }
        for l in lines {
            let verb = l.remove ? (dryRun ? "would remove" : "removed") : "keep"
            print("\(verb.padding(toLength: 13, withPad: " ", startingAt: 0)) \(l.set)  \(l.reason)")
        }
        print("\(removed.count) unreferenced snapshot object(s) \(dryRun ? "would be " : "")removed from \(store.settings.display)")
    }
}
