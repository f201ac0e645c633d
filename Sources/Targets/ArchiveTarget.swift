import BackupCore
import Foundation

/// A tarball of a list of paths, written with libarchive: config files, codebases, data
/// folders. Entries are stored relative to `base`, never absolute. Missing paths are skipped
/// and listed in the manifest. A path that is a git work tree has its commit and branch
/// recorded.
///
/// Config (`TARGET_<NAME>_…`): the keys declared in `configKeys`.
public struct ArchiveTarget: TargetKind {
    public let name: String
    /// The kind's name in config.
    public static let kindName = "archive"
    /// Every key of the kind, declared once (see `TargetKind`).
    public static let configKeys: [ConfigKey] = [
        ConfigKey("PATHS", .list, help: "files, folders and globs to archive (required)"),
        ConfigKey("BASE", .path, default: "/", help: "entries are stored relative to this folder and restored into it"),
        ConfigKey("INCLUDE", .list, help: "only regular files matching one of these globs are kept"),
        ConfigKey("EXCLUDE", .list, help: "files and folders matching one of these globs are skipped"),
        ConfigKey("ARTIFACT", .string, default: "the target name", help: "the artifact's file name stem"),
    ] + Compression.configKeys(of: "the tarball")
    /// What to archive (absolute paths).
    public let paths: [String]
    /// Entries are named relative to this directory, and restored into it by default.
    public let base: String
    /// Only regular files matching one of these globs are kept (all when empty).
    public let include: [String]
    /// Files and folders matching one of these globs are skipped (with their contents).
    public let exclude: [String]
    /// The compression.
    public let compression: Compression
    /// The artifact's file name stem.
    public var artifactStem: String

    /// Creates the target.
    public init(name: String, paths: [String], base: String = "/", include: [String] = [], exclude: [String] = [],
                compression: Compression = .gzip(level: 6), artifactStem: String? = nil) {
        self.name = name
        self.paths = paths
        self.base = FileOps.trimmingTrailingSlashes(base)
        self.include = include
        self.exclude = exclude
        self.compression = compression
        self.artifactStem = artifactStem ?? name
    }

    /// Builds the target from its config keys.
    public init(settings s: TargetSettings) throws {
        let rawPaths = s.list("PATHS")
        guard !rawPaths.isEmpty else { throw ConfigError.missingKey(key: s.key("PATHS"), file: s.config.file) }
        let paths = rawPaths.map { s.config.resolve($0) }
        let base = try s.path("BASE") ?? "/"
        for p in paths where !(base == "/" || p == base || p.hasPrefix(base + "/")) {
            throw ConfigError.invalidValue(key: s.key("PATHS"), file: s.config.file, value: p, expected: "paths inside \(s.key("BASE"))=\(base)")
        }
        let stem = s.string("ARTIFACT")
        if let stem, stem.contains("/") {
            throw ConfigError.invalidValue(key: s.key("ARTIFACT"), file: s.config.file, value: stem, expected: "a file name without /")
        }
        self.init(name: s.name, paths: paths, base: base, include: s.list("INCLUDE"), exclude: s.list("EXCLUDE"),
                  compression: try Compression(settings: s), artifactStem: stem)
    }

    public var summary: String {
        "archive of \(paths.joined(separator: ", ")) (\(compression.name)\(exclude.isEmpty ? "" : ", excluding \(exclude.joined(separator: " "))"))"
    }

    private var extensionSuffix: String { ".tar" + (compression == .none ? "" : compression.suffix) }

    private func entryName(_ path: String) -> String {
        if base == "/" { return path == "/" ? "." : String(path.drop(while: { $0 == "/" })) }
        if path == base { return "." }
        return String(path.dropFirst(base.count + 1))
    }

    private func excluded(_ entry: String) -> Bool {
        let leaf = (entry as NSString).lastPathComponent
        return exclude.contains { fnmatch($0, leaf, 0) == 0 || fnmatch($0, entry, FNM_PATHNAME) == 0 }
    }

    private func included(_ entry: String) -> Bool {
        guard !include.isEmpty else { return true }
        let leaf = (entry as NSString).lastPathComponent
        return include.contains { fnmatch($0, leaf, 0) == 0 || fnmatch($0, entry, FNM_PATHNAME) == 0 }
    }

