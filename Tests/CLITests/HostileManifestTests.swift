import BackupCore
import Foundation
import TestSupport
import XCTest

/// Absurd numbers in the config or in a manifest never crash a command: config values are
/// refused with the usual one-line key error, and a manifest with impossible artifact sizes or
/// paths is unreadable (never used); facts are read through `JSONValue.sizeValue`.
final class HostileManifestTests: XCTestCase {
    var dir = ""
    var config = ""
    let base = "TARGETS=code\nTARGET_CODE_KIND=archive\n"
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("hostile-manifest")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        try TestSupport.write("outside\n", to: dir + "/outside.txt")
        config = dir + "/backstop.env"
        try writeConfig("")
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func writeConfig(_ extra: String) throws {
        try TestSupport.write("BACKUP_DIR=\(dir)/backups\n\(base)TARGET_CODE_PATHS=\(dir)/src\nTARGET_CODE_BASE=\(dir)/src\n\(extra)\n", to: config)
    }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    func testHugeDurationsAndSizesAreRefusedByKey() throws {
        for (line, command) in [("KEEP_WITHIN=9999999999999999d", "prune"), ("ALERT_TIMEOUT=99999999999999999999h", "backup"),
                                ("MAX_AGE=99999999999999999999w", "check"), ("MIN_SIZE=inf", "check"), ("MIN_SIZE=1e30", "check"),
                                ("MIN_SIZE=99999999999T", "check"), ("MIN_SIZE=nan", "check"), ("KEEP_WITHIN=36600d1s", "prune")] {
            try writeConfig(line)
            let run = try backstop([command])
            let key = String(line.split(separator: "=")[0])
            XCTAssertEqual(run.status, 2, "\(line): \(run.stdout) \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
            XCTAssertTrue(run.stderr.contains("invalid value for \(key)"), "\(line): \(run.stderr)")
        }
        let health = try backstop(["health"])
        XCTAssertEqual(health.status, 3, "the monitoring plugin's UNKNOWN")
        XCTAssertTrue(health.stdout.contains("invalid value for KEEP_WITHIN") || health.stdout.contains("UNKNOWN"), health.stdout)
        XCTAssertEqual(ConfigUnits.duration("36500d"), 36500 * 86400)
        XCTAssertEqual(ConfigUnits.bytes("1024T"), 1 << 50)
        XCTAssertNil(ConfigUnits.bytes("1e3"))
        XCTAssertNil(ConfigUnits.bytes("2000000T"))
    }

    /// Edits the only set's manifest with `change`, which gets the code target's record.
    func editManifest(_ change: (inout [String: Any]) -> Void) throws {
        let daily = dir + "/backups/daily"
        let id = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: daily).first { !$0.hasPrefix(".") })
        let path = daily + "/" + id + "/manifest.json"
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: TestSupport.read(path)) as? [String: Any])
        var targets = try XCTUnwrap(json["targets"] as? [[String: Any]])
        change(&targets[0])
        json["targets"] = targets
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
    }

    func testImpossibleArtifactSizesOrPathsMakeAManifestUnreadable() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("Int64.max", { r in var a = r["artifacts"] as! [[String: Any]]; a[0]["bytes"] = Int64.max; r["artifacts"] = a }),
            ("negative", { r in var a = r["artifacts"] as! [[String: Any]]; a[0]["bytes"] = -32; r["artifacts"] = a }),
            ("..", { r in var a = r["artifacts"] as! [[String: Any]]; a[0]["path"] = "code/../../../outside.txt"; r["artifacts"] = a }),
            ("absolute", { r in var a = r["artifacts"] as! [[String: Any]]; a[0]["path"] = self.dir + "/outside.txt"; r["artifacts"] = a }),
        ]
        for (name, change) in cases {
            try editManifest(change)
            for args in [["list", "--size"], ["stats"], ["health"], ["verify"], ["restore", "code", "--to", dir + "/out", "--yes"]] {
                let run = try backstop(args)
                XCTAssertTrue(run.status < 64, "\(name) \(args): exit \(run.status) \(run.stderr)")
                XCTAssertFalse((run.stdout + run.stderr).contains("-32 B"), "\(name) \(args): \(run.stdout)")
            }
            let list = try backstop(["list"])
            XCTAssertTrue((list.stdout + list.stderr).contains("unreadable"), "\(name): \(list.stdout) \(list.stderr)")
            let verify = try backstop(["verify"])
            XCTAssertNotEqual(verify.status, 0, "\(name): \(verify.stdout)")
            XCTAssertFalse(FileOps.exists(dir + "/out"), name)
            // A backup after it commits its own set (the health check reads every set).
            let backup = try backstop(["backup"])
            XCTAssertTrue(backup.status < 64, "\(name): \(backup.status) \(backup.stderr)")
            // Back to the one good set for the next case.
            try FileOps.removeTree(dir + "/backups")
            XCTAssertEqual(try backstop(["backup"]).status, 0)
        }
    }

    func testHugeOrNegativeFactsDoNotTrap() throws {
        XCTAssertEqual(try backstop(["backup"]).status, 0)
        for value: Any in [1e300, -32, Double.greatestFiniteMagnitude] {
            try editManifest { r in
                var f = r["facts"] as? [String: Any] ?? [:]
                f["apparentBytes"] = value
                f["files"] = value
                f["entries"] = value
                r["facts"] = f
            }
            for args in [["list", "--size"], ["stats"], ["health"], ["verify"], ["backup"]] {
                let run = try backstop(args)
                XCTAssertTrue(run.status < 64, "\(value) \(args): exit \(run.status) \(run.stderr)")
                XCTAssertFalse(run.stdout.contains("-32 B"), "\(value) \(args): \(run.stdout)")
            }
            try FileOps.removeTree(dir + "/backups")
            XCTAssertEqual(try backstop(["backup"]).status, 0)
        }
    }
}
