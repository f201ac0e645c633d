import BackupCore
import CSQLite
import Foundation

// The thin layer over the SQLite C API. Every sqlite3_* call in Backstop is in this file.

/// An error reported by SQLite.
public struct SQLiteError: UserFacingError {
    /// SQLite's message, with context.
    public let message: String
    public var exitStatus: ExitStatus { .failure }
}

/// An open SQLite database connection.
public final class SQLiteDatabase {
    private var db: OpaquePointer?
    /// The file.
    public let path: String

    /// The linked SQLite version, e.g. `3.40.1`.
    public static var version: String { String(cString: sqlite3_libversion()) }

    /// Opens `path`. Read-only never creates or changes the file.
    public init(path: String, readOnly: Bool, create: Bool = false) throws {
        self.path = path
        var flags = readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        if create && !readOnly { flags |= SQLITE_OPEN_CREATE }
        let rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(rc)"
            sqlite3_close(db)
            db = nil
            throw SQLiteError(message: "open \(path): \(msg)")
        }
        sqlite3_busy_timeout(db, 10_000)
    }

    deinit { sqlite3_close(db) }

    private func fail(_ what: String) -> SQLiteError {
        SQLiteError(message: "\(what) \(path): \(String(cString: sqlite3_errmsg(db)))")
    }

    /// Copies the live database into a new file at `destination` with the online backup API:
    /// a consistent snapshot even while the application writes.
    public func backup(to destination: String, pagesPerStep: Int32 = 1024) throws {
        let target = try SQLiteDatabase(path: destination, readOnly: false, create: true)
        guard let handle = sqlite3_backup_init(target.db, "main", db, "main") else {
            throw target.fail("start backup into")
        }
        var rc: Int32
        repeat {
            rc = sqlite3_backup_step(handle, pagesPerStep)
            if rc == SQLITE_BUSY || rc == SQLITE_LOCKED { sqlite3_sleep(50) }
        } while rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED
        let finish = sqlite3_backup_finish(handle)
        guard rc == SQLITE_DONE, finish == SQLITE_OK else { throw target.fail("backup into") }
    }

    /// Runs `sql` and returns every row's columns as text.
    public func query(_ sql: String) throws -> [[String?]] {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else { throw fail("prepare on") }
        defer { sqlite3_finalize(stmt) }
        var rows: [[String?]] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw fail("query") }
            let n = sqlite3_column_count(stmt)
            rows.append((0..<n).map { i in sqlite3_column_text(stmt, i).map { String(cString: $0) } })
        }
        return rows
    }

    /// Runs statements that return nothing.
    public func execute(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw fail("execute on") }
    }

    /// `PRAGMA integrity_check`: empty when the database is sound, otherwise its complaints.
    public func integrityProblems() throws -> [String] {
        let rows = try query("PRAGMA integrity_check").compactMap { $0.first ?? nil }
        return rows == ["ok"] ? [] : rows
    }

    /// Exact row counts of every user table.
    public func tableRowCounts() throws -> [String: Int] {
        let tables = try query("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .compactMap { $0.first ?? nil }
        var counts: [String: Int] = [:]
        for t in tables {
            let quoted = "\"" + t.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            counts[t] = Int(try query("SELECT count(*) FROM \(quoted)").first?.first??.description ?? "0") ?? 0
        }
        return counts
    }

    /// True if the file starts with the SQLite header.
    public static func looksLikeSQLite(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let head = h.readData(ofLength: 16)
        return head == Data("SQLite format 3\0".utf8)
    }
}
