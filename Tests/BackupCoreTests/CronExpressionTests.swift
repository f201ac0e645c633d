@testable import BackupCore
import Foundation
import TestSupport
import XCTest

/// The cron parser, its next-run computation, its systemd `OnCalendar=` form (checked against
/// `systemd-analyze calendar`), and the schedule keys.
final class CronExpressionTests: XCTestCase {
    static let utc = TimeZone(identifier: "UTC")!

    func date(_ text: String, _ tz: TimeZone = utc) -> Date {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = tz
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.date(from: text)!
    }

    func text(_ d: Date?, _ tz: TimeZone = utc) -> String {
        guard let d else { return "nil" }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = tz
        f.dateFormat = "yyyy-MM-dd HH:mm EEE"
        return f.string(from: d)
    }

    /// The next `count` runs after `start`.
    func runs(_ expr: String, from start: String, _ count: Int, _ tz: TimeZone = utc) throws -> [String] {
        let cron = try CronExpression(expr)
        var t = date(start, tz)
        var out: [String] = []
        for _ in 0..<count {
            guard let n = cron.next(after: t, in: tz) else { break }
            out.append(text(n, tz))
            t = n
        }
        return out
    }

    func testFieldsListsRangesStepsAndNames() throws {
        let c = try CronExpression("5,10-12,*/20 1-5/2 * jan,Mar-may mon-FRI")
        XCTAssertEqual(c.minutes, [0, 5, 10, 11, 12, 20, 40])
        XCTAssertEqual(c.hours, [1, 3, 5])
        XCTAssertEqual(c.days, Array(1...31))
        XCTAssertEqual(c.months, [1, 3, 4, 5])
        XCTAssertEqual(c.weekdays, [1, 2, 3, 4, 5])
        XCTAssertEqual(try CronExpression("0 0 * * 7").weekdays, [0], "7 is Sunday")
        XCTAssertEqual(try CronExpression("0 0 * * 5-7").weekdays, [0, 5, 6])
        XCTAssertEqual(try CronExpression("0 0 * * */2").weekdays, [0, 2, 4, 6])
        XCTAssertEqual(try CronExpression("@weekly"), try CronExpression("@weekly"))
        XCTAssertEqual(try CronExpression("@daily").minutes, [0])
        XCTAssertEqual(try CronExpression("@hourly").hours, Array(0...23))
        XCTAssertEqual(try CronExpression("@yearly").months, [1])
        XCTAssertEqual(try CronExpression("@annually").days, [1])
        XCTAssertEqual(try CronExpression("@monthly").days, [1])
        XCTAssertEqual(try CronExpression("@midnight").hours, [0])
    }

    func testBadExpressionsSayWhatIsWrong() {
        let cases: [(String, String)] = [
            ("0 2 * *", "4 field(s) where cron needs 5"),
            ("0 2 * * * *", "6 field(s) where cron needs 5"),
            ("60 2 * * *", "minute 60 is out of range 0-59"),
            ("0 24 * * *", "hour 24 is out of range 0-23"),
            ("0 2 0 * *", "day of month 0 is out of range 1-31"),
            ("0 2 * 13 *", "month 13 is out of range 1-12"),
            ("0 2 * * 8", "day of week 8 is out of range 0-7"),
            ("0 5-3 * * *", "hour range 5-3 runs backwards"),
            ("*/0 * * * *", "step '0' must be a number from 1 to 59"),
            ("5/10 * * * *", "a step needs * or a range (write 5-59/10, not 5/10)"),
            ("0 2 * * funday", "'funday' is not a number or a name (sun...sat)"),
            ("0 2 * foo *", "'foo' is not a number or a name (jan...dec)"),
            ("0 2 1,,2 * *", "has an empty list item"),
            ("0 0 30 2 *", "day of month 30 never occurs in month 2"),
            ("0 0 31 apr,jun *", "never occurs"),
            ("@reboot", "@reboot is not a time of day"),
            ("@fortnightly", "unknown macro @fortnightly"),
            ("", "0 field(s)"),
        ]
        for (expr, expected) in cases {
            XCTAssertThrowsError(try CronExpression(expr), expr) {
                XCTAssertTrue("\($0)".contains(expected), "\(expr): \($0)")
                XCTAssertFalse("\($0)".contains("\n"))
            }
        }
        // The OR rule makes 31 February with a weekday a valid (weekday-only) schedule.
        XCTAssertNoThrow(try CronExpression("0 0 30 2 mon"))
    }

