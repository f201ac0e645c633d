import BackupCore
import Foundation
import Targets
import XCTest

/// Each kind's `configKeys` is the one list of its keys: its source reads every declared key
/// and no other, and the registry is derived from the declarations.
final class KindDeclarationTests: XCTestCase {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/Targets")

    /// The short keys a source file reads through `TargetSettings` (`s.string("PATH")`, ...).
    static func keysRead(_ file: String) throws -> Set<String> {
        let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
        return try keysRead(text: text)
    }

    static func keysRead(text: String) throws -> Set<String> {
        let regex = try NSRegularExpression(pattern: #"\bs\.(?:string|require|path|requirePath|list|int|double|bool|choice|key)\("([A-Z][A-Z0-9_]*)""#)
        return Set(regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { String(text[Range($0.range(at: 1), in: text)!]) })
    }

    func testEveryKindReadsExactlyTheKeysItDeclares() throws {
        let files: [String: String] = [
            "sqlite": "SQLiteTarget.swift", "archive": "ArchiveTarget.swift", "pg_dump": "PgDumpTarget.swift",
            "pg_basebackup": "PgBaseBackupTarget.swift", "rsync": "RsyncSnapshotTarget.swift", "minio": "MinioDataTarget.swift",
        ]
        XCTAssertEqual(Set(files.keys), Set(TargetRegistry.kinds.map { $0.kindName }), "a kind without its file in this test")
        // The shared readers: the connection keys and the compression keys.
        let connection = try Self.keysRead("Support/PostgresServer.swift")
        XCTAssertEqual(connection, Set(PostgresServer.configKeys.map(\.name)))
        let compressionSource = try String(contentsOf: Self.sources.deletingLastPathComponent()
            .appendingPathComponent("BackupCore/Store/Compression.swift"), encoding: .utf8)
        let compression = try Self.keysRead(text: compressionSource)
        XCTAssertEqual(compression, Set(Compression.configKeys().map(\.name)))
        for kind in TargetRegistry.kinds {
            let text = try String(contentsOf: Self.sources.appendingPathComponent(files[kind.kindName]!), encoding: .utf8)
            var read = try Self.keysRead(text: text)
            if text.contains("PostgresServer(settings: s)") { read.formUnion(connection) }
            if let call = text.range(of: #"Compression(\(settings: s|\.read\(s)[^)]*\)"#, options: .regularExpression) {
                read.formUnion(text[call].contains("threads: false") ? compression.subtracting(["THREADS"]) : compression)
            }
            let declared = kind.configKeys.map(\.name)
            XCTAssertEqual(declared.count, Set(declared).count, "\(kind.kindName) declares a key twice")
            XCTAssertEqual(read.subtracting(declared), [], "\(kind.kindName) reads keys it does not declare")
            XCTAssertEqual(Set(declared).subtracting(read), [], "\(kind.kindName) declares keys it never reads")
        }
    }

    func testTheRegistryIsDerivedFromTheDeclarations() {
        let names = TargetRegistry.kinds.map { $0.kindName }
        XCTAssertEqual(names.count, Set(names).count)
        XCTAssertEqual(Set(TargetRegistry.builders.keys), Set(names))
        XCTAssertEqual(Set(TargetRegistry.types.keys), Set(names))
        for kind in TargetRegistry.kinds {
            XCTAssertFalse(kind.configKeys.isEmpty)
            XCTAssertTrue(kind.configKeys.allSatisfy { !$0.help.isEmpty && !$0.help.contains("\n") }, kind.kindName)
            XCTAssertEqual(TargetRegistry.keys(of: kind).map(\.name).filter { $0 == "KIND" }, ["KIND"])
        }
    }

    func testEveryDeclaredKeyIsAcceptedAndAnotherIsNot() throws {
        // A config setting every declared key of sqlite builds (its values are valid) ...
        let values = ["TARGET_X_KIND": "sqlite", "TARGET_X_PATH": "/tmp/x.db", "TARGET_X_COMPRESSION": "zstd", "TARGET_X_LEVEL": "5",
                      "TARGET_X_MAX_AGE": "2h", "TARGET_X_MIN_SIZE": "1K", "TARGET_X_SHRINK_WARN": "0.3"]
        XCTAssertEqual(Set(values.keys.map { String($0.dropFirst("TARGET_X_".count)) }), Set(TargetRegistry.keys(of: SQLiteTarget.self).map(\.name)))
        XCTAssertEqual(try TargetRegistry.build(name: "x", config: Config(file: "b.env", values: values)).kind, "sqlite")
        // ... and one more key is refused, naming the key it is near.
        var typo = values
        typo["TARGET_X_LEVL"] = "5"
        XCTAssertThrowsError(try TargetRegistry.build(name: "x", config: Config(file: "b.env", values: typo))) {
            XCTAssertEqual("\($0)", "config: unknown key TARGET_X_LEVL in b.env (did you mean TARGET_X_LEVL → TARGET_X_LEVEL?)")
        }
    }
}
