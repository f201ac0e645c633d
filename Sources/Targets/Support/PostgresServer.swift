import BackupCore
import Foundation

/// A PostgreSQL major version: 15, 16, ... or 9.4, 9.6 for the old two-part scheme.
public struct PostgresMajor: Comparable, Sendable, CustomStringConvertible {
    /// 1500 for 15, 904 for 9.4: comparable across both schemes.
    public let code: Int

    /// From libpq's `PQserverVersion` number (150018, 90426).
    public init(serverVersion v: Int) { code = v >= 100000 ? (v / 10000) * 100 : v / 100 }

    /// From a version string such as `15.18` or `9.4.26`.
    public init?(versionString s: String) {
        let parts = s.split(separator: ".").map { Int($0.prefix { $0.isNumber }) }
        guard let first = parts.first ?? nil else { return nil }
        if first >= 10 { code = first * 100 } else {
            guard parts.count > 1, let second = parts[1] else { return nil }
            code = first * 100 + second
        }
    }

    /// `15` or `9.4`.
    public var description: String { code >= 1000 ? "\(code / 100)" : "\(code / 100).\(code % 100)" }

    public static func < (a: PostgresMajor, b: PostgresMajor) -> Bool { a.code < b.code }
}

/// A client program chosen for a server, with its version.
public struct PostgresTool: Sendable {
    /// The absolute path.
    public let path: String
    /// Its major version.
    public let major: PostgresMajor
    /// What `--version` printed, e.g. `pg_dump (PostgreSQL) 15.18`.
    public let versionLine: String
}

/// How to reach one PostgreSQL server, read from a target's `HOST`, `PORT`, `USER`,
/// `PASSWORD`, `PASSFILE`, `SSLMODE` and `BIN_DIR` keys. The password reaches libpq in
/// memory and child processes through their environment, never their command line.
public struct PostgresServer: Sendable {
    /// Host name, address, or unix socket directory (empty: libpq's default socket).
    public var host: String?
    /// Port (nil: libpq's default, 5432).
    public var port: Int?
    /// Role to connect as (nil: libpq's default, the OS user).
    public var user: String?
    /// Password, if not in a passfile.
    public var password: String?
    /// A `.pgpass` file.
    public var passfile: String?
    /// libpq sslmode.
    public var sslmode: String?
    /// Where the client programs are (Alfresco ships its own); searched before the system's.
    public var binDir: String?
    /// Where the credentials come from, for the line that says what to fix when the server
    /// refuses them, e.g. `TARGET_DB_PASSWORD in /etc/backstop.env`.
    public var credentialSource: String?
    /// Whether to look beyond `binDir` (in /usr/lib/postgresql and PATH). Tests turn it off to
    /// stand in for a machine that only has an old client.
    var searchSystemClients = true

    /// Describes a server.
    public init(host: String? = nil, port: Int? = nil, user: String? = nil, password: String? = nil,
                passfile: String? = nil, sslmode: String? = nil, binDir: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.passfile = passfile
        self.sslmode = sslmode
        self.binDir = binDir
    }

    /// libpq's `sslmode` values.
    public static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// The connection keys a target reads (`init(settings:)`), declared once for every kind
    /// that connects to PostgreSQL.
    public static let configKeys: [ConfigKey] = [
        ConfigKey("HOST", .string, default: "libpq's", help: "host name, address or unix socket folder"),
        ConfigKey("PORT", .int, default: "5432", help: "the server's port"),
        ConfigKey("USER", .string, default: "libpq's", help: "the role to connect as"),
        ConfigKey("PASSWORD", .secret, help: "the role's password (or PASSFILE)"),
        ConfigKey("PASSFILE", .path, help: "a .pgpass file"),
        ConfigKey("SSLMODE", .choice(sslModes), default: "prefer", help: "libpq sslmode"),
        ConfigKey("BIN_DIR", .path, help: "where pg_dump, pg_restore and psql are; searched first"),
    ]

    /// Reads the connection keys of a target.
    public init(settings s: TargetSettings) throws {
        self.init(host: s.string("HOST"),
                  port: try s.string("PORT") == nil ? nil : s.int("PORT", default: 5432, range: 1...65535),
                  user: s.string("USER"),
                  password: s.string("PASSWORD"),
                  passfile: try s.path("PASSFILE"),
                  sslmode: try s.string("SSLMODE") == nil ? nil : s.choice("SSLMODE", PostgresServer.sslModes, default: "prefer"),
                  binDir: try s.path("BIN_DIR"))
        let key = s.string("PASSWORD") != nil ? s.key("PASSWORD") : s.string("PASSFILE") != nil ? s.key("PASSFILE") : nil
        credentialSource = key.map { "\($0) in \(s.config.origin($0))" }
            ?? "no \(s.key("PASSWORD")) or \(s.key("PASSFILE")) in \(s.config.file): set one (or PGPASSFILE, ~/.pgpass)"
    }

    /// `user@host:port`, for messages.
    public var label: String {
        let h = host ?? "local socket"
        return "\(user.map { "\($0)@" } ?? "")\(h)\(port.map { ":\($0)" } ?? "")"
    }

    /// Connects to `database`.
    public func connect(database: String) throws -> PGConnection {
        var p: [String: String] = ["dbname": database]
        if let host { p["host"] = host }
        if let port { p["port"] = "\(port)" }
        if let user { p["user"] = user }
        if let password { p["password"] = password }
        if let passfile { p["passfile"] = passfile }
        if let sslmode { p["sslmode"] = sslmode }
        return try PGConnection(p, label: "\(label)/\(database)")
    }

