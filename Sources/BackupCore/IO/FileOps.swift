import Foundation

/// Small, careful file-system helpers. Backups are 0600 files in 0700 directories.
public enum FileOps {
    /// Mode for every file Backstop creates.
    public static let fileMode: mode_t = 0o600
    /// Mode for every directory Backstop creates.
    public static let directoryMode: mode_t = 0o700

    /// Creates `path` and any missing parents with mode 0700.
    public static func makeDirectory(_ path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            if isDir.boolValue { return }
            throw OperationError("\(path) exists and is not a directory")
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path { try makeDirectory(parent) }
        if mkdir(path, directoryMode) != 0 && errno != EEXIST { throw SystemError("mkdir", path) }
        _ = chmod(path, directoryMode)
    }

    /// Writes `data` to `path` atomically: a temporary sibling, fsync, rename, fsync of the directory.
    public static func writeAtomically(_ data: Data, to path: String, mode: mode_t = fileMode) throws {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("create", tmp) }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        try data.withUnsafeBytes { raw in
            var offset = 0
            // In two halves, so a test can crash the process between them (`Fault`).
            for end in [raw.count / 2, raw.count] {
                while offset < end {
                    let n = write(fd, raw.baseAddress! + offset, end - offset)
                    if n < 0 { if errno == EINTR { continue }; let e = errno; close(fd); throw SystemError("write", tmp, code: e) }
                    offset += n
                }
                if end < raw.count {
                    do { try Fault.point("write-" + (path as NSString).lastPathComponent) } catch { close(fd); throw error }
                }
            }
        }
        if fsync(fd) != 0 { let e = errno; close(fd); throw SystemError("fsync", tmp, code: e) }
        close(fd)
        guard Glibc.rename(tmp, path) == 0 else { throw SystemError("rename", path) }
        ok = true
        syncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// fsyncs a directory so a rename inside it survives a crash.
    public static func syncDirectory(_ path: String) {
        let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    /// Renames atomically and makes the rename durable.
    public static func rename(_ from: String, to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw SystemError("rename \(from) to", to) }
        syncDirectory((to as NSString).deletingLastPathComponent)
    }

    /// Removes a file or a whole tree; a missing path is not an error. Read-only folders inside
    /// (extracted archives) are made writable first so removal cannot half-fail.
    public static func removeTree(_ path: String) throws {
        try removeTree(RawPath(path))
    }

    /// Removes a file or a whole tree given as byte-exact path; a missing path is not an error.
    public static func removeTree(_ path: RawPath) throws {
        guard let st = path.lstat() else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            _ = path.withCString { chmod($0, 0o700) }
            for child in path.children() ?? [] { try removeTree(path.appending(child)) }
            guard path.withCString({ rmdir($0) }) == 0 || errno == ENOENT else { throw SystemError("rmdir", path.display) }
        } else {
            guard path.withCString({ unlink($0) }) == 0 || errno == ENOENT else { throw SystemError("unlink", path.display) }
        }
    }

    /// True if `path` exists (without following a final symlink).
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// True if `path` is a directory (following symlinks).
    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// The size in bytes of a regular file, or nil.
    public static func size(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    /// Calls `body` with the stat of every regular file under `path` (not following symlinks),
    /// leaving out the folders in `skipping` (absolute paths as given). The walk uses byte-exact
    /// names, so files whose names are not valid UTF-8 are counted too.
    private static func eachRegularFile(under path: String, skipping: Set<String> = [], _ body: (stat) -> Void) {
        if skipping.contains(path) { return }
        guard isDirectory(path) else {
            var st = stat()
            if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { body(st) }
            return
        }
        eachRegularFile(under: RawPath(path), skipping: Set(skipping.map { RawPath($0) }), body)
    }

    private static func eachRegularFile(under dir: RawPath, skipping: Set<RawPath>, _ body: (stat) -> Void) {
        for name in dir.children() ?? [] {
            let child = dir.appending(name)
            guard let st = child.lstat() else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFREG: body(st)
            case S_IFDIR: if !skipping.contains(child) { eachRegularFile(under: child, skipping: skipping, body) }
            default: break
            }
        }
    }

    /// Identifies a file across hard links: its inode on its device.
    private static func inodeKey(_ st: stat) -> UInt64 { UInt64(st.st_ino) ^ (UInt64(st.st_dev) << 48) }

    /// The bytes that deleting `path` would free: regular files whose every hard link lies
    /// inside it. A file an rsync snapshot shares with other snapshots is not counted (that
    /// is where `du` misleads). This walks the whole tree; `SetSizes` answers from records.
    public static func freedSize(_ path: String) -> Int64 {
        freedSize([path])
    }

    /// The bytes that deleting all of `paths` together would free (files whose every hard link
    /// lies inside them), leaving out the folders in `skipping`.
    public static func freedSize(_ paths: [String], skipping: Set<String> = []) -> Int64 {
        var total: Int64 = 0
        var linked: [UInt64: (seen: Int, links: Int, bytes: Int64)] = [:]
        for path in paths {
            eachRegularFile(under: path, skipping: skipping) { st in
                if st.st_nlink <= 1 { total += Int64(st.st_size); return }
                var entry = linked[inodeKey(st)] ?? (0, Int(st.st_nlink), Int64(st.st_size))
                entry.seen += 1
                linked[inodeKey(st)] = entry
            }
        }
        for entry in linked.values where entry.seen >= entry.links { total += entry.bytes }
        return total
    }

    /// The bytes of all regular files under `paths`, each hard-linked file counted once,
    /// leaving out the folders in `skipping`.
    public static func diskUsage(_ paths: [String], skipping: Set<String> = []) -> Int64 {
        var seen = Set<UInt64>()
        var total: Int64 = 0
        for path in paths {
            eachRegularFile(under: path, skipping: skipping) { st in
                if st.st_nlink > 1 && !seen.insert(inodeKey(st)).inserted { return }
                total += Int64(st.st_size)
            }
        }
        return total
    }

    /// Total apparent size of all regular files under `path`.
    public static func treeSize(_ path: String) -> Int64 {
        guard isDirectory(path) else { return size(path) ?? 0 }
        var total: Int64 = 0
        eachRegularFile(under: path) { total += Int64($0.st_size) }
        return total
    }
}
