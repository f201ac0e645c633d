import BackupCore
import Foundation
import TestSupport
import XCTest

/// Examples/schedgen: the .env parses, the systemd units pass `systemd-analyze verify`, the
/// cron.d line and the compose file parse, the Dockerfile's instructions are known ones; and
/// the daemon runs as the container runs it (no config file, the environment only, no TTY,
/// a clock the test controls, SIGTERM).
final class SchedgenExamplesTests: XCTestCase {
    var dir = ""
    let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Examples/schedgen").path

    override func setUpWithError() throws { dir = try TestSupport.scratch("schedgen-examples") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func text(_ name: String) throws -> String { try String(contentsOfFile: examples + "/" + name, encoding: .utf8) }

    func testEnvExampleParses() throws {
        try FileManager.default.createDirectory(atPath: dir + "/minio", withIntermediateDirectories: true)
        let run = try TestSupport.run("schedgen-backup", ["check", "--config", examples + "/schedgen.env.example"],
                                      environment: ["BACKUP_DIR": dir + "/backups", "MINIO_DATA_DIR": dir + "/minio",
                                                    "METRICS_FILE": dir + "/m.prom"])
        // The database does not exist here (exit 1); a config error would be exit 2.
        XCTAssertNotEqual(run.status, 2, run.stdout + run.stderr)
        XCTAssertFalse(run.stderr.contains("config:"), run.stderr)
        XCTAssertTrue(run.stdout.contains("minio: MinIO data"), run.stdout)
    }

    func testSystemdUnitsVerify() throws {
        guard let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("systemd-analyze is not installed (scripts/install-deps --test installs the systemd package)")
        }
        // The units as shipped, with the installed paths pointed at this build and a scratch folder.
        for name in ["backup.service", "backup.timer"] {
            let unit = try text(name).replacingOccurrences(of: "/usr/bin/schedgen-backup", with: TestSupport.binDirectory + "/schedgen-backup")
                .replacingOccurrences(of: "/opt/schedgen", with: dir)
            try TestSupport.write(unit, to: dir + "/" + name)
        }
        XCTAssertTrue(try text("backup.service").contains("ExecStart=/usr/bin/schedgen-backup --config /opt/schedgen/.env"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: analyze)
        p.arguments = ["verify", dir + "/backup.service", dir + "/backup.timer"]
        p.environment = ["SYSTEMD_LOG_LEVEL": "notice", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, output)
        // A unit with a typo fails the same check, so the check can fail.
        try TestSupport.write(try text("backup.timer").replacingOccurrences(of: "OnCalendar=", with: "OnCalender="), to: dir + "/backup.timer")
        let bad = try TestSupport.runProgram(analyze, ["verify", dir + "/backup.service", dir + "/backup.timer"])
        XCTAssertTrue(bad.status != 0 || (bad.stdout + bad.stderr).contains("Unknown key"), bad.stdout + bad.stderr)
    }

    func testCronFileRunsTheDefaultCommandAt2AM() throws {
        let lines = try text("schedgen-backup.cron").split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.contains("=") && !$0.isEmpty }
        XCTAssertEqual(lines.count, 1, "\(lines)")
        let fields = lines[0].split(separator: " ").map(String.init)
        let cron = try CronExpression(fields[0..<5].joined(separator: " "))
        XCTAssertEqual(cron.source, "0 2 * * *")
        XCTAssertEqual(fields[5], "root")
        XCTAssertEqual(fields[6], "/usr/bin/schedgen-backup")
        // Its arguments (up to the redirection) parse as the default backup --prune run.
        let args = Array(fields[7...].prefix { !$0.hasPrefix(">") && !$0.hasPrefix("2>") })
        XCTAssertEqual(args, ["-q", "--config", "/opt/schedgen/.env"])
    }

