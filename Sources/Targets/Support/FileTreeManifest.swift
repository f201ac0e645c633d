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
///
/// Snapshots written since issue 20 list their files sorted by the raw bytes of the path
/// (the order `TreeWalk.sortedWalk` visits them; the record's fact `manifestOrder` is
/// `path-bytes`), so a backup can merge the previous manifest with the new tree as two sorted
/// streams and `verify --deep` can find extra files without holding the list in memory. The
/// line format and header are unchanged, so older readers read the new manifests and older
/// (walk-ordered) manifests are still read (`RsyncSnapshotTarget.sortedEntries` sorts them in
/// memory, once). Use `Reader` to stream a manifest.
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

    /// Parses a whole manifest held in memory; throws on any malformed line. `Reader` streams
    /// one from a file instead.
    static func parse(_ data: Data) throws -> [FileTreeEntry] {
        var entries: [FileTreeEntry] = []
        let bytes = [UInt8](data)
        var lineNumber = 0
        for raw in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            lineNumber += 1
            if lineNumber == 1 {
                guard raw.elementsEqual(header.utf8) else { throw OperationError("per-file manifest: unknown format") }
                continue
            }
            entries.append(try parseLine(raw, lineNumber: lineNumber))
        }
        guard lineNumber >= 1 else { throw OperationError("per-file manifest: empty") }
        return entries
    }

    /// Parses one entry line (without its newline).
    static func parseLine(_ raw: ArraySlice<UInt8>, lineNumber: Int) throws -> FileTreeEntry {
        let fields = raw.split(separator: UInt8(ascii: " "), maxSplits: 6, omittingEmptySubsequences: false)
        guard fields.count == 6, fields[0].count == 1, fields[1].count == 64,
              let size = decimal(fields[2]), let mode = octalNumber(fields[4]), mode <= 0o7777,
              let path = unescape(fields[5]), !path.isEmpty else {
            throw OperationError("per-file manifest: malformed line \(lineNumber)")
        }
        guard let dot = fields[3].firstIndex(of: UInt8(ascii: ".")),
              let sec = decimal(fields[3][fields[3].startIndex..<dot], signed: true),
              let nsec = decimal(fields[3][(dot + 1)...]), nsec < 1_000_000_000 else {
            throw OperationError("per-file manifest: malformed mtime on line \(lineNumber)")
        }
        return FileTreeEntry(type: fields[0].first!, path: RawPath(bytes: path), size: size, mtimeSeconds: Int(sec),
                             mtimeNanoseconds: Int(nsec), mode: mode, sha256: String(decoding: fields[1], as: UTF8.self))
    }

    private static func decimal(_ digits: ArraySlice<UInt8>, signed: Bool = false) -> Int64? {
        var d = digits[...]
        var negative = false
        if signed, d.first == UInt8(ascii: "-") { negative = true; d = d.dropFirst() }
        guard !d.isEmpty, d.count <= 18 else { return nil }
        var v: Int64 = 0
        for c in d {
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
            v = v * 10 + Int64(c - UInt8(ascii: "0"))
        }
        return negative ? -v : v
    }

    private static func octalNumber(_ digits: ArraySlice<UInt8>) -> UInt32? {
        guard !digits.isEmpty, digits.count <= 6 else { return nil }
        var v: UInt32 = 0
        for c in digits {
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "7") else { return nil }
            v = v * 8 + UInt32(c - UInt8(ascii: "0"))
        }
        return v
    }

    /// Streams a per-file manifest from a file, one entry at a time, in file order: memory
    /// stays at one read buffer whatever the number of files. With `requireSorted`, an entry
    /// whose path does not sort strictly after the one before (by raw bytes) is an error, so a
    /// merge never silently skips files of a tampered or unsorted manifest.
    final class Reader {
        let path: String
        private let fd: Int32
        private var buffer: [UInt8] = []
        private var start = 0
        private var eof = false
        private var lineNumber = 0
        private var previous: [UInt8]?
        private let requireSorted: Bool
        private var hash = StreamingSHA256()
        /// The SHA-256 of every byte read so far (all of the file once `next()` returned nil).
        var hexDigest: String { hash.hexDigest() }

        /// Opens `path` and checks the header line.
        init(path: String, requireSorted: Bool = false) throws {
            self.path = path
            self.requireSorted = requireSorted
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("open", path) }
            guard let first = try nextLine() else { close(fd); throw OperationError("per-file manifest: empty") }
            guard first.elementsEqual(FileTreeManifest.header.utf8) else { close(fd); throw OperationError("per-file manifest: unknown format") }
        }

        deinit { close(fd) }

        /// The next entry, or nil at the end of the file.
        func next() throws -> FileTreeEntry? {
            while let raw = try nextLine() {
                if raw.isEmpty { continue }
                let entry = try FileTreeManifest.parseLine(raw, lineNumber: lineNumber)
                if requireSorted {
                    if let previous, !previous.lexicographicallyPrecedes(entry.path.bytes) {
                        throw OperationError("per-file manifest: line \(lineNumber) is out of order (the file list is not sorted by path)")
                    }
                    previous = entry.path.bytes
                }
                return entry
            }
            return nil
        }

        /// Calls `body` with every remaining entry.
        func forEach(_ body: (FileTreeEntry) throws -> Void) throws {
            while let e = try next() { try body(e) }
        }

        private func nextLine() throws -> ArraySlice<UInt8>? {
            while true {
                if let nl = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    let line = buffer[start..<nl]
                    start = nl + 1
                    lineNumber += 1
                    return line
                }
                if eof {
                    guard start < buffer.count else { return nil }
                    let line = buffer[start...]
                    start = buffer.count
                    lineNumber += 1
                    return line
                }
                if start > 0 { buffer.removeSubrange(0..<start); start = 0 }
                guard buffer.count < 1 << 24 else { throw OperationError("per-file manifest: line \(lineNumber + 1) is longer than 16 MiB") }
                let chunk = 1 << 20
                let old = buffer.count
                buffer.append(contentsOf: repeatElement(0, count: chunk))
                let n = buffer.withUnsafeMutableBytes { raw -> Int in
                    while true {
                        let r = read(fd, raw.baseAddress! + old, chunk)
                        if r < 0 && errno == EINTR { continue }
                        return r
                    }
                }
                guard n >= 0 else { buffer.removeSubrange(old...); throw SystemError("read", path) }
                buffer.removeSubrange((old + n)...)
                buffer.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[old..<(old + n)])) }
                if n == 0 { eof = true }
            }
        }
    }

    /// The SHA-256 of a file, read in 1 MiB blocks.
    static func fileDigest(_ path: String) throws -> String {
        try sha256OfFile(path).hex
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
    /// Like `walk`, but visits files in the order of their relative paths' raw bytes (the
    /// order of a sorted per-file manifest): within a folder, a subfolder sorts as its name
    /// followed by `/`, so `a-b` comes before `a/x` as `-` (0x2D) sorts before `/` (0x2F).
    /// A folder is visited just before its contents. Memory: one listing per level.
    static func sortedWalk(_ root: RawPath, _ visit: (RawPath, stat) throws -> Void) throws {
        try sortedWalk(root, relative: RawPath(bytes: []), visit)
    }

    private static func sortedWalk(_ dir: RawPath, relative: RawPath, _ visit: (RawPath, stat) throws -> Void) throws {
        guard let names = dir.children() else { throw OperationError("cannot read folder \(dir.display)") }
        var children: [(key: [UInt8], name: [UInt8], st: stat)] = []
        children.reserveCapacity(names.count)
        for name in names {
            guard let st = dir.appending(name).lstat() else { continue }
            children.append(((st.st_mode & S_IFMT) == S_IFDIR ? name + [UInt8(ascii: "/")] : name, name, st))
        }
        children.sort { $0.key.lexicographicallyPrecedes($1.key) }
        for child in children {
            let rel = relative.appending(child.name)
            try visit(rel, child.st)
            if (child.st.st_mode & S_IFMT) == S_IFDIR { try sortedWalk(dir.appending(child.name), relative: rel, visit) }
        }
    }

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
