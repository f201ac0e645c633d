import CShims
import Foundation

/// The identity of a file system object: its device and inode. A restore records it when it
/// creates something and removes only what still has it, never by name alone.
public struct FileIdentity: Hashable, Sendable {
    /// `st_dev`.
    public let device: UInt64
    /// `st_ino`.
    public let inode: UInt64

    /// The identity in a stat result.
    public init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

/// A failed operation below a `BeneathDirectory`, with the errno it failed with.
public struct BeneathError: UserFacingError {
    /// Why it failed, as far as a restore cares.
    public enum Reason: Sendable, Equatable {
        /// A system call failed with `code`.
        case system
        /// A component of the path is a symbolic link (never followed).
        case symbolicLink
        /// A component of the path exists and is not a folder.
        case notAFolder
        /// The name is absolute, has a `..` component or is empty.
        case unsafeName
    }
    /// What was being done, e.g. "create".
    public let operation: String
    /// The full path concerned, for messages.
    public let path: String
    /// The errno value (0 when the reason is not a system call's).
    public let code: Int32
    /// The reason.
    public let reason: Reason

    public var message: String {
        switch reason {
        case .system: return "\(operation) \(path): \(String(cString: strerror(code)))"
        case .symbolicLink: return "\(operation) \(path): a symbolic link is in the way (a restore never follows links)"
        case .notAFolder: return "\(operation) \(path): a component of the path is not a folder"
        case .unsafeName: return "\(operation) \(path): the name is absolute, empty or contains '..'"
        }
    }
    public var exitStatus: ExitStatus { .failure }
}

/// A directory opened once, with every operation below it done relative to its descriptor:
/// paths are resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS)` or, where the kernel lacks it, one component at a time with
/// `openat(O_NOFOLLOW | O_DIRECTORY)`. No symbolic link is ever followed and no name can
/// leave the directory, whatever it holds. The process's working directory is never changed.
///
/// Names are byte arrays (components without `/`); `components(of:)` splits and checks them.
public final class BeneathDirectory {
    /// The directory's path, for messages.
    public let path: String
    /// The directory's own descriptor.
    public let root: Folder
    private var useOpenat2 = true

    /// One open folder below (or at) the root. Closed when released.
    public final class Folder {
        /// The descriptor (O_RDONLY | O_DIRECTORY).
        public let fd: Int32
        /// Its path, for messages.
        public let path: String

        init(fd: Int32, path: String) {
            self.fd = fd
            self.path = path
        }

        deinit { Glibc.close(fd) }

        private func full(_ leaf: [UInt8]) -> String { path + "/" + RawPath(bytes: leaf).display }

        private func failure(_ operation: String, _ leaf: [UInt8], _ code: Int32 = errno) -> BeneathError {
            let reason: BeneathError.Reason = code == ELOOP ? .symbolicLink : .system
            return BeneathError(operation: operation, path: full(leaf), code: code, reason: reason)
        }

        private static func checked(_ leaf: [UInt8]) -> Bool {
            !leaf.isEmpty && leaf != [46] && leaf != [46, 46] && !leaf.contains(47) && !leaf.contains(0)
        }

        private func withLeaf<T>(_ leaf: [UInt8], _ operation: String, _ body: (UnsafePointer<CChar>) throws -> T) throws -> T {
            guard Self.checked(leaf) else {
                throw BeneathError(operation: operation, path: full(leaf), code: 0, reason: .unsafeName)
            }
            return try RawPath(bytes: leaf).withCString(body)
        }

        /// The status of `leaf` (not following a symlink), or nil if it does not exist.
        public func status(_ leaf: [UInt8]) throws -> stat? {
            var st = stat()
            let rc = try withLeaf(leaf, "stat") { fstatat(fd, $0, &st, AT_SYMLINK_NOFOLLOW) }
            if rc == 0 { return st }
            if errno == ENOENT { return nil }
            throw failure("stat", leaf)
        }

        /// The status of this folder itself.
        public func status() throws -> stat {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw BeneathError(operation: "stat", path: path, code: errno, reason: .system) }
            return st
        }

