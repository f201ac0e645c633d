import Foundation

/// A private (0700) scratch directory under TMPDIR, removed with `remove()`.
public struct TemporaryDirectory: Sendable {
    /// Its absolute path.
    public let path: String

    /// Creates a new scratch directory.
    public init(prefix: String = "backstop") throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw SystemError("mkdtemp", base) }
        path = String(cString: p)
        Interrupts.shared.registerPartial(path)
    }

    /// Removes it and everything in it.
    public func remove() {
        try? FileOps.removeTree(path)
        Interrupts.shared.unregisterPartial(path)
    }
}