    /// The environment for client programs: connection settings as `PG*` variables, the
    /// password as `PGPASSWORD` (visible only to the same user, unlike a command line).
    public var childEnvironment: [String: String] {
        var env: [String: String] = ["PGAPPNAME": "backstop", "PGCONNECT_TIMEOUT": "10"]
        if let host { env["PGHOST"] = host }
        if let port { env["PGPORT"] = "\(port)" }
        if let user { env["PGUSER"] = user }
        if let password { env["PGPASSWORD"] = password }
        if let passfile { env["PGPASSFILE"] = passfile }
        if let sslmode { env["PGSSLMODE"] = sslmode }
        return env
    }

    /// Finds client program `name` able to talk to a server of `serverMajor` (nil: the newest
    /// found): `BIN_DIR` first, then `/usr/lib/postgresql/<major>/bin` (the server's major, then
    /// newer ones), then PATH. A client older than the server is refused with the package to
    /// install.
    public func tool(_ name: String, for serverMajor: PostgresMajor?) throws -> PostgresTool {
        var candidates: [String] = []
        if let binDir { candidates.append("\(binDir)/\(name)") }
        let installed = searchSystemClients ? Self.installedMajors() : []
        if let serverMajor {
            candidates += installed.filter { $0 >= serverMajor }.sorted().map { "/usr/lib/postgresql/\($0)/bin/\(name)" }
        } else {
            candidates += installed.sorted().reversed().map { "/usr/lib/postgresql/\($0)/bin/\(name)" }
        }
        if searchSystemClients, let inPath = ChildProcess.which(name) { candidates.append(inPath) }
        var tooOld: PostgresTool?
        for path in candidates where access(path, X_OK) == 0 {
            let tool = try Self.describe(path)
            if let serverMajor, tool.major < serverMajor {
                if tooOld == nil { tooOld = tool }
                continue
            }
            return tool
        }
        let package = serverMajor.map { "postgresql-client-\($0)" } ?? "postgresql-client"
        if let tooOld, let serverMajor {
            throw OperationError("\(tooOld.path) is version \(tooOld.major), older than the PostgreSQL \(serverMajor) server; it cannot \(name == "pg_dump" || name == "pg_basebackup" ? "back it up" : "work with it"). Install \(package) (apt-get install \(package)) or set BIN_DIR to a \(serverMajor) (or newer) client")
        }
        throw OperationError("\(name) not found\(binDir.map { " in \($0)," } ?? "") in /usr/lib/postgresql/*/bin or in PATH; install \(package) (apt-get install \(package))")
    }

    /// Runs `path --version` and parses the major version.
    static func describe(_ path: String) throws -> PostgresTool {
        let (outcome, text) = try ChildProcess(path, ["--version"]).capture()
        let line = text.split(separator: "\n").first.map(String.init) ?? ""
        guard outcome.status == 0,
              let version = line.split(separator: " ").first(where: { $0.first?.isNumber == true }),
              let major = PostgresMajor(versionString: String(version)) else {
            throw OperationError("\(path) --version printed '\(line)'; cannot tell its version")
        }
        return PostgresTool(path: path, major: major, versionLine: line)
    }

    /// The majors under /usr/lib/postgresql that have a bin folder.
    static func installedMajors() -> [PostgresMajor] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return names.compactMap { PostgresMajor(versionString: $0) }
            .filter { FileOps.isDirectory("/usr/lib/postgresql/\($0)/bin") }
    }

    /// Connects and reports, as findings: reachability and authentication, the server version,
    /// whether `database` exists, and whether each of `tools` can handle this server.
    /// Returns the server's version number when the connection worked.
    public func preflight(target: String, database: String, tools: [String]) -> ([Finding], Int?) {
        var findings: [Finding] = []
        let conn: PGConnection
        do {
            conn = try connect(database: database)
        } catch let error as PostgresError {
            if error.message.contains("does not exist") && error.message.contains("database") {
                return ([Finding(.error, target: target, "database \(database) does not exist on \(label)")], nil)
            }
            return ([Finding(.error, target: target, error.message + credentialHint(error.message))], nil)
        } catch {
            return ([Finding(.error, target: target, "\(error)")], nil)
        }
        defer { conn.close() }
        let version = conn.serverVersion
        let major = PostgresMajor(serverVersion: version)
        findings.append(Finding(.info, target: target, "connected to PostgreSQL \(Self.versionText(version)) at \(label)"))
        for name in tools {
            do {
                let tool = try self.tool(name, for: major)
                findings.append(Finding(.info, target: target, "\(name): \(tool.path) (\(tool.major))"))
            } catch {
                findings.append(Finding(.error, target: target, "\(error)"))
            }
        }
        return (findings, version)
    }

    /// For a refused login, what to fix: the config key the credentials came from.
    func credentialHint(_ message: String) -> String {
        let refused = ["password authentication failed", "no password supplied", "authentication failed", "password is required"]
        guard refused.contains(where: { message.localizedCaseInsensitiveContains($0) }), let credentialSource else { return "" }
        return "; fix the credentials: \(credentialSource)"
    }

    /// `15.18` from 150018, `9.4.26` from 90426.
    public static func versionText(_ v: Int) -> String {
        v >= 100000 ? "\(v / 10000).\(v % 10000)" : "\(v / 10000).\((v / 100) % 100).\(v % 100)"
    }
}
