import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn, its stdout streamed to the caller in chunks and
/// its stderr kept (the last 64 KiB) for the error message.
///
/// Children run in their own process group and are registered with `Interrupts`, so SIGINT
/// or SIGTERM to Backstop stops them too. Secrets go through `environment`, never `arguments`.
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
        /// The tail of its stderr.
        public let stderr: String
        /// The program that ran, for messages.
        public let program: String

        /// The last stderr line that reports an error (`error:`, `ERROR`, `FATAL`), else the last
        /// non-empty one, for one-line messages (pg_dump follows its error with `detail:` lines).
        public var lastErrorLine: String {
            let lines = stderr.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            return lines.last { $0.localizedCaseInsensitiveContains("error") || $0.contains("FATAL") } ?? lines.last ?? "(no output)"
        }
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

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inFD, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        if let dir = workingDirectory { backstop_spawn_addchdir(&actions, dir) }

        var attrs = posix_spawnattr_t()
        posix_spawnattr_init(&attrs)
        defer { posix_spawnattr_destroy(&attrs) }
        posix_spawnattr_setpgroup(&attrs, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT); sigaddset(&defaults, SIGTERM); sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attrs, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attrs, &empty)
        posix_spawnattr_setflags(&attrs, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

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

        var pid: pid_t = 0
        let rc = Interrupts.shared.spawning {
            let rc = posix_spawn(&pid, program, &actions, &attrs, argv, envp)
            if rc == 0 { Interrupts.shared.register(child: pid) }
            return rc
        }
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
        while waitpid(pid, &wstatus, 0) < 0 && errno == EINTR {}
        Interrupts.shared.unregister(child: pid)
        let errText = stderrTail.finish()
        if hasProducer { producerDone.wait() }
        if let callbackError { throw callbackError }
        if let producerError = producerBox.error, (wstatus & 0x7f) == 0 && (wstatus >> 8) & 0xff == 0 {
            // The child exited 0 yet its input could not be fully written: never call that success.
            throw producerError
        }
        let status: Int32 = (wstatus & 0x7f) == 0 ? (wstatus >> 8) & 0xff : 128 + (wstatus & 0x7f)
        return Outcome(status: status, stderr: errText, program: program)
    }

    /// Runs the child and returns its whole stdout as text (for short outputs such as versions).
    public func capture() throws -> (Outcome, String) {
        var data = Data()
        let outcome = try run { data.append(contentsOf: $0) }
        return (outcome, String(decoding: data, as: UTF8.self))
    }
}

private final class ErrorBox: @unchecked Sendable { var error: Error? }

/// Reads a child's stderr on a thread, keeping the last 64 KiB.
private final class StderrCollector: @unchecked Sendable {
    private let fd: Int32
    private var data = Data()
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
            }
            close(fd)
            done.signal()
        }
    }

    func finish() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}
