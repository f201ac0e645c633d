import Foundation

extension CronExpression {
    /// The schedule as systemd `OnCalendar=` values (a timer fires when any of them does).
    ///
    /// systemd matches day of month AND day of week, so Vixie cron's OR rule (both fields
    /// restricted) becomes two values: one for the weekdays, one for the days of the month.
    /// `timeZone` (an IANA name) is appended when given. Throws when systemd cannot say it.
    public func systemdCalendar(timeZone: String? = nil) throws -> [String] {
        if let tz = timeZone, !tz.allSatisfy({ $0.isLetter || $0.isNumber || "/_+-".contains($0) }) {
            throw CronError(reason: "time zone '\(tz)' cannot be written into a systemd calendar")
        }
        let time = "\(CronExpression.list(hours, 0...23)):\(CronExpression.list(minutes, 0...59)):00"
        let month = CronExpression.list(months, 1...12)
        let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        // Weekdays as names; Sunday-first runs such as Sun..Tue are fine for systemd too.
        let weekday = CronExpression.list(weekdays, 0...6, width: 0).split(separator: ",").map { item -> String in
            item.split(separator: ".", omittingEmptySubsequences: true).map { names[Int($0)!] }.joined(separator: "..")
        }.joined(separator: ",")
        let suffix = timeZone.map { " \($0)" } ?? ""
        let allDays = Set(days) == Set(1...31), allWeekdays = Set(weekdays) == Set(0...6)
        var values: [String]
        if dayStar || weekdayStar {
            // AND: both must match (a field starting with * may still be a step, */2).
            let w = allWeekdays ? "" : weekday + " "
            values = ["\(w)*-\(month)-\(allDays ? "*" : CronExpression.list(days, 1...31)) \(time)"]
        } else {
            values = ["\(weekday) *-\(month)-* \(time)", "*-\(month)-\(CronExpression.list(days, 1...31)) \(time)"]
            if allDays || allWeekdays { values = ["*-\(month)-* \(time)"] }
        }
        return values.map { $0 + suffix }
    }

    /// Values as a systemd list: `*` for the whole range, runs of three or more as `a..b`,
    /// two-digit numbers (unless `width` is 0).
    static func list(_ values: [Int], _ range: ClosedRange<Int>, width: Int = 2) -> String {
        if Set(values) == Set(range) && width > 0 { return "*" }
        func f(_ n: Int) -> String { width == 0 ? "\(n)" : String(format: "%02d", n) }
        var parts: [String] = []
        var i = 0
        let v = values.sorted()
        while i < v.count {
            var j = i
            while j + 1 < v.count && v[j + 1] == v[j] + 1 { j += 1 }
            if j - i >= 2 { parts.append("\(f(v[i]))..\(f(v[j]))") } else { parts += v[i...j].map(f) }
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}
