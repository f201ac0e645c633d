import ArgumentParser
import BackupCore
import Foundation

/// The numbers `stats` shows.
struct Stats: Codable {
    struct TargetStats: Codable {
        var name: String
        var kind: String
        var lastGoodBackup: String?
        var lastGoodAt: Date?
        var lastGoodAgeHours: Double?
        var lastGoodBytes: Int64?
        var lastFailure: String?
        var lastFailureAt: Date?
        var lastDrill: DrillReport?
        var lastPassedDrillAt: Date?
        var facts: [String: JSONValue]
    }
    var backupDirectory: String
    var backups: Int
    var incomplete: Int
    var perTier: [String: Int]
    /// The backed-up data of every complete set (artifacts; a snapshot's files).
    var dataBytes: Int64
    /// What the sets take on disk: data, manifests and checksum files; a file hard-linked
    /// between snapshots counts once.
    var totalBytes: Int64
    /// True if `totalBytes` comes from walking every tree (`--exact`), false if snapshot trees
    /// count as recorded at backup time.
    var totalBytesExact: Bool
    var oldest: String?
    var newest: String?
    var diskFreeBytes: Int64?
    var targets: [TargetStats]
    /// Scratch resources of killed restore drills, until the next drill or prune removes them.
    var drillLeftovers: [String]
}

