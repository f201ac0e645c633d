import BackupCore
import Foundation

/// Hard-link snapshots of a file tree with rsync (contentstores, media uploads).
///
/// Each run copies the source into `<set>/<target>/tree/` with
/// `rsync -a --delete --numeric-ids --link-dest=<previous snapshot, absolute>`, so unchanged
/// files are hard links to the previous snapshot and cost neither space nor time. Beside the
/// tree, `files.manifest` (the artifact, so its own SHA-256 is in the set manifest) lists every
/// file with size, mtime, mode and SHA-256. Only files rsync wrote are hashed: a file that is
/// the same inode as in the previous snapshot carries its hash forward. After the set is
/// committed, `BACKUP_DIR/links/<target>/<LINK>` (default `latest`) is moved to the new tree
/// atomically.
///
/// Config (`TARGET_<NAME>_…`): the keys declared in `configKeys`.
public struct RsyncSnapshotTarget: TargetKind {
    public let name: String
    /// The kind's name in config.
    public static let kindName = "rsync"
    /// Every key of the kind, declared once (see `TargetKind`).
    public static let configKeys: [ConfigKey] = [
        ConfigKey("SOURCE", .path, help: "the folder to snapshot (required)"),
        ConfigKey("LINK", .string, default: "latest", help: "name of the link to the newest snapshot in BACKUP_DIR/links/<target>/"),
        ConfigKey("EXCLUDE", .list, help: "extra rsync exclude patterns"),
        ConfigKey("DEFAULT_EXCLUDES", .bool, default: "true", help: "also leave out .DS_Store, Thumbs.db, *.tmp"),
        ConfigKey("HARD_LINKS", .bool, default: "false", help: "rsync -H"),
        ConfigKey("ACLS", .bool, default: "false", help: "rsync -A"),
        ConfigKey("XATTRS", .bool, default: "false", help: "rsync -X"),
        ConfigKey("BWLIMIT", .int, default: "0 (none)", help: "rsync --bwlimit in KiB/s"),
        ConfigKey("RESTORE_OWNER", .string, help: "owner of restored files (restore --owner overrides)"),
        ConfigKey("RESTORE_GROUP", .string, help: "group of restored files (restore --group overrides)"),
        ConfigKey("RESTORE_CHMOD", .string, help: "an rsync --chmod spec for restored files, e.g. D755,F644"),
    ]
    /// The tree to snapshot (absolute, no trailing slash).
    public let source: String
    /// The name of the link to the newest snapshot, in `BACKUP_DIR/links/<target>/`.
    public let linkName: String
    /// rsync exclude patterns (defaults plus configured ones).
    public let excludes: [String]
    /// rsync -H, -A, -X.
    public let hardLinks: Bool, acls: Bool, xattrs: Bool
    /// rsync --bwlimit in KiB/s (0: none).
    public let bandwidthLimit: Int
    /// Defaults for restore: owner, group, and an rsync --chmod spec.
    public let restoreOwner: String?, restoreGroup: String?, restoreChmod: String?

    /// Patterns left out unless `DEFAULT_EXCLUDES=false`.
    public static let defaultExcludes = [".DS_Store", "Thumbs.db", "*.tmp"]
    static let treeFolder = "tree"
    static let manifestName = "files.manifest"

    /// Creates the target.
    public init(name: String, source: String, linkName: String = "latest", excludes: [String] = RsyncSnapshotTarget.defaultExcludes,
                hardLinks: Bool = false, acls: Bool = false, xattrs: Bool = false, bandwidthLimit: Int = 0,
                restoreOwner: String? = nil, restoreGroup: String? = nil, restoreChmod: String? = nil) {
        self.name = name
        self.source = source.count > 1 && source.hasSuffix("/") ? String(source.dropLast()) : source
        self.linkName = linkName
        self.excludes = excludes
        self.hardLinks = hardLinks
        self.acls = acls
        self.xattrs = xattrs
        self.bandwidthLimit = bandwidthLimit
        self.restoreOwner = restoreOwner
        self.restoreGroup = restoreGroup
        self.restoreChmod = restoreChmod
    }

    /// Builds the target from its config keys.
    public init(settings s: TargetSettings) throws {
        let source = try s.requirePath("SOURCE")
        let link = s.string("LINK") ?? "latest"
        guard !link.contains("/"), !link.hasPrefix("."), !link.isEmpty else {
            throw ConfigError.invalidValue(key: s.key("LINK"), file: s.config.file, value: link, expected: "a file name without / that does not start with .")
        }
        let defaults = try s.bool("DEFAULT_EXCLUDES", default: true)
        let chmodSpec = s.string("RESTORE_CHMOD")
        if let chmodSpec, chmodSpec.range(of: "^[DF]?[0-7]{3,4}(,[DF]?[0-7]{3,4})*$|^[ugoaDF,+=rwxXst-]+$", options: .regularExpression) == nil {
            throw ConfigError.invalidValue(key: s.key("RESTORE_CHMOD"), file: s.config.file, value: chmodSpec, expected: "an rsync --chmod spec such as D755,F644")
        }
        for key in ["RESTORE_OWNER", "RESTORE_GROUP"] {
            if let v = s.string(key), v.range(of: "^[A-Za-z0-9_][A-Za-z0-9_.-]*$", options: .regularExpression) == nil {
                throw ConfigError.invalidValue(key: s.key(key), file: s.config.file, value: v, expected: "a user or group name, or a number")
            }
        }
        self.init(name: s.name, source: source, linkName: link,
                  excludes: (defaults ? Self.defaultExcludes : []) + s.list("EXCLUDE"),
                  hardLinks: try s.bool("HARD_LINKS", default: false), acls: try s.bool("ACLS", default: false),
                  xattrs: try s.bool("XATTRS", default: false), bandwidthLimit: try s.int("BWLIMIT", default: 0, range: 0...10_000_000),
                  restoreOwner: s.string("RESTORE_OWNER"), restoreGroup: s.string("RESTORE_GROUP"), restoreChmod: chmodSpec)
    }