    func testComposeFileAndDockerfile() throws {
        // PyYAML (python3-yaml) parses the compose file offline; no Docker engine is run.
        let check = """
        import sys, yaml
        d = yaml.safe_load(open(sys.argv[1]))
        b = d["services"]["backup"]
        assert b["container_name"] == "schedgen-backup", b
        assert "./backups:/backups" in b["volumes"] and "minio_data:/minio-data" in b["volumes"], b["volumes"]
        assert b["environment"]["BACKUP_DIR"] == "/backups" and b["environment"]["MINIO_DATA_DIR"] == "/minio-data"
        assert "minio_data" in d["volumes"]
        print("ok")
        """
        try TestSupport.write(check, to: dir + "/check.py")
        let run = try TestSupport.runProgram("python3", [dir + "/check.py", examples + "/docker-compose.backup.yml"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertEqual(run.stdout, "ok\n")
        // The Dockerfile: every instruction is a Dockerfile instruction, the image is built from
        // the .deb, and the entrypoint runs the daemon in the foreground (exec form: SIGTERM reaches it).
        let known: Set<String> = ["FROM", "RUN", "COPY", "WORKDIR", "ENTRYPOINT", "CMD", "ENV", "STOPSIGNAL", "LABEL", "USER", "VOLUME", "ARG"]
        var logical: [String] = []
        var continued = false
        for line in try text("Dockerfile").split(separator: "\n", omittingEmptySubsequences: true) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") { continue }
            if !continued { logical.append(trimmed) }
            continued = trimmed.hasSuffix("\\")
        }
        for instruction in logical {
            XCTAssertTrue(known.contains(String(instruction.split(separator: " ")[0])), instruction)
        }
        XCTAssertEqual(logical.first, "FROM debian:12-slim")
        XCTAssertTrue(logical.contains("COPY backstop_*.deb /tmp/"))
        XCTAssertTrue(logical.contains(#"ENTRYPOINT ["/usr/bin/schedgen-backup"]"#))
        XCTAssertTrue(logical.contains(#"CMD ["daemon"]"#))
    }

    /// Reads a child's output as it comes.
    final class Output: @unchecked Sendable {
        private let lock = NSLock()
        private var text = ""
        func append(_ data: Data) { lock.lock(); text += String(decoding: data, as: UTF8.self); lock.unlock() }
        var value: String { lock.lock(); defer { lock.unlock() }; return text }
    }

    func setClock(_ path: String, _ date: String) throws {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        try TestSupport.write("\(f.date(from: date)!.timeIntervalSince1970)\n", to: path + ".new")
        try FileOps.rename(path + ".new", to: path)
    }

    /// The container's command: `schedgen-backup daemon` in a folder without a .env, every key
    /// from the environment (docker's env_file), stdin not a terminal; BACKUP_SCHEDULE fires
    /// the default backup --prune; SIGTERM while idle exits 0.
    func testDaemonAsTheContainerRunsIt() throws {
        let cluster = try PostgresCluster.shared()
        try cluster.createDatabase("schedgen_daemon")
        defer { _ = try? cluster.psql("DROP DATABASE IF EXISTS schedgen_daemon WITH (FORCE)") }
        try cluster.psql("CREATE TABLE t AS SELECT g AS id, repeat('x', 40) AS v FROM generate_series(1, 200) g", database: "schedgen_daemon")
        try TestSupport.writeRandom(4096, to: dir + "/minio-data/schedgen-pdfs/a.pdf/xl.meta")
        try FileManager.default.createDirectory(atPath: dir + "/app", withIntermediateDirectories: true)
        let clock = dir + "/clock"
        try setClock(clock, "2030-01-01 05:59:00")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestSupport.binDirectory + "/schedgen-backup")
        p.arguments = ["daemon", "--clock-file", clock]
        p.currentDirectoryURL = URL(fileURLWithPath: dir + "/app")
        p.environment = [
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC", "BACKUP_SCHEDULE": "0 */6 * * *",
            "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "\(cluster.port)", "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": PostgresCluster.password, "POSTGRES_DB": "schedgen_daemon",
            "BACKUP_DIR": dir + "/backups", "MINIO_DATA_DIR": dir + "/minio-data",
        ]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        let out = Output()
        pipe.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            if !d.isEmpty { out.append(d) }
        }
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        XCTAssertTrue(TestSupport.waitFor(30) { out.value.contains("sleeping until 2030-01-01 06:00:00 Z (daily)") }, out.value)
        try setClock(clock, "2030-01-01 06:00:00")
        XCTAssertTrue(TestSupport.waitFor(90) { out.value.contains("daily: finished with exit status 0 (success)") }, out.value)
        let sets = try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/daily").filter { Repository.isSetID($0) }
        XCTAssertEqual(sets.count, 1, out.value)
        XCTAssertTrue(FileOps.exists(dir + "/backups/daily/\(sets[0])/db/db_schedgen_daemon_\(sets[0]).sql.gz"))
        XCTAssertFalse(FileOps.exists(dir + "/app/.env"))
        XCTAssertTrue(TestSupport.waitFor(30) { out.value.contains("sleeping until 2030-01-01 12:00:00 Z (daily)") }, out.value)
        kill(p.processIdentifier, SIGTERM)
        XCTAssertTrue(TestSupport.waitFor(20) { !p.isRunning }, out.value)
        XCTAssertEqual(p.terminationStatus, 0, out.value)
    }
}
