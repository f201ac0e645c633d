import BackupCore
import Foundation

/// Extracts archive entries below a directory without ever leaving it: every file operation is
/// relative to a descriptor of the destination (`BeneathDirectory`), no symlink is followed,
/// files are written under a temporary name and renamed into place, and only regular files,
/// folders, symlinks (restored as links, never followed) and hard links to files this
/// extraction wrote are created. Set-user-ID and set-group-ID bits of files are removed unless
/// `keepSetID`. Everything it creates is recorded with its device and inode, so `rollback()`
/// removes exactly that and nothing else; folders' modes and times are applied at `close()`.
///
/// Test hook: the fault step `restore-entry` (see `Fault`) is reached before each entry and once
/// more after the finishing step: `BACKSTOP_FAULT=restore-entry@N` fails before the Nth entry
/// (1-based), or after the finishing step when N is one more than the number of entries.
public final class ArchiveExtractor {
    private struct Created {
        let parts: [[UInt8]]
        let identity: FileIdentity
        let isFolder: Bool
    }

    private struct FolderAttributes {
        let parts: [[UInt8]]
        let identity: FileIdentity
        let mode: mode_t
        let owner: (uid_t, gid_t)?
        let mtime: timespec?
    }

    private let path: String
    private let restoreOwner: Bool
    private let keepSetID: Bool
    private let replaceable: Set<RawPath>?
    private var directory: BeneathDirectory?
    private var cachedParent: (parts: ArraySlice<[UInt8]>, folder: BeneathDirectory.Folder)?
    private var created: [Created] = []
    private var createdIndex: [RawPath: Int] = [:]
    private var written: Set<FileIdentity> = []
    private var folders: [FolderAttributes] = []
    private var previousFolders: [FolderAttributes] = []
    private var users: [String: uid_t?] = [:]
    private var groups: [String: gid_t?] = [:]

    /// Entries that replaced something that was there before (their old versions are what a
    /// safety copy must hold).
    public private(set) var replaced: [RawPath] = []
    /// Files written without the set-user-ID / set-group-ID bits they had in the archive.
    public private(set) var strippedSetID: [RawPath] = []

    /// Prepares extraction into `directory` (which must exist and not be a symlink). Modes and
    /// times are restored; owners too when running as root and `restoreOwner` is set (by
    /// name when the name exists here, else by number). With `replaceable`, replacing anything
    /// that existed before and is not in it is refused (it is not in the safety copy).
    public init(directory: String, restoreOwner: Bool = false, keepSetID: Bool = false,
                replaceable: Set<RawPath>? = nil) {
        path = directory
        self.restoreOwner = restoreOwner && geteuid() == 0
        self.keepSetID = keepSetID
        self.replaceable = replaceable
    }

    /// Prepares extraction into the already opened `root` (the descriptor the restore planned
    /// with, so the destination cannot be swapped in between).
    public convenience init(root: BeneathDirectory, restoreOwner: Bool = false, keepSetID: Bool = false,
                            replaceable: Set<RawPath>? = nil) {
        self.init(directory: root.path, restoreOwner: restoreOwner, keepSetID: keepSetID, replaceable: replaceable)
        directory = root
    }

    /// The byte key of a name's components (`a/b/c`), for sets and dictionaries of names.
    static func key<C: Collection>(_ parts: C) -> RawPath where C.Element == [UInt8] {
        RawPath(bytes: Array(parts.joined(separator: [UInt8(ascii: "/")])))
    }

    private func root() throws -> BeneathDirectory {
        if let directory { return directory }
        let opened = try BeneathDirectory(path)
        directory = opened
        return opened
    }

    /// Writes the reader's current entry below the directory.
    public func extractCurrent(from reader: ArchiveReader) throws {
        guard let info = reader.currentInfo else { throw ArchiveError(message: "no current entry") }
        try extract(info) { write in try reader.readBlocks(write) }
    }

