import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

/// One entry of a crafted tarball (built by Python's `tarfile`, which writes whatever it is given).
struct CraftedEntry {
    var name: [UInt8]
    var type = "file"  // file, dir, symlink, hardlink, chr, blk, fifo
    var data: [UInt8] = []
    var link: [UInt8]?
    var mode = 0o644

    static func file(_ name: String, _ text: String = "x", mode: Int = 0o644) -> CraftedEntry {
        CraftedEntry(name: Array(name.utf8), data: Array(text.utf8), mode: mode)
    }
    static func dir(_ name: String, mode: Int = 0o755) -> CraftedEntry {
        CraftedEntry(name: Array(name.utf8), type: "dir", mode: mode)
    }
    static func symlink(_ name: String, to target: String) -> CraftedEntry {
        CraftedEntry(name: Array(name.utf8), type: "symlink", link: Array(target.utf8), mode: 0o777)
    }
    static func hardlink(_ name: String, to target: String) -> CraftedEntry {
        CraftedEntry(name: Array(name.utf8), type: "hardlink", link: Array(target.utf8))
    }
    static func special(_ name: String, _ type: String, mode: Int = 0o666) -> CraftedEntry {
        CraftedEntry(name: Array(name.utf8), type: type, mode: mode)
    }
}

/// A scratch world for restoring hostile archives: a destination with some content, and
/// sentinel trees around it (beside it, above it, and a folder hostile symlinks point to).
/// Everything outside the destination must never change; a failed restore must leave the
/// destination as it was.
final class HostileWorld {
    let dir: String
    var world: String { dir + "/world" }
    var dest: String { world + "/dest" }
    var outside: String { world + "/outside" }
    private var record: TargetRecord?
    private var archiveCount = 0

    init(_ dir: String) { self.dir = dir }

    /// (Re)creates the world: the destination's contents and the sentinels.
    func reset() throws {
        try? FileOps.removeTree(world)
        try TestSupport.write("top\n", to: world + "/top.txt")
        try TestSupport.write("victim\n", to: outside + "/victimdir/file.txt")
        try TestSupport.write("deeper\n", to: outside + "/victimdir/sub/deeper.txt")
        try TestSupport.write("secret\n", to: outside + "/secret.txt", mode: 0o600)
        try TestSupport.write("beside\n", to: world + "/beside/a.txt")
        try TestSupport.write("keep\n", to: dest + "/keep.txt")
        try TestSupport.write("old f1\n", to: dest + "/a/f1")
        try TestSupport.write("existing\n", to: dest + "/sub/existing.txt", mode: 0o640)
        chmod(dest + "/sub", 0o755)
        symlink("keep.txt", dest + "/link-to-keep")
    }

