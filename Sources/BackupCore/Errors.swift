import Foundation

/// The documented process exit codes. Every executable uses the same table.
public enum ExitStatus: Int32, Sendable {
    /// Everything asked for succeeded.
    case success = 0
    /// A target failed, a verification found a problem, or a restore failed (and rolled back).
    case failure = 1
    /// Bad usage, a bad argument, or a bad or missing config key.
    case usage = 2
    /// Another run holds the lock on the backup directory.
    case lockHeld = 3
    /// Stopped by SIGINT (130) or SIGTERM (143), following the shell convention 128+N.
    case interrupted = 130
    case terminated = 143
}

/// An error that knows how to explain itself to an administrator in one line.
public protocol UserFacingError: Error, CustomStringConvertible {
    /// One line, naming the key, file, argument or target at fault.
    var message: String { get }
    /// The exit code the process ends with when this error reaches the top.
    var exitStatus: ExitStatus { get }
}

extension UserFacingError {
    public var description: String { message }
}

/// Errors in the configuration file or environment.
public enum ConfigError: UserFacingError, Equatable {
    case missingKey(key: String, file: String)
    case invalidValue(key: String, file: String, value: String, expected: String)
    case unknownKey(key: String, file: String, hint: String)
    case unreadableFile(file: String, reason: String)
    case syntax(file: String, line: Int, reason: String)

    public var message: String {
        switch self {
        case let .missingKey(key, file):
            if !FileManager.default.fileExists(atPath: file) {
                return "config: missing required key \(key): there is no config file \(file) (pass --config FILE) and \(key) is not set in the environment"
            }
            return "config: missing required key \(key) in \(file)"
        case let .invalidValue(key, file, value, expected):
            return "config: invalid value for \(key) in \(file): '\(value)' (expected \(expected))"
        case let .unknownKey(key, file, hint):
            return "config: unknown key \(key) in \(file)\(hint.isEmpty ? "" : " (\(hint))")"
        case let .unreadableFile(file, reason):
            return "config: cannot read \(file): \(reason)"
        case let .syntax(file, line, reason):
            return "config: \(file):\(line): \(reason)"
        }
    }
    public var exitStatus: ExitStatus { .usage }
}

/// A bad command-line argument that the argument parser itself cannot catch.
public struct UsageError: UserFacingError {
    /// The one-line explanation.
    public let message: String
    public var exitStatus: ExitStatus { .usage }
    /// Creates a usage error with its one-line explanation.
    public init(_ message: String) { self.message = message }
}

/// Another process holds the backup directory's lock.
public struct LockHeldError: UserFacingError {
    /// The lock file.
    public let path: String
    /// What the holder wrote into the lock file (its PID and start time), if readable.
    public let holder: String
    public var message: String {
        "another backstop run holds the lock \(path) (\(holder)); not starting a second one"
    }
    public var exitStatus: ExitStatus { .lockHeld }
}

/// A failure inside a target or the engine while doing real work.
public struct OperationError: UserFacingError {
    /// The one-line explanation.
    public let message: String
    public var exitStatus: ExitStatus { .failure }
    /// Creates an operation error with its one-line explanation.
    public init(_ message: String) { self.message = message }
}

/// A failure of a system call, with the path it concerned.
public struct SystemError: UserFacingError {
    /// What was being done, e.g. "open".
    public let operation: String
    /// The path concerned.
    public let path: String
    /// The errno value.
    public let code: Int32
    public var message: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
    public var exitStatus: ExitStatus { .failure }
    /// Captures the current errno for `operation` on `path`.
    public init(_ operation: String, _ path: String, code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }
}
