@testable import BackupCore
import Foundation
import XCTest

final class DurationTests: XCTestCase {
    func testDurationsAsConfigWritesThem() {
        XCTAssertEqual(ConfigUnits.duration("30s"), 30)
        XCTAssertEqual(ConfigUnits.duration("90m"), 5400)
        XCTAssertEqual(ConfigUnits.duration("26h"), 93600)
        XCTAssertEqual(ConfigUnits.duration("7d"), 604_800)
        XCTAssertEqual(ConfigUnits.duration("2w"), 1_209_600)
        XCTAssertEqual(ConfigUnits.duration("1h30m"), 5400)
        XCTAssertEqual(ConfigUnits.duration("1d12h"), 129_600)
        XCTAssertEqual(ConfigUnits.duration("1.5h"), 5400)
        for bad in ["", "26", "h", "26x", "-1h", "1h30", "1 h"] { XCTAssertNil(ConfigUnits.duration(bad), bad) }
        XCTAssertEqual(ConfigUnits.format(93600), "26h")
        XCTAssertEqual(ConfigUnits.format(604_800), "7d")
        XCTAssertEqual(ConfigUnits.format(45), "45s")
    }

    func testSizes() {
        XCTAssertEqual(ConfigUnits.bytes("512"), 512)
        XCTAssertEqual(ConfigUnits.bytes("10K"), 10240)
        XCTAssertEqual(ConfigUnits.bytes("5MB"), 5 * 1024 * 1024)
        XCTAssertEqual(ConfigUnits.bytes("2GiB"), 2 * 1024 * 1024 * 1024)
        XCTAssertNil(ConfigUnits.bytes("lots"))
    }

    func testABadDurationNamesTheKeyAndFile() {
        let config = Config(file: "/etc/app.env", values: ["MAX_AGE": "26"])
        XCTAssertThrowsError(try config.duration("MAX_AGE", default: 1)) {
            XCTAssertEqual("\($0)", "config: invalid value for MAX_AGE in /etc/app.env: '26' (expected a duration such as 30s, 90m, 26h or 7d)")
        }
        XCTAssertEqual(try config.duration("OTHER", default: 7), 7)
    }

    func testAlertPolicyCountsCoolsDownAndRecovers() {
        let policy = AlertPolicy(on: "failure", cooldown: 3600, afterFailures: 2)
        var state = AlertState()
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let fail = Alert(level: .failure, kind: "backup", source: "t", subject: "F", lines: [])
        let ok = Alert(level: .ok, kind: "backup", source: "t", subject: "OK", lines: [])
        XCTAssertNil(state.decide(fail, policy: policy, now: t0).0, "first failure waits for the second")
        XCTAssertEqual(state.decide(fail, policy: policy, now: t0 + 60).0?.subject, "F")
        XCTAssertNil(state.decide(fail, policy: policy, now: t0 + 120).0, "cooldown")
        XCTAssertEqual(state.decide(fail, policy: policy, now: t0 + 3700).0?.subject, "F", "cooldown over")
        let recovery = state.decide(ok, policy: policy, now: t0 + 3800).0
        XCTAssertEqual(recovery?.level, .recovery)
        XCTAssertTrue(recovery?.subject.contains("RECOVERED") == true)
        XCTAssertNil(state.decide(ok, policy: policy, now: t0 + 3900).0, "ALERT_ON=failure: successes are quiet")
        // Kinds are independent.
        XCTAssertNil(state.decide(Alert(level: .failure, kind: "health", source: "t", subject: "H", lines: []), policy: policy, now: t0).0)
    }
}
