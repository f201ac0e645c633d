import ArgumentParser
import BackupCore
import Foundation

/// One row of `list`.
struct ListRow: Codable {
    var id: String
    var tier: String
    var status: String
    var createdAt: Date?
    var targets: [String]
    var failedTargets: [String]
    /// With `--size`: what the set takes on disk (data, manifest, checksum files) and removing it frees.
    var bytes: Int64?
    /// With `--size`: the backed-up data (artifacts; a snapshot's files).
    var dataBytes: Int64?
    var directory: String
    /// Whether the set is complete in the off-site bucket (as the last push recorded it); nil
    /// when no off-site copy was ever pushed.
    var offsite: Bool? = nil
}

/// `list`: the sets, newest first.
struct ListCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "list", abstract: "List backups, newest first.")
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Show each backup's size on disk (snapshot trees as recorded at backup time).")
    var size = false

    @Flag(name: .long, help: "With --size: walk every snapshot tree and count hard links, instead of using the recorded sizes.")
    var exact = false

    @Option(name: .long, help: "Only this tier.")
    var tier: String?

    @Flag(name: .long, help: "Print as JSON.")
    var json = false

    func run() throws {
        let session = try Session<F>(global, logToFile: false)
        try session.engine.repository.checkReadable()
        let all = session.engine.repository.allSets()
        let sets = all.filter { tier == nil || $0.tier == tier }
        var sizes = SetSizes(sets: all.filter { $0.manifest != nil })
        func freed(_ s: StoredSet) -> Int64 {
            s.manifest == nil ? FileOps.freedSize(s.directory) : sizes.freed([s.directory], exact: exact)
        }
        let offsite = OffsiteState.load(session.engine.repository)
        let rows = sets.map { s -> ListRow in
            let m = s.manifest
            var row = ListRow(id: s.id, tier: s.tier, status: m?.status.rawValue ?? (s.manifestUnreadable ? "unreadable" : "incomplete"), createdAt: m?.startedAt,
                           targets: m?.targets.filter { $0.status == .ok }.map(\.name) ?? [],
                           failedTargets: m?.targets.filter { $0.status == .failed }.map(\.name) ?? [],
                           bytes: size ? freed(s) : nil, dataBytes: size ? m?.dataBytes : nil,
                           directory: s.directory)
            if let offsite { row.offsite = offsite.sets["\(s.tier)/\(s.id)"] != nil }
            return row
        }
        if json { return try printJSON(rows) }
        if rows.isEmpty {
            print("no backups in \(session.deployment.backupDirectory)")
            return
        }
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        var table = [["ID", "TIER", "CREATED", "STATUS", "TARGETS"] + (size ? ["DATA", "ON DISK"] : []) + (offsite != nil ? ["OFFSITE"] : [])]
        for r in rows {
            var targets = r.targets.joined(separator: ",")
            if !r.failedTargets.isEmpty { targets += " (failed: \(r.failedTargets.joined(separator: ",")))" }
            table.append([r.id, r.tier, r.createdAt.map { f.string(from: $0) } ?? "-", r.status, targets.isEmpty ? "-" : targets]
                         + (size ? [r.dataBytes.map(Format.bytes) ?? "-", Format.bytes(r.bytes ?? 0)] : [])
                         + (r.offsite.map { [$0 ? "yes" : "-"] } ?? []))
        }
        printTable(table)
        if size {
            let total = tier == nil && !exact ? sizes.total() : FileOps.diskUsage(rows.map(\.directory))
            print("total: \(Format.bytes(total)) on disk in \(rows.count) backup(s)."
                  + " DATA is what was backed up; ON DISK adds the manifest and checksum files, and is what removing"
                  + " a backup frees (files hard-linked with other backups count once, in the total)")
            if !exact {
                print("snapshot trees: sizes as recorded at backup time\(sizes.walkedTrees ? " (some trees were walked: their records could not tell)" : ""); --exact walks them and counts hard links")
            }
        }
        if let offsite {
            print("OFFSITE: complete in \(offsite.destination) as of the last push\(offsite.lastPush.map { " (\(Format.age(Date().timeIntervalSince($0))) ago)" } ?? ""); offsite list asks the bucket")
        }
        if rows.contains(where: { $0.status == "incomplete" }) {
            print("incomplete backups have no manifest (a crashed or running backup); the next backup run removes them")
        }
        for s in sets where s.manifestUnreadable {
            print("\(s.tier)/\(s.id): \(s.problem ?? "manifest unreadable"); it is not used and not removed automatically: repair \(s.directory)/\(SetManifest.fileName) or remove the folder by hand")
        }
    }
}

/// Prints rows as left-aligned columns.
func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    var widths = Array(repeating: 0, count: first.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    for r in rows {
        print(r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  "))
    }
}