    public var summary: String {
        "rsync snapshot of \(source) (hard links to the previous snapshot\(excludes.isEmpty ? "" : ", excluding \(excludes.joined(separator: " "))"))"
    }

    public func preflight(_ context: PreflightContext) -> [Finding] {
        var findings: [Finding] = []
        if ChildProcess.which("rsync") == nil { findings.append(Finding(.error, target: name, "rsync is not installed (apt-get install rsync)")) }
        if !FileOps.isDirectory(source) {
            findings.append(Finding(.error, target: name, "\(source) is not a directory"))
        } else if access(source, R_OK | X_OK) != 0 {
            findings.append(Finding(.error, target: name, "\(source) is not readable by this user"))
        }
        return findings
    }

    /// The options both backup and restore pass to rsync.
    private var preserveOptions: [String] {
        ["-a", "--numeric-ids"] + (hardLinks ? ["-H"] : []) + (acls ? ["-A"] : []) + (xattrs ? ["-X"] : [])
    }

    /// rsync's environment: the C locale, so names are escaped the same way on every host.
    private static let environment = ["LC_ALL": "C"]

    /// One line of `--out-format=%i|%l|%n` output.
    struct ItemizedLine {
        var item: String
        var length: Int64
        var name: [UInt8]
        var isTransferredFile: Bool { item.hasPrefix(">f") }
        var writesFileContent: Bool { item.count >= 2 && ">ch".contains(item.first!) && item.dropFirst().first == "f" }
        var isDeletion: Bool { item.hasPrefix("*deleting") }
    }