        /// Opens the folder `leaf`; a symlink or a non-folder there is an error.
        public func folder(_ leaf: [UInt8]) throws -> Folder {
            let child = try withLeaf(leaf, "open") { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            guard child >= 0 else {
                let code = errno
                if code == ENOTDIR, let st = try? status(leaf) {
                    let isLink = (st.st_mode & S_IFMT) == S_IFLNK
                    throw BeneathError(operation: "open", path: full(leaf), code: code, reason: isLink ? .symbolicLink : .notAFolder)
                }
                throw failure("open", leaf, code)
            }
            return Folder(fd: child, path: full(leaf))
        }

        /// Creates the folder `leaf` with mode 0700; false if something is already there.
        public func makeFolder(_ leaf: [UInt8]) throws -> Bool {
            let rc = try withLeaf(leaf, "create folder") { mkdirat(fd, $0, 0o700) }
            if rc == 0 { return true }
            if errno == EEXIST { return false }
            throw failure("create folder", leaf)
        }

        /// Creates a new regular file under a fresh temporary name (O_CREAT | O_EXCL |
        /// O_NOFOLLOW, mode 0600) and returns the name and a write descriptor.
        public func makeTemporaryFile() throws -> (name: [UInt8], fd: Int32) {
            for attempt in 0..<100 {
                let name = Self.temporaryName(attempt)
                let file = try withLeaf(name, "create") { openat(fd, $0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
                if file >= 0 { return (name, file) }
                if errno != EEXIST { throw failure("create", name) }
            }
            throw failure("create", Self.temporaryName(0), EEXIST)
        }

        /// Creates a symbolic link to `target` (never followed) under a fresh temporary name.
        public func makeTemporarySymlink(to target: [UInt8]) throws -> [UInt8] {
            for attempt in 0..<100 {
                let name = Self.temporaryName(attempt)
                let rc = try withLeaf(name, "create symbolic link") { leaf in
                    RawPath(bytes: target).withCString { symlinkat($0, fd, leaf) }
                }
                if rc == 0 { return name }
                if errno != EEXIST { throw failure("create symbolic link", name) }
            }
            throw failure("create symbolic link", Self.temporaryName(0), EEXIST)
        }

        /// Creates a hard link to `source`'s `sourceLeaf` (not following a symlink) under a
        /// fresh temporary name.
        public func makeTemporaryHardLink(to source: Folder, _ sourceLeaf: [UInt8]) throws -> [UInt8] {
            for attempt in 0..<100 {
                let name = Self.temporaryName(attempt)
                let rc = try withLeaf(name, "link") { leaf in
                    try source.withLeaf(sourceLeaf, "link") { linkat(source.fd, $0, fd, leaf, 0) }
                }
                if rc == 0 { return name }
                if errno != EEXIST { throw failure("link to \(source.full(sourceLeaf)) as", name) }
            }
            throw failure("link", Self.temporaryName(0), EEXIST)
        }

        private static let counter = Counter()

        private static func temporaryName(_ attempt: Int) -> [UInt8] {
            Array(".backstop-tmp-\(getpid())-\(counter.next())-\(attempt)".utf8)
        }

        /// Renames `from` to `to` in this folder, replacing a file or symlink at `to` atomically.
        public func rename(_ from: [UInt8], to: [UInt8]) throws {
            let rc = try withLeaf(from, "rename") { a in try withLeaf(to, "rename") { b in renameat(fd, a, fd, b) } }
            guard rc == 0 else { throw failure("rename into", to) }
        }

        /// Removes `leaf` if it is still the object with `identity`; returns false (and leaves
        /// it) if something else is there, or nothing.
        @discardableResult
        public func remove(_ leaf: [UInt8], ifStill identity: FileIdentity) throws -> Bool {
            guard let st = try status(leaf), FileIdentity(st) == identity else { return false }
            let isFolder = (st.st_mode & S_IFMT) == S_IFDIR
            let rc = try withLeaf(leaf, "remove") { unlinkat(fd, $0, isFolder ? AT_REMOVEDIR : 0) }
            guard rc == 0 || errno == ENOENT else { throw failure("remove", leaf) }
            return true
        }

        /// Removes the temporary `leaf` this folder's caller just made (best effort).
        public func discard(_ leaf: [UInt8]) {
            _ = try? withLeaf(leaf, "remove") { unlinkat(fd, $0, 0) }
        }

        /// Sets the owner (when given) and modification time of the symlink `leaf` without
        /// following it (a symlink has no mode of its own).
        public func setLinkAttributes(_ leaf: [UInt8], owner: (uid_t, gid_t)?, mtime: timespec?) throws {
            try withLeaf(leaf, "set attributes of") { name in
                if let owner, fchownat(fd, name, owner.0, owner.1, AT_SYMLINK_NOFOLLOW) != 0 { throw failure("chown", leaf) }
                if let mtime {
                    var times = [timespec(tv_sec: 0, tv_nsec: utimeOmit), mtime]
                    if utimensat(fd, name, &times, AT_SYMLINK_NOFOLLOW) != 0 { throw failure("set times of", leaf) }
                }
            }
        }

        /// Sets this folder's own mode only.
        public func setMode(_ mode: mode_t) throws {
            guard fchmod(fd, mode) == 0 else { throw BeneathError(operation: "chmod", path: path, code: errno, reason: .system) }
        }

        /// Sets this folder's own owner (when given), mode and modification time.
        public func setAttributes(owner: (uid_t, gid_t)?, mode: mode_t, mtime: timespec?) throws {
            try BeneathDirectory.setAttributes(fd: fd, path: path, owner: owner, mode: mode, mtime: mtime)
        }

        /// Reads the target of the symlink `leaf`.
        public func linkTarget(_ leaf: [UInt8]) throws -> [UInt8] {
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = try withLeaf(leaf, "read link") { name in
                buffer.withUnsafeMutableBufferPointer { raw in
                    raw.withMemoryRebound(to: CChar.self) { readlinkat(fd, name, $0.baseAddress!, $0.count) }
                }
            }
            guard n >= 0 else { throw failure("read link", leaf) }
            return Array(buffer[0..<n])
        }

        /// Opens the regular file `leaf` for reading (a symlink there is an error).
        public func openForReading(_ leaf: [UInt8]) throws -> Int32 {
            let file = try withLeaf(leaf, "open") { openat(fd, $0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
            guard file >= 0 else { throw failure("open", leaf) }
            return file
        }
    }

    /// Writes all of `block` at `offset` of the open file `fd` (`path` for messages).
    public static func write(fd: Int32, _ block: UnsafeRawBufferPointer, at offset: Int64, path: String) throws {
        var done = 0
        while done < block.count {
            let n = pwrite(fd, block.baseAddress! + done, block.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw BeneathError(operation: "write", path: path, code: errno, reason: .system)
            }
            done += n
        }
    }

    /// Sets the size of the open file `fd` (a sparse file's trailing hole).
    public static func truncate(fd: Int32, to size: Int64, path: String) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw BeneathError(operation: "extend", path: path, code: errno, reason: .system) }
    }

    /// Sets owner (when given), then mode (so a chown cannot clear set-id bits afterwards), then
    /// modification time of the open file or folder `fd`.
    public static func setAttributes(fd: Int32, path: String, owner: (uid_t, gid_t)?, mode: mode_t, mtime: timespec?) throws {
        if let owner, fchown(fd, owner.0, owner.1) != 0 {
            throw BeneathError(operation: "chown", path: path, code: errno, reason: .system)
        }
        if fchmod(fd, mode) != 0 { throw BeneathError(operation: "chmod", path: path, code: errno, reason: .system) }
        if let mtime {
            var times = [timespec(tv_sec: 0, tv_nsec: utimeOmit), mtime]
            if futimens(fd, &times) != 0 { throw BeneathError(operation: "set times of", path: path, code: errno, reason: .system) }
        }
    }

    /// Opens `path` as the root (O_DIRECTORY | O_NOFOLLOW: the directory itself may not be a
    /// symlink).
    public convenience init(_ path: String) throws {
        try self.init(path, useOpenat2: true)
    }

    /// Opens `path` as the root; `useOpenat2: false` forces the component-by-component walk
    /// that kernels without openat2 get (for tests).
    init(_ path: String, useOpenat2: Bool) throws {
        self.path = path
        self.useOpenat2 = useOpenat2
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            var st = stat()
            if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK {
                throw BeneathError(operation: "open", path: path, code: code, reason: .symbolicLink)
            }
            throw BeneathError(operation: "open", path: path, code: code, reason: code == ENOTDIR ? .notAFolder : .system)
        }
        root = Folder(fd: fd, path: path)
    }

    /// Splits a relative name into its components, dropping empty and `.` ones; nil if the name
    /// is absolute or has a `..` component. `[]` is the root itself.
    public static func components(of name: RawPath) -> [[UInt8]]? {
        if name.bytes.first == UInt8(ascii: "/") || name.bytes.contains(0) { return nil }
        var parts: [[UInt8]] = []
        for part in name.bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.elementsEqual([46]) { continue }
            if part.elementsEqual([46, 46]) { return nil }
            parts.append(Array(part))
        }
        return parts
    }

