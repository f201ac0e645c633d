import BackupCore
import Foundation

/// Comparisons of restored data with what the manifest recorded, shared by restores and drills.
enum DrillChecks {
    /// Compares row counts per table. Returns one line per difference (a table missing from
    /// either side, or a different count), sorted by table; empty when every count matches.
    static func compareCounts(expected: [String: Int64], actual: [String: Int64], prefix: String = "") -> [String] {
        var problems: [String] = []
        for (table, n) in expected.sorted(by: { $0.key < $1.key }) {
            guard let got = actual[table] else { problems.append("\(prefix)\(table): missing, manifest says \(n) rows"); continue }
            if got != n { problems.append("\(prefix)\(table): \(got) rows, manifest says \(n)") }
        }
        for table in actual.keys.sorted() where expected[table] == nil {
            problems.append("\(prefix)\(table): \(actual[table]!) rows, not in the manifest")
        }
        return problems
    }

    /// `{"table": rows}` from a manifest fact, or nil when the fact is missing or malformed.
    static func counts(_ value: JSONValue?) -> [String: Int64]? {
        guard let object = value?.objectValue else { return nil }
        var counts: [String: Int64] = [:]
        for (table, v) in object {
            guard let n = v.sizeValue else { return nil }
            counts[table] = n
        }
        return counts
    }

    /// At most `limit` problem lines, with a count of the rest.
    static func shown(_ problems: [String], limit: Int = 20) -> [String] {
        problems.prefix(limit) + (problems.count > limit ? ["... and \(problems.count - limit) more"] : [])
    }
}
