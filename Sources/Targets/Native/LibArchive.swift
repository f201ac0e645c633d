import BackupCore
import CArchive
import CShims
import Foundation

// The thin layer over libarchive. Every libarchive call and unsafe pointer in Backstop is in
// this file; targets use the Swift types below.

/// An error reported by libarchive, with its message.
public struct ArchiveError: UserFacingError {
    /// libarchive's message, with context.
    public let message: String
    public var exitStatus: ExitStatus { .failure }
}

private func check(_ a: OpaquePointer?, _ rc: Int32, _ what: String) throws {
    if rc == ARCHIVE_OK || rc == ARCHIVE_WARN { return }
    let msg = archive_error_string(a).map { String(cString: $0) } ?? "error \(rc)"
    throw ArchiveError(message: "\(what): \(msg)")
}

/// Runs `body` with the calling thread's character set switched, whatever the process locale.
///
/// Reading (`utf8: false`, the C locale): libarchive converts UTF-8 pax names into the locale's
/// character set and, when it does, normalises them to Unicode NFC (archive_string.c,
/// SCONV_NORMALIZATION_C), so `cafe\u{301}` and `café` would come out as one name. Under the C
/// locale that conversion fails for every non-ASCII name and libarchive keeps the name's
/// original bytes instead (reporting ARCHIVE_WARN, which is expected): names come out byte for
/// byte as stored.
///
/// Writing (`utf8: true`, C.UTF-8): a valid UTF-8 name is written as a standard UTF-8 pax name,
/// unchanged (libarchive only normalises when reading on Linux), and any other name fails the
/// conversion, so libarchive writes that entry's names as bytes with `hdrcharset=BINARY`.
private func withCharacterSet<T>(utf8: Bool, _ body: () throws -> T) rethrows -> T {
    let previous = backstop_use_ctype(utf8 ? 1 : 0)
    defer { backstop_restore_locale(previous) }
    return try body()
}

/// The libarchive version string, e.g. `libarchive 3.6.2 zlib/1.2.13 ...`.
public var libarchiveVersion: String { String(cString: archive_version_details()) }