    /// The full path of `components`, for messages.
    public func display(_ components: ArraySlice<[UInt8]>) -> String {
        components.reduce(path) { $0 + "/" + RawPath(bytes: $1).display }
    }

    /// Opens the folder at `components` below the root. With `create`, missing folders are
    /// made (mode 0700) and each one reported to `created` with its components and identity
    /// before anything is put into it.
    public func folder(_ components: ArraySlice<[UInt8]>, create: Bool = false,
                       created: (ArraySlice<[UInt8]>, FileIdentity) throws -> Void = { _, _ in }) throws -> Folder {
        if components.isEmpty { return try dup(root) }
        if useOpenat2 {
            let joined = RawPath(bytes: Array(components.joined(separator: [UInt8(ascii: "/")])))
            for part in components where !Self.safe(part) {
                throw BeneathError(operation: "open", path: display(components), code: 0, reason: .unsafeName)
            }
            let fd = joined.withCString { backstop_openat2_beneath(root.fd, $0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            if fd >= 0 { return Folder(fd: fd, path: display(components)) }
            switch errno {
            case ENOSYS, EPERM: useOpenat2 = false  // old kernel, or a seccomp filter refusing it
            case ENOENT where create: break
            case ENOENT: throw BeneathError(operation: "open", path: display(components), code: ENOENT, reason: .system)
            default: break  // the walk below finds which component is in the way, and says so
            }
        }
        var current = try dup(root)
        for (i, part) in components.enumerated() {
            let upTo = components.prefix(i + 1)
            if create, try current.makeFolder(part) {
                let made = try current.folder(part)
                try created(upTo, FileIdentity(try made.status()))
                current = made
            } else {
                current = try current.folder(part)
            }
        }
        return current
    }

    /// What is at `components`, without following any symlink: nil if it (or a parent) does not
    /// exist. A symlink or a non-folder among the parents throws.
    public func status(_ components: ArraySlice<[UInt8]>) throws -> stat? {
        guard let leaf = components.last else { return try root.status() }
        let parent: Folder
        do {
            parent = try folder(components.dropLast())
        } catch let error as BeneathError where error.reason == .system && error.code == ENOENT {
            return nil
        }
        return try parent.status(leaf)
    }

    private static func safe(_ part: [UInt8]) -> Bool {
        !part.isEmpty && part != [46] && part != [46, 46] && !part.contains(0)
    }

    private func dup(_ folder: Folder) throws -> Folder {
        let fd = fcntl(folder.fd, F_DUPFD_CLOEXEC, 0)
        guard fd >= 0 else { throw BeneathError(operation: "open", path: folder.path, code: errno, reason: .system) }
        return Folder(fd: fd, path: folder.path)
    }
}

/// `UTIME_OMIT` from <sys/stat.h> (a macro Swift does not import): leave the access time as is.
private let utimeOmit = (1 << 30) - 2

/// A process-wide counter for unique temporary names.
private final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
