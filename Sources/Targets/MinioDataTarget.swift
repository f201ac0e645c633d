import BackupCore
import Foundation
import Logging

/// MinIO object data (schedgen's `minio_<bucket>_YYYYMMDD_HHMMSS.tar.gz`): a tarball of
/// MinIO's data directory, or of one bucket's folder in it, written by the archive target,
/// checked against a size threshold and read back through libarchive before it counts.
///
/// A live MinIO can change files while they are read, so the tarball is only crash-consistent
/// per file; `STOP_CMD` / `START_CMD` run around the copy (and around a restore) to make it
/// consistent. The start command runs even when the copy fails.
///
/// Config (`TARGET_<NAME>_…`): the keys declared in `configKeys`.
/// `STOP_CMD` and `START_CMD` run with `/bin/sh -c`; they appear in the process list, so no
/// secrets in them.
public struct MinioDataTarget: TargetKind {
    /// Where the objects come from. The S3 API (a bucket read through a client) will be another
    /// case with its own backup path; the engine does not need to change for it.
    public enum Source: Sendable, Equatable {
        /// MinIO's data volume on this host, or one bucket's folder in it.
        case volume(dataDirectory: String, bucket: String?)
    }

    public let name: String
    /// The kind's name in config.
    public static let kindName = "minio"
    /// Every key of the kind, declared once (see `TargetKind`).
    public static let configKeys: [ConfigKey] = [
        ConfigKey("DATA_DIR", .path, help: "MinIO's data directory (required)"),
        ConfigKey("BUCKET", .string, help: "only this bucket's folder"),
        ConfigKey("MIN_BYTES", .int, default: "512", help: "the tarball must be larger than this"),
        ConfigKey("STOP_CMD", .command, help: "run before the copy and a restore (e.g. docker compose stop minio)"),
        ConfigKey("START_CMD", .command, help: "run after the copy and a restore, even when the copy fails"),
    ] + Compression.configKeys(of: "the tarball")
    /// Where the objects come from.
    public let source: Source
    /// The tarball must be larger than this (schedgen: more than 512 bytes).
    public let minimumBytes: Int64
    /// Shell commands run before and after the copy.
    public let stopCommand: String?, startCommand: String?
    /// The archive target doing the work.
    var archive: ArchiveTarget

    /// The tarball's name before `_<ID>.tar.gz`: `minio_<bucket>` (or `minio_data`) unless set,
    /// e.g. `minio_schedgen-pdfs` for a tarball of the whole data folder named after its bucket.
    public var artifactStem: String {
        get { archive.artifactStem }
        set { archive.artifactStem = newValue }
    }

    /// Creates the target.
    public init(name: String, dataDirectory: String, bucket: String? = nil, compression: Compression = .gzip(level: 6),
                minimumBytes: Int64 = 512, stopCommand: String? = nil, startCommand: String? = nil) {
        self.name = name
        let dataDir = FileOps.trimmingTrailingSlashes(dataDirectory)
        source = .volume(dataDirectory: dataDir, bucket: bucket)
        self.minimumBytes = minimumBytes
        self.stopCommand = stopCommand
        self.startCommand = startCommand
        archive = ArchiveTarget(name: name, paths: [bucket.map { dataDir + "/" + $0 } ?? dataDir], base: dataDir,
                                compression: compression, artifactStem: "minio_" + (bucket ?? "data"))
    }

    /// Builds the target from its config keys.
    public init(settings s: TargetSettings) throws {
        let dataDir = try s.requirePath("DATA_DIR")
        let bucket = s.string("BUCKET")
        if let bucket, bucket.range(of: "^[a-z0-9][a-z0-9.-]{1,62}$", options: .regularExpression) == nil {
            throw ConfigError.invalidValue(key: s.key("BUCKET"), file: s.config.file, value: bucket, expected: "an S3 bucket name (lowercase letters, digits, dots, dashes)")
        }
        self.init(name: s.name, dataDirectory: dataDir, bucket: bucket,
                  compression: try Compression(settings: s),
                  minimumBytes: Int64(try s.int("MIN_BYTES", default: 512, range: 0...Int.max)),
                  stopCommand: s.string("STOP_CMD"), startCommand: s.string("START_CMD"))
    }

