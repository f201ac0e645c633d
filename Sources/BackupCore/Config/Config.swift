import Foundation

/// Settings read from a `.env` file, with environment variables overriding the file.
///
/// Every accessor names the key and the file in its error, so a bad config gives exactly one
/// clear line. Keys are looked up in the environment first, then in the file.
public struct Config: Sendable {
    /// The file the settings came from (used in messages), e.g. `./.env`.
    public let file: String
    /// The values from the file.
    public let fileValues: [String: String]
    /// The process environment at load time.
    public let environment: [String: String]
    /// Warnings found while loading, such as a world-readable file holding a password.
    public let warnings: [String]

    /// Creates a config from already-parsed values (used by tests and embedders).
    public init(file: String, values: [String: String], environment: [String: String] = [:], warnings: [String] = []) {
        self.file = file
        self.fileValues = values
        self.environment = environment
        self.warnings = warnings
    }

    /// Loads `path`. A missing file is an error only if `required` is true; otherwise the
    /// environment alone supplies the settings.
    public static func load(path: String, required: Bool, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Config {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if !required && errno == ENOENT {
                return Config(file: path, values: [:], environment: environment)
            }
            throw ConfigError.unreadableFile(file: path, reason: String(cString: strerror(errno)))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError.unreadableFile(file: path, reason: "permission denied or not a regular file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError.unreadableFile(file: path, reason: "not UTF-8 text")
        }
        let values = try EnvFile.parse(text, file: path)
        var warnings: [String] = []
        let holdsSecret = values.contains { isSecretKey($0.key) && !$0.value.isEmpty }
        if holdsSecret && (st.st_mode & 0o077) != 0 {
            warnings.append(String(format: "config file %@ holds a password and is readable by group or others (mode %o); run: chmod 600 %@",
                                   path, Int(st.st_mode & 0o777), path))
        }
        return Config(file: path, values: values, environment: environment, warnings: warnings)
    }

    /// True for keys whose values must never be logged: passwords, tokens, secrets, keys.
    public static func isSecretKey(_ key: String) -> Bool {
        let k = key.uppercased()
        return ["PASSWORD", "PASSWD", "TOKEN", "SECRET", "_KEY", "WEBHOOK", "CREDENTIAL"].contains { k.contains($0) }
            || k.hasSuffix("_URL") && k.contains("DATABASE")
    }

    /// The raw value of `key` (environment first, then file), or nil.
    public func value(_ key: String) -> String? {
        if let v = environment[key] { return v }
        return fileValues[key]
    }

    /// All keys visible in the file and the environment that start with `prefix`.
    public func keys(withPrefix prefix: String) -> [String] {
        Set(fileValues.keys.filter { $0.hasPrefix(prefix) } + environment.keys.filter { $0.hasPrefix(prefix) }).sorted()
    }

    /// Every secret value in the config, for log redaction.
    public var secretValues: [String] {
        let all = fileValues.merging(environment) { _, env in env }
        let values = all.filter { Config.isSecretKey($0.key) && $0.value.count >= 3 }.map(\.value)
        // A URL's password also appears decoded (in libpq errors, say): redact that form too.
        // (URLComponents.password is already decoded, once: exactly what is sent to the server.)
        let decoded = values.compactMap { URLComponents(string: $0)?.password }
        return values + decoded.filter { $0.count >= 3 }
    }

    /// A non-empty string value, or nil when absent or empty.
    public func string(_ key: String) -> String? {
        guard let v = value(key), !v.isEmpty else { return nil }
        return v
    }

    /// Where `key`'s value comes from, for messages: the environment (which overrides the
    /// file), or the file.
    public func origin(_ key: String) -> String {
        environment[key] != nil ? "the environment" : file
    }

    /// A required non-empty string value.
    public func require(_ key: String) throws -> String {
        guard let v = string(key) else { throw ConfigError.missingKey(key: key, file: file) }
        return v
    }

    /// An integer within `range`, or `defaultValue` when absent.
    public func int(_ key: String, default defaultValue: Int, range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let raw = string(key) else { return defaultValue }
        guard let n = Int(raw), range.contains(n) else {
            throw ConfigError.invalidValue(key: key, file: origin(key), value: raw, expected: "an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    /// A number within `range`, or `defaultValue` when absent.
    public func double(_ key: String, default defaultValue: Double, range: ClosedRange<Double>) throws -> Double {
        guard let raw = string(key) else { return defaultValue }
        guard let n = Double(raw), range.contains(n) else {
            throw ConfigError.invalidValue(key: key, file: origin(key), value: raw, expected: "a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    /// A boolean (`true/false`, `yes/no`, `1/0`, `on/off`), or `defaultValue` when absent.
    public func bool(_ key: String, default defaultValue: Bool) throws -> Bool {
        guard let raw = string(key) else { return defaultValue }
        switch raw.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigError.invalidValue(key: key, file: origin(key), value: raw, expected: "true or false")
        }
    }

    /// One of `allowed`, or `defaultValue` when absent.
    public func choice(_ key: String, _ allowed: [String], default defaultValue: String) throws -> String {
        guard let raw = string(key) else { return defaultValue }
        guard allowed.contains(raw) else {
            throw ConfigError.invalidValue(key: key, file: origin(key), value: raw, expected: "one of \(allowed.joined(separator: ", "))")
        }
        return raw
    }

    /// A list split on commas, spaces and newlines; empty when absent.
    public func list(_ key: String) -> [String] {
        guard let raw = string(key) else { return [] }
        return raw.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
    }

    /// A path, or `defaultValue` when absent. A relative path is taken relative to the config
    /// file's directory, never the working directory: cron and systemd start jobs in
    /// directories nobody expects.
    public func path(_ key: String, default defaultValue: String? = nil) throws -> String? {
        guard let raw = string(key) else { return defaultValue }
        return resolve(raw)
    }

    /// Resolves `path` against the config file's directory, normalising `.` and `..`.
    public func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return URL(fileURLWithPath: path).standardizedFileURL.path }
        let base = URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent()
        return base.appendingPathComponent(path).standardizedFileURL.path
    }

    /// A required absolute path.
    public func requirePath(_ key: String) throws -> String {
        guard let p = try path(key) else { throw ConfigError.missingKey(key: key, file: file) }
        return p
    }
}
