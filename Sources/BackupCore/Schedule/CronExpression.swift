import Foundation

/// Why a cron expression was refused: one line, naming the field.
public struct CronError: Error, Equatable, CustomStringConvertible {
    /// What is wrong, e.g. `hour 25 is out of range 0-23`.
    public let reason: String
    public var description: String { reason }
}

/// A cron schedule as Vixie cron (Debian's cron) reads it: five fields, minute, hour,
/// day of month, month, day of week, each `*`, a number, a range `a-b`, a step `*/n` or
/// `a-b/n`, or a comma list of those; month and weekday names (`jan`, `mon-fri`); weekday 0
/// or 7 for Sunday; and the macros `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`,
/// `@yearly` (`@annually`).
///
/// Day of month and day of week follow Vixie cron's rule: when both fields are restricted (neither
/// starts with `*`), a day matches if EITHER matches (`0 0 1,15 * mon` runs on the 1st, the 15th
/// and every Monday); when one starts with `*`, a day must match both.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// The text as written.
    public let source: String
    /// Minutes 0-59.
    public let minutes: [Int]
    /// Hours 0-23.
    public let hours: [Int]
    /// Days of the month 1-31.
    public let days: [Int]
    /// Months 1-12.
    public let months: [Int]
    /// Days of the week 0-6, Sunday = 0.
    public let weekdays: [Int]
    /// The day-of-month field starts with `*`.
    public let dayStar: Bool
    /// The day-of-week field starts with `*`.
    public let weekdayStar: Bool

    public var description: String { source }

    static let macros = ["@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
                         "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"]
    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    static let fieldNames = ["minute", "hour", "day of month", "month", "day of week"]

    /// Parses `text`; throws a `CronError` naming the field at fault.
    public init(_ text: String) throws {
        source = text.trimmingCharacters(in: .whitespaces)
        var body = source
        if source.hasPrefix("@") {
            if source.lowercased() == "@reboot" {
                throw CronError(reason: "@reboot is not a time of day; a schedule needs one (e.g. @daily or 0 2 * * *)")
            }
            guard let expanded = CronExpression.macros[source.lowercased()] else {
                throw CronError(reason: "unknown macro \(source) (known: @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually)")
            }
            body = expanded
        }
        let fields = body.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw CronError(reason: "\(fields.count) field(s) where cron needs 5: minute hour day-of-month month day-of-week (e.g. 0 2 * * *)")
        }
        minutes = try CronExpression.field(fields[0], 0, 0...59, names: [])
        hours = try CronExpression.field(fields[1], 1, 0...23, names: [])
        days = try CronExpression.field(fields[2], 2, 1...31, names: [])
        months = try CronExpression.field(fields[3], 3, 1...12, names: CronExpression.monthNames)
        weekdays = Array(Set(try CronExpression.field(fields[4], 4, 0...7, names: CronExpression.dayNames).map { $0 % 7 })).sorted()
        dayStar = fields[2].hasPrefix("*")
        weekdayStar = fields[4].hasPrefix("*")
        // A day of month that no chosen month has never comes (30 February).
        if weekdayStar && !dayStar {
            let longest = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            if !months.contains(where: { m in days.contains { $0 <= longest[m - 1] } }) {
                throw CronError(reason: "day of month \(fields[2]) never occurs in month \(fields[3]): the schedule would never run")
            }
        }
    }

    /// One field: a comma list of `*`, `n`, `a-b`, `*/s`, `a-b/s`.
    static func field(_ text: String, _ index: Int, _ range: ClosedRange<Int>, names: [String]) throws -> [Int] {
        let what = fieldNames[index]
        var values = Set<Int>()
        func number(_ s: Substring) throws -> Int {
            if let n = Int(s), s.allSatisfy(\.isNumber) {
                guard range.contains(n) else { throw CronError(reason: "\(what) \(n) is out of range \(range.lowerBound)-\(range.upperBound)") }
                return n
            }
            if let i = names.firstIndex(of: s.lowercased()) { return i + range.lowerBound }
            throw CronError(reason: "\(what) field '\(text)': '\(s)' is not a number\(names.isEmpty ? "" : " or a name (\(names.first!)...\(names.last!))")")
        }
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw CronError(reason: "\(what) field '\(text)' has an empty list item") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw CronError(reason: "\(what) field '\(text)': more than one / in '\(item)'") }
            var step = 1
            if parts.count == 2 {
                guard let s = Int(parts[1]), parts[1].allSatisfy(\.isNumber), s >= 1, s <= range.upperBound else {
                    throw CronError(reason: "\(what) field '\(text)': step '\(parts[1])' must be a number from 1 to \(range.upperBound)")
                }
                step = s
            }
            let base = parts[0]
            var low = range.lowerBound, high = range.upperBound
            if base == "*" {
                if index == 4 { high = 6 }   // 7 is Sunday again; */2 must not add it twice
            } else if let dash = base.firstIndex(of: "-") {
                low = try number(base[..<dash])
                high = try number(base[base.index(after: dash)...])
                guard low <= high else { throw CronError(reason: "\(what) range \(base) runs backwards") }
            } else {
                low = try number(base)
                high = low
                guard parts.count == 1 else {
                    throw CronError(reason: "\(what) field '\(text)': a step needs * or a range (write \(base)-\(range.upperBound)/\(step), not \(item))")
                }
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values.sorted()
    }

    /// True if the calendar day (`weekday` 0-6, Sunday = 0) is one the schedule runs on.
    public func matchesDay(month: Int, day: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        let d = days.contains(day), w = weekdays.contains(weekday)
        return (dayStar || weekdayStar) ? (d && w) : (d || w)
    }

    /// The first time after `date` (strictly) that the schedule runs, in `timeZone`. A local
    /// time that a daylight-saving change skips runs when the clock jumps past it; a repeated
    /// hour runs once. Nil only if nothing matches within nine years (cannot happen for an
    /// expression that parsed).
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let start = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        guard var noon = calendar.date(from: DateComponents(year: start.year, month: start.month, day: start.day, hour: 12)) else { return nil }
        for offset in 0..<(366 * 9) {
            if offset > 0 { noon = calendar.date(byAdding: .day, value: 1, to: noon) ?? noon.addingTimeInterval(86_400) }
            let c = calendar.dateComponents([.year, .month, .day, .weekday], from: noon)
            guard matchesDay(month: c.month!, day: c.day!, weekday: c.weekday! - 1) else { continue }
            var best: Date?
            for h in hours {
                if offset == 0 && h < start.hour! { continue }
                if let b = best, h > calendar.component(.hour, from: b) + 2 { break }
                for m in minutes {
                    if offset == 0 && h == start.hour! && m < start.minute! { continue }
                    guard let t = calendar.date(from: DateComponents(year: c.year, month: c.month, day: c.day, hour: h, minute: m)),
                          t > date else { continue }
                    if best == nil || t < best! { best = t }
                    break
                }
            }
            if let best { return best }
        }
        return nil
    }
}