    public var summary: String {
        switch source {
        case let .volume(dataDirectory, bucket):
            return "MinIO data \(bucket.map { "bucket \($0) in " } ?? "")\(dataDirectory) as a tarball (\(archive.compression.name))"
                + (stopCommand != nil ? ", MinIO stopped during the copy" : "")
        }
    }

    public func preflight(_ context: PreflightContext) -> [Finding] {
        switch source {
        case let .volume(dataDirectory, bucket):
            var findings: [Finding] = []
            let path = bucket.map { dataDirectory + "/" + $0 } ?? dataDirectory
            if !FileOps.isDirectory(path) {
                findings.append(Finding(.error, target: name, "\(path) is not a directory\(bucket != nil ? " (no such bucket folder)" : "")"))
            } else if access(path, R_OK | X_OK) != 0 {
                findings.append(Finding(.error, target: name, "\(path) is not readable by this user"))
            }
            if stopCommand == nil {
                findings.append(Finding(.info, target: name, "MinIO keeps running during the copy: objects written meanwhile may be caught half-way (set STOP_CMD/START_CMD)"))
            }
            return findings
        }
    }

    /// Runs a hook with /bin/sh -c; throws with its last stderr line on failure.
    private func hook(_ label: String, _ command: String, logger: Logger) throws {
        logger.info("\(label) command: \(command)")
        let outcome = try ChildProcess("/bin/sh", ["-c", command]).run()
        // A hook killed by our own SIGINT/SIGTERM: let the handler exit 130/143 instead of
        // reporting the kill as the hook's failure.
        if outcome.status != 0 { try Interrupts.shared.yieldToSignal() }
        guard outcome.status == 0 else { throw OperationError("\(label) command failed with \(outcome.termination): \(outcome.relevantLines.isEmpty ? "(no output)" : outcome.relevantLines.joined(separator: " | "))") }
    }

    /// Runs `body` between the stop and start hooks; the start hook runs whatever happens.
    private func stopped<T>(logger: Logger, warnings: inout [String], _ body: () throws -> T) throws -> T {
        if let stopCommand {
            do { try hook("stop", stopCommand, logger: logger) } catch {
                if let startCommand { try? hook("start", startCommand, logger: logger) }
                throw error
            }
        }
        let result: T
        do { result = try body() } catch {
            if let startCommand {
                do { try hook("start", startCommand, logger: logger) } catch { logger.error("\(error)") }
            }
            throw error
        }
        if let startCommand {
            do { try hook("start", startCommand, logger: logger) } catch { warnings.append("\(error)") }
        }
        return result
    }

