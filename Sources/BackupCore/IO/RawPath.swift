import Foundation

/// A file path as the kernel sees it: bytes, not necessarily UTF-8. Swift `String` paths
/// silently mangle names with invalid UTF-8, which would drop such files from a backup;
/// directory walks use this type instead.
public struct RawPath: Hashable, Sendable, Comparable {
    /// The path's bytes, without a terminating NUL.
    public var bytes: [UInt8]

    /// A path from its bytes.
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// A path from a (UTF-8) string.
    public init(_ string: String) { bytes = Array(string.utf8) }

    /// `self/component`.
    public func appending(_ component: [UInt8]) -> RawPath {
        if bytes.isEmpty { return RawPath(bytes: component) }
        return RawPath(bytes: bytes + [UInt8(ascii: "/")] + component)
    }

    /// `self/component`.
    public func appending(_ component: RawPath) -> RawPath { appending(component.bytes) }

    /// Calls `body` with a NUL-terminated C string of the path.
    public func withCString<T>(_ body: (UnsafePointer<CChar>) throws -> T) rethrows -> T {
        try (bytes + [0]).withUnsafeBufferPointer { buf in
            try buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count) { try body($0) }
        }
    }

    /// True if the bytes are valid UTF-8.
    public var isUTF8: Bool { String(validating: bytes, as: UTF8.self) != nil }

    /// The path for messages and listings; invalid bytes are shown as `\xNN`.
    public var display: String {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        var out = ""
        var i = 0
        while i < bytes.count {
            // Decode the longest valid UTF-8 run, escape one bad byte, continue.
            var j = bytes.count
            while j > i, String(validating: bytes[i..<j], as: UTF8.self) == nil { j -= 1 }
            if j > i {
                out += String(decoding: bytes[i..<j], as: UTF8.self)
                i = j
            } else {
                out += String(format: "\\x%02X", bytes[i])
                i += 1
            }
        }
        return out
    }

    /// The last path component.
    public var lastComponent: [UInt8] {
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return bytes }
        return Array(bytes[(slash + 1)...])
    }

    /// lstat of the path, or nil if it does not exist.
    public func lstat() -> stat? {
        var st = stat()
        return withCString { Glibc.lstat($0, &st) } == 0 ? st : nil
    }

    /// The names in this directory (without `.` and `..`), sorted bytewise; nil if unreadable.
    public func children() -> [[UInt8]]? {
        guard let dir = withCString({ opendir($0) }) else { return nil }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> [UInt8] in
                Array(raw.prefix { $0 != 0 })
            }
            if name == [46] || name == [46, 46] { continue }
            names.append(name)
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    public static func < (a: RawPath, b: RawPath) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}
