import Foundation

/// What happens on SIGINT or SIGTERM: children are stopped, partial output is removed, the
/// lock is released (by exiting) and the process exits 130 or 143.
///
/// The engine registers every child process and every staging path while it works.
public final class Interrupts: @unchecked Sendable {
    /// The process-wide instance.
    public static let shared = Interrupts()

    private let lock = NSLock()
    private var children: Set<pid_t> = []
    private var partialPaths: [String] = []
    private var sources: [DispatchSourceSignal] = []
    private var onInterrupt: [@Sendable (Int32) -> Void] = []
    private var deferDepth = 0
    private var pending: Int32?
    private var received = false

    /// Installs the handlers once. Safe to call more than once.
    public func install() {
        lock.lock(); defer { lock.unlock() }
        guard sources.isEmpty else { return }
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in handle(sig) }
            source.resume()
            sources.append(source)
        }
        signal(SIGPIPE, SIG_IGN)
    }

    /// Adds a closure run (before exit) when a signal arrives, e.g. to log the interruption.
    public func onSignal(_ action: @escaping @Sendable (Int32) -> Void) {
        lock.lock(); onInterrupt.append(action); lock.unlock()
    }

    func spawning<T>(_ body: () -> T) -> T {
        lock.lock(); defer { lock.unlock() }
        return body()
    }

    func register(child pid: pid_t) { children.insert(pid) }

    func unregister(child pid: pid_t) {
        lock.lock(); children.remove(pid); lock.unlock()
    }

    /// Marks `path` as partial output to delete if the run is interrupted.
    public func registerPartial(_ path: String) {
        lock.lock(); partialPaths.append(path); lock.unlock()
    }

    /// Unmarks `path` once it is complete (or already removed).
    public func unregisterPartial(_ path: String) {
        lock.lock(); partialPaths.removeAll { $0 == path }; lock.unlock()
    }

    /// Runs `body` so that a signal does not exit the process in the middle of it: children are
    /// still stopped, `checkpoint()` throws, and the process exits only after `body` has
    /// returned (normally after rolling back). Restores run inside this.
    public func deferring<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); deferDepth += 1; lock.unlock()
        defer {
            lock.lock()
            deferDepth -= 1
            let sig = deferDepth == 0 ? pending : nil
            lock.unlock()
            if let sig { handle(sig) }
        }
        return try body()
    }

    /// Throws `InterruptedError` if a signal arrived during `deferring`. Call it between steps.
    public func checkpoint() throws {
        lock.lock(); let sig = pending; lock.unlock()
        if let sig { throw InterruptedError(signal: sig) }
    }

    /// Call when a child failed: if a signal killed it outside `deferring`, the handler is
    /// about to exit the process (130/143), so wait for that instead of reporting the child's
    /// death as the cause. Inside `deferring`, throws like `checkpoint()`.
    public func yieldToSignal() throws {
        lock.lock(); let r = received, depth = deferDepth; lock.unlock()
        if r && depth == 0 { while true { sleep(1) } }
        try checkpoint()
    }

    private func handle(_ sig: Int32) {
        lock.lock()
        received = true
        if deferDepth > 0 {
            let first = pending == nil
            pending = pending ?? sig
            let kids = children
            lock.unlock()
            for pid in kids { kill(-pid, SIGTERM) }
            if first {
                FileHandle.standardError.write(Data("backstop: \(Interrupts.name(sig)) received; stopping and rolling back before exiting, please wait\n".utf8))
            }
            return
        }
        let kids = children
        let partial = partialPaths
        let actions = onInterrupt
        lock.unlock()
        for pid in kids { kill(-pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        for pid in kids {
            while kill(pid, 0) == 0 && Date() < deadline { usleep(20_000) }
            kill(-pid, SIGKILL)
        }
        for path in partial { try? FileOps.removeTree(path) }
        for action in actions { action(sig) }
        FileHandle.standardError.write(Data("backstop: interrupted by \(Interrupts.name(sig)); stopped children and removed partial output\n".utf8))
        exit(sig == SIGINT ? ExitStatus.interrupted.rawValue : sig == SIGTERM ? ExitStatus.terminated.rawValue : 129)
    }
}

extension Interrupts {
    static func name(_ sig: Int32) -> String {
        sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal \(sig)"
    }
}

/// Thrown by `Interrupts.checkpoint()` when a signal arrived during a deferred section.
public struct InterruptedError: UserFacingError {
    /// The signal.
    public let signal: Int32
    public var message: String { "interrupted by \(Interrupts.name(signal))" }
    public var exitStatus: ExitStatus { signal == SIGINT ? .interrupted : .terminated }
}
