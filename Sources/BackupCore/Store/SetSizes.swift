import Foundation

/// What backups take on disk and what removing some of them frees, computed from the facts
/// each snapshot recorded at backup time instead of walking every snapshot tree.
///
/// An rsync snapshot records `apparentBytes` (its files), `sharedBytes` (hard-linked from its
/// predecessor), `previousSet` (that predecessor), and `previousDroppedBytes` /
/// `previousAloneBytes` (files of the predecessor it did not keep, and of those the ones no
/// other snapshot held then). Every snapshot of a target links only to the one before it, so:
/// - removing the oldest snapshots frees what each left behind for the next one;
/// - removing one snapshot between two others frees what only it held (what the next one
///   did not keep and that had one link), or for the newest, what it did not share;
/// - all snapshots of a target together hold the oldest one's bytes plus what each later one
///   did not share.
/// When a chain has a gap (a snapshot between two was removed), a record is missing (made
/// before these facts existed), or several snapshots in the middle go at once, those trees
/// are walked. Files outside snapshot trees (manifests, archives) are always measured: they
/// are few. `exact` walks everything, counting hard links (`FileOps.freedSize`).
public struct SetSizes {
    /// Complete sets, newest first (as `Repository.completeSets`).
    public let sets: [StoredSet]
    /// True once any answer needed a walk of a snapshot tree.
    public private(set) var walkedTrees = false

    /// Sizes over `sets` (complete sets, newest first).
    public init(sets: [StoredSet]) { self.sets = sets }

    private static func key(_ s: StoredSet) -> String { "\(s.tier)/\(s.id)" }

    /// One snapshot of a target in its chain.
    private struct Link {
        var key: String
        var set: String
        var tree: String
        var facts: [String: JSONValue]
        func number(_ k: String) -> Int64? { facts[k]?.numberValue.map { Int64($0) } }
        var apparent: Int64 { number("apparentBytes") ?? 0 }
    }

    /// The snapshot trees (`<set>/<target>/tree`) of every rsync target, oldest first per target.
    private var chains: [String: [Link]] {
        var result: [String: [Link]] = [:]
        for s in sets.reversed() {
            for r in s.manifest?.targets ?? [] where r.status == .ok {
                guard let folder = r.facts["snapshot"]?.stringValue, r.facts["apparentBytes"] != nil else { continue }
                result[r.name, default: []].append(Link(key: Self.key(s), set: s.directory, tree: s.directory + "/" + r.name + "/" + folder, facts: r.facts))
            }
        }
        return result
    }

    /// Every snapshot tree folder, so other walks can skip them.
    private var trees: Set<String> { Set(chains.values.flatMap { $0.map(\.tree) }) }

    /// The bytes removing the sets whose directories are `removed` frees.
    public mutating func freed(_ removed: Set<String>, exact: Bool = false) -> Int64 {
        let dirs = sets.filter { removed.contains($0.directory) }.map(\.directory)
        if exact { return FileOps.freedSize(dirs) }
        let skip = trees
        var total = FileOps.freedSize(dirs, skipping: skip)
        for chain in chains.values {
            let gone = chain.map { removed.contains($0.set) }
            var i = 0
            while i < chain.count {
                guard gone[i] else { i += 1; continue }
                var j = i
                while j + 1 < chain.count && gone[j + 1] { j += 1 }
                if let bytes = Self.recordedFreed(chain, from: i, to: j) {
                    total += bytes
                } else {
                    walkedTrees = true
                    total += FileOps.freedSize(chain[i...j].map(\.tree))
                }
                i = j + 1
            }
        }
        return total
    }

    /// What removing `chain[a...b]` frees, from the records; nil when they cannot tell.
    private static func recordedFreed(_ chain: [Link], from a: Int, to b: Int) -> Int64? {
        func linked(_ j: Int) -> Bool { j > 0 && chain[j].facts["previousSet"]?.stringValue == chain[j - 1].key }
        // Each removed snapshot and its successor must be records of consecutive snapshots.
        var j = max(a, 1)
        while j <= min(b + 1, chain.count - 1) {
            guard linked(j) else { return nil }
            j += 1
        }
        if a == 0 {
            // The oldest go: every file one of them left behind, and all of the newest if it goes.
            var total: Int64 = 0
            for j in a...b {
                if j == chain.count - 1 { total += chain[j].apparent; continue }
                guard let left = chain[j + 1].number("previousDroppedBytes") else { return nil }
                total += left
            }
            return total
        }
        guard a == b else { return nil }
        if b == chain.count - 1 {
            guard let shared = chain[b].number("sharedBytes") else { return nil }
            return chain[b].apparent - shared
        }
        return chain[b + 1].number("previousAloneBytes")
    }

    /// What all the sets take on disk, each hard-linked file counted once.
    public mutating func total(exact: Bool = false) -> Int64 {
        if exact { return FileOps.diskUsage(sets.map(\.directory)) }
        var total = FileOps.diskUsage(sets.map(\.directory), skipping: trees)
        for chain in chains.values {
            var recorded: Int64? = chain.first?.apparent ?? 0
            for j in chain.indices.dropFirst() {
                guard chain[j].facts["previousSet"]?.stringValue == chain[j - 1].key, let shared = chain[j].number("sharedBytes") else {
                    recorded = nil
                    break
                }
                recorded! += chain[j].apparent - shared
            }
            if let recorded { total += recorded } else {
                walkedTrees = true
                total += FileOps.diskUsage(chain.map(\.tree))
            }
        }
        return total
    }

    /// The bytes each of `order` frees when they are removed one after the other (the sum is
    /// what removing them all frees).
    public mutating func freedInTurn(_ order: [String], exact: Bool = false) -> [Int64] {
        var removed = Set<String>()
        var before: Int64 = 0
        return order.map { dir in
            removed.insert(dir)
            let now = freed(removed, exact: exact)
            defer { before = now }
            return max(0, now - before)
        }
    }
}
