import Foundation
import Logging

/// One file of a snapshot tree, as its per-file manifest lists it.
public struct OffsiteTreeFile: Sendable {
    /// The path below the tree folder, as bytes.
    public var path: [UInt8]
    /// A symlink (its content is the link's target text).
    public var isSymlink: Bool
    public var size: Int64
    public var sha256: String
    public var mode: UInt32
    public var mtimeSeconds: Int
    public var mtimeNanoseconds: Int

    /// Describes a file.
    public init(path: [UInt8], isSymlink: Bool, size: Int64, sha256: String, mode: UInt32, mtimeSeconds: Int, mtimeNanoseconds: Int) {
        self.path = path
        self.isSymlink = isSymlink
        self.size = size
        self.sha256 = sha256
        self.mode = mode
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
    }
}

/// How a kind that keeps a snapshot tree in its set (rsync) tells the off-site copy about it:
/// the tree's files go to the bucket content-addressed, not under the set.
public protocol OffsiteTreeCodec: Sendable {
    /// The tree of `record` in the set at `setDirectory` (whose per-file manifest artifact must
    /// be there): its folder relative to the set, and its files. Nil when it has none.
    func tree(setDirectory: String, record: TargetRecord) throws -> (folder: String, files: [OffsiteTreeFile])?
}

/// A set as the bucket holds it.
public struct RemoteSet: Sendable, Codable {
    /// The tier and ID.
    public var tier: String, id: String
    /// Its manifest is there (uploaded last).
    public var complete: Bool
    /// Its files and their sizes (key relative to the set's folder).
    public var files: [String: Int64]
    /// The bytes under the set's folder (trees' objects not counted).
    public var bytes: Int64 { files.values.reduce(0, +) }
}

/// What a push did.
public struct OffsitePushReport: Sendable, Codable {
    /// Sets uploaded now, and sets that were complete remotely already.
    public var pushed: [String] = [], alreadyThere: [String] = []
    /// Files of sets uploaded, tree objects uploaded, and tree objects already in the bucket.
    public var filesUploaded = 0, objectsUploaded = 0, objectsSkipped = 0
    /// Request-body bytes sent.
    public var bytesSent: Int64 = 0
}

/// One set's remote verification.
public struct OffsiteVerifyResult: Sendable, Codable {
    public var tier: String, id: String
    /// Objects checked (set files and tree objects).
    public var checked = 0
    /// Missing, changed and extra objects, by name.
    public var findings: [String] = []
    public var ok: Bool { findings.isEmpty }
}

/// What `state/offsite.json` remembers locally: which sets are complete in the bucket, and
/// when, so `list`, `stats` and `health` can show it without asking the bucket.
public struct OffsiteState: Codable, Sendable {
    /// `s3://bucket/root`.
    public var destination: String
    /// `tier/id` → when its push finished.
    public var sets: [String: Date] = [:]
    /// The newest successful push.
    public var lastPush: Date?

    /// Reads the state of `repository` (nil if none).
    public static func load(_ repository: Repository) -> OffsiteState? {
        guard let data = FileManager.default.contents(atPath: path(repository)) else { return nil }
        return try? BackstopJSON.decoder().decode(OffsiteState.self, from: data)
    }

    static func path(_ repository: Repository) -> String { repository.root + "/state/offsite.json" }
}

/// The off-site copy of a repository in an S3 bucket.
///
/// ```
/// <root>/sets/<tier>/<id>/<artifact> (+ .sha256)   each set's files
/// <root>/sets/<tier>/<id>/manifest.json             uploaded last: the set is complete
/// <root>/objects/<2 hex>/<sha256>                   snapshot trees' files, by content
/// ```
public final class OffsiteStore: @unchecked Sendable {
    /// The settings.
    public let settings: OffsiteSettings
    /// The client (its counters say what was sent).
    public let client: S3Client
    let repository: Repository
    let codecs: [String: any OffsiteTreeCodec]
    let logger: Logger

    /// Opens the off-site copy of `repository`. `codecs` maps kinds with snapshot trees to theirs.
    public init(settings: OffsiteSettings, repository: Repository, codecs: [String: any OffsiteTreeCodec], logger: Logger) {
        self.settings = settings
        self.client = S3Client(settings: settings.s3)
        self.repository = repository
        self.codecs = codecs
        self.logger = logger
    }

