import Foundation

/// An exclusive flock on a file in the backup directory. The kernel drops it when the holder
/// dies, so a lock left by a dead process never blocks. The file keeps the holder's PID for
/// the message a second run prints.
public final class RunLock {
    /// The lock file.
    public let path: String
    private var fd: Int32 = -1

    /// Takes the lock at `path` without waiting, or throws `LockHeldError`.
    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, FileOps.fileMode)
        guard fd >= 0 else { throw SystemError("open lock file", path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            // A holder that started in the same instant may not have written its PID yet.
            var holder = ""
            for attempt in 0..<10 {
                holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                if !holder.isEmpty || attempt == 9 { break }
                usleep(20_000)
            }
            close(fd)
            fd = -1
            throw LockHeldError(path: path, holder: holder.isEmpty ? "holder unknown" : holder)
        }
        let note = "pid \(getpid()) since \(Format.iso8601(Date()))\n"
        _ = ftruncate(fd, 0)
        _ = note.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// Whether another process holds the lock at `path`, found out without taking it for more
    /// than an instant and without writing anything (a shared lock that fails while someone
    /// holds the exclusive one). A missing lock file is not held.
    public static func isHeld(path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) == 0 else { return true }
        flock(fd, LOCK_UN)
        return false
    }

    /// Releases the lock.
    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
