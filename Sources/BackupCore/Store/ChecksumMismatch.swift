/// An artifact (or a file a manifest lists) whose SHA-256, as just read, differs from the one
/// recorded when it was written: the one error every reader throws for it, with one message.
public struct ChecksumMismatch: UserFacingError, Equatable {
    /// The file read, as the message should name it.
    public let path: String
    /// The SHA-256 recorded in the manifest.
    public let expected: String
    /// The SHA-256 of what was read.
    public let actual: String
    /// What was therefore not done, e.g. `not restoring` (nil: nothing to add).
    public let consequence: String?

    /// Describes a mismatch.
    public init(path: String, expected: String, actual: String, consequence: String? = nil) {
        self.path = path
        self.expected = expected
        self.actual = actual
        self.consequence = consequence
    }

    public var message: String {
        "\(path): checksum mismatch (SHA-256 \(actual), manifest says \(expected))\(consequence.map { "; \($0)" } ?? "")"
    }
    public var exitStatus: ExitStatus { .failure }

    /// Throws a `ChecksumMismatch` unless `actual` equals `expected` (hex, either case).
    public static func check(_ path: String, actual: String, expected: String, consequence: String? = nil) throws {
        guard actual.lowercased() != expected.lowercased() else { return }
        throw ChecksumMismatch(path: path, expected: expected, actual: actual, consequence: consequence)
    }
}
