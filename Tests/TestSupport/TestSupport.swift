import BackupCore
import Foundation
import Logging

/// Scratch folders, file helpers and a way to run the built executables, shared by the tests.
public enum TestSupport {
    /// A fresh scratch directory, removed by the caller's `defer`.
    public static func scratch(_ name: String = "test") throws -> String {
        try TemporaryDirectory(prefix: "backstop-\(name)").path
    }

    /// Writes text to a file, creating parents.
    public static func write(_ text: String, to path: String, mode: mode_t = 0o644) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode)
    }

    /// Writes `count` pseudo-random bytes (deterministic for a seed) to a file.
    public static func writeRandom(_ count: Int, to path: String, seed: UInt64 = 42) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var state = seed &+ 0x9E3779B97F4A7C15
        var data = Data(count: count)
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in 0..<words.count {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                words[i] = state
            }
            for i in (words.count * 8)..<count { raw[i] = UInt8(truncatingIfNeeded: i) }
        }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// The contents of a file.
    public static func read(_ path: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// The first bytes of the file at a byte-exact path, as text; nil if it cannot be opened.
    public static func readStart(_ path: RawPath, max count: Int = 64) -> String? {
        let fd = path.withCString { open($0, O_RDONLY) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: count)
        let n = Foundation.read(fd, &buf, count)
        return String(decoding: buf[0..<max(n, 0)], as: UTF8.self)
    }

    /// Flips the bits of one byte of a file in place (same size): corruption for verify tests.
    public static func flipByte(_ path: String, at offset: UInt64, mask: UInt8 = 0xFF) throws {
        guard let h = FileHandle(forUpdatingAtPath: path) else { throw SystemError("open", path) }
        defer { h.closeFile() }
        h.seek(toFileOffset: offset)
        let byte = h.readData(ofLength: 1)
        h.seek(toFileOffset: offset)
        h.write(Data([byte[0] ^ mask]))
    }

    /// Every regular file under `root` with its bytes, keyed by relative path.
    public static func snapshot(_ root: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        guard let e = FileManager.default.enumerator(atPath: root) else { return result }
        while let rel = e.nextObject() as? String {
            var st = stat()
            if lstat(root + "/" + rel, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG {
                result[rel] = try read(root + "/" + rel)
            }
        }
        return result
    }

    /// A logger that keeps lines in memory (and prints nothing).
    public static func logger() -> (Logger, LogSink) {
        let sink = LogSink(redactor: Redactor(), directory: nil, toStderr: false)
        return (Logger.backstop(sink: sink, level: .debug), sink)
    }

    /// An engine over a repository at `root`, logging to memory, without progress lines.
    public static func engine(_ root: String, _ targets: [any BackupTarget]) -> BackupEngine {
        BackupEngine(repository: Repository(root: root), targets: targets, frontend: "test",
                     logger: logger().0, showProgress: false)
    }

    /// The folder holding the built executables (beside the test bundle).
    public static var binDirectory: String {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // swift test runs .build/debug/XPackageTests.xctest; walk up until the binaries are found.
        for _ in 0..<4 {
            if FileManager.default.isExecutableFile(atPath: dir.path + "/backstop") { return dir.path }
            dir = dir.deletingLastPathComponent()
        }
        return exe.deletingLastPathComponent().path
    }

    /// The result of running an executable.
    public struct Run {
        /// Exit status (128+N for signal N).
        public let status: Int32
        /// Everything on stdout.
        public let stdout: String
        /// Everything on stderr.
        public let stderr: String

        /// Describes a finished run.
        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// Runs one of the built executables (`backstop`, `journal-backup`, ...) with stdin from
    /// /dev/null, and waits.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binDirectory + "/" + executable)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        try p.run()
        let outData = Box(), errData = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        p.waitUntilExit()
        group.wait()
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return Run(status: status, stdout: String(decoding: outData.data, as: UTF8.self),
                   stderr: String(decoding: errData.data, as: UTF8.self))
    }

    /// Starts an executable without waiting (for kill tests).
    public static func start(_ executable: String, _ arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binDirectory + "/" + executable)
        p.arguments = arguments
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        try p.run()
        return p
    }

    /// Waits up to `timeout` seconds for `condition`.
    public static func waitFor(_ timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }
}

private final class Box: @unchecked Sendable { var data = Data() }