/// Writes a tar archive (or one raw compressed stream) into a `HashingFileWriter`, so the
/// SHA-256 is computed from the compressed bytes as they are produced.
public final class ArchiveWriter {
    private let archive: OpaquePointer
    private let disk: OpaquePointer
    private let sink: HashingFileWriter
    private var sinkError: Error?
    private var closed = false
    private let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)

    /// What to write.
    public enum Format { case tar, raw }

    /// Opens a writer over `sink`.
    public init(sink: HashingFileWriter, format: Format, compression: Compression) throws {
        self.sink = sink
        archive = archive_write_new()
        disk = archive_read_disk_new()
        archive_read_disk_set_standard_lookup(disk)
        switch format {
        case .tar: try check(archive, archive_write_set_format_pax_restricted(archive), "tar format")
        case .raw: try check(archive, archive_write_set_format_raw(archive), "raw format")
        }
        switch compression {
        case .none: break
        case let .gzip(level):
            try check(archive, archive_write_add_filter_gzip(archive), "gzip filter")
            try check(archive, archive_write_set_filter_option(archive, "gzip", "compression-level", "\(level)"), "gzip level")
        case let .zstd(level, threads):
            try check(archive, archive_write_add_filter_zstd(archive), "zstd filter")
            try check(archive, archive_write_set_filter_option(archive, "zstd", "compression-level", "\(level)"), "zstd level")
            if threads > 1 {
                try check(archive, archive_write_set_filter_option(archive, "zstd", "threads", "\(threads)"), "zstd threads")
            }
        }
        archive_write_set_bytes_in_last_block(archive, 1)
        let me = Unmanaged.passUnretained(self).toOpaque()
        let rc = archive_write_open(archive, me, nil, { _, client, data, length in
            let writer = Unmanaged<ArchiveWriter>.fromOpaque(client!).takeUnretainedValue()
            do {
                try writer.sink.write(UnsafeRawBufferPointer(start: data, count: length))
                return la_ssize_t(length)
            } catch {
                writer.sinkError = error
                return -1
            }
        }, nil)
        try rethrowing(rc, "open archive")
    }

    deinit {
        archive_write_free(archive)
        archive_read_free(disk)
        buffer.deallocate()
    }

    private func rethrowing(_ rc: Int32, _ what: String) throws {
        if let sinkError { throw sinkError }
        try check(archive, rc, what)
    }

    /// Adds the file system object at `path` (not following a final symlink) as `name`.
    /// Regular files' bytes are streamed; returns the bytes of content added.
    @discardableResult
    public func addPath(_ path: String, as name: String) throws -> Int64 {
        try addPath(RawPath(path), as: RawPath(name))
    }

    /// Adds the object at byte-exact `path` as byte-exact `name` (names need not be UTF-8).
    /// A regular file's bytes are also handed to `onData` as they are read (e.g. to hash each
    /// member without reading it twice).
    @discardableResult
    public func addPath(_ path: RawPath, as name: RawPath, onData: ((UnsafeRawBufferPointer) -> Void)? = nil) throws -> Int64 {
        let entry = archive_entry_new()
        defer { archive_entry_free(entry) }
        guard var st = path.lstat() else { throw SystemError("stat", path.display) }
        let isRegular = (st.st_mode & S_IFMT) == S_IFREG
        let fd = isRegular ? path.withCString { open($0, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) } : -1
        if isRegular && fd < 0 { throw SystemError("open", path.display) }
        defer { if fd >= 0 { Glibc.close(fd) } }
        path.withCString { archive_entry_copy_sourcepath(entry, $0) }
        try check(disk, archive_read_disk_entry_from_file(disk, entry, fd, &st), "read metadata of \(path.display)")
        name.withCString { archive_entry_copy_pathname(entry, $0) }
        try rethrowing(withCharacterSet(utf8: true) { archive_write_header(archive, entry) }, "add \(path.display)")
        guard isRegular else { return 0 }
        var total: Int64 = 0
        while true {
            let n = read(fd, buffer, 1 << 20)
            if n < 0 { if errno == EINTR { continue }; throw SystemError("read", path.display) }
            if n == 0 { break }
            onData?(UnsafeRawBufferPointer(start: buffer, count: n))
            let w = archive_write_data(archive, buffer, n)
            if w < 0 { try rethrowing(Int32(w), "write \(path.display)") }
            total += Int64(n)
        }
        if total != Int64(st.st_size) {
            throw ArchiveError(message: "\(path.display) changed size while it was read (\(st.st_size) -> \(total) bytes)")
        }
        return total
    }

    /// Adds the regular file or symlink `leaf` of `folder` (opened below a restore's destination,
    /// never following a link) as byte-exact `name`, with its mode, owner and times: the safety
    /// copy of what a restore will overwrite. Other kinds of file are refused.
    @discardableResult
    public func addObject(in folder: BeneathDirectory.Folder, _ leaf: [UInt8], as name: RawPath) throws -> Int64 {
        guard var st = try folder.status(leaf) else { throw SystemError("stat", name.display, code: ENOENT) }
        let entry = archive_entry_new()
        defer { archive_entry_free(entry) }
        name.withCString { archive_entry_copy_pathname(entry, $0) }
        var fd: Int32 = -1
        defer { if fd >= 0 { Glibc.close(fd) } }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            fd = try folder.openForReading(leaf)
            guard fstat(fd, &st) == 0 else { throw SystemError("stat", name.display) }
            archive_entry_copy_stat(entry, &st)
        case S_IFLNK:
            archive_entry_copy_stat(entry, &st)
            RawPath(bytes: try folder.linkTarget(leaf)).withCString { archive_entry_copy_symlink(entry, $0) }
        default:
            throw OperationError("\(name.display) is neither a file nor a symbolic link; not copying it")
        }
        try rethrowing(withCharacterSet(utf8: true) { archive_write_header(archive, entry) }, "add \(name.display)")
        guard fd >= 0 else { return 0 }
        var total: Int64 = 0
        while true {
            let n = read(fd, buffer, 1 << 20)
            if n < 0 { if errno == EINTR { continue }; throw SystemError("read", name.display) }
            if n == 0 { break }
            let w = archive_write_data(archive, buffer, n)
            if w < 0 { try rethrowing(Int32(w), "write \(name.display)") }
            total += Int64(n)
        }
        if total != Int64(st.st_size) {
            throw ArchiveError(message: "\(name.display) changed size while it was read (\(st.st_size) -> \(total) bytes)")
        }
        return total
    }

    /// Adds one regular entry named `name` whose bytes come from `produce` (raw format: the name
    /// is ignored). `produce` is called with a write function until it returns.
    public func addStream(name: String, size: Int64?, mode: mode_t = 0o600,
                          produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let entry = archive_entry_new()
        defer { archive_entry_free(entry) }
        archive_entry_copy_pathname(entry, name)
        archive_entry_set_filetype(entry, UInt32(Glibc.S_IFREG))
        archive_entry_set_perm(entry, mode)
        if let size { archive_entry_set_size(entry, size) }
        archive_entry_set_mtime(entry, time(nil), 0)
        try rethrowing(withCharacterSet(utf8: true) { archive_write_header(archive, entry) }, "add \(name)")
        try produce { chunk in
            guard chunk.count > 0 else { return }
            let w = archive_write_data(archive, chunk.baseAddress, chunk.count)
            if w < 0 { try rethrowing(Int32(w), "write \(name)") }
        }
    }

    /// Finishes the archive (flushing the compressor). The sink is not closed.
    public func close() throws {
        guard !closed else { return }
        closed = true
        try rethrowing(archive_write_close(archive), "finish archive")
    }
}