    func setKey(_ tier: String, _ id: String, _ rel: String = "") -> String { settings.root + "sets/\(tier)/\(id)/" + rel }
    func objectKey(_ sha: String) -> String { settings.root + "objects/\(sha.prefix(2))/\(sha)" }
    var indexPath: String { repository.root + "/state/offsite-objects" }

    // MARK: Listing

    /// Every set in the bucket, newest first.
    public func remoteSets() throws -> [RemoteSet] {
        let prefix = settings.root + "sets/"
        var sets: [String: RemoteSet] = [:]
        for o in try client.list(prefix: prefix) {
            let parts = o.key.dropFirst(prefix.count).split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, Repository.isValidTier(String(parts[0])), Repository.isSetID(String(parts[1])) else { continue }
            let name = "\(parts[0])/\(parts[1])"
            var s = sets[name] ?? RemoteSet(tier: String(parts[0]), id: String(parts[1]), complete: false, files: [:])
            s.files[String(parts[2])] = o.size
            if parts[2] == Substring(SetManifest.fileName) { s.complete = true }
            sets[name] = s
        }
        return sets.values.sorted { ($0.id, $0.tier) > ($1.id, $1.tier) }
    }

    // MARK: Object index

    /// The tree objects known to be in the bucket: the local index, or (when it is missing or
    /// was made for another destination) a fresh one from listing `objects/`.
    func loadIndex() throws -> Set<String> {
        let header = "# backstop-offsite-objects/1 \(settings.s3.endpoint) \(settings.display)"
        if let data = FileManager.default.contents(atPath: indexPath) {
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            if lines.first == header { return Set(lines.dropFirst().filter { $0.count == 64 }) }
        }
        logger.info("off-site: building the object index from \(settings.display)objects/")
        let known = Set(try client.list(prefix: settings.root + "objects/").compactMap { o -> String? in
            let sha = String(o.key.split(separator: "/").last ?? "")
            return sha.count == 64 ? sha : nil
        })
        try FileOps.makeDirectory(repository.root + "/state")
        try FileOps.writeAtomically(Data(([header] + known.sorted()).joined(separator: "\n").utf8 + [UInt8(ascii: "\n")]), to: indexPath)
        return known
    }

    // MARK: Push

    /// Uploads every complete local set in `sets` that is not complete in the bucket: tree
    /// files as objects the bucket does not hold yet, then the set's files, then its manifest.
    /// Call while holding the repository lock.
    public func push(_ sets: [StoredSet]) throws -> OffsitePushReport {
        var report = OffsitePushReport()
        let remote = Dictionary(try remoteSets().map { ("\($0.tier)/\($0.id)", $0) }, uniquingKeysWith: { a, _ in a })
        var index = try loadIndex()
        let indexHandle = try openIndexForAppend()
        defer { try? indexHandle.close() }
        var state = OffsiteState.load(repository) ?? OffsiteState(destination: settings.display)
        if state.destination != settings.display { state = OffsiteState(destination: settings.display) }
        // Uploads left by a killed push of this deployment (none can be in flight: we hold the lock).
        for stale in (try? client.pendingUploads(prefix: settings.root)) ?? [] {
            logger.info("off-site: aborting an unfinished multipart upload of \(stale.key)")
            try? client.abortUpload(key: stale.key, uploadID: stale.uploadID)
        }
        let start = client.bytesSent
        // Oldest first, so the bucket's newest complete set is always the newest pushed.
        for set in sets.reversed() {
            guard let manifest = set.manifest else { continue }
            let name = "\(set.tier)/\(set.id)"
            if remote[name]?.complete == true {
                report.alreadyThere.append(name)
                if state.sets[name] == nil { state.sets[name] = Date() }
                continue
            }
            try Interrupts.shared.checkpoint()
            logger.info("off-site: pushing \(name) to \(settings.display)")
            var treeFolders: [String] = []
            for record in manifest.targets where record.status == .ok {
                guard let codec = codecs[record.kind], let tree = try codec.tree(setDirectory: set.directory, record: record) else { continue }
                treeFolders.append(tree.folder)
                for file in tree.files where !index.contains(file.sha256) {
                    try Interrupts.shared.checkpoint()
                    let local = RawPath(set.directory + "/" + tree.folder).appending(file.path)
                    try Fault.point("offsite-object")
                    try uploadTreeFile(local, file: file)
                    index.insert(file.sha256)
                    indexHandle.write(Data((file.sha256 + "\n").utf8))
                    report.objectsUploaded += 1
                }
                report.objectsSkipped += tree.files.count
            }
            let artifactSHA = Dictionary(manifest.targets.flatMap(\.artifacts).map { ($0.path, $0.sha256) }, uniquingKeysWith: { a, _ in a })
            let files = try setFiles(set.directory, skipping: treeFolders)
            let there = remote[name]?.files ?? [:]
            for rel in files where rel != SetManifest.fileName {
                try Interrupts.shared.checkpoint()
                let path = set.directory + "/" + rel
                var st = stat()
                guard lstat(path, &st) == 0 else { throw SystemError("stat", path) }
                let sha = try artifactSHA[rel] ?? sha256OfFile(path).hex
                if there[rel] == Int64(st.st_size), try client.head(key: setKey(set.tier, set.id, rel))?.sha256 == sha { continue }
                try client.putFile(path, key: setKey(set.tier, set.id, rel), sha256: sha)
                report.filesUploaded += 1
            }
            try Fault.point("offsite-before-manifest")
            try client.putFile(set.directory + "/" + SetManifest.fileName, key: setKey(set.tier, set.id, SetManifest.fileName))
            report.pushed.append(name)
            state.sets[name] = Date()
            state.lastPush = Date()
            try saveState(state)
        }
        report.objectsSkipped = max(0, report.objectsSkipped - report.objectsUploaded)
        report.bytesSent = client.bytesSent - start
        if report.pushed.isEmpty { state.lastPush = state.lastPush ?? (report.alreadyThere.isEmpty ? nil : Date()) }
        try saveState(state)
        return report
    }

