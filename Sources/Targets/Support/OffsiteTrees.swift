import BackupCore
import Foundation

/// The kinds whose sets hold a snapshot tree, and how the off-site copy reads it: the rsync
/// kind's `<target>/tree/`, listed by its per-file manifest (read, and checked against the
/// set manifest, through `RsyncSnapshotTarget.loadEntries`).
public enum OffsiteTrees {
    /// Codecs by kind.
    public static let codecs: [String: any OffsiteTreeCodec] = ["rsync": RsyncTreeCodec()]

    struct RsyncTreeCodec: OffsiteTreeCodec {
        func tree(setDirectory: String, record: TargetRecord) throws -> (folder: String, files: [OffsiteTreeFile])? {
            guard let artifact = record.artifacts.first else { return nil }
            let targetFolder = (artifact.path as NSString).deletingLastPathComponent
            let entries = try RsyncSnapshotTarget.loadEntries(record, targetDirectory: setDirectory + "/" + targetFolder)
            let files = entries.map { e in
                OffsiteTreeFile(path: e.path.bytes, isSymlink: e.type == UInt8(ascii: "l"), size: e.size, sha256: e.sha256, mode: e.mode,
                                mtimeSeconds: e.mtimeSeconds, mtimeNanoseconds: e.mtimeNanoseconds)
            }
            return ((targetFolder.isEmpty ? "" : targetFolder + "/") + RsyncSnapshotTarget.treeFolder, files)
        }
    }
}
