import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process, its stdout streamed to the caller in chunks and its stderr kept (the last
/// 64 KiB, and the lines that explain a failure, see `StderrLines`) for the error message.
///
/// Children run in their own process group and are registered with `Interrupts`, so SIGINT
/// or SIGTERM to Backstop stops them too; they and their process group get SIGKILL if Backstop
/// itself dies (even by `kill -9`), so no orphan keeps loading a database unchecked.
/// Secrets go through `environment`, never `arguments`.
public struct ChildProcess: Sendable {
    /// Where the child's standard input comes from.
    public enum Input: Sendable {
        /// /dev/null.
        case null
        /// A file opened read-only.
        case file(String)
        /// Bytes written by a closure on its own thread; the pipe closes when it returns.
        case producer(@Sendable (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void)
    }

    /// The program: an absolute path, or a name looked up in PATH.
    public var executable: String
    /// Arguments after argv[0]. Never put a secret here.
    public var arguments: [String]
    /// Extra environment entries, added to (and overriding) the inherited environment.
    public var environment: [String: String]
    /// The working directory, or nil for ours.
    public var workingDirectory: String?
    /// Standard input.
    public var input: Input

    /// Describes a child to run.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                workingDirectory: String? = nil, input: Input = .null) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.input = input
    }

    /// What a finished child left behind.
    public struct Outcome: Sendable {
        /// The exit status, or 128+signal when it was killed by a signal.
        public let status: Int32
        /// The signal that killed it, if one did.
        public let signal: Int32?
        /// The tail of its stderr.
        public let stderr: String
        /// The stderr lines that explain a failure: the first lines and every line reporting an
        /// error (`ERROR`, `FATAL`, `error:`, `PANIC`) wherever it appeared, then the last line.
        public let relevantLines: [String]
        /// The program that ran, for messages.
        public let program: String

        /// Creates an outcome (the engine's children make their own; tests may build one).
        public init(status: Int32, signal: Int32? = nil, stderr: String, relevantLines: [String]? = nil, program: String) {
            self.status = status
            self.signal = signal
            self.stderr = stderr
            self.relevantLines = relevantLines ?? StderrLines.relevant(in: stderr)
            self.program = program
        }

        /// `exit 1`, or `killed by SIGKILL`.
        public var termination: String {
            signal.map { "killed by \(ChildProcess.signalName($0))" } ?? "exit \(status)"
        }

        /// The last stderr line that reports an error (`error:`, `ERROR`, `FATAL`), else the last
        /// non-empty one, for one-line messages (pg_dump follows its error with `detail:` lines).
        public var lastErrorLine: String {
            let lines = stderr.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            return lines.last { $0.localizedCaseInsensitiveContains("error") || $0.contains("FATAL") } ?? lines.last ?? "(no output)"
        }

        /// The failure as an error naming the program (or `what`), how it ended, and why.
        public func error(_ what: String? = nil) -> ChildProcessError {
            ChildProcessError(what: what ?? (program as NSString).lastPathComponent, status: status, signal: signal, stderrLines: relevantLines)
        }
    }

    /// `SIGKILL` for 9: the name administrators know.
    public static func signalName(_ sig: Int32) -> String {
        let names: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGABRT: "SIGABRT",
                                      SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE",
                                      SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGXCPU: "SIGXCPU",
                                      SIGXFSZ: "SIGXFSZ"]
        return names[sig] ?? "signal \(sig)"
    }

    /// Finds `name` in PATH (or returns it if it contains a slash and is executable).
    public static func which(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs the child, handing every chunk of its stdout to `onStdout`, and waits for it.
    /// Throws only if it cannot be started or `onStdout` throws (the child is then killed).
    @discardableResult
    public func run(onStdout: (UnsafeRawBufferPointer) throws -> Void = { _ in }) throws -> Outcome {
        guard let program = ChildProcess.which(executable) else {
            throw OperationError("cannot run \(executable): not found in PATH")
        }
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [-1, -1]
        guard backstop_pipe_cloexec(&outPipe) == 0, backstop_pipe_cloexec(&errPipe) == 0 else { throw SystemError("pipe", program) }
        var inFD: Int32 = -1
        switch input {
        case .null: inFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        case let .file(path):
            inFD = open(path, O_RDONLY | O_CLOEXEC)
            if inFD < 0 { throw SystemError("open", path) }
        case .producer:
            // A child that stops reading must give us EPIPE, not kill us with SIGPIPE.
            signal(SIGPIPE, SIG_IGN)
            guard backstop_pipe_cloexec(&inPipe) == 0 else { throw SystemError("pipe", program) }
            inFD = inPipe[0]
        }

        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        if let trace = env["BACKSTOP_TRACE_CHILDREN"], !trace.isEmpty {
            // Debugging aid (and how the tests prove no secret is ever on a command line):
            // append every child's argv, one line each, to this file.
            if let h = FileHandle(forWritingAtPath: trace) ?? {
                _ = FileManager.default.createFile(atPath: trace, contents: nil, attributes: [.posixPermissions: 0o600])
                return FileHandle(forWritingAtPath: trace)
            }() {
                h.seekToEndOfFile()
                h.write(Data(([program] + arguments).joined(separator: " ").appending("\n").utf8))
                h.closeFile()
            }
        }
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }

        // Not posix_spawn: the child and its own children must die with us even on SIGKILL
        // (PR_SET_PDEATHSIG and a watchdog for its process group), which only a fork can set up.
        // It runs in its own process group, with default signals.
        var spawnErrno: Int32 = 0
        var watchdog: pid_t = -1, guardFD: Int32 = -1
        let pid: pid_t = Interrupts.shared.spawning {
            let pid = backstop_spawn_child(program, argv, envp, inFD, outPipe[1], errPipe[1], workingDirectory,
                                           &watchdog, &guardFD, &spawnErrno)
            if pid > 0 { Interrupts.shared.register(child: pid) }
            return pid
        }
        let rc = pid > 0 ? 0 : spawnErrno
        close(outPipe[1]); close(errPipe[1]); close(inFD)
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0]); if inPipe[1] >= 0 { close(inPipe[1]) }
            throw SystemError("spawn", program, code: rc)
        }

        let stderrTail = StderrCollector(fd: errPipe[0])
        stderrTail.start()
        let producerBox = ErrorBox()
        let producerDone = DispatchSemaphore(value: 0)
        var hasProducer = false
        if case let .producer(produce) = input {
            hasProducer = true
            let writeFD = inPipe[1]
            Thread.detachNewThread {
                do {
                    try produce { buffer in
                        var offset = 0
                        while offset < buffer.count {
                            let n = write(writeFD, buffer.baseAddress! + offset, buffer.count - offset)
                            if n < 0 { if errno == EINTR { continue }; throw SystemError("write to", program) }
                            offset += n
                        }
                    }
                } catch { producerBox.error = error }
                close(writeFD)
                producerDone.signal()
            }
        }

        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        var callbackError: Error?
        while true {
            let n = read(outPipe[0], chunk.baseAddress!, chunk.count)
            if n < 0 { if errno == EINTR { continue }; break }
            if n == 0 { break }
            do { try onStdout(UnsafeRawBufferPointer(rebasing: chunk[0..<n])) } catch {
                callbackError = error
                kill(-pid, SIGTERM)
                break
            }
        }
        close(outPipe[0])
        var wstatus: Int32 = 0
        _ = backstop_wait_child(pid, watchdog, guardFD, &wstatus)
        Interrupts.shared.unregister(child: pid)
        let errText = stderrTail.finish()
        if hasProducer { producerDone.wait() }
        if let callbackError { throw callbackError }
        if let producerError = producerBox.error, (wstatus & 0x7f) == 0 && (wstatus >> 8) & 0xff == 0 {
            // The child exited 0 yet its input could not be fully written: never call that success.
            throw producerError
        }
        let signal: Int32? = (wstatus & 0x7f) == 0 ? nil : wstatus & 0x7f
        let status: Int32 = signal.map { 128 + $0 } ?? (wstatus >> 8) & 0xff
        return Outcome(status: status, signal: signal, stderr: errText.text, relevantLines: errText.relevant, program: program)
    }

    /// Runs the child and returns its whole stdout as text (for short outputs such as versions).
    public func capture() throws -> (Outcome, String) {
        var data = Data()
        let outcome = try run { data.append(contentsOf: $0) }
        return (outcome, String(decoding: data, as: UTF8.self))
    }
}

