import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

/// The plan the administrator confirms is the plan carried out: `carryOut` takes the plan value
/// from `planRestore` and never works it out again. When the destination it decided about is
/// no longer the same (a file appeared where the plan saw an empty or absent place, so it
/// planned no safety copy), the apply refuses and writes nothing.
final class RestorePlanTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("plan") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func rsyncEngine() throws -> BackupEngine {
        let src = dir + "/src"
        for i in 0..<6 { try TestSupport.writeRandom(500 + i, to: "\(src)/d\(i % 2)/f\(i).bin", seed: UInt64(i)) }
        let e = TestSupport.engine(dir + "/repo", [RsyncSnapshotTarget(name: "media", source: src)])
        XCTAssertTrue(try e.backup().succeeded)
        return e
    }

    /// Every file under `root` with its content.
    func contents(_ root: String) throws -> [String: Data] { try TestSupport.snapshot(root) }

    func testAFileAppearingAfterAnEmptyDestinationWasPlannedStopsTheRestore() throws {
        let e = try rsyncEngine()
        let out = dir + "/out"
        try FileOps.makeDirectory(out)
        let plan = try e.planRestore(target: "media", id: "latest", options: RestoreOptions(destination: out))
        XCTAssertEqual(plan.safetyCopy, .none, "an empty folder needs no safety copy")
        XCTAssertTrue(plan.lines.contains("the destination is empty: no safety copy needed"), "\(plan.lines)")

        // Between the plan and the confirmation, someone writes into the destination.
        try TestSupport.write("written after the plan\n", to: out + "/d0/f0.bin")
        let before = try contents(out)
        XCTAssertThrowsError(try e.carryOut(plan)) { error in
            XCTAssertTrue("\(error)".contains("changed after the restore plan was made"), "\(error)")
            XCTAssertTrue("\(error)".contains("nothing was restored"), "\(error)")
        }
        XCTAssertEqual(try contents(out), before, "nothing was written or deleted")
        XCTAssertFalse(FileOps.exists(e.repository.safetyDirectory), "no safety copy was taken: nothing was restored")

        // A new plan sees the file, plans a safety copy and keeps what was there in it.
        let replanned = try e.planRestore(target: "media", id: "latest", options: RestoreOptions(destination: out))
        XCTAssertEqual(replanned.safetyCopy, .hardLinkTree)
        let report = try e.carryOut(replanned)
        let safety = try XCTUnwrap(report.safetyCopy)
        XCTAssertEqual(try String(contentsOfFile: safety + "/d0/f0.bin", encoding: .utf8), "written after the plan\n")
        XCTAssertEqual(try contents(out), try contents(dir + "/src"))
    }

    func testTheReportIsOfThePlanThatWasShown() throws {
        let e = try rsyncEngine()
        let out = dir + "/out"
        let plan = try e.planRestore(target: "media", id: "latest", options: RestoreOptions(destination: out))
        let report = try e.carryOut(plan)
        XCTAssertEqual(Array(report.lines.prefix(plan.lines.count)), plan.lines, "the report starts with the plan's own lines")
        XCTAssertEqual(report.destination, plan.destination)
        XCTAssertEqual(try contents(out), try contents(dir + "/src"))
        // The same plan value cannot be carried out twice over what it changed: the folder it
        // planned as absent now exists.
        XCTAssertThrowsError(try e.carryOut(plan)) { XCTAssertTrue("\($0)".contains("changed after the restore plan was made"), "\($0)") }
    }

    /// Content changing inside a destination the plan already saw as non-empty does not stop
    /// the restore: the safety copy is taken when the plan is carried out, so it holds the
    /// change, and the confirmed plan (a mirror of the backup) is what is applied.
    func testAChangeInsideANonEmptyDestinationIsKeptInTheSafetyCopy() throws {
        let e = try rsyncEngine()
        let live = dir + "/src"
        let plan = try e.planRestore(target: "media", id: "latest", options: RestoreOptions())
        XCTAssertEqual(plan.safetyCopy, .hardLinkTree)
        try TestSupport.write("late\n", to: live + "/d1/late.txt")
        let report = try e.carryOut(plan)
        let safety = try XCTUnwrap(report.safetyCopy)
        XCTAssertEqual(try String(contentsOfFile: safety + "/d1/late.txt", encoding: .utf8), "late\n")
        XCTAssertFalse(FileOps.exists(live + "/d1/late.txt"), "the confirmed mirror of the backup was applied")
    }

    func testADatabaseAppearingWhereTheSQLitePlanSawNoneStopsTheRestore() throws {
        let live = dir + "/app.db"
        let db = try SQLiteDatabase(path: live, readOnly: false, create: true)
        try db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('backed up');")
        let e = TestSupport.engine(dir + "/repo", [SQLiteTarget(name: "db", path: live)])
        XCTAssertTrue(try e.backup().succeeded)
        let out = dir + "/restored/app.db"
        let plan = try e.planRestore(target: "db", id: "latest", options: RestoreOptions(destination: out))
        XCTAssertEqual(plan.safetyCopy, .none)
        XCTAssertTrue(plan.lines.contains("destination: \(out) (new file)"), "\(plan.lines)")

        try FileOps.makeDirectory(dir + "/restored")
        try TestSupport.write("someone else's file\n", to: out)
        XCTAssertThrowsError(try e.carryOut(plan)) { XCTAssertTrue("\($0)".contains("changed after the restore plan was made"), "\($0)") }
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "someone else's file\n", "not overwritten without a safety copy")
    }

    func testTheDryRunPlanIsJSONWithItsSafetyCopyMethod() throws {
        let e = try rsyncEngine()
        let plan = try e.planRestore(target: "media", id: "latest", options: RestoreOptions(dryRun: true))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: BackstopJSON.string(plan).data(using: .utf8)!) as? [String: Any])
        XCTAssertEqual(json["safetyCopyMethod"] as? String, "hardLinkTree")
        XCTAssertEqual(json["dryRun"] as? Bool, true)
        let details = try XCTUnwrap(json["details"] as? [String: Any])
        XCTAssertEqual(details["files"] as? Int, 6)
        XCTAssertTrue((details["arguments"] as? [String])?.contains("--delete") == true, "\(details)")
    }
}