    /// Runs rsync with `--out-format=%i|%l|%n`, handing every parsed line to `line`.
    static func runRsync(_ arguments: [String], line: (ItemizedLine) throws -> Void) throws -> ChildProcess.Outcome {
        var pending: [UInt8] = []
        func consume(_ raw: ArraySlice<UInt8>) throws {
            guard let bar1 = raw.firstIndex(of: UInt8(ascii: "|")) else { return }
            let rest = raw[(bar1 + 1)...]
            guard let bar2 = rest.firstIndex(of: UInt8(ascii: "|")) else { return }
            let item = String(decoding: raw[raw.startIndex..<bar1], as: UTF8.self).trimmingCharacters(in: .whitespaces)
            let length = Int64(String(decoding: rest[rest.startIndex..<bar2], as: UTF8.self).replacingOccurrences(of: ",", with: "")) ?? 0
            try line(ItemizedLine(item: item, length: length, name: FileTreeManifest.rsyncUnescape(rest[(bar2 + 1)...])))
        }
        let outcome = try ChildProcess("rsync", ["--out-format=%i|%l|%n"] + arguments, environment: environment).run { chunk in
            pending.append(contentsOf: chunk)
            var start = 0
            while let nl = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                try consume(pending[start..<nl])
                start = nl + 1
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty { try consume(pending[...]) }
        return outcome
    }

    // MARK: backup

    public func backup(_ context: BackupContext) throws -> TargetOutput {
        var output = TargetOutput()
        let tree = context.directory + "/" + Self.treeFolder
        try FileOps.makeDirectory(tree)

        // The previous snapshot: its tree for --link-dest, its manifest (streamed in path
        // order) for hashes to carry and for what this snapshot stops sharing with it.
        var linkDest: String?
        var previousManifest: SortedManifest?
        var previousSet: String?
        if let previous = context.previous {
            var prevDir = previous.directory
            if !prevDir.hasPrefix("/") { prevDir = FileManager.default.currentDirectoryPath + "/" + prevDir }
            let prevTree = prevDir + "/" + Self.treeFolder
            let setDir = (prevDir as NSString).deletingLastPathComponent
            previousSet = "\((setDir as NSString).deletingLastPathComponent.split(separator: "/").last ?? "")/\((setDir as NSString).lastPathComponent)"
            if FileOps.isDirectory(prevTree) {
                linkDest = prevTree
                do {
                    previousManifest = try Self.openSortedManifest(previous.record, targetDirectory: prevDir, checkDigest: true)
                } catch {
                    output.warnings.append("previous snapshot's manifest cannot be used (\(error)); every file is hashed")
                }
            } else {
                output.warnings.append("previous snapshot \(prevTree) is missing; this snapshot is a full copy")
            }
        }

        var args = preserveOptions + ["--delete"]
        if bandwidthLimit > 0 { args.append("--bwlimit=\(bandwidthLimit)") }
        for pattern in excludes { args.append("--exclude=\(pattern)") }
        // Never copy the backup directory into itself.
        let root = context.repository.root
        if root.hasPrefix(source + "/") { args.append("--exclude=/\(root.dropFirst(source.count + 1))/") }
        if let linkDest { args.append("--link-dest=\(linkDest)") }
        args += ["--", source + "/", tree + "/"]

        // Names rsync wrote file content under (>f copied, cf local copy, hf hard link within
        // the tree with -H): these are hashed. Everything else was linked from --link-dest.
        // They are kept (and sorted, to merge with the walk) only when there is a previous
        // manifest to carry hashes from; they are few on an incremental run. Without one every
        // file is hashed anyway, and only their number is kept.
        let keepNames = previousManifest != nil
        var written: [[UInt8]] = []
        var writtenCount = 0
        var filesTransferred = 0
        var bytesTransferred: Int64 = 0
        let rsyncStarted = Date()
        let outcome = try Self.runRsync(args) { line in
            if line.isTransferredFile {
                filesTransferred += 1
                bytesTransferred += line.length
            }
            if line.writesFileContent {
                writtenCount += 1
                if keepNames { written.append(line.name) }
            }
        }
        let rsyncSeconds = Date().timeIntervalSince(rsyncStarted)
        if outcome.status != 0 { try Interrupts.shared.yieldToSignal() }
        switch outcome.status {
        case 0: break
        case 23: output.warnings.append("rsync exit 23 (partial transfer: some files could not be copied): \(outcome.lastErrorLine)")
        case 24: output.warnings.append("rsync exit 24 (some files vanished while they were copied): \(outcome.lastErrorLine)")
        default: throw outcome.error("rsync")
        }
        try Interrupts.shared.checkpoint()
        written.sort { $0.lexicographicallyPrecedes($1) }

        // The per-file manifest: walk the new snapshot in path order, merging it with the
        // previous manifest (same order) and the sorted names rsync wrote; hash only what rsync
        // wrote. A previous entry the new tree does not share (deleted, or rewritten) is looked
        // up in the previous tree: its bytes, and those only the previous snapshot now holds,
        // are recorded, so `list --size`, `remove` and `prune` need not walk the snapshots.
        let hashStarted = Date()
        let treeRaw = RawPath(tree)
        let previousTreeRaw = linkDest.map { RawPath($0) }
        var files = 0, dirs = 0, symlinks = 0, hashed = 0, carried = 0
        var apparent: Int64 = 0, unique: Int64 = 0, shared: Int64 = 0, bytesHashed: Int64 = 0
        var droppedBytes: Int64 = 0, droppedAloneBytes: Int64 = 0
        var matchedTransferred = 0
        var writtenIndex = 0
        var previousProblem: String?
        var nextPrevious: FileTreeEntry?
        func pullPrevious() {
            guard let manifest = previousManifest else { nextPrevious = nil; return }
            do { nextPrevious = try manifest.next() } catch {
                previousProblem = "\(error)"
                previousManifest = nil
                nextPrevious = nil
            }
        }
        /// A previous file this snapshot does not share: count it as left behind.
        func leftBehind(_ entry: FileTreeEntry, newInode: ino_t?) {
            guard entry.type == UInt8(ascii: "f"), let st = previousTreeRaw?.appending(entry.path).lstat(),
                  (st.st_mode & S_IFMT) == S_IFREG, st.st_ino != newInode else { return }
            droppedBytes += Int64(st.st_size)
            if st.st_nlink == 1 { droppedAloneBytes += Int64(st.st_size) }
        }
        pullPrevious()
        // Snapshot trees stay plain (browsable, hard-linked), and so does their file list.
        let writer = try context.createArtifact(Self.manifestName, encrypted: false)
        var pendingLines: [UInt8] = Array((FileTreeManifest.header + "\n").utf8)
        do {
            try TreeWalk.sortedWalk(treeRaw) { rel, st in
                let type = st.st_mode & S_IFMT
                if type == S_IFDIR { dirs += 1; return }
                guard type == S_IFREG || type == S_IFLNK else { return }
                let isLink = type == S_IFLNK
                if isLink { symlinks += 1 } else {
                    files += 1
                    apparent += Int64(st.st_size)
                    if st.st_nlink == 1 { unique += Int64(st.st_size) }
                }
                // The previous manifest's entry for this path, if any; earlier ones are gone now.
                while let p = nextPrevious, p.path.bytes.lexicographicallyPrecedes(rel.bytes) {
                    leftBehind(p, newInode: nil)
                    pullPrevious()
                }
                var prev: FileTreeEntry?
                if let p = nextPrevious, p.path.bytes == rel.bytes { prev = p; pullPrevious() }
                while writtenIndex < written.count, written[writtenIndex].lexicographicallyPrecedes(rel.bytes) { writtenIndex += 1 }
                let wasWritten = writtenIndex < written.count && written[writtenIndex] == rel.bytes
                if wasWritten { matchedTransferred += 1 }
                var sha: String?
                // Not written by rsync, yet in the new tree with more than one link: a hard link
                // to the previous snapshot's file (a fresh copy would have one link).
                if !wasWritten, st.st_nlink > 1, let prev, prev.type == (isLink ? UInt8(ascii: "l") : UInt8(ascii: "f")),
                   prev.size == Int64(st.st_size), prev.mtimeSeconds == st.st_mtim.tv_sec, prev.mtimeNanoseconds == st.st_mtim.tv_nsec {
                    sha = prev.sha256
                    carried += 1
                    if !isLink { shared += Int64(st.st_size) }
                } else if let prev {
                    leftBehind(prev, newInode: st.st_ino)
                }
                if sha == nil {
                    try Interrupts.shared.checkpoint()
                    sha = try FileTreeManifest.hash(treeRaw.appending(rel), isLink: isLink)
                    hashed += 1
                    bytesHashed += Int64(st.st_size)
                }
                let entry = FileTreeEntry(type: isLink ? UInt8(ascii: "l") : UInt8(ascii: "f"), path: rel, size: Int64(st.st_size),
                                          mtimeSeconds: st.st_mtim.tv_sec, mtimeNanoseconds: st.st_mtim.tv_nsec,
                                          mode: UInt32(st.st_mode & 0o7777), sha256: sha!)
                pendingLines += FileTreeManifest.line(entry).utf8
                if pendingLines.count >= 1 << 20 {
                    try pendingLines.withUnsafeBytes { try writer.write($0) }
                    pendingLines.removeAll(keepingCapacity: true)
                }
            }
            while let p = nextPrevious {
                leftBehind(p, newInode: nil)
                pullPrevious()
            }
            try pendingLines.withUnsafeBytes { try writer.write($0) }
        } catch {
            writer.abandon()
            throw error
        }
        if let previousProblem {
            output.warnings.append("previous snapshot's manifest could not be read to the end (\(previousProblem)); the files after that point were hashed")
        }
        // Without the names (no previous manifest), every file in the tree was written by rsync.
        let notFound = keepNames ? written.count - matchedTransferred : max(0, writtenCount - files - symlinks)
        let (bytes, sha) = try writer.finish()
        output.artifacts = [Artifact(path: Self.manifestName, bytes: bytes, sha256: sha, format: "backstop-files/1")]
        // What the predecessor left behind is known only if its whole manifest was merged.
        let predecessorKnown = linkDest != nil && keepNames && previousProblem == nil
        output.facts = [
            "source": .string(source),
            "snapshot": .string(Self.treeFolder),
            "linkDest": linkDest.map { .string($0) } ?? .null,
            "files": .number(Double(files)),
            "directories": .number(Double(dirs)),
            "symlinks": .number(Double(symlinks)),
            "filesTransferred": .number(Double(filesTransferred)),
            "bytesTransferred": .number(Double(bytesTransferred)),
            "filesHashed": .number(Double(hashed)),
            "bytesHashed": .number(Double(bytesHashed)),
            "filesCarriedForward": .number(Double(carried)),
            "apparentBytes": .number(Double(apparent)),
            "uniqueBytes": .number(Double(unique)),
            "sharedBytes": .number(Double(shared)),
            "previousSet": linkDest != nil ? previousSet.map { .string($0) } ?? .null : .null,
            "previousDroppedBytes": predecessorKnown ? .number(Double(droppedBytes)) : .null,
            "previousAloneBytes": predecessorKnown ? .number(Double(droppedAloneBytes)) : .null,
            "manifestOrder": .string(Self.sortedOrder),
            "itemizedNotFound": .number(Double(notFound)),
            "rsyncExit": .number(Double(outcome.status)),
            "rsyncSeconds": .number(rsyncSeconds),
            "hashSeconds": .number(Date().timeIntervalSince(hashStarted)),
            "excludes": .array(excludes.map { .string($0) }),
            "options": .string(preserveOptions.joined(separator: " ")),
        ]
        if notFound > 0 {
            output.warnings.append("\(notFound) name(s) rsync reported as copied are not in the snapshot (vanished or excluded)")
        }
        if let (vOutcome, text) = try? ChildProcess("rsync", ["--version"]).capture(), vOutcome.status == 0 {
            output.toolVersions["rsync"] = text.split(separator: "\n").first.map { String($0) }
        }
        context.logger.info("snapshot: \(files) files, \(filesTransferred) copied (\(Format.bytes(bytesTransferred))), \(hashed) hashed, \(carried) hashes carried forward")
        return output
    }

    /// The value of the fact `manifestOrder` for a manifest sorted by raw path bytes.
    static let sortedOrder = "path-bytes"

    /// The path of a snapshot's per-file manifest.
    static func manifestPath(_ record: TargetRecord, targetDirectory: String) throws -> String {
        guard let artifact = record.artifacts.first else { throw OperationError("no per-file manifest in the record") }
        return targetDirectory + "/" + (artifact.path as NSString).lastPathComponent
    }

    /// Checks a manifest file's SHA-256 against the record by streaming it.
    static func checkDigest(_ record: TargetRecord, path: String) throws {
        guard FileOps.exists(path) else { throw OperationError("\(path) is missing") }
        try ChecksumMismatch.check(path, actual: try FileTreeManifest.fileDigest(path), expected: record.artifacts.first?.sha256 ?? "")
    }

    /// Reads a snapshot's whole per-file manifest (in file order) into memory, checking its
    /// SHA-256 against the record first. Backup and verify stream it instead (`openSortedManifest`).
    static func loadEntries(_ record: TargetRecord, targetDirectory: String) throws -> [FileTreeEntry] {
        let path = try manifestPath(record, targetDirectory: targetDirectory)
        try checkDigest(record, path: path)
        var entries: [FileTreeEntry] = []
        try FileTreeManifest.Reader(path: path).forEach { entries.append($0) }
        return entries
    }

    /// A snapshot's manifest entries in raw path-byte order: streamed from the file when the
    /// snapshot wrote it sorted (the fact `manifestOrder`), sorted in memory once for a
    /// snapshot written before manifests were sorted. With `checkDigest`, its SHA-256 is checked
    /// against the record first (one more streaming read).
    static func openSortedManifest(_ record: TargetRecord, targetDirectory: String, checkDigest check: Bool) throws -> SortedManifest {
        let path = try manifestPath(record, targetDirectory: targetDirectory)
        if check { try checkDigest(record, path: path) }
        if record.facts["manifestOrder"]?.stringValue == sortedOrder {
            return SortedManifest(reader: try FileTreeManifest.Reader(path: path, requireSorted: true))
        }
        var entries: [FileTreeEntry] = []
        try FileTreeManifest.Reader(path: path).forEach { entries.append($0) }
        entries.sort { $0.path.bytes.lexicographicallyPrecedes($1.path.bytes) }
        for (a, b) in zip(entries, entries.dropFirst()) where a.path == b.path {
            throw OperationError("per-file manifest: \(a.path.display) is listed twice")
        }
        return SortedManifest(entries: entries)
    }

    /// Manifest entries in raw path-byte order, one at a time.
    final class SortedManifest {
        private let reader: FileTreeManifest.Reader?
        private var entries: [FileTreeEntry]
        private var index = 0

        init(reader: FileTreeManifest.Reader) { self.reader = reader; entries = [] }
        init(entries: [FileTreeEntry]) { reader = nil; self.entries = entries }

        /// The next entry, or nil after the last.
        func next() throws -> FileTreeEntry? {
            if let reader { return try reader.next() }
            guard index < entries.count else { entries = []; return nil }
            defer { index += 1 }
            return entries[index]
        }
    }

    /// The link to the newest snapshot.
    public func linkPath(repository: Repository) -> String {
        "\(repository.root)/links/\(name)/\(linkName)"
    }

    public func didCommit(_ record: TargetRecord, setDirectory: String, context: BackupContext) throws {
        try pointLink(at: setDirectory, repository: context.repository)
    }

    /// After a removal the link follows the newest remaining good snapshot, or goes when none
    /// remains: it never dangles into a removed set.
    public func didRemoveSets(repository: Repository) throws {
        if let (set, _) = repository.latestGood(target: name) {
            try pointLink(at: set.directory, repository: repository)
        } else {
            let link = linkPath(repository: repository)
            if unlink(link) != 0 && errno != ENOENT { throw SystemError("unlink", link) }
        }
    }

    /// Moves the link atomically to the snapshot of this target in `setDirectory`.
    private func pointLink(at setDirectory: String, repository: Repository) throws {
        let root = repository.root
        guard setDirectory.hasPrefix(root + "/") else { return }
        let link = linkPath(repository: repository)
        let folder = (link as NSString).deletingLastPathComponent
        try FileOps.makeDirectory(folder)
        // Relative, so the backup directory can be moved or mounted elsewhere.
        let target = "../../\(setDirectory.dropFirst(root.count + 1))/\(name)/\(Self.treeFolder)"
        let tmp = "\(folder)/.\(linkName).tmp-\(getpid())"
        unlink(tmp)
        guard symlink(target, tmp) == 0 else { throw SystemError("symlink", tmp) }
        do { try FileOps.rename(tmp, to: link) } catch { unlink(tmp); throw error }
    }

    // MARK: verify

    /// Checks the manifest's checksum, then streams it: every listed file must be there with
    /// its type and size; with `--deep` the snapshot is walked in path order beside the
    /// (sorted) manifest, so every file is re-hashed and files the manifest does not list are
    /// found without holding either list in memory.
    public func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding] {
        var findings = context.checkArtifacts(record) { _, _ in }
        guard findings.isEmpty, let artifact = record.artifacts.first else { return findings }
        let targetDir = context.setDirectory + "/" + (artifact.path as NSString).deletingLastPathComponent
        let tree = RawPath(targetDir + "/" + Self.treeFolder)
        var problems: [String] = []
        var problemCount = 0
        func problem(_ text: String) {
            problemCount += 1
            if problems.count < 50 { problems.append(text) }
        }
        var missing = 0, changed = 0, extra = 0, listed = 0
        var unique: Int64 = 0, apparent: Int64 = 0
        func check(_ e: FileTreeEntry, _ found: stat?) throws {
            listed += 1
            guard let st = found else { missing += 1; problem("\(e.path.display): missing"); return }
            let isLink = (st.st_mode & S_IFMT) == S_IFLNK
            if isLink != (e.type == UInt8(ascii: "l")) || Int64(st.st_size) != e.size {
                changed += 1
                problem("\(e.path.display): size \(st.st_size) bytes, manifest says \(e.size)")
                return
            }
            if !isLink {
                apparent += Int64(st.st_size)
                if st.st_nlink == 1 { unique += Int64(st.st_size) }
            }
            if context.deep {
                try Interrupts.shared.checkpoint()
                do {
                    let sha = try FileTreeManifest.hash(tree.appending(e.path), isLink: isLink)
                    if sha != e.sha256 {
                        changed += 1
                        problem("\(e.path.display): content changed (SHA-256 \(sha), manifest says \(e.sha256))")
                    }
                } catch {
                    changed += 1
                    problem("\(e.path.display): \(error)")
                }
            }
        }
        do {
            if context.deep {
                let manifest = try Self.openSortedManifest(record, targetDirectory: targetDir, checkDigest: false)
                var next = try manifest.next()
                try TreeWalk.sortedWalk(tree) { rel, st in
                    let type = st.st_mode & S_IFMT
                    guard type == S_IFREG || type == S_IFLNK else { return }
                    while let e = next, e.path.bytes.lexicographicallyPrecedes(rel.bytes) {
                        try check(e, nil)
                        next = try manifest.next()
                    }
                    if let e = next, e.path.bytes == rel.bytes {
                        try check(e, st)
                        next = try manifest.next()
                    } else {
                        extra += 1
                        problem("\(rel.display): extra file, not in the manifest")
                    }
                }
                while let e = next {
                    try check(e, nil)
                    next = try manifest.next()
                }
            } else {
                let reader = try FileTreeManifest.Reader(path: try Self.manifestPath(record, targetDirectory: targetDir))
                try reader.forEach { e in try check(e, tree.appending(e.path).lstat()) }
            }
        } catch {
            return findings + [Finding(.error, target: name, "\(artifact.path): \(error)")]
        }
        for p in problems { findings.append(Finding(.error, target: name, "snapshot: \(p)")) }
        if problemCount > problems.count { findings.append(Finding(.error, target: name, "snapshot: ... and \(problemCount - problems.count) more problems")) }
        if problemCount > 0 {
            findings.append(Finding(.error, target: name, "snapshot: \(missing) missing, \(changed) changed, \(extra) extra of \(listed) files"))
        }
        findings.append(Finding(.info, target: name, "snapshot: \(listed) files, \(Format.bytes(apparent)); unique to this snapshot now: \(Format.bytes(unique))\(context.deep ? "; every file re-hashed" : "")"))
        return findings
    }
}