private final class ErrorBox: @unchecked Sendable { var error: Error? }

/// Picks the stderr lines worth showing when a child fails.
public enum StderrLines {
    /// At most this many lines are kept.
    static let limit = 12

    /// True for a line that reports an error.
    static func isError(_ line: String) -> Bool {
        line.contains("ERROR") || line.contains("FATAL") || line.contains("PANIC") || line.localizedCaseInsensitiveContains("error:")
    }

    /// The first two non-empty lines, every error line, and the last line, in order, without
    /// repeats, each cut to 400 characters, at most `limit`.
    public static func relevant(in text: String) -> [String] {
        var picker = Picker()
        for line in text.split(separator: "\n") { picker.add(String(line)) }
        return picker.result
    }

    /// Collects relevant lines as they stream, without keeping the whole output.
    struct Picker {
        private(set) var first: [String] = []
        private(set) var errors: [String] = []
        private(set) var last: String?
        private var seen = Set<String>()

        mutating func add(_ raw: String) {
            let line = String(raw.trimmingCharacters(in: .whitespacesAndNewlines).prefix(400))
            guard !line.isEmpty else { return }
            last = line
            if first.count < 2 { first.append(line); seen.insert(line); return }
            if StderrLines.isError(line), errors.count < StderrLines.limit, seen.insert(line).inserted { errors.append(line) }
        }