    /// The configured paths with globs (`*`, `?`, `[`) expanded, and the ones that match nothing.
    func expandedPaths() -> (present: [String], missing: [String]) {
        var present: [String] = [], missing: [String] = []
        for path in paths {
            guard path.contains(where: { "*?[".contains($0) }) else {
                if FileOps.exists(path) { present.append(path) } else { missing.append(path) }
                continue
            }
            var g = glob_t()
            defer { globfree(&g) }
            guard glob(path, 0, nil, &g) == 0, g.gl_pathc > 0 else { missing.append(path); continue }
            for i in 0..<Int(g.gl_pathc) {
                if let p = g.gl_pathv[i] { present.append(String(cString: p)) }
            }
        }
        return (present, missing)
    }

    public func preflight(_ context: PreflightContext) -> [Finding] {
        let (present, missingPaths) = expandedPaths()
        var findings = missingPaths.map { Finding(.warning, target: name, "\($0) does not exist; it will be skipped") }
        if present.isEmpty { findings.append(Finding(.error, target: name, "none of the configured paths exist")) }
        for p in present where access(p, R_OK) != 0 {
            findings.append(Finding(.error, target: name, "\(p) is not readable by this user"))
        }
        return findings
    }

    /// Walks `path` depth first with byte-exact names, calling `visit` for every entry that
    /// passes the filters. Unreadable folders are reported through `unreadable`.
    private func walk(_ path: RawPath, entry: RawPath, skip: RawPath, _ visit: (RawPath, RawPath) throws -> Void,
                      unreadable: (RawPath) -> Void) throws {
        let isRoot = entry.bytes == [UInt8(ascii: ".")]
        if !isRoot && excluded(entry.display) { return }
        if path == skip { return } // never archive the backup directory into itself
        guard let st = path.lstat() else { return } // vanished since listing: skip
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if !isRoot { try visit(path, entry) }
            guard let children = path.children() else { unreadable(path); return }
            for child in children {
                try walk(path.appending(child), entry: isRoot ? RawPath(bytes: child) : entry.appending(child), skip: skip,
                         visit, unreadable: unreadable)
            }
        } else if included(entry.display) {
            try visit(path, entry)
        }
    }

    public func backup(_ context: BackupContext) throws -> TargetOutput {
        var output = TargetOutput()
        let fileName = "\(artifactStem)_\(context.setID)\(extensionSuffix)"
        let writer = try context.createArtifact(fileName, label: "\(name): archive")
        var files = 0, dirs = 0, others = 0
        var contentBytes: Int64 = 0
        var members: [JSONValue] = []
        var memberList: [MemberList.Member] = []
        var skipped: [JSONValue] = []
        do {
            let archive = try ArchiveWriter(sink: writer, format: .tar, compression: compression)
            let (present, missingPaths) = expandedPaths()
            for path in missingPaths {
                output.warnings.append("skipped missing path \(path)")
                skipped.append(.string(path))
            }
            for path in present {
                guard FileOps.exists(path) else {
                    output.warnings.append("skipped missing path \(path)")
                    skipped.append(.string(path))
                    continue
                }
                try walk(RawPath(path), entry: RawPath(entryName(path)), skip: RawPath(context.repository.root)) { full, entry in
                    guard let st = full.lstat() else { return }
                    switch st.st_mode & S_IFMT {
                    case S_IFDIR: dirs += 1
                    case S_IFREG: files += 1
                    default: others += 1
                    }
                    if members.count < 500 { members.append(.string(entry.display)) }
                    // Each regular file is hashed as its bytes stream into the archive: the member list.
                    var hash = StreamingSHA256()
                    let added = try archive.addPath(full, as: entry) { hash.update($0) }
                    if (st.st_mode & S_IFMT) == S_IFREG {
                        memberList.append(MemberList.Member(name: entry.bytes, size: added, sha256: hash.hexDigest()))
                    }
                    contentBytes += added
                } unreadable: { dir in
                    output.warnings.append("cannot read folder \(dir.display); its contents are not in the backup")
                }
            }
            try archive.close()
        } catch {
            writer.abandon()
            throw error
        }
        let (bytes, sha) = try writer.finish()
        output.artifacts = [Artifact(path: fileName, bytes: bytes, sha256: sha, format: "tar+\(compression.name)")]
        let listName = "\(artifactStem)_\(context.setID)\(MemberList.suffix)"
        let listWriter = try context.createArtifact(listName)
        do { try MemberList.write(memberList) { try listWriter.write($0) } } catch { listWriter.abandon(); throw error }
        let (listBytes, listSha) = try listWriter.finish()
        output.artifacts.append(Artifact(path: listName, bytes: listBytes, sha256: listSha, format: MemberList.format))
        output.facts = [
            "paths": .array(paths.map { .string($0) }),
            "base": .string(base),
            "files": .number(Double(files)),
            "directories": .number(Double(dirs)),
            "otherEntries": .number(Double(others)),
            "entries": .number(Double(files + dirs + others)),
            "contentBytes": .number(Double(contentBytes)),
            "members": .array(members),
            "membersTruncated": .bool(files + dirs + others > members.count),
            "skippedMissing": .array(skipped),
        ]
        if !exclude.isEmpty { output.facts["exclude"] = .array(exclude.map { .string($0) }) }
        if paths.count == 1, let git = GitInfo.read(paths[0]) {
            output.facts["git"] = .object(git.mapValues { .string($0) })
        }
        output.toolVersions = ["libarchive": libarchiveVersion]
        return output
    }

    public func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding] {
        var members: [String] = []
        var count = 0
        var findings = context.checkArtifacts(record) { artifact, reader in
            if artifact.format == MemberList.format {
                var data = Data()
                while true {
                    let n = try reader.read()
                    if n == 0 { break }
                    data.append(contentsOf: UnsafeRawBufferPointer(rebasing: reader.buffer[0..<n]))
                }
                let list = try MemberList.parse(data)
                if let files = record.facts["files"]?.sizeValue, files != list.count {
                    throw OperationError("member list holds \(list.count) files, manifest says \(Int(files))")
                }
                return
            }
            let archive = try ArchiveReader(source: reader)
            while let e = try archive.next() {
                count += 1
                if members.count < 20 { members.append(e.path) }
                try archive.readData()
            }
            if let expected = record.facts["entries"]?.sizeValue, expected != count {
                throw OperationError("archive holds \(count) entries, manifest says \(Int(expected))")
            }
        }
        if findings.isEmpty {
            // The member list as read from the archive itself (config tarballs: which files are in it).
            findings.append(Finding(.info, target: name, "\(count) entries: \(members.joined(separator: ", "))\(count > members.count ? ", ... and \(count - members.count) more" : "")"))
        }
        return findings
    }

    /// Reads the whole archive (checksum, and a refusal of any entry that could escape the
    /// destination), then looks at what is at each name in the destination now: the entries to
    /// create and the files to overwrite, whose tarball is the safety copy. Writes nothing.
    public func planRestore(_ record: TargetRecord, context: RestoreContext) throws -> RestorePlan {
        guard let artifact = record.artifacts.first else { throw OperationError("backup of \(name) has no files") }
        let archivePath = context.setDirectory + "/" + artifact.path
        var destination = context.options.destination ?? record.facts["base"]?.stringValue ?? base
        if destination.count > 1 && destination.hasSuffix("/") { destination.removeLast() }
        // Names are compared as bytes, component by component (never as Swift strings, which
        // equate the NFC and NFD forms of a name).
        let prefixes = try context.options.paths.map { raw -> [[UInt8]] in
            guard let parts = BeneathDirectory.components(of: RawPath(raw)), !parts.isEmpty else {
                throw UsageError("--path \(raw): give a relative path inside the backup, without '..'")
            }
            return parts
        }
        func wanted(_ parts: [[UInt8]]) -> Bool { prefixes.isEmpty || prefixes.contains { parts.starts(with: $0) } }

        // Pass 1: read the whole archive; refuse it if any entry could escape the destination,
        // goes through a symlink of the archive, or is something a restore never creates.
        var entries: [(entry: ArchiveEntryInfo, parts: [[UInt8]])] = []
        var screening = ArchiveScreening()
        do {
            let reader = try HashingFileReader(path: archivePath)
            defer { reader.close() }
            let archive = try ArchiveReader(source: reader)
            while let e = try archive.next() {
                screening.screen(e)
                if let parts = BeneathDirectory.components(of: e.rawPath), !parts.isEmpty, wanted(parts) { entries.append((e, parts)) }
                try archive.readData()
            }
            try reader.drain()
            guard reader.hexDigest() == artifact.sha256 else {
                throw OperationError("\(artifact.path): checksum mismatch; not restoring")
            }
        }
        try screening.verdict(artifact: artifact.path)
        if !prefixes.isEmpty && entries.isEmpty {
            throw UsageError("no entry of \(artifact.path) matches --path \(context.options.paths.joined(separator: " "))")
        }

        // Pass 2, still writing nothing: what is at each name in the destination now, looked up
        // below it without following links. A link or a file where a folder must go, a folder
        // where a file must go, or a special file in the way stops the restore here.
        let state = DestinationState.of(destination)
        let existing = state.exists ? try Self.openDestination(destination) : nil
        var overwritten: [ArchiveRestoreDetails.Overwritten] = []
        var overwrittenKeys = Set<RawPath>()
        var conflicts: [String] = []
        var replaces: [Bool] = []
        for (e, parts) in entries {
            var st: stat?
            do {
                st = try existing?.status(parts[...])
            } catch let error as BeneathError where error.reason == .symbolicLink || error.reason == .notAFolder {
                conflicts.append("'\(e.path)': \(error.message)")
            }
            replaces.append(st != nil && !e.isDirectory)
            guard let st else { continue }
            let type = st.st_mode & S_IFMT
            if e.isDirectory {
                if type != S_IFDIR { conflicts.append("\(destination)/\(e.path) exists and is a \(ArchiveScreening.kind(type)), not a folder") }
            } else if type == S_IFDIR {
                conflicts.append("\(destination)/\(e.path) exists and is a folder")
            } else if type != S_IFREG && type != S_IFLNK {
                conflicts.append("\(destination)/\(e.path) exists and is a \(ArchiveScreening.kind(type)); not replacing it")
            } else {
                let key = ArchiveExtractor.key(parts)
                if overwrittenKeys.insert(key).inserted { overwritten.append(.init(key: key, parts: parts)) }
            }
        }
        if !conflicts.isEmpty {
            throw OperationError("cannot restore \(artifact.path) into \(destination): \(conflicts.prefix(5).joined(separator: "; "))\(conflicts.count > 5 ? "; and \(conflicts.count - 5) more" : ""); nothing was written (move what is in the way, or restore into an empty folder with --to and copy from there)")
        }
        let setID = screening.setIDEntries.filter { key in
            BeneathDirectory.components(of: key).map(wanted) ?? false
        }

        var plan = RestorePlan(target: name, kind: kind, setID: context.setID, destination: destination,
                               safetyCopy: overwritten.isEmpty ? .none : .tarballOfOverwritten, destinationState: state)
        plan.safetyCopyHolds = "the overwritten files are"
        plan.lines.append("source: backup \(context.setID), \(artifact.path) (\(Format.bytes(artifact.bytes)))")
        plan.lines.append("destination: \(destination)")
        plan.lines.append("entries to write: \(entries.count) (\(overwritten.count) existing file(s) overwritten)")
        for (i, (e, _)) in entries.prefix(50).enumerated() {
            plan.lines.append("  \(replaces[i] ? "overwrite" : "create   ") \(e.path)")
        }
        if entries.count > 50 { plan.lines.append("  ... and \(entries.count - 50) more") }
        if !setID.isEmpty && !context.options.keepSetuid {
            plan.lines.append("\(setID.count) file(s) have set-user-ID/set-group-ID bits; they will be restored without them (--keep-setuid keeps them): \(Self.names(setID))")
        }
        if !overwritten.isEmpty { plan.lines.append("a tarball of the \(overwritten.count) file(s) overwritten is taken into \(context.safetyDirectory) first") }
        plan.details = ArchiveRestoreDetails(artifact: artifact, prefixes: prefixes, entries: entries.count, overwritten: overwritten)
        return plan
    }

    /// A tarball of every file or link the restore will replace, read below the destination
    /// without following links.
    public func takeSafetyCopy(for plan: RestorePlan, context: RestoreContext, progress: RestoreProgress) throws -> String? {
        let details = try plan.details(as: ArchiveRestoreDetails.self)
        guard !details.overwritten.isEmpty else { return nil }
        let root = try Self.openDestination(plan.destination)
        let safetyPath = try context.safetyPath(target: name, suffix: ".tar.gz")
        do {
            let w = try HashingFileWriter(path: safetyPath)
            let a = try ArchiveWriter(sink: w, format: .tar, compression: .gzip(level: 1))
            for o in details.overwritten {
                try a.addObject(in: try root.folder(o.parts.dropLast()), o.parts.last!, as: o.key)
            }
            try a.close()
            _ = try w.finish()
        } catch {
            unlink(safetyPath)
            throw OperationError("could not take the safety copy of the \(details.overwritten.count) file(s) to overwrite (\(error)); nothing was restored")
        }
        return safetyPath
    }

    /// What an archive restore's rollback needs: the folders it made above the destination,
    /// and the extractor that knows every entry it created or changed.
    private final class ArchiveUndo: @unchecked Sendable {
        let madeAncestors: [String]
        var extractor: ArchiveExtractor?
        init(madeAncestors: [String]) { self.madeAncestors = madeAncestors }
    }

    /// Extracts the planned entries with the safe extractor, which replaces only the files the
    /// plan listed as overwritten (and kept in the safety copy).
    public func applyRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                             progress: RestoreProgress) throws -> RestoreOutcome {
        let details = try plan.details(as: ArchiveRestoreDetails.self)
        let destination = plan.destination, artifact = details.artifact
        let prefixes = details.prefixes
        func wanted(_ parts: [[UInt8]]) -> Bool { prefixes.isEmpty || prefixes.contains { parts.starts(with: $0) } }
        let undo = ArchiveUndo(madeAncestors: Self.missingAncestors(of: destination))
        progress.keepForRollback(undo)
        progress.willChangeDestination()
        try FileOps.makeDirectory(destination)
        let root = try Self.openDestination(destination)
        var bytes: Int64 = 0
        let extractor = ArchiveExtractor(root: root, restoreOwner: getuid() == 0, keepSetID: context.options.keepSetuid,
                                         replaceable: Set(details.overwritten.map(\.key)))
        undo.extractor = extractor
        let reader = try HashingFileReader(path: context.setDirectory + "/" + artifact.path)
        defer { reader.close() }
        let archive = try ArchiveReader(source: reader)
        while let e = try archive.next() {
            try Interrupts.shared.checkpoint()
            guard let parts = BeneathDirectory.components(of: e.rawPath), !parts.isEmpty, wanted(parts) else {
                try archive.readData()
                continue
            }
            try extractor.extractCurrent(from: archive)
            bytes += e.size
        }
        try reader.drain()
        guard reader.hexDigest() == artifact.sha256 else {
            throw OperationError("\(artifact.path) changed between the check and the extraction")
        }
        try extractor.close()
        var outcome = RestoreOutcome(lines: ["restored \(details.entries) entries, \(Format.bytes(bytes))"],
                                     facts: ["entries": .number(Double(details.entries)), "bytes": .number(Double(bytes))])
        if !extractor.strippedSetID.isEmpty {
            outcome.facts["setIDRemoved"] = .number(Double(extractor.strippedSetID.count))
            outcome.lines.append("set-user-ID/set-group-ID bits removed from \(extractor.strippedSetID.count) file(s) (--keep-setuid keeps them): \(Self.names(extractor.strippedSetID))")
        }
        return outcome
    }

    /// Removes what the extraction created and puts back the modes it changed (by device and
    /// inode), extracts the overwritten files from the safety tarball, and removes the folders
    /// it made above the destination.
    public func rollBackRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                                progress: RestoreProgress) throws -> [String] {
        guard let undo = progress.keptForRollback(as: ArchiveUndo.self) else { return [] }
        var problems = undo.extractor?.rollback() ?? []
        if let safetyCopy {
            do {
                try Fault.point("rollback")
                try Self.extractAll(safetyCopy, into: plan.destination)
            } catch {
                problems.append("putting back the overwritten files from the safety copy failed: \(error)")
            }
        }
        guard problems.isEmpty else { throw OperationError(problems.joined(separator: "; ")) }
        for dir in undo.madeAncestors.reversed() { rmdir(dir) }
        return []
    }

    /// Opens the destination folder for the restore; a symlink there is refused with the folder
    /// it points to, to name with `--to` instead.
    private static func openDestination(_ path: String) throws -> BeneathDirectory {
        do {
            return try BeneathDirectory(path)
        } catch let error as BeneathError where error.reason == .symbolicLink {
            let real = realpath(path, nil).map { p in defer { free(p) }; return String(cString: p) }
            throw OperationError("the destination \(path) is a symbolic link\(real.map { " to \($0)" } ?? ""); a restore never follows links: name the real folder with --to\(real.map { " \($0)" } ?? "")")
        }
    }

    /// The first few names, for a report line.
    private static func names(_ keys: [RawPath]) -> String {
        keys.prefix(5).map(\.display).joined(separator: ", ") + (keys.count > 5 ? ", ... and \(keys.count - 5) more" : "")
    }

    /// The folders of `path` (itself included) that do not exist yet, outermost first: what
    /// creating the destination would add, and a rollback removes again (when still empty).
    private static func missingAncestors(of path: String) -> [String] {
        var missing: [String] = []
        var current = path
        while current.count > 1 && !FileOps.exists(current) {
            missing.insert(current, at: 0)
            current = (current as NSString).deletingLastPathComponent
        }
        return missing
    }

    /// Extracts a whole tarball Backstop wrote (a safety copy) into `directory` with the same
    /// safe extractor, keeping set-ID bits and, as root, owners.
    static func extractAll(_ tarball: String, into directory: String) throws {
        let reader = try HashingFileReader(path: tarball)
        defer { reader.close() }
        let archive = try ArchiveReader(source: reader)
        let extractor = ArchiveExtractor(directory: directory, restoreOwner: getuid() == 0, keepSetID: true)
        while try archive.next() != nil { try extractor.extractCurrent(from: archive) }
        try extractor.close()
    }
}

