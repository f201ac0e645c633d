import BackupCore
import Foundation

/// The first pass over an archive before a restore: everything that could write outside the
/// destination, create something a file restore never needs, or pass through a link is found
/// here, before anything is written. Names are compared as bytes.
public struct ArchiveScreening {
    private var problems: [String] = []
    private var problemCount = 0
    private var symlinks: Set<RawPath> = []
    private var files: Set<RawPath> = []
    /// Each folder name used as a parent, with the first entry that uses it.
    private var parentUsers: [RawPath: RawPath] = [:]
    /// Files with set-user-ID or set-group-ID bits.
    public private(set) var setIDEntries: [RawPath] = []

    /// Starts an empty screening.
    public init() {}

    /// The longest symlink target the kernel accepts (PATH_MAX with its NUL).
    static let maximumLinkTarget = Int(PATH_MAX) - 1

    private mutating func problem(_ text: String) {
        problemCount += 1
        if problems.count < 6 { problems.append(text) }
    }

    /// Looks at one entry.
    public mutating func screen(_ e: ArchiveEntryInfo) {
        guard !e.rawPath.bytes.isEmpty, let parts = BeneathDirectory.components(of: e.rawPath) else {
            problem("entry '\(e.path)' would write outside the destination")
            return
        }
        guard !parts.isEmpty else {
            if e.type != S_IFDIR || e.rawHardlink != nil { problem("entry '\(e.path)' names the destination itself but is not a folder") }
            return
        }
        let key = ArchiveExtractor.key(parts)
        for i in 1..<parts.count {
            let parent = ArchiveExtractor.key(parts[0..<i])
            if parentUsers[parent] == nil { parentUsers[parent] = key }
        }
        if let link = e.rawHardlink {
            guard !link.bytes.isEmpty, let target = BeneathDirectory.components(of: link), !target.isEmpty else {
                problem("hard link '\(e.path)' points outside the destination ('\(link.display)')")
                return
            }
            if !files.contains(ArchiveExtractor.key(target)) {
                problem("hard link '\(e.path)' points to '\(link.display)', which is not a regular file earlier in this archive")
            }
            files.insert(key)
            return
        }
        switch e.type {
        case S_IFREG:
            files.insert(key)
            if e.mode & (S_ISUID | S_ISGID) != 0 { setIDEntries.append(key) }
        case S_IFDIR:
            files.remove(key)
        case S_IFLNK:
            files.remove(key)
            symlinks.insert(key)
            let target = e.rawSymlink?.bytes ?? []
            if target.isEmpty {
                problem("symbolic link '\(e.path)' has no target")
            } else if target.count > Self.maximumLinkTarget {
                problem("symbolic link '\(e.path)' has a target of \(target.count) bytes, longer than the system allows (\(Self.maximumLinkTarget))")
            }
        default:
            problem("'\(e.path)' is a \(Self.kind(e.type)), which a restore never creates")
        }
    }

    /// Throws one line naming what is wrong with the archive, if anything is.
    public func verdict(artifact: String) throws {
        var all = problems, count = problemCount
        for link in symlinks.sorted() {
            guard let user = parentUsers[link] else { continue }
            count += 1
            if all.count < 6 {
                all.append("entry '\(user.display)' goes through the symbolic link '\(link.display)' of the same archive")
            }
        }
        guard count > 0 else { return }
        throw OperationError("refusing to restore \(artifact): \(all.joined(separator: "; "))\(count > all.count ? "; and \(count - all.count) more" : "")")
    }

    /// A file type's name for messages.
    static func kind(_ type: mode_t) -> String {
        switch type {
        case S_IFBLK: return "block device"
        case S_IFCHR: return "character device"
        case S_IFIFO: return "FIFO"
        case S_IFSOCK: return "socket"
        case S_IFLNK: return "symbolic link"
        case S_IFDIR: return "folder"
        case S_IFREG: return "file"
        default: return "file of unknown type \(String(type, radix: 8))"
        }
    }
}