// MARK: restore

/// What an rsync restore plan holds for its apply step.
struct RsyncRestoreDetails: RestorePlanDetails {
    /// The snapshot tree restored from.
    var snapshot: String
    /// The `--path` prefixes (relative, checked); empty for the whole tree.
    var prefixes: [String]
    /// The rsync arguments the restore runs, exactly.
    var arguments: [String]
    /// Whether the destination existed when the plan was made (with none and no safety copy,
    /// a rollback removes the folder the restore made).
    var destinationExisted: Bool
    /// The manifest entries restored (checked after rsync); not shown in `--json`.
    var scope: [FileTreeEntry]

    private enum CodingKeys: String, CodingKey { case snapshot, prefixes, arguments, destinationExisted, files }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(snapshot, forKey: .snapshot)
        try c.encode(prefixes, forKey: .prefixes)
        try c.encode(arguments, forKey: .arguments)
        try c.encode(destinationExisted, forKey: .destinationExisted)
        try c.encode(scope.count, forKey: .files)
    }
}

extension RsyncSnapshotTarget {
    /// The rsync command, the files it writes and deletes (from `rsync -n` over an existing
    /// destination), and a hard-link copy of the destination as the safety copy when it is
    /// not empty.
    public func planRestore(_ record: TargetRecord, context: RestoreContext) throws -> RestorePlan {
        guard let artifact = record.artifacts.first else { throw OperationError("backup of \(name) has no per-file manifest") }
        let targetDir = context.setDirectory + "/" + (artifact.path as NSString).deletingLastPathComponent
        let snapshot = targetDir + "/" + Self.treeFolder
        let entries = try Self.loadEntries(record, targetDirectory: targetDir)
        var destination = context.options.destination ?? record.facts["source"]?.stringValue ?? source
        if destination.count > 1 && destination.hasSuffix("/") { destination.removeLast() }

        var prefixes: [String] = []
        for raw in context.options.paths {
            var p = raw
            while p.hasPrefix("./") { p.removeFirst(2) }
            while p.hasSuffix("/") { p.removeLast() }
            guard !p.isEmpty, !p.hasPrefix("/"), !p.split(separator: "/").contains("..") else {
                throw UsageError("--path \(raw): give a path relative to the snapshot, without ..")
            }
            guard FileOps.exists(snapshot + "/" + p) else { throw UsageError("--path \(raw): not in backup \(context.setID)") }
            prefixes.append(p)
        }
        func inScope(_ e: FileTreeEntry) -> Bool {
            guard !prefixes.isEmpty else { return true }
            let bytes = e.path.bytes
            return prefixes.contains { p in
                let pb = Array(p.utf8)
                return bytes == pb || (bytes.count > pb.count && bytes.starts(with: pb) && bytes[pb.count] == UInt8(ascii: "/"))
            }
        }
        let scope = entries.filter(inScope)
        let scopeBytes = scope.reduce(Int64(0)) { $0 + $1.size }
        let state = DestinationState.of(destination)
        let destExists = state.exists
        let nonEmpty = destExists && !(RawPath(destination).children() ?? []).isEmpty

        var args = preserveOptions
        if prefixes.isEmpty { args.append("--delete") } else { args.append("-R") }
        // Excluded files were never backed up: keep them in the destination (and out of --delete).
        for pattern in excludes { args.append("--exclude=\(pattern)") }
        let owner = context.options.owner ?? restoreOwner, group = context.options.group ?? restoreGroup
        if owner != nil || group != nil { args.append("--chown=\(owner ?? ""):\(group ?? "")") }
        if let restoreChmod { args.append("--chmod=\(restoreChmod)") }
        args.append("--")
        args += prefixes.isEmpty ? [snapshot + "/"] : prefixes.map { "\(snapshot)/./\($0)" }
        args.append(destination + "/")

        var plan = RestorePlan(target: name, kind: kind, setID: context.setID, destination: destination,
                               safetyCopy: nonEmpty ? .hardLinkTree : .none, destinationState: state)
        plan.lines.append("source: backup \(context.setID), snapshot \(snapshot)")
        plan.lines.append("destination: \(destination)\(prefixes.isEmpty ? "" : " (only \(prefixes.joined(separator: ", ")))")")
        plan.lines.append("from the backup: \(scope.count) file(s), \(Format.bytes(scopeBytes))")
        if owner != nil || group != nil { plan.lines.append("owner:group set to \(owner ?? "-"):\(group ?? "-")") }
        if let restoreChmod { plan.lines.append("modes set with --chmod=\(restoreChmod)") }

        var writes = 0, deletes = 0
        var shown: [String] = []
        if destExists {
            let outcome = try Self.runRsync(["-n"] + args) { line in
                if line.isTransferredFile { writes += 1 } else if line.isDeletion { deletes += 1 } else { return }
                if shown.count < 50 { shown.append("  \(line.isDeletion ? "delete" : "write ") \(RawPath(bytes: line.name).display)") }
            }
            guard outcome.status == 0 else { throw outcome.error("rsync --dry-run") }
        } else {
            writes = scope.count
            shown = scope.prefix(50).map { "  write  \($0.path.display)" }
        }
        plan.lines.append("files to write: \(writes); files to delete: \(deletes)\(prefixes.isEmpty ? "" : " (--path never deletes)")")
        plan.lines += shown
        if writes + deletes > shown.count { plan.lines.append("  ... and \(writes + deletes - shown.count) more") }
        plan.lines.append(nonEmpty ? "a hard-link copy of the current files is taken into \(context.safetyDirectory) first" : "the destination is empty: no safety copy needed")
        plan.facts = ["files": .number(Double(scope.count)), "bytes": .number(Double(scopeBytes)),
                      "filesToWrite": .number(Double(writes)), "filesToDelete": .number(Double(deletes))]
        plan.details = RsyncRestoreDetails(snapshot: snapshot, prefixes: prefixes, arguments: args,
                                           destinationExisted: destExists, scope: scope)
        return plan
    }