    /// Writes one entry whose content (for regular files) comes from `content`, which calls its
    /// argument with each block and its offset and returns the content's end.
    public func extract(_ e: ArchiveEntryInfo, content: ((UnsafeRawBufferPointer, Int64) throws -> Void) throws -> Int64) throws {
        try Fault.point("restore-entry")
        guard !e.rawPath.bytes.isEmpty, let parts = BeneathDirectory.components(of: e.rawPath) else {
            throw OperationError("refusing to extract '\(e.path)': it would write outside \(path)")
        }
        guard let leaf = parts.last else {
            guard e.type == S_IFDIR, e.rawHardlink == nil else { throw OperationError("refusing to extract '\(e.path)': it names \(path) itself") }
            _ = try content { _, _ in }
            return  // the destination itself: left as it is
        }
        if e.rawHardlink == nil && ![S_IFREG, S_IFDIR, S_IFLNK].contains(e.type) {
            throw OperationError("refusing to extract '\(e.path)': it is a \(ArchiveScreening.kind(e.type))")
        }
        let dir = try root()
        let parent = try parentFolder(parts.dropLast(), in: dir)
        let key = Self.key(parts)
        let owner = try ownerOf(e)
        let mtime = timespec(tv_sec: e.mtime, tv_nsec: e.mtimeNanoseconds)
        if let link = e.rawHardlink {
            guard !link.bytes.isEmpty, let target = BeneathDirectory.components(of: link), let targetLeaf = target.last else {
                throw OperationError("refusing to extract hard link '\(e.path)': it points outside \(path) ('\(link.display)')")
            }
            let source = try dir.folder(target.dropLast())
            guard let st = try source.status(targetLeaf), (st.st_mode & S_IFMT) == S_IFREG, written.contains(FileIdentity(st)) else {
                throw OperationError("refusing to extract hard link '\(e.path)': '\(link.display)' is not a file this restore wrote")
            }
            let temporary = try parent.makeTemporaryHardLink(to: source, targetLeaf)
            try place(temporary, as: leaf, parts: parts, key: key, in: parent, isFile: true)
            _ = try content { _, _ in }
            return
        }
        switch e.type {
        case S_IFDIR:
            let folder: BeneathDirectory.Folder
            if try parent.makeFolder(leaf) {
                folder = try parent.folder(leaf)
                record(parts, FileIdentity(try folder.status()), isFolder: true)
            } else {
                folder = try parent.folder(leaf)  // a symlink or a file there is an error
            }
            var mode = e.mode & 0o7777
            mode &= ~mode_t(S_ISUID)  // meaningless on a folder; set-group-ID (group inheritance) is kept
            folders.append(FolderAttributes(parts: parts, identity: FileIdentity(try folder.status()), mode: mode, owner: owner, mtime: mtime))
            _ = try content { _, _ in }
        case S_IFLNK:
            let temporary = try parent.makeTemporarySymlink(to: e.rawSymlink?.bytes ?? [])
            do {
                try parent.setLinkAttributes(temporary, owner: owner, mtime: mtime)
            } catch {
                parent.discard(temporary)
                throw error
            }
            try place(temporary, as: leaf, parts: parts, key: key, in: parent, isFile: false)
            _ = try content { _, _ in }
        default:
            let (temporary, fd) = try parent.makeTemporaryFile()
            do {
                defer { Glibc.close(fd) }
                let shown = parent.path + "/" + RawPath(bytes: leaf).display
                let end = try content { block, offset in try BeneathDirectory.write(fd: fd, block, at: offset, path: shown) }
                if e.size > end { try BeneathDirectory.truncate(fd: fd, to: e.size, path: shown) }
                var mode = e.mode & 0o7777
                if !keepSetID && mode & (S_ISUID | S_ISGID) != 0 {
                    mode &= ~mode_t(S_ISUID | S_ISGID)
                    strippedSetID.append(key)
                }
                try BeneathDirectory.setAttributes(fd: fd, path: shown, owner: owner, mode: mode, mtime: mtime)
            } catch {
                parent.discard(temporary)
                throw error
            }
            try place(temporary, as: leaf, parts: parts, key: key, in: parent, isFile: true)
        }
    }

    /// The parent folder of an entry, created (and recorded) where missing. The last one is
    /// kept open, as entries usually come folder by folder.
    private func parentFolder(_ parts: ArraySlice<[UInt8]>, in dir: BeneathDirectory) throws -> BeneathDirectory.Folder {
        if let cachedParent, cachedParent.parts.elementsEqual(parts) { return cachedParent.folder }
        let folder = try dir.folder(parts, create: true) { made, identity in
            self.record(Array(made), identity, isFolder: true)
        }
        cachedParent = (parts, folder)
        return folder
    }

    private func record(_ parts: [[UInt8]], _ identity: FileIdentity, isFolder: Bool) {
        let key = Self.key(parts)
        if let i = createdIndex[key] {
            created[i] = Created(parts: parts, identity: identity, isFolder: isFolder)
        } else {
            createdIndex[key] = created.count
            created.append(Created(parts: parts, identity: identity, isFolder: isFolder))
        }
    }

