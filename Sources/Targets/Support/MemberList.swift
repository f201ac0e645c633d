import BackupCore
import Foundation

/// The member list of a tarball, kept beside it as a second artifact (`<stem>_<ID>.members`):
/// every regular file's size and SHA-256, computed while its bytes streamed into the archive.
/// The restore drill compares what it extracts with it. It is a file of its own, not part of
/// `manifest.json`, because a tree can hold a million files.
///
/// ```
/// # backstop-members/1
/// <size> <sha256> <name>
/// ```
/// Sorted by the names' raw bytes. Name bytes outside printable ASCII, and `%`, are written as
/// `%XX` (as in the rsync per-file manifest), so a line never holds a space or newline inside
/// a field and names that are not UTF-8 survive.
enum MemberList {
    /// The first line, and the artifact's `format`.
    static let format = "backstop-members/1"
    static let suffix = ".members"

    struct Member: Equatable {
        var name: [UInt8]
        var size: Int64
        var sha256: String
    }

    /// Writes the sorted list through `write`, in chunks.
    static func write(_ members: [Member], to write: (UnsafeRawBufferPointer) throws -> Void) throws {
        var pending: [UInt8] = Array("# \(format)\n".utf8)
        for m in members.sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
            pending += "\(m.size) \(m.sha256) \(FileTreeManifest.escape(m.name))\n".utf8
            if pending.count >= 1 << 20 {
                try pending.withUnsafeBytes { try write($0) }
                pending.removeAll(keepingCapacity: true)
            }
        }
        try pending.withUnsafeBytes { try write($0) }
    }

    /// Parses a whole list; throws on a malformed line or a name listed twice.
    static func parse(_ data: Data) throws -> [[UInt8]: Member] {
        var members: [[UInt8]: Member] = [:]
        var lineNumber = 0
        for raw in [UInt8](data).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            lineNumber += 1
            if lineNumber == 1 {
                guard String(decoding: raw, as: UTF8.self) == "# \(format)" else { throw OperationError("member list: unknown format") }
                continue
            }
            let fields = raw.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard fields.count == 3, let size = Int64(String(decoding: fields[0], as: UTF8.self)), size >= 0,
                  fields[1].count == 64, fields[1].allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }),
                  let name = FileTreeManifest.unescape(fields[2]), !name.isEmpty else {
                throw OperationError("member list: malformed line \(lineNumber)")
            }
            guard members[name] == nil else { throw OperationError("member list: \(RawPath(bytes: name).display) is listed twice") }
            members[name] = Member(name: name, size: size, sha256: String(decoding: fields[1], as: UTF8.self))
        }
        guard lineNumber >= 1 else { throw OperationError("member list: empty") }
        return members
    }

    /// Reads and parses the list artifact at `path` (decrypting an encrypted `.age` list),
    /// refusing it unless the SHA-256 of its stored bytes is `sha256`.
    static func load(_ path: String, sha256: String) throws -> [[UInt8]: Member] {
        guard FileOps.exists(path) else { throw OperationError("\(path) is missing") }
        let reader = try HashingFileReader(path: path, bufferSize: 1 << 16)
        defer { reader.close() }
        var data = Data()
        while true {
            let n = try reader.read()
            if n == 0 { break }
            data.append(contentsOf: UnsafeRawBufferPointer(rebasing: reader.buffer[0..<n]))
        }
        try reader.drain()
        try ChecksumMismatch.check(path, actual: reader.hexDigest(), expected: sha256)
        return try parse(data)
    }
}