    /// Sorted lines describing every object under `root` (byte-exact names in hex): type, mode,
    /// owner, size, content hash or link target. Folders' times are left out (creating and
    /// removing an entry changes them).
    static func listing(_ root: String, hashing: Bool = true) -> [String] {
        var lines: [String] = []
        func walk(_ path: RawPath, _ rel: RawPath) {
            guard let st = path.lstat() else { return }
            let hexName = rel.bytes.map { String(format: "%02x", $0) }.joined()
            var line = "\(hexName) \(String(st.st_mode, radix: 8)) \(st.st_uid):\(st.st_gid)"
            switch st.st_mode & S_IFMT {
            case S_IFREG where !hashing:
                line += " \(st.st_size)"
            case S_IFREG:
                var hash = StreamingSHA256()
                let fd = path.withCString { open($0, O_RDONLY | O_NOFOLLOW) }
                if fd >= 0 {
                    var buf = [UInt8](repeating: 0, count: 65536)
                    while true {
                        let n = read(fd, &buf, buf.count)
                        if n <= 0 { break }
                        buf.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                    }
                    close(fd)
                }
                line += " \(st.st_size) \(hash.hexDigest()) mtime=\(st.st_mtim.tv_sec)"
            case S_IFLNK:
                var buf = [UInt8](repeating: 0, count: 8192)
                let n = path.withCString { p in buf.withUnsafeMutableBufferPointer { readlink(p, UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), 8192) } }
                line += " -> " + buf[0..<max(n, 0)].map { String(format: "%02x", $0) }.joined()
            case S_IFDIR:
                for child in path.children() ?? [] { walk(path.appending(child), rel.appending(child)) }
            default:
                line += " special"
            }
            lines.append(line)
        }
        walk(RawPath(root), RawPath(bytes: []))
        return lines.sorted()
    }

    /// What must never change: the world around the destination (the folder holding it, the
    /// sentinels beside it and the folder hostile links point to).
    func outsideListing() -> [String] {
        let destHex = Self.hex(Array("dest".utf8))
        return Self.listing(world).filter { !$0.hasPrefix(destHex) }
    }

    /// Writes a tarball with Python's tarfile: `format` pax (UTF-8 names, or hdrcharset=BINARY
    /// where they are not UTF-8), gnu or ustar.
    func craft(_ entries: [CraftedEntry], format: String = "pax", gzip: Bool = false) throws -> String {
        archiveCount += 1
        let out = dir + "/crafted-\(archiveCount).tar" + (gzip ? ".gz" : "")
        let spec: [String: Any] = [
            "format": format, "gzip": gzip,
            "entries": entries.map { e -> [String: Any] in
                var d: [String: Any] = ["name": Self.hex(e.name), "type": e.type, "data": Self.hex(e.data), "mode": e.mode]
                if let link = e.link { d["link"] = Self.hex(link) }
                return d
            },
        ]
        let specPath = dir + "/spec.json"
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: specPath))
        let script = dir + "/craft.py"
        if !FileOps.exists(script) { try Self.craftScript.write(toFile: script, atomically: true, encoding: .utf8) }
        let (outcome, _) = try ChildProcess("python3", [script, specPath, out]).capture()
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static let craftScript = """
    import io, json, sys, tarfile
    spec = json.load(open(sys.argv[1]))
    fmt = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}[spec["format"]]
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
             "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
    def name(h): return bytes.fromhex(h).decode("utf-8", "surrogateescape")
    with tarfile.open(sys.argv[2], "w:gz" if spec["gzip"] else "w", format=fmt, encoding="utf-8", errors="surrogateescape") as t:
        for e in spec["entries"]:
            ti = tarfile.TarInfo(name(e["name"]))
            ti.type = types[e["type"]]
            ti.mode = e["mode"]
            ti.mtime = 1700000000
            ti.uname, ti.gname = "root", "root"
            if "link" in e: ti.linkname = name(e["link"])
            if e["type"] in ("chr", "blk"): ti.devmajor, ti.devminor = 8, 0
            data = bytes.fromhex(e["data"])
            if e["type"] == "file":
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    """

    /// A record of an archive target whose artifact is the tarball at `path` (with its real
    /// checksum, so only the restore's own checks stand between it and the disk).
    func record(for path: String, target: ArchiveTarget) throws -> (TargetRecord, String) {
        if record == nil {
            let src = dir + "/seed-src"
            try TestSupport.write("seed\n", to: src + "/seed.txt")
            let summary = try TestSupport.engine(dir + "/repo", [ArchiveTarget(name: "t", paths: [src], base: src)]).backup()
            record = try XCTUnwrap(summary.targets.first)
        }
        var r = record!
        let set = dir + "/set"
        try FileOps.makeDirectory(set)
        let name = (path as NSString).lastPathComponent
        if path != set + "/" + name {
            try? FileOps.removeTree(set + "/" + name)
            try FileManager.default.copyItem(atPath: path, toPath: set + "/" + name)
        }
        let (sha, bytes) = try sha256OfFile(set + "/" + name)
        r.name = target.name
        r.artifacts = [Artifact(path: name, bytes: bytes, sha256: sha, format: "tar")]
        r.facts["base"] = .string(dest)
        return (r, set)
    }

    /// Restores the tarball at `path` into the destination with the archive target (or the
    /// given target), checking the invariants: nothing outside the destination changes, and a
    /// failed restore leaves the destination as it was. Returns the report or the error.
    @discardableResult
    func restore(_ path: String, target: (any BackupTarget)? = nil, options: RestoreOptions = RestoreOptions(),
                 rollbackMustSucceed: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws -> Result<RestoreReport, Error> {
        let archiveTarget = ArchiveTarget(name: "t", paths: [dest], base: dest)
        let (record, set) = try self.record(for: path, target: archiveTarget)
        let outsideBefore = outsideListing()
        let destBefore = Self.listing(dest)
        let context = RestoreContext(setDirectory: set, setID: "hostile", safetyDirectory: dir + "/safety", options: options,
                                     logger: TestSupport.logger().0, showProgress: false)
        let result: Result<RestoreReport, Error>
        do {
            result = .success(try (target ?? archiveTarget).restore(record, context: context))
        } catch {
            result = .failure(error)
        }
        XCTAssertEqual(outsideListing(), outsideBefore, "something outside the destination changed", file: file, line: line)
        if case .failure = result, rollbackMustSucceed {
            XCTAssertEqual(Self.listing(dest), destBefore, "a failed restore left the destination changed", file: file, line: line)
        }
        return result
    }
}

extension Result {
    /// The error of a failure, or nil.
    var failure: Failure? { if case let .failure(e) = self { return e }; return nil }
}
