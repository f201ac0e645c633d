import BackupCore
import CPostgres
import Foundation

// The thin layer over libpq. Every libpq call and unsafe pointer in Backstop is in this file;
// targets use `PGConnection` and plain Swift values.

/// An error reported by libpq or the server, reduced to one line.
public struct PostgresError: UserFacingError {
    /// The one-line explanation.
    public let message: String
    /// The SQLSTATE code, when the server sent one (e.g. `3D000` for an unknown database).
    public let sqlState: String?
    public var exitStatus: ExitStatus { .failure }
}

/// The version of the linked libpq, e.g. `15.18` reported as 150018.
public var libpqVersion: Int { Int(PQlibVersion()) }

/// One connection to a PostgreSQL server through libpq. Used from one thread at a time.
public final class PGConnection: @unchecked Sendable {
    private var conn: OpaquePointer?
    /// Where it is connected, for messages (`user@host:port/database`, never the password).
    public let label: String

    /// Connects with libpq keywords (`host`, `port`, `user`, `dbname`, `password`, `sslmode`,
    /// `passfile`, ...). Values go to libpq in memory, never through a command line.
    public init(_ parameters: [String: String], label: String) throws {
        self.label = label
        var params = parameters
        params["connect_timeout"] = params["connect_timeout"] ?? "10"
        params["application_name"] = params["application_name"] ?? "backstop"
        params["fallback_application_name"] = "backstop"
        let keys = Array(params.keys)
        let cKeys = keys.map { strdup($0) } + [nil]
        let cValues = keys.map { strdup(params[$0]!) } + [nil]
        defer { cKeys.forEach { free($0) }; cValues.forEach { free($0) } }
        conn = cKeys.withUnsafeBufferPointer { k in
            cValues.withUnsafeBufferPointer { v in
                k.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: k.count) { kp in
                    v.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: v.count) { vp in
                        PQconnectdbParams(kp, vp, 0)
                    }
                }
            }
        }
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let text = conn.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            PQfinish(conn)
            self.conn = nil
            throw PostgresError(message: "cannot connect to \(label): \(Self.oneLine(text))", sqlState: nil)
        }
    }

    deinit { close() }

    /// Closes the connection.
    public func close() {
        if let conn { PQfinish(conn) }
        conn = nil
    }

    /// Asks the server to cancel whatever this connection is running; safe to call from
    /// another thread while a query is in progress.
    public func cancel() {
        guard let conn, let handle = PQgetCancel(conn) else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(handle, &buffer, Int32(buffer.count))
        PQfreeCancel(handle)
    }

    /// The server's version number, e.g. 150018 for 15.18 or 90426 for 9.4.26.
    public var serverVersion: Int { conn.map { Int(PQserverVersion($0)) } ?? 0 }

    /// Runs `sql` (one or more statements, no parameters) and returns the rows of the last
    /// one as text values (nil for SQL NULL).
    @discardableResult
    public func query(_ sql: String) throws -> [[String?]] {
        try query(sql, parameters: [])
    }

    /// Runs one statement with `$1`-style text parameters and returns its rows.
    @discardableResult
    public func query(_ sql: String, parameters: [String]) throws -> [[String?]] {
        guard let conn else { throw PostgresError(message: "\(label): connection is closed", sqlState: nil) }
        let result: OpaquePointer?
        if parameters.isEmpty {
            result = PQexec(conn, sql)
        } else {
            let cParams = parameters.map { strdup($0) }
            defer { cParams.forEach { free($0) } }
            result = cParams.withUnsafeBufferPointer { p in
                p.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: p.count) { pp in
                    PQexecParams(conn, sql, Int32(parameters.count), nil, pp, nil, nil, 0)
                }
            }
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            let text = result.flatMap { PQresultErrorMessage($0) }.map { String(cString: $0) } ?? ""
            let state = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) }
            let why = text.isEmpty ? String(cString: PQerrorMessage(conn)) : text
            throw PostgresError(message: "\(label): \(Self.oneLine(why))", sqlState: state)
        }
        var rows: [[String?]] = []
        let n = PQntuples(result), cols = PQnfields(result)
        rows.reserveCapacity(Int(n))
        for r in 0..<n {
            var row: [String?] = []
            for c in 0..<cols {
                row.append(PQgetisnull(result, r, c) == 1 ? nil : String(cString: PQgetvalue(result, r, c)))
            }
            rows.append(row)
        }
        return rows
    }

    /// The first column of the first row, or nil.
    public func scalar(_ sql: String, parameters: [String] = []) throws -> String? {
        try query(sql, parameters: parameters).first?.first ?? nil
    }

    /// `name` quoted as an SQL identifier.
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `value` quoted as an SQL string literal.
    public static func quoteLiteral(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
    }

    private static func oneLine(_ text: String) -> String {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("DETAIL") && !$0.hasPrefix("HINT") }
            .joined(separator: "; ")
    }
}
