import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

final class SQLiteTargetTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("sqlite") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func engine(_ targets: [any BackupTarget]) -> BackupEngine { TestSupport.engine(dir + "/repo", targets) }

    func makeDatabase(_ path: String, rows: Int, wal: Bool = false) throws -> SQLiteDatabase {
        let db = try SQLiteDatabase(path: path, readOnly: false, create: true)
        if wal { _ = try db.query("PRAGMA journal_mode=WAL") }
        try db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)")
        try db.execute("BEGIN")
        for i in 0..<rows { try db.execute("INSERT INTO notes (body) VALUES ('note \(i) \(String(repeating: "x", count: 100))')") }
        try db.execute("COMMIT")
        return db
    }

    /// The header fields SQLite's online backup API (`sqlite3_backup_*`) writes for its copy
    /// instead of copying them: the file change counter (offset 24) and the version-valid-for
    /// number (92), which count the copy's own commits; the schema cookie (40), which it sets to
    /// the destination's previous cookie plus one so that connections to the destination reload
    /// the schema; and the SQLite version that wrote the file (96), which differs only when the
    /// live file was last written by another SQLite version. Every other byte is the source's.
    static let headerFieldsTheBackupAPIRewrites = [24, 40, 92, 96]

    /// The big-endian 4-byte header field at `offset`.
    func headerField(_ data: Data, _ offset: Int) -> UInt32 {
        data[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Compares two database files byte for byte except the four header fields the backup API
    /// rewrites; returns the offsets of those fields that differ.
    @discardableResult
    func assertSamePages(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Int] {
        var x = try TestSupport.read(a), y = try TestSupport.read(b)
        XCTAssertEqual(x.count, y.count, file: file, line: line)
        guard x.count == y.count, x.count >= 100 else { return [] }
        let differing = Self.headerFieldsTheBackupAPIRewrites.filter { headerField(x, $0) != headerField(y, $0) }
        for field in Self.headerFieldsTheBackupAPIRewrites {
            x.replaceSubrange(field..<field + 4, with: [0, 0, 0, 0])
            y.replaceSubrange(field..<field + 4, with: [0, 0, 0, 0])
        }
        let firstDifference = zip(x, y).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        XCTAssertNil(firstDifference, "database files differ at byte \(firstDifference ?? -1)", file: file, line: line)
        return differing
    }

    func testHotBackupWhileOpenInWALModeRoundTrips() throws {
        let live = dir + "/live/app.db"
        try FileOps.makeDirectory(dir + "/live")
        let db = try makeDatabase(live, rows: 500, wal: true)
        // The WAL holds committed rows not yet in the main file: the copy must include them.
        let e = engine([SQLiteTarget(name: "db", path: live)])
        let summary = try e.backup()
        XCTAssertTrue(summary.succeeded, "\(summary.targets)")
        let record = summary.targets[0]
        XCTAssertEqual(record.facts["tables"], .object(["notes": .number(500)]))
        XCTAssertEqual(record.facts["integrityCheck"], .string("ok"))
        XCTAssertTrue(try e.verify(e.repository.completeSets())[0].ok)

        let out = dir + "/out"
        try FileOps.makeDirectory(out)
        let report = try e.restore(target: "db", id: "latest", options: RestoreOptions(destination: out))
        XCTAssertEqual(report.destination, out + "/app.db")
        let restored = try SQLiteDatabase(path: out + "/app.db", readOnly: true)
        XCTAssertEqual(try restored.tableRowCounts(), ["notes": 500])
        XCTAssertEqual(try restored.query("SELECT body FROM notes WHERE id = 77"), try db.query("SELECT body FROM notes WHERE id = 77"))
    }

    func testPagesAreIdenticalToTheSource() throws {
        let live = dir + "/app.db"
        do {
            // A history of schema changes, so the live schema cookie is well past the copy's.
            let db = try makeDatabase(live, rows: 300)
            for sql in ["ALTER TABLE notes ADD COLUMN tag TEXT",
                        "UPDATE notes SET tag = 't' || (id % 7)",
                        "CREATE INDEX notes_tag ON notes (tag)",
                        "CREATE TABLE scratch (x BLOB)",
                        "INSERT INTO scratch SELECT randomblob(2000) FROM notes",
                        "DROP TABLE scratch",
                        "CREATE TABLE tags (name TEXT PRIMARY KEY) WITHOUT ROWID",
                        "INSERT INTO tags SELECT DISTINCT tag FROM notes",
                        "CREATE VIEW tagged AS SELECT id, tag FROM notes",
                        "ALTER TABLE notes RENAME COLUMN body TO text",
                        "DROP INDEX notes_tag",
                        "CREATE INDEX notes_text ON notes (text)"] {
                try db.execute(sql)
            }
        }
        // As if another SQLite version had last written the live file (offset 96 is only a record).
        var bytes = try TestSupport.read(live)
        bytes.replaceSubrange(96..<100, with: [0x00, 0x2D, 0xE6, 0x00])  // 3008000: SQLite 3.8.0
        try bytes.write(to: URL(fileURLWithPath: live))
        let liveHeader = try TestSupport.read(live)
        XCTAssertGreaterThan(headerField(liveHeader, 40), 5, "schema cookie after the schema changes")

        let e = engine([SQLiteTarget(name: "db", path: live, compression: .zstd(level: 3, threads: 1))])
        XCTAssertTrue(try e.backup().succeeded)
        _ = try e.restore(target: "db", id: "latest", options: RestoreOptions(destination: dir + "/copy.db"))
        let differing = try assertSamePages(live, dir + "/copy.db")
        XCTAssertEqual(differing, Self.headerFieldsTheBackupAPIRewrites, "exactly these fields differ, and all of them")
        let copy = try TestSupport.read(dir + "/copy.db")
        XCTAssertEqual(headerField(copy, 24), 1, "the copy's change counter starts afresh")
        XCTAssertEqual(headerField(copy, 40), 1, "the copy's schema cookie is its old one (none) plus one")
        XCTAssertEqual(headerField(copy, 92), headerField(copy, 24), "version-valid-for follows the change counter")
        XCTAssertEqual(headerField(copy, 96), UInt32(try XCTUnwrap(SQLiteDatabase(path: live, readOnly: true).query("SELECT sqlite_version()")[0][0]).split(separator: ".").reduce(0) { $0 * 1000 + Int($1)! }))
        XCTAssertEqual(try SQLiteDatabase(path: dir + "/copy.db", readOnly: true).query("SELECT count(*) FROM tagged WHERE tag = 't3'"),
                       try SQLiteDatabase(path: live, readOnly: true).query("SELECT count(*) FROM tagged WHERE tag = 't3'"))
    }

    func testRestoreInPlaceKeepsASafetyCopyOfTheCurrentDatabase() throws {
        let live = dir + "/app.db"
        var db: SQLiteDatabase? = try makeDatabase(live, rows: 10)
        let e = engine([SQLiteTarget(name: "db", path: live)])
        _ = try e.backup()
        try db?.execute("DELETE FROM notes WHERE id > 3")
        db = nil
        let report = try e.restore(target: "db", id: "latest", options: RestoreOptions())
        XCTAssertEqual(try SQLiteDatabase(path: live, readOnly: true).tableRowCounts(), ["notes": 10])
        let safety = try XCTUnwrap(report.safetyCopy)
        XCTAssertEqual(try SQLiteDatabase(path: safety, readOnly: true).tableRowCounts(), ["notes": 3])
    }

    /// A database the application reads as another user: restoring over it keeps its mode and
    /// owner, a restore to a new file gets what the backup recorded, and the backup's own files
    /// stay 0600.
    func testRestoreKeepsTheModeAndOwnerOfTheDatabase() throws {
        try XCTSkipUnless(geteuid() == 0, "giving a file to another owner needs root")
        let live = dir + "/live/app.db"
        try FileOps.makeDirectory(dir + "/live")
        _ = try makeDatabase(live, rows: 20)
        XCTAssertEqual(chown(live, 65534, 65534), 0)
        XCTAssertEqual(chmod(live, 0o640), 0)
        let e = engine([SQLiteTarget(name: "db", path: live)])
        let summary = try e.backup()
        XCTAssertTrue(summary.succeeded)
        let record = summary.targets[0]
        XCTAssertEqual(record.facts["fileMode"], .string("0640"))
        XCTAssertEqual(record.facts["uid"], .number(65534))
        XCTAssertEqual(record.facts["gid"], .number(65534))
        let artifact = try XCTUnwrap(summary.directory) + "/" + record.artifacts[0].path
        XCTAssertEqual(FileOwnership(of: artifact)?.mode, 0o600, "backup files stay 0600")

        // Over the live file: its current mode and owner win over the recorded ones.
        XCTAssertEqual(chmod(live, 0o644), 0)
        let plan = try e.restore(target: "db", id: "latest", options: RestoreOptions(dryRun: true))
        XCTAssertTrue(plan.lines.contains { $0.contains("mode 0644") && $0.contains("(65534:65534)") && $0.contains("kept from the file it replaces") }, "\(plan.lines)")
        let report = try e.restore(target: "db", id: "latest", options: RestoreOptions())
        XCTAssertEqual(FileOwnership(of: live), FileOwnership(mode: 0o644, uid: 65534, gid: 65534))
        XCTAssertEqual(try SQLiteDatabase(path: live, readOnly: true).tableRowCounts(), ["notes": 20])
        XCTAssertEqual(FileOwnership(of: try XCTUnwrap(report.safetyCopy))?.mode, 0o600, "the safety copy is a backup file: 0600")

        // A new file: what the backup recorded.
        let out = dir + "/elsewhere/app.db"
        let newPlan = try e.restore(target: "db", id: "latest", options: RestoreOptions(destination: out, dryRun: true))
        XCTAssertTrue(newPlan.lines.contains { $0.contains("mode 0640") && $0.contains("as recorded at backup time") }, "\(newPlan.lines)")
        _ = try e.restore(target: "db", id: "latest", options: RestoreOptions(destination: out))
        XCTAssertEqual(FileOwnership(of: out), FileOwnership(mode: 0o640, uid: 65534, gid: 65534))
        XCTAssertEqual(try SQLiteDatabase(path: out, readOnly: true).tableRowCounts(), ["notes": 20])
    }

    func testOwnershipFactsRefuseMalformedValues() {
        XCTAssertEqual(FileOwnership(facts: ["fileMode": .string("0644"), "uid": .number(33), "gid": .number(33)]),
                       FileOwnership(mode: 0o644, uid: 33, gid: 33))
        XCTAssertNil(FileOwnership(facts: ["fileMode": .string("9999"), "uid": .number(33), "gid": .number(33)]))
        XCTAssertNil(FileOwnership(facts: ["fileMode": .string("0644"), "uid": .number(-1), "gid": .number(33)]))
        XCTAssertNil(FileOwnership(facts: ["fileMode": .string("0644"), "gid": .number(33)]))
        XCTAssertNil(FileOwnership(facts: ["fileMode": .string("17777"), "uid": .number(0), "gid": .number(0)]))
        XCTAssertNil(FileOwnership(facts: ["fileMode": .string("rw-r--r--"), "uid": .number(0), "gid": .number(0)]))
        XCTAssertNil(FileOwnership(facts: ["fileMode": .string("0644"), "uid": .number(1.5), "gid": .number(0)]))
        XCTAssertEqual(FileOwnership(facts: ["fileMode": .string("6755"), "uid": .number(0), "gid": .number(0)])?.mode, 0o755,
                       "no set-id bits from a manifest")
    }

    func testCorruptBackupIsNotRestored() throws {
        let live = dir + "/app.db"
        _ = try makeDatabase(live, rows: 50)
        let e = engine([SQLiteTarget(name: "db", path: live)])
        let set = try XCTUnwrap(try e.backup().directory)
        let artifact = set + "/db/app.db.gz"
        var data = try TestSupport.read(artifact)
        data[data.count / 2] ^= 0xFF
        try data.write(to: URL(fileURLWithPath: artifact))
        let before = try TestSupport.read(live)
        XCTAssertThrowsError(try e.restore(target: "db", id: "latest", options: RestoreOptions())) { error in
            XCTAssertTrue("\(error)".contains("failed verification"), "\(error)")
        }
        XCTAssertEqual(try TestSupport.read(live), before, "the live database is untouched")
        let v = try e.verify(e.repository.completeSets())[0]
        XCTAssertTrue(v.findings.contains { $0.message.contains("db/app.db.gz") && $0.message.contains("checksum mismatch") })
    }

    func testPreflightRefusesMissingOrForeignFiles() throws {
        XCTAssertEqual(SQLiteTarget(name: "db", path: dir + "/none.db").preflight(PreflightContext(logger: TestSupport.logger().0)).first?.severity, .error)
        try TestSupport.write("not a database", to: dir + "/fake.db")
        let f = SQLiteTarget(name: "db", path: dir + "/fake.db").preflight(PreflightContext(logger: TestSupport.logger().0))
        XCTAssertTrue(f.first?.message.contains("is not a SQLite database") ?? false)
    }
}