    /// Renames the temporary object into place, recording whether it created or replaced.
    private func place(_ temporary: [UInt8], as leaf: [UInt8], parts: [[UInt8]], key: RawPath,
                       in parent: BeneathDirectory.Folder, isFile: Bool) throws {
        do {
            guard let made = try parent.status(temporary) else { throw SystemError("stat", parent.path, code: ENOENT) }
            let existing = try parent.status(leaf)
            var isOurs = false
            if let existing {
                if (existing.st_mode & S_IFMT) == S_IFDIR {
                    throw OperationError("cannot restore '\(key.display)': \(parent.path)/\(RawPath(bytes: leaf).display) exists and is a folder")
                }
                if let i = createdIndex[key], created[i].identity == FileIdentity(existing) {
                    isOurs = true
                } else if let replaceable, !replaceable.contains(key) {
                    throw OperationError("cannot restore '\(key.display)': \(parent.path)/\(RawPath(bytes: leaf).display) appeared during the restore and is not in the safety copy; not replacing it")
                }
            }
            try parent.rename(temporary, to: leaf)
            if existing == nil || isOurs {
                record(parts, FileIdentity(made), isFolder: false)
            } else {
                replaced.append(key)
            }
            if isFile { written.insert(FileIdentity(made)) }
        } catch {
            parent.discard(temporary)
            throw error
        }
    }

    private func ownerOf(_ e: ArchiveEntryInfo) throws -> (uid_t, gid_t)? {
        guard restoreOwner else { return nil }
        var uid = e.uid, gid = e.gid
        if let name = e.userName, !name.isEmpty {
            if users[name] == nil { users[name] = getpwnam(name).map { $0.pointee.pw_uid } }
            if let found = users[name] ?? nil { uid = found }
        }
        if let name = e.groupName, !name.isEmpty {
            if groups[name] == nil { groups[name] = getgrnam(name).map { $0.pointee.gr_gid } }
            if let found = groups[name] ?? nil { gid = found }
        }
        return (uid, gid)
    }

    /// Applies the folders' modes, owners and times (deferred so that a read-only folder can
    /// still be filled). A folder that existed before has its previous ones recorded, so a
    /// rollback can put them back.
    public func close() throws {
        let dir = try root()
        cachedParent = nil
        var seen = Set<FileIdentity>()
        for f in folders.reversed() {
            let folder = try dir.folder(f.parts[...])
            let st = try folder.status()
            guard FileIdentity(st) == f.identity else {
                throw OperationError("\(folder.path) was replaced during the restore; not changing it")
            }
            let isOurs = createdIndex[Self.key(f.parts)].map { created[$0].identity == f.identity } ?? false
            if !isOurs && seen.insert(f.identity).inserted {
                previousFolders.append(FolderAttributes(parts: f.parts, identity: f.identity, mode: st.st_mode & 0o7777,
                                                        owner: (st.st_uid, st.st_gid), mtime: st.st_mtim))
            }
            try folder.setAttributes(owner: f.owner, mode: f.mode, mtime: f.mtime)
        }
        try Fault.point("restore-entry")
    }

    /// Undoes this extraction as far as it can by itself: puts back the modes, owners and times
    /// of folders that existed before, then removes, newest first, everything it created that
    /// still has the device and inode it had at creation. Files it replaced are not touched
    /// (they come back from the safety copy). Returns what it could not undo (empty: all undone).
    public func rollback() -> [String] {
        var problems: [String] = []
        cachedParent = nil
        guard let dir = directory else { return [] }
        for f in previousFolders.reversed() {
            do {
                let folder = try dir.folder(f.parts[...])
                guard FileIdentity(try folder.status()) == f.identity else { continue }
                try folder.setAttributes(owner: geteuid() == 0 ? f.owner : nil, mode: f.mode, mtime: f.mtime)
            } catch {
                problems.append("could not put back the mode of \(dir.display(f.parts[...])): \(error)")
            }
        }
        // Folders this restore made may have been given read-only modes: make them writable
        // (they are ours: checked by identity) so their contents can go.
        for c in created where c.isFolder {
            if let folder = try? dir.folder(c.parts[...]), (try? folder.status()).map({ FileIdentity($0) == c.identity }) == true {
                try? folder.setMode(0o700)
            }
        }
        for c in created.reversed() {
            do {
                let parent = try dir.folder(c.parts.dropLast())
                if try !parent.remove(c.parts.last!, ifStill: c.identity) {
                    if try parent.status(c.parts.last!) != nil {
                        problems.append("left \(dir.display(c.parts[...])): it is no longer what this restore created")
                    }
                }
            } catch {
                problems.append("could not remove \(dir.display(c.parts[...])): \(error)")
            }
        }
        return problems
    }
}