    /// A hard-link snapshot of what is there now (rsync writes new files and renames them into
    /// place, so the linked old contents stay intact); a full copy across devices. With
    /// `--path`, only the parts restored.
    public func takeSafetyCopy(for plan: RestorePlan, context: RestoreContext, progress: RestoreProgress) throws -> String? {
        guard plan.safetyCopy == .hardLinkTree else { return nil }
        let details = try plan.details(as: RsyncRestoreDetails.self)
        let destination = plan.destination
        let safetyPath = try context.safetyPath(target: name, suffix: "")
        try FileOps.makeDirectory(safetyPath)
        let sameDevice = (RawPath(destination).lstat()?.st_dev).map { $0 == RawPath(safetyPath).lstat()?.st_dev } ?? false
        let items = details.prefixes.isEmpty ? ["."] : details.prefixes.filter { FileOps.exists(destination + "/" + $0) }
        for item in items {
            let from = item == "." ? destination + "/." : destination + "/" + item
            let to = item == "." ? safetyPath : safetyPath + "/" + item
            if item != "." { try FileOps.makeDirectory((to as NSString).deletingLastPathComponent) }
            let (outcome, _) = try ChildProcess("cp", [sameDevice ? "-al" : "-a", "--", from, to]).capture()
            guard outcome.status == 0 else {
                try? FileOps.removeTree(safetyPath)
                throw OperationError("could not take the safety copy (\(outcome.lastErrorLine)); nothing was restored")
            }
        }
        context.logger.info("safety copy made with \(sameDevice ? "hard links" : "a full copy")", metadata: .logFileOnly)
        return safetyPath
    }