    func testNextRuns() throws {
        XCTAssertEqual(try runs("0 2 * * *", from: "2024-07-08 01:59", 2), ["2024-07-08 02:00 Mon", "2024-07-09 02:00 Tue"])
        XCTAssertEqual(try runs("0 2 * * *", from: "2024-07-08 02:00", 1), ["2024-07-09 02:00 Tue"], "strictly after")
        XCTAssertEqual(try runs("*/20 * * * *", from: "2024-07-08 23:30", 3), ["2024-07-08 23:40 Mon", "2024-07-09 00:00 Tue", "2024-07-09 00:20 Tue"])
        XCTAssertEqual(try runs("0 3 * * 0", from: "2024-07-08 00:00", 2), ["2024-07-14 03:00 Sun", "2024-07-21 03:00 Sun"])
        XCTAssertEqual(try runs("0 4 1 * *", from: "2024-01-31 12:00", 3), ["2024-02-01 04:00 Thu", "2024-03-01 04:00 Fri", "2024-04-01 04:00 Mon"])
        XCTAssertEqual(try runs("0 0 29 2 *", from: "2024-03-01 00:00", 1), ["2028-02-29 00:00 Tue"])
        // Vixie's OR: the 13th, or any Friday.
        XCTAssertEqual(try runs("0 0 13 * 5", from: "2024-09-01 00:00", 4),
                       ["2024-09-06 00:00 Fri", "2024-09-13 00:00 Fri", "2024-09-20 00:00 Fri", "2024-09-27 00:00 Fri"])
        XCTAssertEqual(try runs("0 0 13 * 5", from: "2024-10-01 00:00", 2), ["2024-10-04 00:00 Fri", "2024-10-11 00:00 Fri"])
        XCTAssertEqual(try runs("0 0 13 * 5", from: "2024-10-11 00:00", 1), ["2024-10-13 00:00 Sun"])
        // A field starting with * turns the rule into AND: odd days that are Mondays.
        XCTAssertEqual(try runs("0 0 */2 * 1", from: "2024-07-01 00:00", 3), ["2024-07-15 00:00 Mon", "2024-07-29 00:00 Mon", "2024-08-05 00:00 Mon"])
        // Schedgen's examples.
        XCTAssertEqual(try runs("0 */6 * * *", from: "2024-07-08 05:00", 3), ["2024-07-08 06:00 Mon", "2024-07-08 12:00 Mon", "2024-07-08 18:00 Mon"])
        XCTAssertEqual(try runs("0 0 * * 0", from: "2024-07-08 05:00", 1), ["2024-07-14 00:00 Sun"])
    }

    /// In a zone with daylight saving: 02:30 does not exist on 2024-03-31 in Berlin, so the run
    /// comes when the clock jumps (03:30 CEST is 02:30 + 1h); in October 02:30 comes twice and
    /// the job runs once.
    func testNextRunsAcrossDaylightSavingChanges() throws {
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        let spring = try runs("30 2 * * *", from: "2024-03-30 12:00", 2, berlin)
        XCTAssertEqual(spring[0], "2024-03-31 03:30 Sun")
        XCTAssertEqual(spring[1], "2024-04-01 02:30 Mon")
        let autumn = try runs("30 2 * * *", from: "2024-10-26 12:00", 2, berlin)
        XCTAssertEqual(autumn, ["2024-10-27 02:30 Sun", "2024-10-28 02:30 Mon"])
        // Every hour through the autumn change: 24 local hours that day hold 25 real hours.
        let cron = try CronExpression("0 * * * *")
        var t = date("2024-10-27 00:00", berlin)
        var n = 0
        while let next = cron.next(after: t, in: berlin), next < date("2024-10-28 00:00", berlin) { t = next; n += 1 }
        XCTAssertGreaterThanOrEqual(n, 23)
        XCTAssertLessThanOrEqual(n, 24)
    }

    func testSystemdCalendarForms() throws {
        XCTAssertEqual(try CronExpression("0 2 * * *").systemdCalendar(), ["*-*-* 02:00:00"])
        XCTAssertEqual(try CronExpression("0 3 * * 0").systemdCalendar(), ["Sun *-*-* 03:00:00"])
        XCTAssertEqual(try CronExpression("0 4 1 * *").systemdCalendar(), ["*-*-01 04:00:00"])
        XCTAssertEqual(try CronExpression("30 3 * * 0").systemdCalendar(timeZone: "UTC"), ["Sun *-*-* 03:30:00 UTC"])
        XCTAssertEqual(try CronExpression("*/15 8-18 * * mon-fri").systemdCalendar(), ["Mon..Fri *-*-* 08..18:00,15,30,45:00"])
        XCTAssertEqual(try CronExpression("0 0 13 * 5").systemdCalendar(), ["Fri *-*-* 00:00:00", "*-*-13 00:00:00"])
        XCTAssertEqual(try CronExpression("0 0 1 1 *").systemdCalendar(), ["*-01-01 00:00:00"])
        XCTAssertThrowsError(try CronExpression("0 0 * * *").systemdCalendar(timeZone: "Europe/Berlin; rm"))
    }