/// Git facts about a work tree: commit, branch and whether it had uncommitted changes.
enum GitInfo {
    static func read(_ path: String) -> [String: String]? {
        guard FileOps.exists(path + "/.git"), ChildProcess.which("git") != nil else { return nil }
        func git(_ args: [String]) -> String? {
            guard let (outcome, text) = try? ChildProcess("git", ["-C", path] + args,
                                                          environment: ["GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"]).capture(),
                  outcome.status == 0 else { return nil }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let commit = git(["rev-parse", "HEAD"]) else { return nil }
        var info = ["commit": commit]
        info["branch"] = git(["rev-parse", "--abbrev-ref", "HEAD"])
        if let status = git(["status", "--porcelain"]) { info["dirty"] = status.isEmpty ? "false" : "true" }
        return info
    }
}

// MARK: restore drill

extension ArchiveTarget {
    /// Extracts the tarball into a scratch folder (never the live destination) with the
    /// extractor restore uses, checking its checksum on the way, then compares every regular
    /// file's size and SHA-256 with the member list recorded at backup time; a file the list
    /// lacks, or a listed one that did not come out, fails the drill. A backup made before
    /// member lists were kept is compared with the archive's own entries (sizes only), and the
    /// report says the list is missing. The scratch folder is always removed.
    public static var hasRestoreDrill: Bool { true }

