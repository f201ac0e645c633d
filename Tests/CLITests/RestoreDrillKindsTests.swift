@testable import BackupCore
import Foundation
import TestSupport
import Targets
import XCTest

/// `verify --restore-test` on a deployment none of whose kinds has a drill names the kinds that
/// have one, from what the kinds declare; and every kind's declaration matches what it does.
final class RestoreDrillKindsTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("drillkinds") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    /// Every built-in kind has a drill, so `verify --restore-test` on a deployment of built-in
    /// kinds drills them all (the message for a kind without one is tested with a kind of its
    /// own in RestoreDrillTests).
    func testEveryBuiltInKindHasADrill() throws {
        XCTAssertEqual(TargetRegistry.kindsWithRestoreDrill, TargetRegistry.types.keys.sorted())
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        let config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=src
        """, to: config)
        let missing = try TestSupport.run("backstop", ["verify", "--restore-test", "--config", config])
        XCTAssertEqual(missing.status, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("does not exist (not mounted?)"), "a missing BACKUP_DIR is not an empty one: " + missing.stderr)
        XCTAssertFalse(FileOps.exists(dir + "/backups"), "the drill creates nothing")
        try FileOps.makeDirectory(dir + "/backups")
        let early = try TestSupport.run("backstop", ["verify", "--restore-test", "--config", config])
        XCTAssertEqual(early.status, 1, "a kind with a drill but no backup yet: " + early.stderr)
        XCTAssertTrue(early.stderr.contains("no good backup to drill yet of code"), early.stderr)
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", config]).status, 0)
        let drill = try TestSupport.run("backstop", ["verify", "--restore-test", "--config", config])
        XCTAssertEqual(drill.status, 0, drill.stderr)
        XCTAssertTrue(FileOps.exists(dir + "/backups/state/drills.json"), "the drill result is recorded")
    }

    /// A kind that implements `restoreDrill` must say so in `hasRestoreDrill` (the message above
    /// depends on it): every kind that says it has none returns nil, even for a backup record.
    func testEveryKindDeclaresWhetherItHasADrill() throws {
        XCTAssertEqual(Set(TargetRegistry.types.keys), Set(TargetRegistry.builders.keys))
        let values = [
            "TARGET_X_PATH": dir + "/app.db", "TARGET_X_PATHS": dir, "TARGET_X_DATABASE": "app",
            "TARGET_X_SOURCE": dir, "TARGET_X_DATA_DIR": dir,
        ]
        let set = dir + "/set"
        try FileOps.makeDirectory(set + "/x")
        for (kind, type) in TargetRegistry.types.sorted(by: { $0.key < $1.key }) where !type.hasRestoreDrill {
            var config = values
            config["TARGET_X_KIND"] = kind
            let target = try buildAcceptingKnownKeys(kind: kind, values: config)
            XCTAssertEqual(target.kind, kind)
            let record = TargetRecord(name: "x", kind: kind, status: .ok, error: nil, startedAt: Date(), finishedAt: Date(),
                                      artifacts: [], warnings: [], facts: [:], toolVersions: [:])
            let context = VerifyContext(setDirectory: set, deep: false, logger: TestSupport.logger().0, showProgress: false)
            let result = Result { try target.restoreDrill(record, context: context) }
            if case .success(nil) = result { continue }
            XCTFail("kind \(kind) has a restore drill but declares hasRestoreDrill = false")
        }
    }

    /// Builds kind `kind` from the keys of `values` it knows (unknown keys are errors).
    private func buildAcceptingKnownKeys(kind: String, values: [String: String]) throws -> any BackupTarget {
        var remaining = values
        while true {
            do {
                return try TargetRegistry.build(name: "x", config: Config(file: dir + "/b.env", values: remaining))
            } catch ConfigError.unknownKey(let key, _, _) where key != "TARGET_X_KIND" && remaining[key] != nil {
                remaining[key] = nil
            }
        }
    }
}
