import Foundation

/// One scheduled command: when (a cron expression) and what (arguments for the executable).
public struct Schedule: Sendable, Equatable {
    /// The name: lowercase letters, digits and dashes (`SCHEDULE_DB_WEEKLY` is `db-weekly`).
    public var name: String
    /// When it runs.
    public var cron: CronExpression
    /// The executable's arguments, e.g. `["backup", "--tier", "weekly"]` (`--config` is added).
    public var arguments: [String]
    /// The key it came from, for messages; nil for a built-in default.
    public var key: String?

    /// Describes a schedule.
    public init(name: String, cron: CronExpression, arguments: [String], key: String? = nil) {
        self.name = name
        self.cron = cron
        self.arguments = arguments
        self.key = key
    }

    /// `0 2 * * *: backup --prune`, as config writes it.
    public var line: String { "\(cron.source): \(arguments.joined(separator: " "))" }

    /// Subcommands a schedule may not run: they ask, wait or schedule themselves.
    public static let forbidden: Set<String> = ["restore", "remove", "schedule", "daemon", "help"]

    /// Reads the schedules: the executable's `defaults` (name, cron, arguments), changed by
    /// the config.
    ///
    /// - `SCHEDULE_<NAME>="CRON: ARGS"` adds or replaces the schedule `<name>`, e.g.
    ///   `SCHEDULE_WEEKLY="0 3 * * 0: backup --tier weekly"`.
    /// - `SCHEDULE_<NAME>="CRON"` with `SCHEDULE_<NAME>_COMMAND="ARGS"` says the same in two keys;
    ///   a bare `SCHEDULE_<NAME>="CRON"` for a default's name moves that default.
    /// - `SCHEDULE_<NAME>=off` drops it.
    /// - `BACKUP_SCHEDULE` (schedgen's key) moves the default `daily` schedule when
    ///   `SCHEDULE_DAILY` is not set.
    public static func from(config: Config, defaults: [(name: String, cron: String, arguments: [String])]) throws -> [Schedule] {
        var result: [Schedule] = []
        for d in defaults {
            var cron = d.cron
            var key: String?
            if d.name == "daily", config.string("SCHEDULE_DAILY") == nil, let b = config.string("BACKUP_SCHEDULE") {
                cron = b
                key = "BACKUP_SCHEDULE"
            }
            do {
                result.append(Schedule(name: d.name, cron: try CronExpression(cron), arguments: d.arguments, key: key))
            } catch let e as CronError {
                throw ConfigError.invalidValue(key: key ?? "SCHEDULE_\(d.name.uppercased())", file: config.origin(key ?? ""), value: cron, expected: "a cron expression: \(e.reason)")
            }
        }
        let keys = config.keys(withPrefix: "SCHEDULE_")
        for key in keys where key.hasSuffix("_COMMAND") && !keys.contains(String(key.dropLast("_COMMAND".count))) {
            throw ConfigError.unknownKey(key: key, file: config.origin(key), hint: "\(key.dropLast("_COMMAND".count)) is not set: give the schedule's time there")
        }
        for key in keys where !key.hasSuffix("_COMMAND") {
            let raw = String(key.dropFirst("SCHEDULE_".count))
            guard !raw.isEmpty, raw.allSatisfy({ ($0.isASCII && ($0.isUppercase || $0.isNumber)) || $0 == "_" }),
                  !raw.hasPrefix("_"), !raw.hasSuffix("_") else {
                throw ConfigError.unknownKey(key: key, file: config.origin(key), hint: "schedule keys are SCHEDULE_<NAME> (capital letters, digits, underscores) and SCHEDULE_<NAME>_COMMAND")
            }
            let name = raw.lowercased().replacingOccurrences(of: "_", with: "-")
            let value = config.string(key) ?? ""
            result.removeAll { $0.name == name }
            if value.lowercased() == "off" || value.isEmpty { continue }
            let parts = value.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let commandKey = key + "_COMMAND"
            var command = parts.count == 2 ? parts[1] : config.string(commandKey)
            if parts.count == 2, config.string(commandKey) != nil {
                throw ConfigError.invalidValue(key: commandKey, file: config.origin(commandKey), value: config.string(commandKey)!,
                                               expected: "nothing: \(key) already names the command after its ':'")
            }
            let cron: CronExpression
            do { cron = try CronExpression(parts[0]) } catch let e as CronError {
                throw ConfigError.invalidValue(key: key, file: config.origin(key), value: value, expected: "a cron expression: \(e.reason)")
            }
            if command == nil, let d = defaults.first(where: { $0.name == name }) { command = d.arguments.joined(separator: " ") }
            guard let command, !command.isEmpty else {
                throw ConfigError.invalidValue(key: key, file: config.origin(key), value: value,
                                               expected: "CRON: COMMAND, e.g. \"0 3 * * 0: backup --tier weekly\" (or set \(commandKey))")
            }
            let origin = parts.count == 2 ? key : commandKey
            result.append(Schedule(name: name, cron: cron, arguments: try arguments(command, key: origin, config: config), key: key))
        }
        return result.sorted { $0.name < $1.name }
    }

    /// Splits a schedule's command into arguments: plain words, no shell.
    static func arguments(_ command: String, key: String, config: Config) throws -> [String] {
        let bad = command.first { "'\"\\$`;|&<>(){}*?~#".contains($0) }
        if let bad {
            throw ConfigError.invalidValue(key: key, file: config.origin(key), value: command,
                                           expected: "arguments for the executable, e.g. backup --tier weekly; not a shell line ('\(bad)' is not allowed)")
        }
        let words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        if let first = words.first, forbidden.contains(first) {
            throw ConfigError.invalidValue(key: key, file: config.origin(key), value: command,
                                           expected: "a command that runs unattended (backup, verify, prune, check, stats, ...), not \(first)")
        }
        if words.contains(where: { $0 == "--config" || $0.hasPrefix("--config=") }) {
            throw ConfigError.invalidValue(key: key, file: config.origin(key), value: command,
                                           expected: "no --config: the schedule always runs with the config it was installed from")
        }
        return words
    }
}
