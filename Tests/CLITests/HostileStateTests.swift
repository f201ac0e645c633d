import BackupCore
import Foundation
import TestSupport
import XCTest

/// A recorded file mode never makes a restored file world-writable, and a corrupt drill
/// history is moved aside with a warning instead of being overwritten.
final class HostileStateTests: XCTestCase {
    var dir = ""
    var config = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("hostile-state")
        let made = try TestSupport.runProgram("sqlite3", [dir + "/app.db", "create table t(x); insert into t values (1);"])
        XCTAssertEqual(made.status, 0, made.stderr)
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=\(dir)/backups
        TARGETS=db
        TARGET_DB_KIND=sqlite
        TARGET_DB_PATH=\(dir)/app.db
        """, to: config)
        XCTAssertEqual(try backstop(["backup"]).status, 0)
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    func testARecordedMode0777RestoresWithoutWorldWrite() throws {
        let daily = dir + "/backups/daily"
        let id = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: daily).first { !$0.hasPrefix(".") })
        let path = daily + "/" + id + "/manifest.json"
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: TestSupport.read(path)) as? [String: Any])
        var targets = try XCTUnwrap(json["targets"] as? [[String: Any]])
        var facts = try XCTUnwrap(targets[0]["facts"] as? [String: Any])
        XCTAssertNotNil(facts["fileMode"])
        facts["fileMode"] = "0777"
        targets[0]["facts"] = facts
        json["targets"] = targets
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let out = dir + "/new.db"
        let run = try backstop(["restore", "db", "--to", out, "--yes"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        var st = stat()
        XCTAssertEqual(stat(out, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o775, String(st.st_mode & 0o777, radix: 8))
    }

    func testACorruptDrillHistoryIsMovedAsideWithAWarning() throws {
        try FileOps.makeDirectory(dir + "/backups/state")
        try TestSupport.write("{ not json", to: dir + "/backups/state/drills.json")
        let drill = try backstop(["verify", "--restore-test"])
        XCTAssertEqual(drill.status, 0, drill.stdout + drill.stderr)
        XCTAssertTrue(drill.stderr.contains("moved aside"), drill.stderr)
        let aside = try FileManager.default.contentsOfDirectory(atPath: dir + "/backups/state").filter { $0.hasPrefix("drills.json.corrupt-") }
        XCTAssertEqual(aside.count, 1)
        XCTAssertEqual(try TestSupport.read(dir + "/backups/state/" + aside[0]), Data("{ not json".utf8))
        let history = try JSONSerialization.jsonObject(with: TestSupport.read(dir + "/backups/state/drills.json")) as? [Any]
        XCTAssertEqual(history?.count, 1)
    }
}
