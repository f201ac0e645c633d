import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Written only by the signal handler (and `StopSignals.supervise`), read by the daemon loop.
nonisolated(unsafe) private var stopSignalReceived: Int32 = 0
nonisolated(unsafe) private var supervisedChild: pid_t = 0

/// The handler: remember the first stop signal and pass it on to the running child.
/// Only async-signal-safe work here (an assignment and kill).
private func stopSignalHandler(_ sig: Int32) {
    if stopSignalReceived == 0 { stopSignalReceived = sig }
    let pid = supervisedChild
    if pid > 0 { kill(pid, sig) }
}

/// SIGTERM and SIGINT for a process that supervises one child at a time (the `daemon`): a
/// plain signal handler records the signal and passes it on to the running child, which stops
/// and cleans up itself.
///
/// A handler (rather than a dispatch source over an ignored signal) never loses a signal to a
/// thread that does not watch for it, and exec resets it to the default in the child, which
/// then installs its own.
public enum StopSignals {
    /// Installs the handlers; SIGHUP and SIGPIPE are ignored.
    public static func install() {
        signal(SIGHUP, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        signal(SIGTERM, stopSignalHandler)
        signal(SIGINT, stopSignalHandler)
    }

    /// The first stop signal received, if any.
    public static var received: Int32? { stopSignalReceived == 0 ? nil : stopSignalReceived }

    /// Marks `pid` as the running child (nil: none). A signal that arrived before the child
    /// was registered is passed on now.
    public static func supervise(_ pid: pid_t?) {
        supervisedChild = pid ?? 0
        if let pid, stopSignalReceived != 0 { kill(pid, stopSignalReceived) }
    }
}
