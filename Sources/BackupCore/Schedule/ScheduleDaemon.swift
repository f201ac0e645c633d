import Foundation

/// Where the daemon gets the time from, and how it waits: the system clock in production, a
/// clock the tests control otherwise.
public protocol DaemonClock: Sendable {
    /// The current time.
    func now() -> Date
    /// Waits until `date`, returning early once `stop()` is true.
    func sleep(until date: Date, stop: () -> Bool)
}

/// The real clock. It sleeps in steps of at most a second and looks at the wall clock after
/// each, so a machine that slept through a scheduled time notices on waking.
public struct SystemClock: DaemonClock {
    /// Creates the system clock.
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(until date: Date, stop: () -> Bool) {
        while !stop() {
            let left = date.timeIntervalSinceNow
            if left <= 0 { return }
            usleep(useconds_t(min(left, 1.0) * 1_000_000))
        }
    }
}

/// A clock read from a file holding seconds since 1970 (for tests of the daemon as a process:
/// the test writes the time it wants the daemon to see).
public struct FileClock: DaemonClock {
    /// The file.
    public let path: String
    /// Reads the time from `path`.
    public init(path: String) { self.path = path }
    public func now() -> Date {
        let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return Double(text).map { Date(timeIntervalSince1970: $0) } ?? Date(timeIntervalSince1970: 0)
    }
    public func sleep(until date: Date, stop: () -> Bool) {
        while !stop() && now() < date { usleep(20_000) }
    }
}

/// Runs schedules in the foreground, one command at a time.
///
/// - Never overlaps: commands run one after another; one that is due while another runs
///   starts when that one has finished.
/// - Catches up once: when a schedule's time passed while the daemon could not run it (the
///   machine slept, or a run took longer than the interval), it runs once, not once per
///   missed time.
/// - Stops cleanly: `stop()` becoming true while idle ends the loop with status 0; during a
///   run, the runner is expected to pass the signal on and return once the command has
///   stopped (rolled back), and the loop ends with `interruptedStatus` (143 for SIGTERM).
/// - Logs every decision through `log`.
public final class ScheduleDaemon {
    /// What the loop runs: the schedule; returns the command's exit status.
    public typealias Runner = (Schedule) -> Int32

    let schedules: [Schedule]
    let timeZone: TimeZone
    let zoneName: String
    let clock: any DaemonClock
    let log: (String) -> Void
    let runner: Runner
    let stop: () -> Bool
    let interruptedStatus: () -> Int32
    /// How late a run may start and still count as on time (not a catch-up).
    public var grace: TimeInterval = 60

    /// Creates a daemon loop.
    public init(schedules: [Schedule], timeZone: TimeZone, zoneName: String? = nil, clock: any DaemonClock, log: @escaping (String) -> Void,
                stop: @escaping () -> Bool, interruptedStatus: @escaping () -> Int32 = { ExitStatus.terminated.rawValue },
                runner: @escaping Runner) {
        self.schedules = schedules
        self.timeZone = timeZone
        self.zoneName = zoneName ?? timeZone.identifier
        self.clock = clock
        self.log = log
        self.runner = runner
        self.stop = stop
        self.interruptedStatus = interruptedStatus
    }

    /// A time as the log shows it, in the daemon's time zone.
    public func format(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = timeZone
        f.dateFormat = "yyyy-MM-dd HH:mm:ss ZZZZZ"
        return f.string(from: date)
    }

    /// Runs until stopped; returns the exit status.
    public func run() -> Int32 {
        guard !schedules.isEmpty else {
            log("no schedules are configured (SCHEDULE_<NAME>=\"CRON: COMMAND\"); nothing to do")
            return ExitStatus.usage.rawValue
        }
        let start = clock.now()
        var due: [String: Date] = [:]
        log("daemon started with \(schedules.count) schedule(s), time zone \(zoneName)")
        for s in schedules {
            due[s.name] = s.cron.next(after: start, in: timeZone)
            log("\(s.name): \(s.cron.source): \(s.arguments.joined(separator: " ")); first run \(due[s.name].map(format) ?? "never")")
        }
        var announced: Date?
        while true {
            if stop() {
                log("stop requested while idle: exiting")
                return ExitStatus.success.rawValue
            }
            let now = clock.now()
            let ready = schedules.compactMap { s in due[s.name].flatMap { $0 <= now ? (s, $0) : nil } }
                .sorted { ($0.1, $0.0.name) < ($1.1, $1.0.name) }
            guard let (s, scheduled) = ready.first else {
                guard let next = due.values.min() else {
                    log("no schedule will ever run again: exiting")
                    return ExitStatus.success.rawValue
                }
                if announced != next {
                    let names = schedules.filter { due[$0.name] == next }.map(\.name).joined(separator: ", ")
                    log("sleeping until \(format(next)) (\(names))")
                    announced = next
                }
                clock.sleep(until: next, stop: stop)
                continue
            }
            var missed = 0
            var t = scheduled
            while missed < 10_000, let n = s.cron.next(after: t, in: timeZone), n <= now {
                missed += 1
                t = n
            }
            if missed > 0 {
                log("\(s.name): missed \(missed + 1) scheduled runs since \(format(scheduled)); running it once now (catch-up)")
            } else if now.timeIntervalSince(scheduled) > grace {
                log("\(s.name): due at \(format(scheduled)), \(Int(now.timeIntervalSince(scheduled)))s late; running it now (catch-up)")
            } else {
                log("\(s.name): due at \(format(scheduled)); running: \(s.arguments.joined(separator: " "))")
            }
            let began = Date()
            let status = runner(s)
            let seconds = Date().timeIntervalSince(began)
            log("\(s.name): finished with exit status \(status) (\(ScheduleDaemon.meaning(status))) after \(String(format: "%.1f", seconds))s")
            if stop() {
                let code = interruptedStatus()
                log("stop requested during the run of \(s.name): exiting with \(code)")
                return code
            }
            // Times that passed before the run started are covered by it; a time that passed
            // while it ran is due at once (one catch-up).
            due[s.name] = s.cron.next(after: now, in: timeZone)
            announced = nil
        }
    }

    /// What an exit status means, for the log.
    public static func meaning(_ status: Int32) -> String {
        switch status {
        case 0: return "success"
        case 1: return "a target, check or verification failed"
        case 2: return "bad usage or config"
        case 3: return "another run held the lock"
        case 130: return "interrupted by SIGINT"
        case 143: return "stopped by SIGTERM"
        default: return status > 128 ? "killed by signal \(status - 128)" : "failed"
        }
    }
}