        var result: [String] {
            var lines = first + errors
            if let last, !lines.contains(last) { lines.append(last) }
            if lines.count > StderrLines.limit { lines = Array(lines.prefix(StderrLines.limit - 1)) + [lines.last!] }
            return lines
        }
    }
}

/// A child that failed: which program, how it ended (exit status or signal), and the stderr
/// lines that say why. Its message is one line; the lines are joined with ` | `.
public struct ChildProcessError: UserFacingError {
    /// What ran, e.g. `pg_restore` or `pg_restore of the safety dump`.
    public let what: String
    /// The exit status (128+signal when killed).
    public let status: Int32
    /// The signal that killed it, if one did.
    public let signal: Int32?
    /// The stderr lines that explain the failure (see `StderrLines.relevant`).
    public let stderrLines: [String]

    /// Describes a failed child.
    public init(what: String, status: Int32, signal: Int32?, stderrLines: [String]) {
        self.what = what
        self.status = status
        self.signal = signal
        self.stderrLines = stderrLines
    }

    /// `exit 1` or `killed by SIGKILL`.
    public var termination: String { signal.map { "killed by \(ChildProcess.signalName($0))" } ?? "exit \(status)" }
    public var message: String {
        "\(what) failed (\(termination)): \(stderrLines.isEmpty ? "(no output)" : stderrLines.joined(separator: " | "))"
    }
    public var exitStatus: ExitStatus { .failure }
}

/// Reads a child's stderr on a thread, keeping the last 64 KiB and, from the whole stream, the
/// lines that explain a failure (an early `ERROR` is not lost behind later output).
private final class StderrCollector: @unchecked Sendable {
    private let fd: Int32
    private var data = Data()
    private var picker = StderrLines.Picker()
    private var partialLine = Data()
    private let done = DispatchSemaphore(value: 0)

    init(fd: Int32) { self.fd = fd }

    func start() {
        Thread.detachNewThread { [self] in
            var buf = [UInt8](repeating: 0, count: 8192)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                data.append(contentsOf: buf[0..<n])
                if data.count > 65536 { data.removeFirst(data.count - 65536) }
                partialLine.append(contentsOf: buf[0..<n])
                while let nl = partialLine.firstIndex(of: 10) {
                    picker.add(String(decoding: partialLine[partialLine.startIndex..<nl], as: UTF8.self))
                    partialLine.removeSubrange(partialLine.startIndex...nl)
                }
                // A line longer than 64 KiB is cut rather than kept whole.
                if partialLine.count > 65536 { picker.add(String(decoding: partialLine.prefix(4096), as: UTF8.self)); partialLine.removeAll() }
            }
            if !partialLine.isEmpty { picker.add(String(decoding: partialLine, as: UTF8.self)) }
            close(fd)
            done.signal()
        }
    }

    func finish() -> (text: String, relevant: [String]) {
        done.wait()
        return (String(decoding: data, as: UTF8.self), picker.result)
    }
}
