import BackupCore
import Foundation
import TestSupport
import XCTest

/// `schedule install|uninstall|status|show`, the units checked by `systemd-analyze verify`,
/// the daemon as a real process driven by a clock file, and retention from the command line.
final class ScheduleCLITests: XCTestCase {
    var dir = ""
    var config = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("schedule")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        config = dir + "/backstop.env"
        try writeConfig("")
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func writeConfig(_ extra: String) throws {
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=src
        \(extra)
        """, to: config, mode: 0o600)
    }

    func run(_ args: [String], exe: String = "backstop") throws -> TestSupport.Run {
        try TestSupport.run(exe, args + ["--config", config])
    }

    func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    /// `systemd-analyze verify` on unit files; nil when it passes, else its output.
    func verify(_ units: [String]) throws -> String? {
        guard let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("systemd-analyze is not installed (scripts/install-deps --test installs the systemd package)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: analyze)
        p.arguments = ["verify"] + units
        p.environment = ["SYSTEMD_LOG_LEVEL": "notice", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return p.terminationStatus == 0 ? nil : "exit \(p.terminationStatus): \(text)"
    }

    func testBackstopDefaultInstallsAsSystemdUnitsThatVerify() throws {
        try writeConfig("RETENTION_DAYS=30\nTZ=UTC")
        let root = dir + "/root"
        let install = try run(["schedule", "install", "--systemd", "--root", root])
        XCTAssertEqual(install.status, 0, install.stderr)
        XCTAssertTrue(install.stdout.contains("staged; on the target system run: systemctl daemon-reload && systemctl enable --now backstop-daily.timer"), install.stdout)
        let units = root + "/etc/systemd/system"
        let service = try read(units + "/backstop-daily.service")
        let timer = try read(units + "/backstop-daily.timer")
        let exe = TestSupport.binDirectory + "/backstop"
        XCTAssertTrue(service.contains("\nType=oneshot\n"), service)
        XCTAssertTrue(service.contains("\nExecStart=\(URL(fileURLWithPath: exe).resolvingSymlinksInPath().path) backup --prune --config \(config)\n"), service)
        XCTAssertTrue(service.contains("\nStandardOutput=journal\n"), service)
        XCTAssertTrue(timer.contains("\nOnCalendar=*-*-* 02:00:00 UTC\n"), timer)
        XCTAssertTrue(timer.contains("\nPersistent=true\n") && timer.contains("\nRandomizedDelaySec=2min\n"), timer)
        XCTAssertTrue(timer.contains("\nWantedBy=timers.target\n"), timer)
        var st = stat()
        stat(units + "/backstop-daily.timer", &st)
        XCTAssertEqual(st.st_mode & 0o777, 0o644)
        XCTAssertNil(try verify([units + "/backstop-daily.service", units + "/backstop-daily.timer"]))

        let status = try run(["schedule", "status", "--systemd", "--root", root])
        XCTAssertEqual(status.status, 0, status.stdout + status.stderr)
        XCTAssertTrue(status.stdout.contains("systemd: installed (2 file(s) under \(root)), up to date"), status.stdout)

        // Another schedule in config: status says the installation is stale; install again
        // adds its units; dropping the default removes the default's units.
        try writeConfig("RETENTION_DAYS=30\nTZ=UTC\nSCHEDULE_VERIFY=\"15 6 * * 1: verify\"")
        let stale = try run(["schedule", "status", "--systemd", "--root", root])
        XCTAssertEqual(stale.status, 1)
        XCTAssertTrue(stale.stdout.contains("DIFFERS from the config"), stale.stdout)
        try writeConfig("RETENTION_DAYS=30\nTZ=UTC\nSCHEDULE_DAILY=off\nSCHEDULE_VERIFY=\"15 6 * * 1: verify\"")
        let again = try run(["schedule", "install", "--systemd", "--root", root])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: units).sorted(), ["backstop-verify.service", "backstop-verify.timer"])
        XCTAssertTrue(try read(units + "/backstop-verify.timer").contains("OnCalendar=Mon *-*-* 06:15:00 UTC"))
        XCTAssertNil(try verify([units + "/backstop-verify.service", units + "/backstop-verify.timer"]))

        // A unit file someone else wrote is never overwritten, nor removed; uninstall works
        // even with a config that no longer loads.
        try TestSupport.write("[Unit]\n", to: units + "/backstop-other.timer")
        try TestSupport.write("[Unit]\n", to: units + "/backstop-verify.service")
        let refused = try run(["schedule", "install", "--systemd", "--root", root])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("backstop-verify.service exists and was not written by schedule install"), refused.stderr)
        XCTAssertEqual(try read(units + "/backstop-verify.service"), "[Unit]\n")
        try FileOps.removeTree(units + "/backstop-verify.service")
        try writeConfig("TARGET_CODE_KIND=tarball")
        let uninstall = try run(["schedule", "uninstall", "--root", root])
        XCTAssertEqual(uninstall.status, 0, uninstall.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: units), ["backstop-other.timer"])
        try writeConfig("")
        let status2 = try run(["schedule", "status", "--root", root])
        XCTAssertEqual(status2.status, 1)
        XCTAssertTrue(status2.stdout.contains("systemd: not installed") && status2.stdout.contains("cron: not installed"), status2.stdout)
    }

    /// A config in a folder whose name has a space and a `%`, and another prefix: the units
    /// still verify, and the cron line quotes the path for the shell.
    func testAwkwardConfigPathAndPrefix() throws {
        let odd = dir + "/my conf 100%"
        try TestSupport.write("print('hello')\n", to: odd + "/src/app.py")
        config = odd + "/app.env"
        try writeConfig("")
        let root = dir + "/root"
        let install = try run(["schedule", "install", "--systemd", "--root", root, "--prefix", "shop"])
        XCTAssertEqual(install.status, 0, install.stderr)
        let units = root + "/etc/systemd/system"
        let service = try read(units + "/shop-daily.service")
        XCTAssertTrue(service.contains(" backup --config \"\(dir)/my conf 100%%/app.env\"\n"), service)
        XCTAssertNil(try verify([units + "/shop-daily.service", units + "/shop-daily.timer"]))
        let cron = try run(["schedule", "install", "--cron", "--root", root, "--prefix", "shop"])
        XCTAssertEqual(cron.status, 0, cron.stderr)
        XCTAssertTrue(try read(root + "/etc/cron.d/shop").contains(" backup --config '\(dir)/my conf 100\\%/app.env' -q\n"))
        XCTAssertEqual(try run(["schedule", "status", "--root", root, "--prefix", "shop"]).status, 0)
        XCTAssertEqual(try run(["schedule", "status", "--root", root]).status, 1, "the default prefix has nothing installed")
    }

    func testJournalDefaultsAreTheSeedsThreeSchedules() throws {
        try TestSupport.write("SQLITE_PATH=app.db\nCODEBASE_DIR=src\n", to: config, mode: 0o600)
        let root = dir + "/root"
        let install = try run(["schedule", "install", "--systemd", "--root", root], exe: "journal-backup")
        XCTAssertEqual(install.status, 0, install.stderr)
        let units = root + "/etc/systemd/system"
        let expected: [(String, String, String)] = [("daily", "*-*-* 02:00:00", "backup --db-only --prune"),
                                                    ("weekly", "Sun *-*-* 03:00:00", "backup --tier weekly --prune"),
                                                    ("monthly", "*-*-01 04:00:00", "backup --tier monthly --prune")]
        var files: [String] = []
        for (name, calendar, args) in expected {
            let timer = try read("\(units)/journal-backup-\(name).timer")
            XCTAssertTrue(timer.contains("\nOnCalendar=\(calendar)\n"), timer)
            XCTAssertTrue(try read("\(units)/journal-backup-\(name).service").contains("journal-backup \(args) --config \(config)\n"))
            files += ["\(units)/journal-backup-\(name).service", "\(units)/journal-backup-\(name).timer"]
        }
        XCTAssertNil(try verify(files))

        let cron = try run(["schedule", "install", "--cron", "--root", root], exe: "journal-backup")
        XCTAssertEqual(cron.status, 0, cron.stderr)
        let cronFile = try read(root + "/etc/cron.d/journal-backup")
        XCTAssertTrue(cronFile.contains("\n0 2 * * *  root  "), cronFile)
        XCTAssertTrue(cronFile.contains("journal-backup backup --tier weekly --prune --config \(config) -q\n"), cronFile)
        XCTAssertTrue(cronFile.contains("\n0 3 * * 0  root  "), cronFile)
        XCTAssertTrue(cronFile.contains("\n0 4 1 * *  root  "), cronFile)
        let show = try run(["schedule", "show", "--cron"], exe: "journal-backup")
        XCTAssertEqual(show.status, 0)
        XCTAssertTrue(show.stdout.contains("==> /etc/cron.d/journal-backup <=="), show.stdout)
    }

    func testSchedgenBackupScheduleAndCronFile() throws {
        try writeConfig("BACKUP_SCHEDULE=\"0 */6 * * *\"")
        let root = dir + "/root"
        let install = try run(["schedule", "install", "--cron", "--root", root])
        XCTAssertEqual(install.status, 0, install.stderr)
        let text = try read(root + "/etc/cron.d/backstop")
        XCTAssertTrue(text.hasPrefix("# backstop-schedule: prefix=backstop config=\(config)\n"), text)
        XCTAssertTrue(text.contains("\n0 */6 * * *  root  "), text)
        XCTAssertTrue(text.contains("backstop backup --config \(config) -q\n"), text)
        let status = try run(["schedule", "status", "--cron", "--root", root])
        XCTAssertEqual(status.status, 0, status.stdout)
        XCTAssertTrue(status.stdout.contains("[BACKUP_SCHEDULE]"), status.stdout)
        let userUnits = try run(["schedule", "install", "--systemd", "--user", "--root", root])
        XCTAssertEqual(userUnits.status, 0, userUnits.stderr)
        let userTimer = try read(root + NSHomeDirectory() + "/.config/systemd/user/backstop-daily.timer")
        XCTAssertTrue(userTimer.contains("\nOnCalendar=*-*-* 00,06,12,18:00:00\n"), userTimer)
        XCTAssertFalse(try read(root + NSHomeDirectory() + "/.config/systemd/user/backstop-daily.service").contains("network-online"))
        let user = try run(["schedule", "install", "--cron", "--user", "--root", root])
        XCTAssertEqual(user.status, 2)
        XCTAssertTrue(user.stderr.contains("--user with --cron"), user.stderr)
    }

    func testBadSchedulesGiveOneLineAndExit2() throws {
        let cases: [(String, String)] = [
            ("SCHEDULE_WEEKLY=\"0 3 * * sun: backup --tierr weekly\"", "config: invalid value for SCHEDULE_WEEKLY in \(config): '0 3 * * sun: backup --tierr weekly' (expected a command backstop accepts: "),
            ("SCHEDULE_WEEKLY=\"0 3 * * 8: backup\"", "config: invalid value for SCHEDULE_WEEKLY in \(config): '0 3 * * 8: backup' (expected a cron expression: day of week 8 is out of range 0-7)"),
            ("BACKUP_SCHEDULE=\"every day\"", "config: invalid value for BACKUP_SCHEDULE"),
            ("SCHEDULE_X=\"@reboot: backup\"", "@reboot is not a time of day"),
        ]
        for (line, expected) in cases {
            try writeConfig(line)
            for args in [["schedule", "show"], ["daemon"]] {
                let r = try run(args)
                XCTAssertEqual(r.status, 2, "\(line) \(args): \(r.stdout) \(r.stderr)")
                XCTAssertTrue(r.stderr.contains(expected), "\(line): \(r.stderr)")
                XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            }
        }
    }

    // MARK: daemon

    /// Reads a child's stdout as it comes.
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var text = ""
        func append(_ data: Data) { lock.lock(); text += String(decoding: data, as: UTF8.self); lock.unlock() }
        var value: String { lock.lock(); defer { lock.unlock() }; return text }
        func count(_ s: String) -> Int { value.components(separatedBy: s).count - 1 }
    }

    func startDaemon(clock: String) throws -> (Process, Lines) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestSupport.binDirectory + "/backstop")
        p.arguments = ["daemon", "--config", config, "--clock-file", clock]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        let lines = Lines()
        out.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            if !d.isEmpty { lines.append(d) }
        }
        try p.run()
        return (p, lines)
    }

    func setClock(_ path: String, _ date: String) throws {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        try TestSupport.write("\(f.date(from: date)!.timeIntervalSince1970)\n", to: path + ".new")
        try FileOps.rename(path + ".new", to: path)
    }

    func sets(_ tier: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/backups/" + tier)) ?? []).filter { !$0.hasPrefix(".") }
    }

    /// Two schedules and a catch-up after a pause, with the daemon as a real process reading
    /// its time from a file; then SIGTERM while idle exits 0.
    func testDaemonRunsTwoSchedulesCatchesUpOnceAndStopsOnSIGTERM() throws {
        try writeConfig("TZ=UTC\nSCHEDULE_DAILY=off\nSCHEDULE_HOURLY=\"0 * * * *: backup\"\nSCHEDULE_WEEKLY=\"30 2 * * *: backup --tier weekly\"")
        let clock = dir + "/clock"
        try setClock(clock, "2030-01-01 01:59:00")
        let (p, out) = try startDaemon(clock: clock)
        defer { if p.isRunning { p.terminate() } }
        XCTAssertTrue(TestSupport.waitFor(30) { out.value.contains("sleeping until 2030-01-01 02:00:00 Z (hourly)") }, out.value)
        try setClock(clock, "2030-01-01 02:00:00")
        XCTAssertTrue(TestSupport.waitFor(60) { out.count("hourly: finished with exit status 0 (success)") == 1 }, out.value)
        XCTAssertEqual(sets("daily").count, 1)
        XCTAssertTrue(TestSupport.waitFor(30) { out.value.contains("sleeping until 2030-01-01 02:30:00 Z (weekly)") }, out.value)
        try setClock(clock, "2030-01-01 02:30:00")
        XCTAssertTrue(TestSupport.waitFor(60) { out.count("weekly: finished with exit status 0 (success)") == 1 }, out.value)
        XCTAssertEqual(sets("weekly").count, 1)
        XCTAssertTrue(TestSupport.waitFor(30) { out.value.contains("sleeping until 2030-01-01 03:00:00 Z (hourly)") }, out.value)
        // The machine "sleeps" from 03:00 to 06:10: four hourly times pass, one run catches up.
        try setClock(clock, "2030-01-01 06:10:00")
        XCTAssertTrue(TestSupport.waitFor(60) { out.count("hourly: finished with exit status 0 (success)") == 2 }, out.value)
        XCTAssertTrue(out.value.contains("hourly: missed 4 scheduled runs since 2030-01-01 03:00:00 Z; running it once now (catch-up)"), out.value)
        XCTAssertTrue(TestSupport.waitFor(30) { out.value.contains("sleeping until 2030-01-01 07:00:00 Z (hourly)") }, out.value)
        XCTAssertEqual(sets("daily").count, 2, "one catch-up run, not four")
        XCTAssertEqual(out.count("; running"), 3, out.value)
        kill(p.processIdentifier, SIGTERM)
        XCTAssertTrue(TestSupport.waitFor(20) { !p.isRunning }, out.value)
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertTrue(out.value.contains("stop requested while idle: exiting"), out.value)
    }

    /// SIGTERM during a run: the run stops (its partial set removed) and the daemon exits 143.
    func testDaemonSIGTERMDuringARunRollsItBackAndExits143() throws {
        try TestSupport.write("x", to: dir + "/minio/bucket/object")
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=store
        TARGET_STORE_KIND=minio
        TARGET_STORE_DATA_DIR=minio
        TARGET_STORE_MIN_BYTES=1
        TARGET_STORE_STOP_CMD="sleep 60"
        TZ=UTC
        SCHEDULE_DAILY="0 2 * * *: backup"
        """, to: config, mode: 0o600)
        let clock = dir + "/clock"
        try setClock(clock, "2030-01-01 01:59:59")
        let (p, out) = try startDaemon(clock: clock)
        defer { if p.isRunning { p.terminate() } }
        XCTAssertTrue(TestSupport.waitFor(30) { out.value.contains("sleeping until") }, out.value)
        try setClock(clock, "2030-01-01 02:00:00")
        XCTAssertTrue(TestSupport.waitFor(30) { out.value.contains("daily: due at 2030-01-01 02:00:00 Z; running: backup") }, out.value)
        // Wait until the run is inside its stop command (it logs the command as it starts it).
        XCTAssertTrue(TestSupport.waitFor(30) { out.value.contains("stop command: sleep 60") }, out.value)
        XCTAssertTrue(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/backups/daily")) ?? []).contains { $0.hasSuffix(".partial") })
        let started = Date()
        kill(p.processIdentifier, SIGTERM)
        XCTAssertTrue(TestSupport.waitFor(30) { !p.isRunning }, out.value)
        XCTAssertLessThan(Date().timeIntervalSince(started), 30, "the sleeping stop command was stopped, not waited for")
        XCTAssertEqual(p.terminationStatus, 143, out.value)
        XCTAssertTrue(out.value.contains("daily: finished with exit status 143 (stopped by SIGTERM)"), out.value)
        XCTAssertTrue(out.value.contains("stop requested during the run of daily: exiting with 143"), out.value)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: dir + "/backups/daily")) ?? [], [], "no set and no staging folder left")
    }

    // MARK: retention from the command line

    /// The seeds' RETENTION_DAYS alone is a retention policy: backup --prune starts, and
    /// prune --dry-run / --json list every set with the rules that keep it.
    func testRetentionDaysAloneLetsBackupPruneAndPruneExplainsItself() throws {
        try writeConfig("RETENTION_DAYS=30\nKEEP_LAST=2")
        for _ in 0..<3 {
            let r = try run(["backup", "--prune", "-q"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let ids = sets("daily").sorted()
        XCTAssertEqual(ids.count, 3, "all three are within 30 days")
        let dry = try run(["prune", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("retention gfs: last 2; within 30d; floor 1"), dry.stdout)
        XCTAssertTrue(dry.stdout.contains("keep          daily/\(ids[2])  kept: last #1, within 30d"), dry.stdout)
        XCTAssertTrue(dry.stdout.contains("keep          daily/\(ids[0])  kept: within 30d"), dry.stdout)
        let json = try run(["prune", "--dry-run", "--json"])
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.count, 3)
        XCTAssertEqual(rows[0]["keptBy"] as? [String], ["last #1", "within 30d"])
        XCTAssertEqual(rows[2]["keptBy"] as? [String], ["within 30d"])
        XCTAssertEqual(rows.map { $0["remove"] as? Bool }, [false, false, false])

        // After a failed run, backup --prune removes nothing (KEEP_LAST=1 would remove two).
        try writeConfig("RETENTION_DAYS=30\nKEEP_LAST=1\nTARGETS=code db\nTARGET_DB_KIND=sqlite\nTARGET_DB_PATH=missing.db")
        let failed = try run(["backup", "--prune", "-q"])
        XCTAssertEqual(failed.status, 1, failed.stderr)
        XCTAssertEqual(sets("daily").count, 4, "the partial set is kept and nothing was pruned")

        // An ambiguous key is refused with one line.
        try writeConfig("RETENTION=tiers\nRETENTION_DAYS=30")
        let bad = try run(["backup", "--prune"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("invalid value for RETENTION_DAYS"), bad.stderr)
    }
}