    func saveState(_ state: OffsiteState) throws {
        try FileOps.makeDirectory(repository.root + "/state")
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(state), to: OffsiteState.path(repository))
    }

    private func openIndexForAppend() throws -> FileHandle {
        let fd = open(indexPath, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", indexPath) }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    private func uploadTreeFile(_ local: RawPath, file: OffsiteTreeFile) throws {
        if file.isSymlink {
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = local.withCString { p in buffer.withUnsafeMutableBytes { readlink(p, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) } }
            guard n >= 0 else { throw SystemError("readlink", local.display) }
            try client.putData(Data(buffer.prefix(n)), key: objectKey(file.sha256))
            return
        }
        let fd = local.withCString { open($0, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        guard fd >= 0 else { throw SystemError("open", local.display) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError("stat", local.display) }
        guard Int64(st.st_size) == file.size else {
            throw OperationError("\(local.display) is \(st.st_size) bytes, its snapshot manifest says \(file.size): the snapshot was changed; not uploading it")
        }
        try client.putFile(fd: fd, size: file.size, key: objectKey(file.sha256), sha256: file.sha256, path: local.display)
    }

    /// The regular files of a set, relative, sorted; folders in `skipping` are left out.
    func setFiles(_ directory: String, skipping: [String]) throws -> [String] {
        var out: [String] = []
        guard let e = FileManager.default.enumerator(atPath: directory) else { throw SystemError("open", directory) }
        while let rel = e.nextObject() as? String {
            if skipping.contains(where: { rel == $0 || rel.hasPrefix($0 + "/") }) { e.skipDescendants(); continue }
            var st = stat()
            if lstat(directory + "/" + rel, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { out.append(rel) }
        }
        return out.sorted()
    }

    // MARK: Verify

    /// Checks sets in the bucket without downloading them (`deep`: streams each object back
    /// and re-hashes it). `ids` nil: every set, and objects no set references are reported.
    public func verify(ids: [String]?, deep: Bool) throws -> [OffsiteVerifyResult] {
        var sets = try remoteSets()
        if let ids {
            sets = try ids.map { id in
                guard let s = sets.first(where: { $0.id == id || "\($0.tier)/\($0.id)" == id }) ?? (id == "latest" ? sets.first(where: \.complete) : nil) else {
                    throw UsageError("no backup named \(id) in \(settings.display); see offsite list")
                }
                return s
            }
        }
        let objects = Dictionary(try client.list(prefix: settings.root + "objects/").map { ($0.key, $0.size) }, uniquingKeysWith: { a, _ in a })
        var referenced = Set<String>()
        var checkedObjects: [String: String?] = [:]
        var results: [OffsiteVerifyResult] = []
        let scratch = try privateScratch("verify")
        defer { try? FileOps.removeTree(scratch) }
        for set in sets {
            var r = OffsiteVerifyResult(tier: set.tier, id: set.id)
            guard set.complete else {
                r.findings.append("incomplete: \(setKey(set.tier, set.id))\(SetManifest.fileName) is missing (a push that did not finish; the next push completes it)")
                results.append(r)
                continue
            }
            let manifest: SetManifest
            do {
                manifest = try BackstopJSON.decoder().decode(SetManifest.self, from: try client.getData(key: setKey(set.tier, set.id, SetManifest.fileName)))
            } catch let e as S3Error { throw e } catch {
                r.findings.append("changed: \(setKey(set.tier, set.id, SetManifest.fileName)) is not a readable manifest")
                results.append(r)
                continue
            }
            var expected: [String: (size: Int64?, sha: String?)] = [SetManifest.fileName: (nil, nil)]
            for a in manifest.targets.flatMap(\.artifacts) {
                expected[a.path] = (a.bytes, a.sha256)
                expected[a.path + ".sha256"] = (nil, nil)
            }
            for (rel, want) in expected.sorted(by: { $0.key < $1.key }) {
                let key = setKey(set.tier, set.id, rel)
                r.checked += 1
                guard let size = set.files[rel] else {
                    r.findings.append("missing: \(key)")
                    continue
                }
                if let s = want.size, s != size { r.findings.append("changed: \(key) is \(size) bytes, the manifest says \(s)"); continue }
                let meta = try client.head(key: key)?.sha256
                if meta == nil { r.findings.append("changed: \(key) has no x-amz-meta-sha256 (written by something else)"); continue }
                if let sha = want.sha, meta != sha { r.findings.append("changed: \(key) has x-amz-meta-sha256 \(meta!), the manifest says \(sha)"); continue }
                if deep {
                    let got = try client.hashObject(key: key)
                    if got.sha256 != (want.sha ?? meta) { r.findings.append("changed: \(key) hashes to \(got.sha256), expected \(want.sha ?? meta ?? "")") }
                }
            }
            for rel in set.files.keys.sorted() where expected[rel] == nil { r.findings.append("extra: \(setKey(set.tier, set.id, rel))") }
            // Trees: their per-file manifest (an artifact) names every object.
            for record in manifest.targets where record.status == .ok {
                guard let codec = codecs[record.kind] else { continue }
                let dir = scratch + "/" + set.id
                for a in record.artifacts where set.files[a.path] != nil {
                    let local = dir + "/" + a.path
                    try FileOps.makeDirectory((local as NSString).deletingLastPathComponent)
                    let got = try client.getFile(key: setKey(set.tier, set.id, a.path), to: local)
                    if got.sha256 != a.sha256 { r.findings.append("changed: \(setKey(set.tier, set.id, a.path)) hashes to \(got.sha256), the manifest says \(a.sha256)") }
                }
                guard let tree = try? codec.tree(setDirectory: dir, record: record) else { continue }
                for file in tree.files {
                    let key = objectKey(file.sha256)
                    referenced.insert(key)
                    if let done = checkedObjects[key] {
                        if let problem = done { r.findings.append(problem) }
                        continue
                    }
                    r.checked += 1
                    var problem: String?
                    let name = String(decoding: file.path, as: UTF8.self)
                    if objects[key] == nil {
                        problem = "missing: \(key) (\(record.name): \(name))"
                    } else if objects[key] != file.size {
                        problem = "changed: \(key) (\(record.name): \(name)) is \(objects[key]!) bytes, expected \(file.size)"
                    } else if try client.head(key: key)?.sha256 != file.sha256 {
                        problem = "changed: \(key) (\(record.name): \(name)) has a wrong or no x-amz-meta-sha256"
                    } else if deep, try client.hashObject(key: key).sha256 != file.sha256 {
                        problem = "changed: \(key) (\(record.name): \(name)) does not hash to its name"
                    }
                    checkedObjects[key] = .some(problem)
                    if let problem { r.findings.append(problem) }
                }
            }
            results.append(r)
        }
        if ids == nil {
            let extra = objects.keys.filter { !referenced.contains($0) }.sorted()
            if !extra.isEmpty {
                var r = OffsiteVerifyResult(tier: "-", id: "objects")
                r.findings = extra.map { "extra: \($0) (no set references it)" }
                results.append(r)
            }
        }
        return results
    }

    func privateScratch(_ what: String) throws -> String {
        try FileOps.makeDirectory(repository.scratchDirectory)
        let dir = repository.scratchDirectory + "/offsite-\(what)-\(getpid())"
        if FileOps.exists(dir) { try FileOps.removeTree(dir) }
        try FileOps.makeDirectory(dir)
        return dir
    }

    // MARK: Fetch

    /// The newest complete remote set holding a good backup of `target` (any target when nil),
    /// or the set named `id`.
    public func findRemote(_ id: String, target: String?) throws -> (RemoteSet, SetManifest) {
        let sets = try remoteSets().filter(\.complete)
        let candidates = id == "latest" ? sets : sets.filter { $0.id == id || "\($0.tier)/\($0.id)" == id }
        guard !candidates.isEmpty else {
            throw OperationError(id == "latest" ? "no complete backup in \(settings.display)" : "no complete backup \(id) in \(settings.display); see offsite list")
        }
        for s in candidates {
            let data = try client.getData(key: setKey(s.tier, s.id, SetManifest.fileName))
            guard let m = try? BackstopJSON.decoder().decode(SetManifest.self, from: data), m.format == SetManifest.currentFormat else {
                throw OperationError("\(setKey(s.tier, s.id, SetManifest.fileName)) is not a manifest this version can read")
            }
            guard m.id == s.id, m.tier == s.tier else { throw OperationError("\(setKey(s.tier, s.id, SetManifest.fileName)) names another set (\(m.tier)/\(m.id))") }
            if target == nil || m.record(for: target!)?.status == .ok { return (s, m) }
        }
        throw OperationError("no backup of target '\(target ?? "")' in \(settings.display)\(id == "latest" ? "" : " set \(id)")")
    }

    /// Downloads a remote set into the local repository: into a private folder in its scratch
    /// space first, every file checked against the manifest's SHA-256 (or its
    /// `x-amz-meta-sha256`) as it streams, snapshot trees rebuilt from their objects; then the
    /// folder is moved into its tier and the manifest written last. Call while holding the lock.
    public func fetch(_ remote: RemoteSet, manifest: SetManifest) throws -> StoredSet {
        let final = repository.root + "/" + remote.tier + "/" + remote.id
        if FileOps.exists(final) {
            throw OperationError("backup \(remote.tier)/\(remote.id) exists locally already; restore it without --from offsite, or remove it first")
        }
        // The manifest's own bytes, as the backup wrote them (checked to be the one planned from).
        let manifestData = try client.getData(key: setKey(remote.tier, remote.id, SetManifest.fileName))
        guard let again = try? BackstopJSON.decoder().decode(SetManifest.self, from: manifestData), again.id == manifest.id,
              again.tier == manifest.tier, again.finishedAt == manifest.finishedAt else {
            throw OperationError("\(setKey(remote.tier, remote.id, SetManifest.fileName)) changed while it was being fetched")
        }
        let stage = try privateScratch("fetch-\(remote.id)")
        var committed = false
        defer { if !committed { try? FileOps.removeTree(stage) } }
        let artifacts = Dictionary(manifest.targets.flatMap(\.artifacts).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        // Names from the bucket are hostile: every artifact (and so every tree folder) must stay
        // inside the set.
        for a in artifacts.values where a.path.hasPrefix("/") || a.path.split(separator: "/", omittingEmptySubsequences: false)
            .contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            throw OperationError("refusing \(setKey(remote.tier, remote.id, SetManifest.fileName)): artifact \(a.path) is not a plain relative name")
        }
        for rel in remote.files.keys.sorted() where rel != SetManifest.fileName {
            try Interrupts.shared.checkpoint()
            let parts = rel.split(separator: "/", omittingEmptySubsequences: false)
            guard !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                throw OperationError("refusing \(setKey(remote.tier, remote.id, rel)): not a plain relative name")
            }
            let local = stage + "/" + rel
            try FileOps.makeDirectory((local as NSString).deletingLastPathComponent)
            let got = try client.getFile(key: setKey(remote.tier, remote.id, rel), to: local)
            let want = artifacts[rel]?.sha256 ?? got.metaSHA256
            guard let want, want == got.sha256 else {
                throw OperationError("\(setKey(remote.tier, remote.id, rel)) hashes to \(got.sha256), expected \(want ?? "(no checksum recorded)"): the off-site copy is damaged")
            }
        }
        for a in artifacts.values where !FileOps.exists(stage + "/" + a.path) {
            throw OperationError("\(setKey(remote.tier, remote.id, a.path)) is missing from \(settings.display)")
        }
        for record in manifest.targets where record.status == .ok {
            guard let codec = codecs[record.kind], let tree = try codec.tree(setDirectory: stage, record: record) else { continue }
            try rebuildTree(tree, in: stage)
        }
        try FileOps.makeDirectory(repository.root + "/" + remote.tier)
        guard rename(stage, final) == 0 else { throw SystemError("rename", final) }
        committed = true
        try FileOps.writeAtomically(manifestData, to: final + "/" + SetManifest.fileName)
        logger.info("off-site: fetched \(remote.tier)/\(remote.id) from \(settings.display) into \(final)")
        return StoredSet(directory: final, tier: remote.tier, id: remote.id, manifest: manifest, problem: nil)
    }

    /// Rebuilds a snapshot tree from its objects: regular files first (each hashed as it
    /// streams), symlinks last, so no file is ever written through a link; names are checked
    /// to stay below the tree.
    private func rebuildTree(_ tree: (folder: String, files: [OffsiteTreeFile]), in stage: String) throws {
        let root = RawPath(stage + "/" + tree.folder)
        try FileOps.makeDirectory(root.display)
        for file in tree.files.sorted(by: { !$0.isSymlink && $1.isSymlink }) {
            try Interrupts.shared.checkpoint()
            let parts = file.path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            guard !file.path.isEmpty, file.path.first != UInt8(ascii: "/"),
                  !parts.contains(where: { $0.isEmpty || $0.elementsEqual([UInt8(ascii: ".")]) || $0.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) }) else {
                throw OperationError("refusing a snapshot entry that is not a plain relative name: \(String(decoding: file.path, as: UTF8.self))")
            }
            var dir = root
            for part in parts.dropLast() {
                dir = dir.appending(Array(part))
                var st = stat()
                if dir.withCString({ lstat($0, &st) }) == 0 {
                    guard (st.st_mode & S_IFMT) == S_IFDIR else { throw OperationError("refusing \(dir.display): not a directory in the rebuilt tree") }
                } else if dir.withCString({ mkdir($0, 0o755) }) != 0 {
                    throw SystemError("mkdir", dir.display)
                }
            }
            let path = root.appending(file.path)
            let key = objectKey(file.sha256)
            if file.isSymlink {
                let target = try client.getData(key: key)
                var h = StreamingSHA256()
                target.withUnsafeBytes { h.update($0) }
                guard h.hexDigest() == file.sha256 else { throw OperationError("\(key) does not hash to its name: the off-site copy is damaged") }
                let ok = path.withCString { p in (target + [0]).withUnsafeBytes { symlink($0.baseAddress!.assumingMemoryBound(to: CChar.self), p) } }
                guard ok == 0 else { throw SystemError("symlink", path.display) }
                continue
            }
            let fd = path.withCString { open($0, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600) }
            guard fd >= 0 else { throw SystemError("create", path.display) }
            defer { close(fd) }
            let got = try client.getFile(key: key, fd: fd)
            guard got.sha256 == file.sha256, got.bytes == file.size else {
                throw OperationError("\(key) (\(path.display)) hashes to \(got.sha256), expected \(file.sha256): the off-site copy is damaged")
            }
            _ = fchmod(fd, mode_t(file.mode & 0o7777))
            var times = [timespec(tv_sec: file.mtimeSeconds, tv_nsec: file.mtimeNanoseconds), timespec(tv_sec: file.mtimeSeconds, tv_nsec: file.mtimeNanoseconds)]
            _ = futimens(fd, &times)
        }
    }

    // MARK: Retention

    /// One set's fate in `prune`.
    public struct PruneLine: Sendable, Codable {
        public var set: String
        public var remove: Bool
        public var reason: String
    }

    /// Applies `policy` to the complete sets in the bucket (its floor included: the newest
    /// good backup of every target stays), deleting each removed set's manifest first; then
    /// removes tree objects that no set in the bucket references and that are older than
    /// `grace` (so no upload in flight loses one). Incomplete sets are left for the next push.
    /// Call while holding the repository lock. Returns the decisions and the objects removed.
    public func prune(policy: RetentionPolicy, grace: TimeInterval, dryRun: Bool, now: Date = Date()) throws -> ([PruneLine], [String]) {
        let sets = try remoteSets()
        var manifests: [String: SetManifest] = [:]
        for s in sets where s.complete {
            let data = try client.getData(key: setKey(s.tier, s.id, SetManifest.fileName))
            guard let m = try? BackstopJSON.decoder().decode(SetManifest.self, from: data), m.id == s.id, m.tier == s.tier else {
                throw OperationError("\(setKey(s.tier, s.id, SetManifest.fileName)) is not a readable manifest; not pruning \(settings.display)")
            }
            manifests["\(s.tier)/\(s.id)"] = m
        }
        let candidates = manifests.map { key, m in
            RetentionCandidate(key: key, id: m.id, tier: m.tier, startedAt: m.startedAt, targets: m.targets.map { ($0.name, $0.status == .ok) })
        }
        let verdicts = policy.decide(candidates, now: now)
        var lines: [PruneLine] = []
        for v in verdicts {
            lines.append(PruneLine(set: v.key, remove: !v.keep, reason: v.reason))
            guard !v.keep else { continue }
            manifests[v.key] = nil  // its objects count as unreferenced, in a dry run too
            guard !dryRun, let s = sets.first(where: { "\($0.tier)/\($0.id)" == v.key }) else { continue }
            try client.delete(key: setKey(s.tier, s.id, SetManifest.fileName))
            for rel in s.files.keys where rel != SetManifest.fileName { try client.delete(key: setKey(s.tier, s.id, rel)) }
            var state = OffsiteState.load(repository)
            if state?.sets.removeValue(forKey: v.key) != nil, let state { try saveState(state) }
        }
        // Objects every remaining set (complete or not) references.
        var referenced = Set<String>()
        let scratch = try privateScratch("prune")
        defer { try? FileOps.removeTree(scratch) }
        for s in sets {
            let name = "\(s.tier)/\(s.id)"
            if s.complete && manifests[name] == nil { continue }
            guard let m = manifests[name] else {
                // An incomplete set: its objects may be anything; keep every object it could hold
                // by keeping everything younger than the grace period (below), and its tree's
                // objects if its per-file manifest is already there.
                continue
            }
            for record in m.targets where record.status == .ok {
                guard let codec = codecs[record.kind] else { continue }
                let dir = scratch + "/" + s.id
                for a in record.artifacts where s.files[a.path] != nil {
                    let local = dir + "/" + a.path
                    try FileOps.makeDirectory((local as NSString).deletingLastPathComponent)
                    _ = try client.getFile(key: setKey(s.tier, s.id, a.path), to: local)
                }
                guard let tree = try codec.tree(setDirectory: dir, record: record) else { continue }
                for f in tree.files { referenced.insert(objectKey(f.sha256)) }
            }
        }
        let hasIncomplete = sets.contains { !$0.complete }
        var removed: [String] = []
        for o in try client.list(prefix: settings.root + "objects/") where !referenced.contains(o.key) {
            // Younger than the grace period (or undated): an upload may still need it.
            guard let modified = o.lastModified, now.timeIntervalSince(modified) >= grace else { continue }
            if hasIncomplete && now.timeIntervalSince(modified) < max(grace, 86400) { continue }
            removed.append(o.key)
            if !dryRun { try client.delete(key: o.key) }
        }
        // The local index may name removed objects: the next push rebuilds it from the bucket.
        if !dryRun && !removed.isEmpty { try? FileOps.removeTree(indexPath) }
        return (lines, removed)
    }
}
