import BackupCore
import Foundation

/// Runs of the built executables under the `BACKSTOP_FAULT` test hook (see `Fault`), and
/// listings of folders to compare before and after.
public enum FaultSupport {
    /// Runs an executable with `BACKSTOP_FAULT` set to `fault` and waits.
    public static func run(_ executable: String, _ arguments: [String], fault: String,
                           environment: [String: String] = [:]) throws -> TestSupport.Run {
        var env = environment
        env["BACKSTOP_FAULT"] = fault
        return try TestSupport.run(executable, arguments, environment: env)
    }

    /// Every entry under `root` (not following symlinks), keyed by relative path: type, mode,
    /// size, modification time and inode. Two equal listings mean nothing was added, removed,
    /// replaced or rewritten.
    public static func listing(_ root: String) -> [String: String] {
        var result: [String: String] = [:]
        guard let e = FileManager.default.enumerator(atPath: root) else { return result }
        while let rel = e.nextObject() as? String {
            var st = stat()
            guard lstat(root + "/" + rel, &st) == 0 else { continue }
            result[rel] = "mode \(String(st.st_mode, radix: 8)) size \(st.st_size) mtime \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) ino \(st.st_ino)"
        }
        return result
    }
}

/// A run of an executable paused at a named step by `BACKSTOP_FAULT=NAME:pause`, for tests
/// that need a second process to act while the first is at exactly that step.
public final class PausedRun {
    /// The process.
    public let process: Process
    /// The step it pauses at.
    public let point: String
    private let dir: String

    /// Starts `executable` so that it pauses at `point`; `dir` is a scratch folder for the
    /// hook's files and the run's output.
    public init(_ executable: String, _ arguments: [String], pausingAt point: String, dir: String,
                environment: [String: String] = [:]) throws {
        self.point = point
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestSupport.binDirectory + "/" + executable)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        env["BACKSTOP_FAULT"] = point + ":pause"
        env["BACKSTOP_FAULT_DIR"] = dir
        p.environment = env
        _ = FileManager.default.createFile(atPath: dir + "/stdout", contents: nil)
        _ = FileManager.default.createFile(atPath: dir + "/stderr", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: dir + "/stdout")
        p.standardError = FileHandle(forWritingAtPath: dir + "/stderr")
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        try p.run()
        process = p
    }

    /// Waits until the process has reached the step (false if it exited first or took longer
    /// than `timeout` seconds: then the test fails, it never passes by waiting).
    public func waitUntilPaused(timeout: TimeInterval = 120) -> Bool {
        TestSupport.waitFor(timeout) { FileOps.exists(self.dir + "/" + self.point + ".reached") || !self.process.isRunning }
            && FileOps.exists(dir + "/" + point + ".reached")
    }

    /// Lets the process carry on and waits for it to exit.
    public func resume() -> TestSupport.Run {
        _ = FileManager.default.createFile(atPath: dir + "/" + point + ".resume", contents: nil)
        process.waitUntilExit()
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return TestSupport.Run(status: status,
                               stdout: (try? String(contentsOfFile: dir + "/stdout", encoding: .utf8)) ?? "",
                               stderr: (try? String(contentsOfFile: dir + "/stderr", encoding: .utf8)) ?? "")
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}