    /// The OnCalendar values fire exactly when the cron expression does: compared with what
    /// systemd itself computes (`systemd-analyze calendar --iterations`), over many expressions.
    func testSystemdAgreesWithTheCronComputation() throws {
        guard let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("systemd-analyze is not installed (scripts/install-deps --test installs it)")
        }
        let expressions = ["0 2 * * *", "30 2 * * *", "0 3 * * 0", "30 3 * * 0", "0 4 1 * *", "0 */6 * * *", "0 0 * * 0",
                           "*/15 8-18 * * mon-fri", "0 0 13 * 5", "0 0 */2 * 1", "5,35 1-23/4 1-10,20 * *", "0 12 * jan,jul sat,sun",
                           "0 0 29 2 *", "0 0 1,15 * 3", "@monthly", "@yearly", "59 23 31 * *", "0 6 * * 1-5", "15 14 1 * *", "0 22 * * 1-5",
                           "23 0-20/2 * * *", "0 0,12 1 */2 *", "0 4 8-14 * *", "0 0 * * 7", "1 2 3 4 *"]
        let base = "2023-12-29 12:00"
        for expr in expressions {
            let cron = try CronExpression(expr)
            var mine: [String] = []
            var t = date(base)
            for _ in 0..<12 {
                guard let n = cron.next(after: t, in: Self.utc) else { break }
                mine.append(text(n))
                t = n
            }
            var theirs: [String] = []
            for calendar in try cron.systemdCalendar(timeZone: "UTC") {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: analyze)
                p.arguments = ["calendar", "--iterations=12", "--base-time=\(base):00 UTC", calendar]
                p.environment = ["TZ": "UTC", "SYSTEMD_COLORS": "0", "PATH": "/usr/bin:/bin"]
                let out = Pipe()
                p.standardOutput = out
                p.standardError = FileHandle(forWritingAtPath: "/dev/null")
                try p.run()
                let data = out.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                XCTAssertEqual(p.terminationStatus, 0, "\(expr): systemd refused \(calendar)")
                for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.contains("Next elapse:") || line.contains("Iter. #") {
                    // "    Next elapse: Mon 2024-01-01 02:00:00 UTC"
                    let parts = line.split(separator: " ").suffix(4)
                    let (weekday, day, time) = (parts[parts.startIndex], parts[parts.startIndex + 1], parts[parts.startIndex + 2])
                    theirs.append("\(day) \(time.prefix(5)) \(weekday)")
                }
            }
            let calendars = try cron.systemdCalendar(timeZone: "UTC")
            XCTAssertEqual(Array(Set(theirs).sorted().prefix(12)), mine, "\(expr) as \(calendars)")
        }
    }

    /// Paths with spaces, quotes and `%` reach cron's shell and systemd's ExecStart intact.
    func testInstallerQuotesWordsForCronAndSystemd() throws {
        XCTAssertEqual(ScheduleInstaller.cronWord("/etc/backstop/app.env"), "/etc/backstop/app.env")
        XCTAssertEqual(ScheduleInstaller.cronWord("/srv/my dir/50%.env"), #"'/srv/my dir/50\%.env'"#)
        XCTAssertEqual(ScheduleInstaller.cronWord("it's"), #"'it'\''s'"#)
        XCTAssertEqual(ScheduleInstaller.systemdWord("/srv/my dir/50%.env"), #""/srv/my dir/50%%.env""#)
        XCTAssertEqual(ScheduleInstaller.systemdWord("a$b"), "a$$b")
        let s = Schedule(name: "daily", cron: try CronExpression("0 2 * * *"), arguments: ["backup"])
        let installer = ScheduleInstaller(executable: "/usr/local/bin/backstop", config: "/srv/my dir/app.env", prefix: "app-1", schedules: [s])
        let files = try installer.files(.systemd)
        XCTAssertEqual(files.map(\.path), ["/etc/systemd/system/app-1-daily.service", "/etc/systemd/system/app-1-daily.timer"])
        XCTAssertTrue(files[0].contents.contains("\nExecStart=/usr/local/bin/backstop backup --config \"/srv/my dir/app.env\"\n"), files[0].contents)
        XCTAssertThrowsError(try ScheduleInstaller(executable: "/x", config: "/y", prefix: "Bad_Prefix", schedules: [s]).files(.cron))
    }

    // MARK: schedule keys

    let defaults: [(name: String, cron: String, arguments: [String])] = [("daily", "0 2 * * *", ["backup", "--prune"])]

    func schedules(_ values: [String: String]) throws -> [Schedule] {
        try Schedule.from(config: Config(file: "/etc/app.env", values: values), defaults: defaults)
    }

    func message(_ values: [String: String]) -> String {
        do { _ = try schedules(values); return "no error" } catch { return "\(error)" }
    }

    func testScheduleKeys() throws {
        XCTAssertEqual(try schedules([:]).map(\.line), ["0 2 * * *: backup --prune"])
        XCTAssertEqual(try schedules(["BACKUP_SCHEDULE": "0 */6 * * *"]).map(\.line), ["0 */6 * * *: backup --prune"], "schedgen's key moves the daily default")
        XCTAssertEqual(try schedules(["SCHEDULE_DAILY": "30 1 * * *"]).map(\.line), ["30 1 * * *: backup --prune"], "a bare time moves a default")
        XCTAssertEqual(try schedules(["SCHEDULE_DAILY": "off"]).map(\.line), [])
        let cep = try schedules(["SCHEDULE_DAILY": "off",
                                 "SCHEDULE_DATABASE": "0 2 * * *: backup --only db",
                                 "SCHEDULE_CONFIG": "30 2 * * *: backup --only config",
                                 "SCHEDULE_MEDIA": "0 3 * * *: backup --only media --prune",
                                 "SCHEDULE_DB_WEEKLY": "30 3 * * 0",
                                 "SCHEDULE_DB_WEEKLY_COMMAND": "backup --only db --tier weekly",
                                 "SCHEDULE_CHECK": "0 */6 * * *: check"])
        XCTAssertEqual(cep.map(\.name), ["check", "config", "database", "db-weekly", "media"])
        XCTAssertEqual(cep.first { $0.name == "db-weekly" }?.arguments, ["backup", "--only", "db", "--tier", "weekly"])
        XCTAssertEqual(cep.first { $0.name == "db-weekly" }?.key, "SCHEDULE_DB_WEEKLY")
        XCTAssertEqual(try schedules(["SCHEDULE_WEEKLY": "@weekly: backup --tier weekly"]).map(\.name), ["daily", "weekly"])
    }

    func testBadScheduleKeysGiveOneLineNamingTheKey() {
        XCTAssertEqual(message(["SCHEDULE_NIGHTLY": "0 25 * * *: backup"]),
                       "config: invalid value for SCHEDULE_NIGHTLY in /etc/app.env: '0 25 * * *: backup' (expected a cron expression: hour 25 is out of range 0-23)")
        XCTAssertTrue(message(["BACKUP_SCHEDULE": "daily"]).hasPrefix("config: invalid value for BACKUP_SCHEDULE in /etc/app.env: 'daily' (expected a cron expression: 1 field(s)"))
        XCTAssertTrue(message(["SCHEDULE_NIGHTLY": "0 1 * * *"]).contains("expected CRON: COMMAND"))
        XCTAssertTrue(message(["SCHEDULE_NIGHTLY_COMMAND": "backup"]).hasPrefix("config: unknown key SCHEDULE_NIGHTLY_COMMAND"))
        XCTAssertTrue(message(["SCHEDULE_X": "0 1 * * *: backup", "SCHEDULE_X_COMMAND": "verify"]).hasPrefix("config: invalid value for SCHEDULE_X_COMMAND"))
        XCTAssertTrue(message(["SCHEDULE_X": "0 1 * * *: backup; rm -rf /"]).contains("not a shell line (';' is not allowed)"))
        XCTAssertTrue(message(["SCHEDULE_X": "0 1 * * *: restore db --yes"]).contains("not restore"))
        XCTAssertTrue(message(["SCHEDULE_X": "0 1 * * *: backup --config /tmp/other.env"]).contains("no --config"))
        XCTAssertTrue(message(["SCHEDULE_x": "0 1 * * *: backup"]).hasPrefix("config: unknown key SCHEDULE_x"))
    }
}