    public func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport? {
        guard let artifact = record.artifacts.first(where: { $0.format != MemberList.format }) else {
            throw OperationError("backup of \(name) has no tarball")
        }
        var lines: [String] = []
        var list: [[UInt8]: MemberList.Member]?
        if let listArtifact = record.artifacts.first(where: { $0.format == MemberList.format }) {
            do {
                list = try MemberList.load(context.setDirectory + "/" + listArtifact.path, sha256: listArtifact.sha256)
            } catch {
                return DrillReport(target: name, setID: context.setID, passed: false, restoreSeconds: 0,
                                   lines: ["\(listArtifact.path): \(error)"])
            }
        }
        let scratch = try context.makeDrillScratch(name)
        defer { context.removeDrillScratch(scratch) }
        let tree = scratch + "/tree"
        try FileOps.makeDirectory(tree)
        lines.append("extracting \(artifact.path) (\(Format.bytes(artifact.bytes))) into scratch folder \(tree)")

        // Extract, remembering each regular entry's size as the archive states it.
        var entrySizes: [[UInt8]: Int64] = [:]
        let started = Date()
        do {
            let reader = try HashingFileReader(path: context.setDirectory + "/" + artifact.path)
            defer { reader.close() }
            let archive = try ArchiveReader(source: reader)
            let extractor = ArchiveExtractor(directory: tree, restoreOwner: false)
            while let e = try archive.next() {
                try Interrupts.shared.checkpoint()
                guard ArchivePaths.isSafe(e.path) else { throw OperationError("entry '\(e.path)' would write outside the destination") }
                if let link = e.hardlink, !ArchivePaths.isSafe(link) { throw OperationError("hard link '\(e.path)' points outside (\(link))") }
                if e.type == S_IFREG && e.hardlink == nil { entrySizes[e.rawPath.bytes] = e.size }
                try extractor.extractCurrent(from: archive)
            }
            try extractor.close()
            try reader.drain()
            try ChecksumMismatch.check(artifact.path, actual: reader.hexDigest(), expected: artifact.sha256)
        } catch {
            return DrillReport(target: name, setID: context.setID, passed: false, restoreSeconds: 0, lines: lines + ["extraction failed: \(error)"])
        }
        let seconds = Date().timeIntervalSince(started)

        var problems: [String] = []
        var bytes: Int64 = 0
        let root = RawPath(tree)
        let expected: [[UInt8]: (size: Int64, sha256: String?)] = list?.mapValues { ($0.size, $0.sha256) }
            ?? entrySizes.mapValues { ($0, nil) }
        for (name, want) in expected.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            try Interrupts.shared.checkpoint()
            let path = RawPath(bytes: name)
            let full = root.appending(path)
            guard let st = full.lstat(), (st.st_mode & S_IFMT) == S_IFREG else { problems.append("\(path.display): not extracted as a file"); continue }
            if Int64(st.st_size) != want.size { problems.append("\(path.display): size \(st.st_size), \(list == nil ? "archive entry says" : "member list says") \(want.size)"); continue }
            bytes += Int64(st.st_size)
            guard let sha = want.sha256 else { continue }
            let got: String
            do { got = try FileTreeManifest.hash(full, isLink: false) } catch { problems.append("\(path.display): \(error)"); continue }
            if got != sha { problems.append("\(path.display): SHA-256 \(got), member list says \(sha)") }
        }
        try TreeWalk.walk(root) { rel, st in
            if (st.st_mode & S_IFMT) == S_IFREG && expected[rel.bytes] == nil {
                problems.append("\(rel.display): extracted, but not in the \(list == nil ? "archive's entries" : "member list")")
            }
        }
        if list == nil {
            lines.append("this backup has no member list (made before member lists were recorded): compared the extracted files' sizes with the archive's entries only")
        }
        if problems.isEmpty {
            lines.append("\(expected.count) file(s), \(Format.bytes(bytes)): every file's \(list == nil ? "size matches the archive" : "size and SHA-256 match the member list")")
        } else {
            lines.append("\(problems.count) file(s) do not match (\(expected.count) expected):")
            lines += DrillChecks.shown(problems).map { "  " + $0 }
        }
        return DrillReport(target: name, setID: context.setID, passed: problems.isEmpty, restoreSeconds: seconds, lines: lines)
    }
}

/// What an archive restore plan holds for its apply step.
struct ArchiveRestoreDetails: RestorePlanDetails {
    /// A file or link the restore replaces (kept in the safety tarball first).
    struct Overwritten: Sendable {
        var key: RawPath
        var parts: [[UInt8]]
    }
    /// The tarball in the set.
    var artifact: Artifact
    /// The `--path` prefixes, as name components (bytes).
    var prefixes: [[[UInt8]]]
    /// How many entries are written.
    var entries: Int
    /// The files and links overwritten: the only ones the extractor may replace.
    var overwritten: [Overwritten]

    private enum CodingKeys: String, CodingKey { case artifact, paths, entries, overwritten }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(artifact, forKey: .artifact)
        try c.encode(prefixes.map { RawPath(bytes: Array($0.joined(separator: [UInt8(ascii: "/")]))).display }, forKey: .paths)
        try c.encode(entries, forKey: .entries)
        try c.encode(overwritten.map(\.key.display), forKey: .overwritten)
    }
}