/// `stats`: counts, sizes, and each target's last good backup.
struct StatsCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "stats", abstract: "Show backup counts, sizes and each target's last good backup.")
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print as JSON.")
    var json = false

    @Flag(name: .long, help: "Walk every snapshot tree for the size on disk instead of using the sizes recorded at backup time.")
    var exact = false

    func run() throws {
        let session = try Session<F>(global, logToFile: false)
        let repo = session.engine.repository
        try repo.checkReadable()
        let all = repo.allSets()
        let complete = all.filter { $0.manifest != nil }
        var perTier: [String: Int] = [:]
        for s in complete { perTier[s.tier, default: 0] += 1 }
        var fs = statvfs()
        let free: Int64? = statvfs(repo.root, &fs) == 0 ? Int64(fs.f_bavail) * Int64(fs.f_frsize) : nil
        var sizes = SetSizes(sets: complete)
        let drills = session.engine.drillHistory()
        let targets = session.deployment.targets.map { t -> Stats.TargetStats in
            let good = repo.latestGood(target: t.name)
            let lastDrill = drills.last { $0.target == t.name }
            let lastPassed = drills.last { $0.target == t.name && $0.passed }
            let failure = complete.first { $0.manifest?.record(for: t.name)?.status == .failed }?.manifest?.record(for: t.name)
            let unkept = repo.failures().last { $0.name == t.name }
            let lastFailure = [failure, unkept].compactMap { $0 }.max { $0.finishedAt < $1.finishedAt }
            return Stats.TargetStats(name: t.name, kind: t.kind, lastGoodBackup: good?.0.id, lastGoodAt: good?.1.finishedAt,
                                     lastGoodAgeHours: good.map { Date().timeIntervalSince($0.1.finishedAt) / 3600 },
                                     // A snapshot's content is not an artifact: count its files, not its manifest.
                                     lastGoodBytes: good?.1.dataBytes,
                                     lastFailure: lastFailure?.error,
                                     lastFailureAt: lastFailure?.finishedAt,
                                     lastDrill: lastDrill, lastPassedDrillAt: lastPassed?.at,
                                     facts: (good?.1.facts.filter { !["members", "tables"].contains($0.key) && !($0.key == "rowCounts" && $0.value.objectValue != nil) } ?? [:])
                                        .merging(t.currentFacts(repository: repo)) { $1 })
        }
        let stats = Stats(backupDirectory: repo.root, backups: complete.count, incomplete: all.count - complete.count,
                          perTier: perTier, dataBytes: complete.reduce(0) { $0 + ($1.manifest?.dataBytes ?? 0) },
                          totalBytes: sizes.total(exact: exact), totalBytesExact: exact,
                          oldest: complete.last?.id, newest: complete.first?.id, diskFreeBytes: free, targets: targets,
                          drillLeftovers: DrillLeftovers(root: repo.root).leftovers().map { "[\($0.target)] \($0.description), left by a restore drill killed \(Format.age(Date().timeIntervalSince($0.at))) ago" })

        if json { return try printJSON(stats) }
        print("backup directory: \(stats.backupDirectory)")
        print("backups: \(stats.backups) (\(perTier.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")))"
              + (stats.incomplete > 0 ? ", \(stats.incomplete) incomplete" : ""))
        print("size: \(Format.bytes(stats.dataBytes)) data, \(Format.bytes(stats.totalBytes)) on disk with manifests and checksum files"
              + (exact ? "" : " (snapshot trees as recorded; --exact walks them)")
              + (free.map { "; disk free: \(Format.bytes($0))" } ?? ""))
        if let o = stats.oldest, let n = stats.newest { print("oldest: \(o), newest: \(n)") }
        if let offsite = OffsiteState.load(session.engine.repository) {
            let newest = offsite.sets.keys.map { String($0.split(separator: "/").last ?? "") }.max()
            print("off-site: \(offsite.sets.count) set(s) in \(offsite.destination)\(newest.map { ", newest \($0)" } ?? "")\(offsite.lastPush.map { ", last push \(Format.age(Date().timeIntervalSince($0))) ago" } ?? "")")
        }
        for leftover in stats.drillLeftovers { print("leftover: \(leftover) (the next restore drill or prune removes it)") }
        for t in targets {
            if let id = t.lastGoodBackup, let age = t.lastGoodAgeHours {
                print("target \(t.name) (\(t.kind)): last good backup \(id), \(Format.ago(age * 3600)), \(Format.bytes(t.lastGoodBytes ?? 0)) data")
            } else {
                print("target \(t.name) (\(t.kind)): no good backup yet")
            }
            if let err = t.lastFailure { print("  last failure: \(err)") }
            if let d = t.lastDrill {
                print("  last restore drill: \(d.passed ? "passed" : "FAILED") \(Format.age(Date().timeIntervalSince(d.at))) ago (backup \(d.setID), restore took \(Format.seconds(d.restoreSeconds)))"
                      + (d.passed ? "" : t.lastPassedDrillAt.map { "; last passed \(Format.age(Date().timeIntervalSince($0))) ago" } ?? "; never passed"))
                if !d.passed { for line in d.lines.suffix(3) { print("    \(line)") } }
            } else if t.lastGoodBackup != nil {
                print("  last restore drill: never (run verify --restore-test)")
            }
            if let dbs = t.facts["databases"]?.arrayValue {
                let names = dbs.compactMap { $0.objectValue }.map { "\($0["name"]?.stringValue ?? "?") (\($0["rows"]?.sizeValue ?? 0) rows)" }
                print("  databases: \(names.joined(separator: ", "))")
            }
            if let files = t.facts["files"]?.sizeValue, let unique = t.facts["uniqueBytes"]?.sizeValue {
                func n(_ k: String) -> Int64 { t.facts[k]?.sizeValue ?? 0 }
                print("  snapshot: \(files) files, \(n("directories")) dirs, \(n("filesTransferred")) transferred (\(Format.bytes(n("bytesTransferred")))), "
                      + "apparent \(Format.bytes(n("apparentBytes"))), unique \(Format.bytes(unique)) (files no earlier snapshot held, as recorded)")
            }
            if let wal = t.facts["walArchive"]?.objectValue {
                let gaps = wal["gaps"]?.arrayValue?.compactMap(\.stringValue) ?? []
                let age = wal["newestAgeSeconds"]?.numberValue.map { " newest \(wal["newest"]?.stringValue ?? "?"), \(Format.age($0)) old," } ?? ""
                print("  WAL archive \(wal["directory"]?.stringValue ?? "?"): \(wal["segments"]?.sizeValue ?? 0) segments,\(age) gaps: \(gaps.isEmpty ? "none" : gaps.prefix(3).joined(separator: ", "))")
            }
            if let git = t.facts["git"]?.objectValue {
                print("  git: \(git["branch"]?.stringValue ?? "?") @ \(git["commit"]?.stringValue?.prefix(12) ?? "?")")
            }
        }
    }
}
