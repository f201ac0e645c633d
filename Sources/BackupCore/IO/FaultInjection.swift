import Foundation

/// A test hook: fail, kill or pause the process at a named step, so tests can check what a
/// crash, a failure or a second process at exactly that moment leaves behind.
///
/// Inert unless the environment variable `BACKSTOP_FAULT` is set, as a comma-separated list
/// of `NAME[:ACTION][@N]`:
/// - `fail` (default): the step throws `InjectedFault` (the command fails as for a real error);
/// - `kill`: the process sends itself SIGKILL (a crash: no cleanup runs);
/// - `pause`: creates `$BACKSTOP_FAULT_DIR/NAME.reached` and waits until
///   `$BACKSTOP_FAULT_DIR/NAME.resume` exists (at most 10 minutes), then carries on;
/// - `@N`: act on the Nth time the step is reached (default: the first).
///
/// Named steps: `backup-<target>` (a target's output is in staging), `before-rename` (every
/// target staged), `before-manifest` (the set renamed into place), `backup-committed` (manifest
/// written, the lock still held), `write-<file name>` (halfway through writing the temporary
/// file of `FileOps.writeAtomically`: `write-manifest.json`, `write-drills.json`, ...),
/// `restore` (the restore lock taken), `restore-rsync-entry` (each entry rsync reports during a
/// restore, written or deleted: `@N` fails it mid-way, rsync is stopped), `restore-rsync`, `restore-sqlite`,
/// `restore-pg-dump`, `restore-pg-basebackup` (a restore has changed the destination),
/// `restore-entry` (an archive or MinIO restore, before each entry and once more after the last:
/// `restore-entry@N` fails before the Nth entry), `rollback` (a rollback starts), `prune` and
/// `remove` (the lock held, after deleting), `offsite-object` (before each snapshot file an off-site
/// push uploads) and `offsite-before-manifest` (a push has uploaded a set but not its manifest).
public enum Fault {
    private static let state = FaultState()

    /// Acts on the step `name` if `BACKSTOP_FAULT` names it; does nothing otherwise.
    public static func point(_ name: String) throws {
        guard let action = state.hit(name) else { return }
        switch action {
        case "kill":
            kill(getpid(), SIGKILL)
            while true { pause() }
        case "pause":
            guard let dir = ProcessInfo.processInfo.environment["BACKSTOP_FAULT_DIR"], !dir.isEmpty else {
                throw InjectedFault(point: name, detail: "pause needs BACKSTOP_FAULT_DIR")
            }
            let reached = dir + "/" + name + ".reached", resume = dir + "/" + name + ".resume"
            let fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC, FileOps.fileMode)
            if fd >= 0 { close(fd) }
            let deadline = Date().addingTimeInterval(600)
            while !FileOps.exists(resume) {
                guard Date() < deadline else { throw InjectedFault(point: name, detail: "no \(resume) within 10 minutes") }
                usleep(10_000)
            }
        default:
            throw InjectedFault(point: name, detail: nil)
        }
    }
}

/// The error a `fail` fault throws.
public struct InjectedFault: UserFacingError {
    /// The step.
    public let point: String
    /// Why, when it is not a plain `fail`.
    public let detail: String?
    public var message: String { "injected fault at \(point) (BACKSTOP_FAULT)\(detail.map { ": \($0)" } ?? "")" }
    public var exitStatus: ExitStatus { .failure }
}

/// The parsed `BACKSTOP_FAULT` and how often each step has been reached. The variable is read
/// (with getenv, cheap enough for a step reached once per archive entry) at every step, and a
/// changed value starts the counts afresh, so in-process tests can set it between operations.
private final class FaultState: @unchecked Sendable {
    private let lock = NSLock()
    private var raw = ""
    private var rules: [String: (action: String, nth: Int)] = [:]
    private var hits: [String: Int] = [:]

    private static func parse(_ raw: String) -> [String: (action: String, nth: Int)] {
        var rules: [String: (String, Int)] = [:]
        for item in raw.split(separator: ",") {
            var spec = item.trimmingCharacters(in: .whitespaces)
            var nth = 1
            if let at = spec.lastIndex(of: "@"), let n = Int(spec[spec.index(after: at)...]), n > 0 {
                nth = n
                spec = String(spec[..<at])
            }
            var action = "fail"
            if let colon = spec.lastIndex(of: ":"), ["fail", "kill", "pause"].contains(String(spec[spec.index(after: colon)...])) {
                action = String(spec[spec.index(after: colon)...])
                spec = String(spec[..<colon])
            }
            if !spec.isEmpty { rules[spec] = (action, nth) }
        }
        return rules
    }

    /// The action to take at this visit of `name`, if any.
    func hit(_ name: String) -> String? {
        guard let value = getenv("BACKSTOP_FAULT") else { return nil }
        let current = String(cString: value)
        lock.lock(); defer { lock.unlock() }
        if current != raw {
            raw = current
            rules = Self.parse(current)
            hits = [:]
        }
        guard let rule = rules[name] else { return nil }
        hits[name, default: 0] += 1
        return hits[name] == rule.nth ? rule.action : nil
    }
}