/// One entry read from an archive. Names are kept as the archive's bytes.
public struct ArchiveEntryInfo: Sendable {
    /// The stored path name, byte-exact.
    public let rawPath: RawPath
    /// The stored path name for display and messages (invalid UTF-8 shown as `\xNN`); compare
    /// names with `rawPath`, never with this (Swift strings equate NFC and NFD forms).
    public var path: String { rawPath.display }
    /// The stored symlink target, byte-exact, for symlinks.
    public let rawSymlink: RawPath?
    /// The stored hard-link target, byte-exact, for hard links.
    public let rawHardlink: RawPath?
    /// The symlink target for display.
    public var symlink: String? { rawSymlink?.display }
    /// The hard-link target for display.
    public var hardlink: String? { rawHardlink?.display }
    /// Size of the content.
    public let size: Int64
    /// File type bits (S_IFREG, S_IFDIR, ...).
    public let type: mode_t
    /// Permission bits, with the set-user-ID, set-group-ID and sticky bits.
    public let mode: mode_t
    /// Modification time (seconds).
    public let mtime: Int
    /// Nanoseconds of the modification time.
    public let mtimeNanoseconds: Int
    /// Numeric owner and group.
    public let uid: uid_t, gid: gid_t
    /// Owner and group names, when stored.
    public let userName: String?, groupName: String?

    /// True for directories.
    public var isDirectory: Bool { type == S_IFDIR }

    /// An entry description (for tests and callers that build entries themselves).
    public init(rawPath: RawPath, rawSymlink: RawPath? = nil, rawHardlink: RawPath? = nil, size: Int64 = 0,
                type: mode_t = S_IFREG, mode: mode_t = 0o644, mtime: Int = 0, mtimeNanoseconds: Int = 0,
                uid: uid_t = 0, gid: gid_t = 0, userName: String? = nil, groupName: String? = nil) {
        self.rawPath = rawPath
        self.rawSymlink = rawSymlink
        self.rawHardlink = rawHardlink
        self.size = size
        self.type = type
        self.mode = mode
        self.mtime = mtime
        self.mtimeNanoseconds = mtimeNanoseconds
        self.uid = uid
        self.gid = gid
        self.userName = userName
        self.groupName = groupName
    }
}

/// Reads an archive (any format and compression libarchive knows, or raw compressed data)
/// from a `HashingFileReader`, so verification hashes the very bytes it decompresses.
public final class ArchiveReader {
    private let archive: OpaquePointer
    private let source: HashingFileReader
    private var current: OpaquePointer?
    private var sourceError: Error?

