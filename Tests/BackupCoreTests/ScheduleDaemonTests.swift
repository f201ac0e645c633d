@testable import BackupCore
import Foundation
import XCTest

/// The daemon loop with a clock the test controls: time jumps to whatever the loop waits for,
/// and the "commands" move it on as long runs or a sleeping machine would.
final class ScheduleDaemonTests: XCTestCase {
    final class VirtualClock: DaemonClock, @unchecked Sendable {
        var time: Date
        /// Called when the loop goes to sleep (where a test may ask it to stop).
        var onSleep: () -> Void = {}
        init(_ time: Date) { self.time = time }
        func now() -> Date { time }
        func sleep(until date: Date, stop: () -> Bool) {
            onSleep()
            if !stop() && date > time { time = date }
        }
    }

    static let utc = TimeZone(identifier: "UTC")!
    let start = Date(timeIntervalSince1970: 1_893_456_000)   // 2030-01-01 00:00:00 UTC

    func schedule(_ name: String, _ cron: String) throws -> Schedule {
        Schedule(name: name, cron: try CronExpression(cron), arguments: ["backup", "--only", name])
    }

    /// Runs the loop until `runs` commands have run (then asks it to stop); returns the runs as
    /// (name, minutes since start) and the log.
    func drive(_ schedules: [Schedule], runs limit: Int, clock: VirtualClock,
               during: @escaping (String, Int, VirtualClock) -> Void = { _, _, _ in }) -> (runs: [(String, Int)], log: [String], status: Int32) {
        var runs: [(String, Int)] = []
        var log: [String] = []
        var running = false
        var stop = false
        clock.onSleep = { if runs.count >= limit { stop = true } }   // stop once idle after `limit` runs
        let daemon = ScheduleDaemon(schedules: schedules, timeZone: Self.utc, clock: clock, log: { log.append($0) },
                                    stop: { stop }) { s in
            XCTAssertFalse(running, "two runs at once")
            running = true
            defer { running = false }
            runs.append((s.name, Int(clock.time.timeIntervalSince(self.start) / 60)))
            during(s.name, runs.count, clock)
            return 0
        }
        let status = daemon.run()
        return (runs, log, status)
    }

    func testTwoSchedulesRunInTimeOrderOneAtATime() throws {
        let clock = VirtualClock(start)
        let r = drive([try schedule("a", "*/20 * * * *"), try schedule("b", "5,30 * * * *")], runs: 7, clock: clock)
        XCTAssertEqual(r.runs.map(\.0), ["b", "a", "b", "a", "a", "b", "a"])
        XCTAssertEqual(r.runs.map(\.1), [5, 20, 30, 40, 60, 65, 80])
        XCTAssertEqual(r.status, 0, "stopped while idle")
        XCTAssertTrue(r.log.contains { $0.hasPrefix("a: due at 2030-01-01 00:20:00 Z; running: backup --only a") }, r.log.joined(separator: "\n"))
        XCTAssertTrue(r.log.contains { $0 == "sleeping until 2030-01-01 00:05:00 Z (b)" }, r.log.joined(separator: "\n"))
        XCTAssertTrue(r.log.contains { $0.hasPrefix("a: finished with exit status 0 (success)") })
        XCTAssertEqual(r.log.last, "stop requested while idle: exiting")
    }

    /// Both due at 01:00: they run one after the other, the second as soon as the first ends.
    func testSchedulesDueTogetherNeverOverlap() throws {
        let clock = VirtualClock(start.addingTimeInterval(50 * 60))
        let r = drive([try schedule("b", "0 * * * *"), try schedule("a", "*/30 * * * *")], runs: 2, clock: clock) { _, _, clock in
            clock.time += 7 * 60   // each run takes 7 minutes
        }
        XCTAssertEqual(r.runs.map(\.0), ["a", "b"], "same time: by name")
        XCTAssertEqual(r.runs.map(\.1), [60, 67], "b waits for a")
    }

    /// The machine sleeps for five hours during a run: an hourly schedule runs once on waking,
    /// not five times, and then keeps its times.
    func testAMissedRunCatchesUpOnce() throws {
        let clock = VirtualClock(start)
        let r = drive([try schedule("hourly", "0 * * * *")], runs: 4, clock: clock) { _, n, clock in
            if n == 1 { clock.time += 5 * 3600 + 600 }   // 01:00 run, then suspended until 06:10
        }
        XCTAssertEqual(r.runs.map(\.1), [60, 370, 420, 480])
        XCTAssertTrue(r.log.contains { $0.contains("hourly: missed 5 scheduled runs since 2030-01-01 02:00:00 Z; running it once now (catch-up)") },
                      r.log.joined(separator: "\n"))
    }

    /// A run longer than the interval: the time that passed during it runs once, right after.
    func testARunLongerThanTheIntervalIsFollowedByOneRun() throws {
        let clock = VirtualClock(start)
        let r = drive([try schedule("often", "*/10 * * * *")], runs: 3, clock: clock) { _, n, clock in
            if n == 1 { clock.time += 25 * 60 }
        }
        XCTAssertEqual(r.runs.map(\.1), [10, 35, 40])
        XCTAssertTrue(r.log.contains { $0.contains("often: missed 2 scheduled runs since 2030-01-01 00:20:00 Z") }, r.log.joined(separator: "\n"))
    }

    func testStopDuringARunEndsWith143() throws {
        let clock = VirtualClock(start)
        var stop = false
        var log: [String] = []
        let daemon = ScheduleDaemon(schedules: [try schedule("a", "@hourly")], timeZone: Self.utc, clock: clock,
                                    log: { log.append($0) }, stop: { stop }) { _ in
            stop = true           // SIGTERM arrives; the command rolls back and exits 143
            return 143
        }
        XCTAssertEqual(daemon.run(), 143)
        XCTAssertTrue(log.contains("a: finished with exit status 143 (stopped by SIGTERM) after 0.0s"), log.joined(separator: "\n"))
        XCTAssertEqual(log.last, "stop requested during the run of a: exiting with 143")
    }

    func testNoSchedulesIsAUsageError() {
        var log: [String] = []
        let daemon = ScheduleDaemon(schedules: [], timeZone: Self.utc, clock: VirtualClock(start), log: { log.append($0) }, stop: { false }) { _ in 0 }
        XCTAssertEqual(daemon.run(), 2)
        XCTAssertTrue(log[0].contains("no schedules"))
    }
}