    public func backup(_ context: BackupContext) throws -> TargetOutput {
        var hookWarnings: [String] = []
        let started = Date()
        var output = try stopped(logger: context.logger, warnings: &hookWarnings) { try archive.backup(context) }
        let copySeconds = Date().timeIntervalSince(started)
        output.warnings += hookWarnings
        guard let artifact = output.artifacts.first else { throw OperationError("the archive produced no tarball") }
        guard artifact.bytes > minimumBytes else {
            throw OperationError("\(artifact.path) is only \(artifact.bytes) bytes, not more than the \(minimumBytes)-byte threshold (MIN_BYTES): is the data directory empty?")
        }
        // Read it back: every entry, every byte, and the same checksum as written. An encrypted
        // tarball can only be opened with DECRYPT_IDENTITY_FILE; without it, the checksum is read back.
        let stored = context.directory + "/" + context.storedName(artifact.path)
        let sealed = stored.hasSuffix(ArtifactEncryption.suffix) && !ArtifactEncryption.shared.canDecrypt
        let reader = try HashingFileReader(path: stored, decrypt: !sealed)
        defer { reader.close() }
        let entries = sealed ? nil : try ArchiveReader(source: reader).readThrough().0
        try reader.drain()
        try ChecksumMismatch.check(artifact.path, actual: reader.hexDigest(), expected: artifact.sha256, consequence: "the file read back differs from what was written")
        if let entries, let expected = output.facts["entries"]?.sizeValue, expected != entries {
            throw OperationError("\(artifact.path): read back \(entries) entries, wrote \(Int(expected))")
        }
        if case let .volume(dataDirectory, bucket) = source {
            output.facts["dataDirectory"] = .string(dataDirectory)
            output.facts["bucket"] = bucket.map { .string($0) } ?? .null
        }
        output.facts["minimumBytes"] = .number(Double(minimumBytes))
        output.facts["readBack"] = .bool(true)
        output.facts["stoppedDuringCopy"] = .bool(stopCommand != nil)
        output.facts["copySeconds"] = .number(copySeconds)
        if stopCommand == nil {
            output.warnings.append("no STOP_CMD is set, so MinIO may have been running during the copy: objects written meanwhile may be inconsistent")
        }
        return output
    }

    public func verify(_ record: TargetRecord, context: VerifyContext) -> [Finding] {
        var findings = archive.verify(record, context: context)
        if let artifact = record.artifacts.first, artifact.bytes <= minimumBytes {
            findings.append(Finding(.error, target: name, "\(artifact.path): \(artifact.bytes) bytes, not more than the \(minimumBytes)-byte threshold"))
        }
        return findings
    }

    /// The archive target's plan, between the stop and start hooks.
    public func planRestore(_ record: TargetRecord, context: RestoreContext) throws -> RestorePlan {
        var plan = try archive.planRestore(record, context: context)
        plan.kind = kind
        if let stopCommand { plan.lines.insert("before: \(stopCommand)", at: 0) }
        if let startCommand { plan.lines.append("after: \(startCommand)") }
        return plan
    }

    /// Stops MinIO (`STOP_CMD`) before the safety copy; if that fails, nothing is restored.
    public func prepareRestore(_ plan: RestorePlan, context: RestoreContext) throws {
        if let stopCommand { try hook("stop", stopCommand, logger: context.logger) }
    }

    public func takeSafetyCopy(for plan: RestorePlan, context: RestoreContext, progress: RestoreProgress) throws -> String? {
        try archive.takeSafetyCopy(for: plan, context: context, progress: progress)
    }

    public func applyRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                             progress: RestoreProgress) throws -> RestoreOutcome {
        try archive.applyRestore(plan, safetyCopy: safetyCopy, context: context, progress: progress)
    }

    public func rollBackRestore(_ plan: RestorePlan, safetyCopy: String?, context: RestoreContext,
                                progress: RestoreProgress) throws -> [String] {
        try archive.rollBackRestore(plan, safetyCopy: safetyCopy, context: context, progress: progress)
    }

    /// Starts MinIO again (`START_CMD`) whatever happened; a failure is a warning after a
    /// restore that worked, and an error in the log after one that did not.
    public func finishRestore(_ plan: RestorePlan, context: RestoreContext, succeeded: Bool) throws -> [String] {
        guard let startCommand else { return [] }
        do { try hook("start", startCommand, logger: context.logger) } catch {
            if succeeded { return ["\(error)"] }
            context.logger.error("\(error)")
        }
        return []
    }
}

extension MinioDataTarget {
    /// The archive target's drill: extract into a scratch folder and compare every object file's
    /// size and SHA-256 with the member list. MinIO is neither stopped nor touched.
    public static var hasRestoreDrill: Bool { true }

    public func restoreDrill(_ record: TargetRecord, context: VerifyContext) throws -> DrillReport? {
        try archive.restoreDrill(record, context: context)
    }
}
