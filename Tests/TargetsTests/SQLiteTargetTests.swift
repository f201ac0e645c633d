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

    /// SQLite pages are identical; only the header's change counter and version fields
    /// (offsets 24-27 and 92-99) are rewritten by the backup API.
    func assertSamePages(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var x = try TestSupport.read(a), y = try TestSupport.read(b)
        XCTAssertEqual(x.count, y.count, file: file, line: line)
        for i in Array(24..<28) + Array(92..<100) where i < x.count && i < y.count { x[i] = 0; y[i] = 0 }
        XCTAssertTrue(x == y, "database pages differ", file: file, line: line)
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
        _ = try makeDatabase(live, rows: 300)
        let e = engine([SQLiteTarget(name: "db", path: live, compression: .zstd(level: 3, threads: 1))])
        _ = try e.backup()
        _ = try e.restore(target: "db", id: "latest", options: RestoreOptions(destination: dir + "/copy.db"))
        try assertSamePages(live, dir + "/copy.db")
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
