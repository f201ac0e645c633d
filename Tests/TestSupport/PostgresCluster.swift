import BackupCore
import Foundation

/// A throwaway PostgreSQL 15 cluster for the tests: created with initdb as the `postgres` OS
/// user (PostgreSQL refuses to run as root) in a short /tmp folder, listening on a free port on
/// 127.0.0.1 (password auth) and on a unix socket in the same folder (trust), with WAL
/// archiving into `archive/`. One cluster is shared per test process and stopped at exit.
public final class PostgresCluster: @unchecked Sendable {
    /// The binaries used.
    public static let bin = "/usr/lib/postgresql/15/bin"
    /// The superuser's password for TCP connections.
    public static let password = "Pg-t3st-S3cret!"

    /// The cluster folder (owned by postgres): `data/`, `archive/`, the socket.
    public let root: String
    /// The data directory.
    public var dataDirectory: String { root + "/data" }
    /// The WAL archive folder.
    public var archiveDirectory: String { root + "/archive" }
    /// The port on 127.0.0.1 and of the socket.
    public let port: Int

    nonisolated(unsafe) private static var sharedCluster: PostgresCluster?
    private static let lock = NSLock()

    /// The shared cluster, started on first use.
    public static func shared() throws -> PostgresCluster {
        lock.lock(); defer { lock.unlock() }
        if let c = sharedCluster { return c }
        let c = try PostgresCluster()
        sharedCluster = c
        atexit { PostgresCluster.stopShared() }
        return c
    }

    /// Stops the shared cluster and removes its folder.
    public static func stopShared() {
        guard let c = sharedCluster else { return }
        c.stop()
        try? FileOps.removeTree(c.root)
        sharedCluster = nil
    }

    /// Creates and starts a new cluster; `extraConfig` lines go last in postgresql.conf (later
    /// lines win), e.g. to make a misconfigured server.
    public init(extraConfig: String = "") throws {
        guard FileManager.default.isExecutableFile(atPath: Self.bin + "/initdb") else {
            throw ClusterError("PostgreSQL 15 is not installed (\(Self.bin)/initdb missing); run scripts/install-deps --test")
        }
        var template = Array("/tmp/bspg.XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw ClusterError("mkdtemp failed") }
        root = String(cString: p)
        port = try Self.freePort()
        try Self.sh("chown postgres:postgres \(root) && chmod 700 \(root)")
        try Self.asPostgres("mkdir -p \(root)/archive && \(Self.bin)/initdb -D \(root)/data -U postgres -A trust --no-sync >/dev/null")
        let conf = """

        port = \(port)
        listen_addresses = '127.0.0.1'
        unix_socket_directories = '\(root)'
        wal_level = replica
        archive_mode = on
        archive_command = 'test ! -f \(root)/archive/%f && cp %p \(root)/archive/%f'
        max_wal_senders = 5
        fsync = off
        synchronous_commit = off
        \(extraConfig)
        """
        let hba = """
        local all all trust
        local replication all trust
        host all all 127.0.0.1/32 scram-sha-256
        host replication all 127.0.0.1/32 scram-sha-256

        """
        try Self.asPostgres("cat >> \(root)/data/postgresql.conf <<'EOF'\n\(conf)\nEOF\ncat > \(root)/data/pg_hba.conf <<'EOF'\n\(hba)EOF")
        try start()
        try psql("ALTER USER postgres PASSWORD '\(Self.password)'")
    }

    /// Starts the server (waits until it accepts connections).
    public func start() throws {
        try Self.asPostgres("\(Self.bin)/pg_ctl -D \(dataDirectory) -l \(root)/server.log -w -t 60 start >/dev/null")
    }

    /// Stops the server and removes its folder (for clusters a test made itself).
    public func destroy() {
        stop()
        try? FileOps.removeTree(root)
    }

    /// Stops the server (fast mode).
    public func stop() {
        _ = try? Self.asPostgres("\(Self.bin)/pg_ctl -D \(dataDirectory) -m fast -w stop >/dev/null 2>&1")
    }

    /// Config lines for a Backstop target named `name` (upper-case key prefix) that reaches this
    /// server over TCP with the password.
    public func targetKeys(_ prefix: String, database: String) -> String {
        """
        \(prefix)_HOST=127.0.0.1
        \(prefix)_PORT=\(port)
        \(prefix)_USER=postgres
        \(prefix)_PASSWORD=\(Self.password)
        \(prefix)_DATABASE=\(database)
        """
    }

    /// Runs SQL through psql on the unix socket and returns its unaligned output.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        try Self.psql(sql, socket: root, port: port, database: database)
    }

    /// Runs SQL through psql against any server on a socket folder and port.
    @discardableResult
    public static func psql(_ sql: String, socket: String, port: Int, database: String) throws -> String {
        let (outcome, out) = try ChildProcess(bin + "/psql", ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", socket, "-p", "\(port)",
                                                              "-U", "postgres", "-d", database, "-c", sql]).capture()
        guard outcome.status == 0 else { throw ClusterError("psql failed: \(outcome.lastErrorLine) [\(sql.prefix(120))]") }
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Creates a database (dropping one of the same name first).
    public func createDatabase(_ name: String) throws {
        try psql("DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)")
        try psql("CREATE DATABASE \"\(name)\"")
    }

    /// Runs a shell command as root.
    public static func sh(_ command: String) throws {
        let (outcome, _) = try ChildProcess("/bin/sh", ["-c", command]).capture()
        guard outcome.status == 0 else { throw ClusterError("\(command.prefix(200)): \(outcome.lastErrorLine)") }
    }

    /// Runs a shell command as the postgres OS user.
    public static func asPostgres(_ command: String) throws {
        let (outcome, _) = try ChildProcess("/usr/sbin/runuser", ["-u", "postgres", "--", "/bin/sh", "-c", "cd /tmp && " + command]).capture()
        guard outcome.status == 0 else { throw ClusterError("as postgres: \(command.prefix(200)): \(outcome.lastErrorLine)") }
    }

    /// A TCP port on 127.0.0.1 that nothing listens on right now.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp in
                bind(fd, sp, len) == 0 && getsockname(fd, sp, &len) == 0
            }
        }
        guard ok else { throw ClusterError("cannot find a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// A failure setting up the test cluster.
public struct ClusterError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
    /// Creates the error.
    public init(_ d: String) { description = d }
}
