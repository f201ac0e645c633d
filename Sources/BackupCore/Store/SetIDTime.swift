import Foundation

/// The time stamp of set IDs and of the names given to things set aside (safety copies, data
/// directories moved aside): `yyyyMMdd_HHmmss`, e.g. `20261208_020000`. One format, written and
/// read here only.
public enum SetIDTime {
    /// The `DateFormatter` pattern.
    public static let pattern = "yyyyMMdd_HHmmss"

    /// `date` as a stamp in `timeZone` (set IDs use UTC, so they sort in time order across
    /// daylight-saving changes).
    public static func string(from date: Date, timeZone: TimeZone = TimeZone(identifier: "UTC")!) -> String {
        formatter(timeZone).string(from: date)
    }

    /// The time a stamp (or a set ID, `_N` suffix ignored) stands for, or nil.
    public static func date(from stamp: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!) -> Date? {
        guard stamp.range(of: #"^[0-9]{8}_[0-9]{6}(_[0-9]+)?$"#, options: .regularExpression) != nil else { return nil }
        return formatter(timeZone).date(from: String(stamp.prefix(15)))
    }

    private static func formatter(_ timeZone: TimeZone) -> DateFormatter {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = timeZone
        f.dateFormat = pattern
        return f
    }
}
