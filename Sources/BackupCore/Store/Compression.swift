import Foundation

/// How an artifact is compressed: a domain value, independent of the library that does it.
/// Its config keys (`COMPRESSION`, `LEVEL`, `THREADS`) are declared and parsed here once, for
/// every kind that compresses.
public enum Compression: Sendable, Equatable {
    case none
    case gzip(level: Int)
    case zstd(level: Int, threads: Int)

    /// The algorithms by config name.
    public static let names = ["gzip", "zstd", "none"]
    /// The levels each algorithm takes.
    public static let gzipLevels = 1...9, zstdLevels = 1...19

    /// File-name suffix, e.g. `.gz`.
    public var suffix: String {
        switch self {
        case .none: return ""
        case .gzip: return ".gz"
        case .zstd: return ".zst"
        }
    }

    /// Name recorded in manifests.
    public var name: String {
        switch self {
        case .none: return "none"
        case .gzip: return "gzip"
        case .zstd: return "zstd"
        }
    }

    /// Parses `gzip`, `zstd` or `none`, with an optional level (default gzip 6, zstd 3).
    public static func parse(_ name: String, level: Int?, threads: Int) -> Compression? {
        switch name {
        case "none": return Compression.none
        case "gzip": return .gzip(level: level ?? 6)
        case "zstd": return .zstd(level: level ?? 3, threads: threads)
        default: return nil
        }
    }

    /// The keys `init(settings:)` reads, to put in a kind's declaration: `COMPRESSION` (with
    /// `defaultName`), `LEVEL`, and `THREADS` unless `threads` is false.
    public static func configKeys(defaultName: String = "gzip", threads: Bool = true, of what: String = "the artifact") -> [ConfigKey] {
        [ConfigKey("COMPRESSION", .choice(names), default: defaultName, help: "how \(what) is compressed"),
         ConfigKey("LEVEL", .int, default: "gzip 6, zstd 3", help: "compression level (gzip 1-9, zstd 1-19)")]
            + (threads ? [ConfigKey("THREADS", .int, default: "CPU count", help: "zstd worker threads (1-64)")] : [])
    }

    /// Reads a target's `COMPRESSION`, `LEVEL` and (with `threads`) `THREADS` keys. A level
    /// outside the algorithm's range is an `invalidValue` naming the key.
    public init(settings s: TargetSettings, defaultName: String = "gzip", threads: Bool = true) throws {
        self = try Compression.read(s, defaultName: defaultName, threads: threads).compression
    }

    /// As `init(settings:)`, also giving the level as written (nil when `LEVEL` is unset), for
    /// a kind that leaves the default level to a server.
    public static func read(_ s: TargetSettings, defaultName: String = "gzip", threads: Bool = true) throws -> (compression: Compression, level: Int?) {
        let name = try s.choice("COMPRESSION", names, default: defaultName)
        let range = name == "gzip" ? gzipLevels : zstdLevels
        let level = s.string("LEVEL") == nil ? nil : try s.int("LEVEL", default: 0, range: range)
        let threadCount = threads ? try s.int("THREADS", default: ProcessInfo.processInfo.activeProcessorCount, range: 1...64) : 1
        // `name` is one of `names`, which `parse` knows.
        return (parse(name, level: level, threads: threadCount) ?? .none, level)
    }
}
