@testable import BackupCore
import Foundation
import TestSupport
import XCTest

final class RetentionTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("retention") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    /// Makes a set per entry (age in days, which targets fail) in `tier`.
    func makeSets(_ e: BackupEngine, _ specs: [(days: Double, failing: [String])], tier: String = "daily") throws {
        for spec in specs {
            let targets = e.targets.map { t -> any BackupTarget in
                BytesTarget(name: t.name, content: Data("x".utf8), fail: spec.failing.contains(t.name))
            }
            let run = BackupEngine(repository: e.repository, targets: targets, frontend: "test", logger: e.logger, showProgress: false)
            let summary = try run.backup(tier: tier)
            let set = try XCTUnwrap(summary.directory)
            var manifest = try XCTUnwrap(Repository.readManifest(set).0)
            manifest.startedAt = Date().addingTimeInterval(-spec.days * 86_400)
            try e.repository.writeManifest(manifest, in: set)
        }
    }

    func engine(_ names: [String]) -> BackupEngine {
        BackupEngine(repository: Repository(root: dir + "/repo"), targets: names.map { BytesTarget(name: $0, content: Data()) },
                     frontend: "test", logger: TestSupport.logger().0, showProgress: false)
    }

    func testCountLimitRemovesTheOldest() throws {
        let e = engine(["a"])
        try makeSets(e, [(4, []), (3, []), (2, []), (1, [])])
        let ids = e.repository.completeSets().map(\.id)
        let decisions = try e.prune(RetentionPolicy(limits: ["daily": .init(count: 2)]), dryRun: false)
        XCTAssertEqual(decisions.filter(\.remove).map(\.id).sorted(), Array(ids.suffix(2)).sorted())
        XCTAssertEqual(e.repository.completeSets().map(\.id), Array(ids.prefix(2)))
    }

    func testDryRunRemovesNothing() throws {
        let e = engine(["a"])
        try makeSets(e, [(3, []), (2, []), (1, [])])
        let decisions = try e.prune(RetentionPolicy(limits: ["daily": .init(count: 1)]), dryRun: true)
        XCTAssertEqual(decisions.filter(\.remove).count, 2)
        XCTAssertEqual(e.repository.completeSets().count, 3)
    }

    /// Backups stopped a month ago: age limits would remove everything; the floor keeps the
    /// newest good backup.
    func testAgeLimitNeverRemovesTheLastGoodBackup() throws {
        let e = engine(["a"])
        try makeSets(e, [(40, []), (35, []), (30, [])])
        let newest = try XCTUnwrap(e.repository.completeSets().first).id
        let decisions = try e.prune(RetentionPolicy(limits: ["daily": .init(days: 7)]), dryRun: false)
        XCTAssertEqual(decisions.filter(\.remove).count, 2)
        XCTAssertEqual(e.repository.completeSets().map(\.id), [newest])
        XCTAssertTrue(decisions.first { !$0.remove }?.reason.contains("floor") ?? false)
    }

    /// The newest sets have a failing target 'b': its last good backup is in an old set, which
    /// must stay even though it is beyond the count.
    func testFloorIsPerTarget() throws {
        let e = engine(["a", "b"])
        try makeSets(e, [(5, []), (4, ["b"]), (3, ["b"]), (2, ["b"])])
        let oldest = e.repository.completeSets().last!.id
        let decisions = try e.prune(RetentionPolicy(limits: ["daily": .init(count: 1)], minimumGood: 1), dryRun: false)
        let left = e.repository.completeSets().map(\.id)
        XCTAssertTrue(left.contains(oldest), "the only good backup of b is kept")
        XCTAssertEqual(left.count, 2)
        XCTAssertEqual(decisions.filter(\.remove).count, 2)
    }

    func testTiersAreIndependentAndConfigIsRead() throws {
        let e = engine(["a"])
        try makeSets(e, [(20, []), (10, [])], tier: "weekly")
        try makeSets(e, [(3, []), (2, []), (1, [])], tier: "daily")
        let policy = try XCTUnwrap(try RetentionPolicy.from(config: Config(file: "x", values: ["KEEP_DAILY": "1", "KEEP_WEEKLY_DAYS": "14"])))
        XCTAssertEqual(policy.limits, ["daily": .init(count: 1), "weekly": .init(days: 14)])
        _ = try e.prune(policy, dryRun: false)
        XCTAssertEqual(e.repository.completeSets().map(\.tier).sorted(), ["daily", "weekly"])
        XCTAssertThrowsError(try RetentionPolicy.from(config: Config(file: "x", values: ["KEEP_DAILY": "0"])))
    }

    func testAMisspeltRetentionKeyIsAnError() throws {
        let config = Config(file: "/etc/app.env", values: ["KEEP_DAILLY": "1", "KEEP_WEEKLY": "4"])
        XCTAssertThrowsError(try RetentionPolicy.from(config: config)) {
            XCTAssertEqual(($0 as? ConfigError).map { if case .unknownKey(let k, _, _) = $0 { return k } else { return "" } }, "KEEP_DAILLY")
            XCTAssertEqual("\($0)", "config: unknown key KEEP_DAILLY in /etc/app.env (did you mean KEEP_DAILLY → KEEP_DAILY?)")
        }
        // Far from every retention key: the list of them instead of a guess.
        XCTAssertThrowsError(try RetentionPolicy.from(config: Config(file: "/etc/app.env", values: ["KEEP_FOREVER": "1"]))) {
            XCTAssertTrue("\($0)".contains("unknown key KEEP_FOREVER in /etc/app.env (tier retention keys: KEEP_<TIER>"), "\($0)")
        }
    }
}