    /// Runs the planned rsync, then checks what was restored against the manifest: sizes
    /// always, SHA-256 with `--verify`.
    public func applyRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                             progress: RestoreProgress) throws -> RestoreOutcome {
        let details = try plan.details(as: RsyncRestoreDetails.self)
        let destination = plan.destination
        var written = 0, deleted = 0
        var bytes: Int64 = 0
        progress.willChangeDestination()
        try FileOps.makeDirectory(destination)
        let outcome = try Self.runRsync(details.arguments) { line in
            if line.isTransferredFile { written += 1; bytes += line.length } else if line.isDeletion { deleted += 1 }
            try Fault.point("restore-rsync-entry")
        }
        if outcome.status != 0 { try Interrupts.shared.yieldToSignal() }
        guard outcome.status == 0 else { throw outcome.error("rsync") }
        try Fault.point("restore-rsync")

        var mismatches: [String] = []
        let dest = RawPath(destination)
        for e in details.scope {
            let full = dest.appending(e.path)
            guard let st = full.lstat() else { mismatches.append("\(e.path.display): missing"); continue }
            if Int64(st.st_size) != e.size { mismatches.append("\(e.path.display): size \(st.st_size), manifest says \(e.size)"); continue }
            if context.options.verifyAfter {
                let sha = (try? FileTreeManifest.hash(full, isLink: (st.st_mode & S_IFMT) == S_IFLNK)) ?? "unreadable"
                if sha != e.sha256 { mismatches.append("\(e.path.display): SHA-256 \(sha), manifest says \(e.sha256)") }
            }
        }
        if !mismatches.isEmpty {
            throw OperationError("\(mismatches.count) restored file(s) do not match the manifest, e.g. \(mismatches[0])")
        }
        var restoredDirs = 0
        let prefixes = details.prefixes
        try? TreeWalk.walk(RawPath(details.snapshot)) { rel, st in
            if (st.st_mode & S_IFMT) == S_IFDIR && (prefixes.isEmpty || prefixes.contains { p in rel.display == p || rel.display.hasPrefix(p + "/") }) {
                restoredDirs += 1
            }
        }
        let count = details.scope.count
        let scopeBytes = details.scope.reduce(Int64(0)) { $0 + $1.size }
        return RestoreOutcome(
            lines: ["restored \(count) file(s) in \(restoredDirs) folder(s), \(Format.bytes(scopeBytes)) (\(written) written, \(deleted) deleted)",
                    "checked against the manifest: \(context.options.verifyAfter ? "sizes and SHA-256" : "sizes") of \(count) file(s) match"],
            facts: ["directories": .number(Double(restoredDirs)), "filesWritten": .number(Double(written)),
                    "bytesWritten": .number(Double(bytes)), "filesDeleted": .number(Double(deleted))])
    }

    /// Puts the safety copy back (rsync --delete for the whole tree, a copy per `--path`
    /// part), removes the parts that did not exist before; with no safety copy, empties (or
    /// removes) the destination the restore filled.
    public func rollBackRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                                progress: RestoreProgress) throws -> [String] {
        let details = try plan.details(as: RsyncRestoreDetails.self)
        let destination = plan.destination
        var problems: [String] = []
        try Fault.point("rollback")
        if let safety = safetyCopy {
            if details.prefixes.isEmpty {
                let outcome = try ChildProcess("rsync", preserveOptions + ["--delete", "--", safety + "/", destination + "/"]).run()
                if outcome.status != 0 { problems.append("copying the tree back exited \(outcome.status): \(outcome.lastErrorLine)") }
            }
            for item in details.prefixes {
                try FileOps.removeTree(destination + "/" + item)
                // A part that did not exist before the restore stays removed.
                guard FileOps.exists(safety + "/" + item) else { continue }
                let outcome = try ChildProcess("cp", ["-a", "--", safety + "/" + item, destination + "/" + item]).run()
                if outcome.status != 0 { problems.append("copying \(item) back exited \(outcome.status): \(outcome.lastErrorLine)") }
            }
        } else if !details.destinationExisted {
            try FileOps.removeTree(destination)
        } else {
            for child in RawPath(destination).children() ?? [] { try FileOps.removeTree(RawPath(destination).appending(child)) }
        }
        if !problems.isEmpty { throw OperationError(problems.joined(separator: "; ")) }
        return []
    }
}

