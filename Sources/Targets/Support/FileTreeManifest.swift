import BackupCore
import Foundation

/// One entry of a snapshot's per-file manifest.
struct FileTreeEntry: Sendable, Equatable {
    /// `f` for a regular file, `l` for a symlink (its hash is the hash of the link's target text).
    var type: UInt8
    /// The path relative to the snapshot root, as bytes.
    var path: RawPath
    var size: Int64
    var mtimeSeconds: Int
    var mtimeNanoseconds: Int
    var mode: UInt32
    var sha256: String
}

/// The per-file manifest of an rsync snapshot: one line per file, byte-exact names.
///
/// ```
/// # backstop-files/1
/// f <sha256> <size> <mtime sec.nsec> <mode octal> <path>
/// ```
/// Path bytes outside printable ASCII, and `%`, are written as `%XX`, so a line never holds
/// a space, newline or invalid UTF-8 inside a field.
enum FileTreeManifest {
    static let header = "# backstop-files/1"

    static func escape(_ bytes: [UInt8]) -> String {
        var out = ""
        out.reserveCapacity(bytes.count)
        for b in bytes {
            if b > 0x20 && b < 0x7F && b != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(hex[Int(b >> 4)])
                out.unicodeScalars.append(hex[Int(b & 0xF)])
            }
        }
        return out
    }

    static func unescape<S: Sequence>(_ text: S) -> [UInt8]? where S.Element == UInt8 {
        var out: [UInt8] = []
        var it = text.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else { return nil }
                out.append(hv << 4 | lv)
            } else {
                out.append(b)
            }
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    static func line(_ e: FileTreeEntry) -> String {
        let ns = String(e.mtimeNanoseconds)
        return "\(Character(Unicode.Scalar(e.type))) \(e.sha256) \(e.size) \(e.mtimeSeconds).\(String(repeating: "0", count: max(0, 9 - ns.count)))\(ns) \(String(e.mode, radix: 8)) \(escape(e.path.bytes))\n"
    }

    /// Parses a whole manifest; throws on any malformed line.
    static func parse(_ data: Data) throws -> [FileTreeEntry] {
        var entries: [FileTreeEntry] = []
        let bytes = [UInt8](data)
        var lineNumber = 0
        for raw in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            lineNumber += 1
            if lineNumber == 1 {
                guard String(decoding: raw, as: UTF8.self) == header else { throw OperationError("per-file manifest: unknown format") }
                continue
            }
            let fields = raw.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard fields.count == 6, fields[0].count == 1,
                  let size = Int64(String(decoding: fields[2], as: UTF8.self)),
                  let mode = UInt32(String(decoding: fields[4], as: UTF8.self), radix: 8),
                  let path = unescape(fields[5]) else {
                throw OperationError("per-file manifest: malformed line \(lineNumber)")
            }
            let mtime = String(decoding: fields[3], as: UTF8.self).split(separator: ".")
            guard mtime.count == 2, let sec = Int(mtime[0]), let nsec = Int(mtime[1]) else {
                throw OperationError("per-file manifest: malformed mtime on line \(lineNumber)")
            }
            entries.append(FileTreeEntry(type: fields[0].first!, path: RawPath(bytes: path), size: size, mtimeSeconds: sec,
                                         mtimeNanoseconds: nsec, mode: mode, sha256: String(decoding: fields[1], as: UTF8.self)))
        }
        guard lineNumber >= 1 else { throw OperationError("per-file manifest: empty") }
        return entries
    }

    /// Decodes a name as rsync prints it in `--out-format` output: `\#ooo` stands for one
    /// byte (rsync escapes control characters, bytes it cannot print in the C locale, and a
    /// literal backslash that is followed by `#` and three digits).
    static func rsyncUnescape(_ text: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var i = text.startIndex
        while i < text.endIndex {
            let b = text[i]
            if b == UInt8(ascii: "\\"), i + 4 < text.endIndex, text[i + 1] == UInt8(ascii: "#"),
               let v = octal(text[(i + 2)...(i + 4)]) {
                out.append(v)
                i += 5
            } else {
                out.append(b)
                i += 1
            }
        }
        return out
    }

    private static func octal(_ digits: ArraySlice<UInt8>) -> UInt8? {
        var v = 0
        for d in digits {
            guard d >= UInt8(ascii: "0") && d <= UInt8(ascii: "7") else { return nil }
            v = v * 8 + Int(d - UInt8(ascii: "0"))
        }
        return v <= 255 ? UInt8(v) : nil
    }

    /// Hashes a regular file (or a symlink's target text) by reading it once.
    static func hash(_ path: RawPath, isLink: Bool) throws -> String {
        if isLink {
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = path.withCString { readlink($0, &buf, buf.count) }
            guard n >= 0 else { throw SystemError("readlink", path.display) }
            var h = StreamingSHA256()
            buf.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            return h.hexDigest()
        }
        let fd = path.withCString { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError("open", path.display) }
        defer { close(fd) }
        var h = StreamingSHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress!, buffer.count)
            if n < 0 { if errno == EINTR { continue }; throw SystemError("read", path.display) }
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return h.hexDigest()
    }
}

/// A depth-first walk of a tree with byte-exact names, calling `visit(relative, stat)` for
/// every entry below the root (not the root itself).
enum TreeWalk {
    static func walk(_ root: RawPath, _ visit: (RawPath, stat) throws -> Void) throws {
        try walk(root, relative: RawPath(bytes: []), visit)
    }

    private static func walk(_ dir: RawPath, relative: RawPath, _ visit: (RawPath, stat) throws -> Void) throws {
        guard let children = dir.children() else { throw OperationError("cannot read folder \(dir.display)") }
        for name in children {
            let full = dir.appending(name)
            let rel = relative.appending(name)
            guard let st = full.lstat() else { continue }
            try visit(rel, st)
            if (st.st_mode & S_IFMT) == S_IFDIR { try walk(full, relative: rel, visit) }
        }
    }
}