    /// Opens `source`. `raw` treats the data as one compressed stream rather than an archive.
    public init(source: HashingFileReader, raw: Bool = false) throws {
        self.source = source
        archive = archive_read_new()
        archive_read_support_filter_all(archive)
        if raw {
            archive_read_support_format_raw(archive)
        } else {
            archive_read_support_format_all(archive)
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        let rc = archive_read_open(archive, me, nil, { _, client, bufferOut in
            let reader = Unmanaged<ArchiveReader>.fromOpaque(client!).takeUnretainedValue()
            do {
                let n = try reader.source.read()
                bufferOut?.pointee = UnsafeRawPointer(reader.source.buffer.baseAddress)
                return la_ssize_t(n)
            } catch {
                reader.sourceError = error
                return -1
            }
        }, nil)
        try rethrowing(rc, "open \(source.path)")
    }

    deinit { archive_read_free(archive) }

    private func rethrowing(_ rc: Int32, _ what: String) throws {
        if let sourceError { throw sourceError }
        try check(archive, rc, what)
    }

    /// The entry `next()` returned last.
    public private(set) var currentInfo: ArchiveEntryInfo?

    /// Moves to the next entry; nil at the end. Names come out byte for byte as stored.
    public func next() throws -> ArchiveEntryInfo? {
        var entry: OpaquePointer?
        let rc = withCharacterSet(utf8: false) { archive_read_next_header(archive, &entry) }
        if rc == ARCHIVE_EOF { current = nil; currentInfo = nil; return nil }
        try rethrowing(rc, "read \(source.path)")
        current = entry
        let info = ArchiveEntryInfo(rawPath: Self.raw(archive_entry_pathname(entry)) ?? RawPath(""),
                                    rawSymlink: Self.raw(archive_entry_symlink(entry)),
                                    rawHardlink: Self.raw(archive_entry_hardlink(entry)),
                                    size: archive_entry_size(entry),
                                    type: mode_t(archive_entry_filetype(entry)),
                                    mode: mode_t(archive_entry_perm(entry)),
                                    mtime: Int(archive_entry_mtime(entry)),
                                    mtimeNanoseconds: Int(archive_entry_mtime_nsec(entry)),
                                    uid: uid_t(truncatingIfNeeded: archive_entry_uid(entry)),
                                    gid: gid_t(truncatingIfNeeded: archive_entry_gid(entry)),
                                    userName: Self.raw(archive_entry_uname(entry)).map(\.display),
                                    groupName: Self.raw(archive_entry_gname(entry)).map(\.display))
        currentInfo = info
        return info
    }

    private static func raw(_ p: UnsafePointer<CChar>?) -> RawPath? {
        guard let p else { return nil }
        return RawPath(bytes: Array(UnsafeRawBufferPointer(start: p, count: strlen(p))))
    }

    /// Reads the current entry's content, handing it out in chunks; returns the byte count.
    @discardableResult
    public func readData(_ body: (UnsafeRawBufferPointer) throws -> Void = { _ in }) throws -> Int64 {
        var total: Int64 = 0
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        while true {
            let rc = archive_read_data_block(archive, &block, &size, &offset)
            if rc == ARCHIVE_EOF { return total }
            try rethrowing(rc, "read data of \(source.path)")
            if size > 0 { try body(UnsafeRawBufferPointer(start: block, count: size)) }
            total += Int64(size)
        }
    }

    /// Reads the current entry's content as blocks at their offsets in the file (a sparse entry
    /// has gaps between them); returns the end of the last block.
    @discardableResult
    public func readBlocks(_ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws -> Int64 {
        var end: Int64 = 0
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        while true {
            let rc = archive_read_data_block(archive, &block, &size, &offset)
            if rc == ARCHIVE_EOF { return end }
            try rethrowing(rc, "read data of \(source.path)")
            if size > 0 { try body(UnsafeRawBufferPointer(start: block, count: size), Int64(offset)) }
            end = max(end, Int64(offset) + Int64(size))
        }
    }

    /// Reads every entry and its content to the end: the full read-through that verify does.
    /// Returns the number of entries and content bytes.
    public func readThrough() throws -> (entries: Int, bytes: Int64) {
        var entries = 0
        var bytes: Int64 = 0
        while try next() != nil {
            entries += 1
            bytes += try readData()
        }
        return (entries, bytes)
    }
}

/// Path rules for archive entries.
public enum ArchivePaths {
    /// True if `name` is relative and has no `..` component: it cannot escape the target.
    public static func isSafe(_ name: String) -> Bool { isSafe(RawPath(name)) }

    /// True if the byte-exact `name` is relative, not empty and has no `..` component.
    public static func isSafe(_ name: RawPath) -> Bool {
        !name.bytes.isEmpty && BeneathDirectory.components(of: name) != nil
    }
}