// MARK: restore drill

extension RsyncSnapshotTarget {
    /// Restores the snapshot with the real restore (the same rsync command, options and
    /// owner/mode settings) into an empty scratch folder, so no safety copy is taken and nothing
    /// live is touched, then re-hashes every restored file and compares its type, size and
    /// SHA-256 with the per-file manifest; a file the manifest does not list fails the drill too.
    /// The scratch folder is always removed.
    public static var hasRestoreDrill: Bool { true }

    public func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport? {
        guard let artifact = record.artifacts.first else { throw OperationError("backup of \(name) has no per-file manifest") }
        let scratch = try context.makeDrillScratch(name)
        defer { context.removeDrillScratch(scratch) }
        let destination = scratch + "/tree"
        var lines = ["restoring snapshot \(context.setID) of \(record.facts["source"]?.stringValue ?? source) into scratch folder \(destination)"]
        let entries: [FileTreeEntry]
        do {
            let targetDir = context.setDirectory + "/" + (artifact.path as NSString).deletingLastPathComponent
            entries = try Self.loadEntries(record, targetDirectory: targetDir)
        } catch {
            return DrillReport(target: name, setID: context.setID, passed: false, restoreSeconds: 0, lines: lines + ["\(artifact.path): \(error)"])
        }
        let started = Date()
        do {
            let restoreContext = RestoreContext(setDirectory: context.setDirectory, setID: context.setID,
                                                safetyDirectory: scratch + "/pre-restore", options: RestoreOptions(destination: destination),
                                                logger: context.logger, showProgress: false)
            _ = try restore(record, context: restoreContext)
        } catch {
            return DrillReport(target: name, setID: context.setID, passed: false, restoreSeconds: 0, lines: lines + ["restore failed: \(error)"])
        }
        let seconds = Date().timeIntervalSince(started)

        var problems: [String] = []
        var bytes: Int64 = 0
        let root = RawPath(destination)
        for e in entries {
            try Interrupts.shared.checkpoint()
            let full = root.appending(e.path)
            guard let st = full.lstat() else { problems.append("\(e.path.display): missing"); continue }
            let isLink = (st.st_mode & S_IFMT) == S_IFLNK
            guard isLink == (e.type == UInt8(ascii: "l")), isLink || (st.st_mode & S_IFMT) == S_IFREG else {
                problems.append("\(e.path.display): restored as another file type"); continue
            }
            if Int64(st.st_size) != e.size { problems.append("\(e.path.display): size \(st.st_size), manifest says \(e.size)"); continue }
            let sha: String
            do { sha = try FileTreeManifest.hash(full, isLink: isLink) } catch { problems.append("\(e.path.display): \(error)"); continue }
            if sha != e.sha256 { problems.append("\(e.path.display): SHA-256 \(sha), manifest says \(e.sha256)") }
            bytes += Int64(st.st_size)
        }
        let known = Set(entries.map(\.path.bytes))
        try TreeWalk.walk(root) { rel, st in
            let type = st.st_mode & S_IFMT
            if (type == S_IFREG || type == S_IFLNK) && !known.contains(rel.bytes) {
                problems.append("\(rel.display): restored, but not in the manifest")
            }
        }
        if problems.isEmpty {
            lines.append("\(entries.count) file(s), \(Format.bytes(bytes)): every file's SHA-256 matches the manifest")
        } else {
            lines.append("\(problems.count) restored file(s) do not match the manifest (\(entries.count) listed):")
            lines += DrillChecks.shown(problems).map { "  " + $0 }
        }
        return DrillReport(target: name, setID: context.setID, passed: problems.isEmpty, restoreSeconds: seconds, lines: lines)
    }
}
