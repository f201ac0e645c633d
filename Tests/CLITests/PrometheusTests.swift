import BackupCore
import Foundation
import TestSupport
import XCTest

/// The textfile-collector file and the Pushgateway push, checked by promtool; the shipped
/// alert rules checked and unit-tested by promtool (the stale-backup rule fires).
final class PrometheusTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("metrics")
        try TestSupport.write("hello\n", to: dir + "/src/a.txt")
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    static var examples: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples/prometheus").path
    }

    func testTextfileAndPushAfterRunsAndHealthChecksPassPromtool() throws {
        let gateway = try LoopbackServer.http()
        try FileManager.default.createDirectory(atPath: dir + "/textfile", withIntermediateDirectories: true)
        let cfg = dir + "/b.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=files other
        TARGET_FILES_KIND=archive
        TARGET_FILES_PATHS=src
        TARGET_OTHER_KIND=archive
        TARGET_OTHER_PATHS=missing
        DEPLOYMENT_NAME=shop "eu"
        METRICS_FILE=textfile/backstop.prom
        PUSHGATEWAY_URL=http://127.0.0.1:\(gateway.port)/
        """, to: cfg, mode: 0o600)
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg])
        XCTAssertEqual(run.status, 1, "target other fails: \(run.stderr)")
        let file = dir + "/textfile/backstop.prom"
        let text = String(decoding: try TestSupport.read(file), as: UTF8.self)
        var st = stat()
        XCTAssertEqual(stat(file, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o644, "the exporter must be able to read it")
        let check = try TestSupport.runProgram("promtool", ["check", "metrics"], stdin: Data(text.utf8))
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr + text)

        let labels = #"{deployment="shop \"eu\"",target="files"}"#
        XCTAssertTrue(text.contains("# TYPE backstop_last_success_timestamp_seconds gauge"), text)
        XCTAssertTrue(text.contains("backstop_last_run_success\(labels) 1"), text)
        XCTAssertTrue(text.contains(#"backstop_last_run_success{deployment="shop \"eu\"",target="other"} 0"#), text)
        XCTAssertTrue(text.contains("# TYPE backstop_backups_total counter"), text)
        XCTAssertTrue(text.contains("backstop_backups_total\(labels) 1"), text)
        XCTAssertNotNil(text.range(of: #"backstop_last_backup_size_bytes\{deployment="shop \\"eu\\"",target="files"\} [1-9][0-9]*\n"#, options: .regularExpression), text)
        XCTAssertNotNil(text.range(of: #"backstop_last_run_duration_seconds\{[^}]*target="files"\} [0-9.]+\n"#, options: .regularExpression), text)
        let stamp = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("backstop_last_success_timestamp_seconds\(labels)") })
        XCTAssertEqual(Double(stamp.split(separator: " ").last ?? "") ?? 0, Date().timeIntervalSince1970, accuracy: 60)

        let push = try XCTUnwrap(gateway.requests().first)
        XCTAssertTrue(push.hasPrefix("PUT /metrics/job/backstop/deployment/shop%20%22eu%22 HTTP/1.1"), push)
        XCTAssertTrue(push.contains("backstop_last_run_success\(labels) 1"), push)

        // A second good run counts; a health check rewrites the file with its verdict.
        try TestSupport.write("BACKUP_DIR=backups\nTARGETS=files\nTARGET_FILES_KIND=archive\nTARGET_FILES_PATHS=src\nDEPLOYMENT_NAME=shop\nMETRICS_FILE=textfile/backstop.prom\nDISK_USAGE_WARN=100\nDISK_USAGE_CRITICAL=100\n",
                              to: cfg, mode: 0o600)
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", cfg]).status, 0)
        XCTAssertTrue(String(decoding: try TestSupport.read(file), as: UTF8.self).contains(#"backstop_backups_total{deployment="shop",target="files"} 2"#))
        XCTAssertEqual(try TestSupport.run("backstop", ["health", "--config", cfg]).status, 0)
        let after = String(decoding: try TestSupport.read(file), as: UTF8.self)
        XCTAssertTrue(after.contains(#"backstop_health_status{deployment="shop"} 0"#), after)
        XCTAssertEqual(try TestSupport.runProgram("promtool", ["check", "metrics"], stdin: Data(after.utf8)).status, 0)
    }

    func testABadMetricsFileNameIsAConfigError() throws {
        let cfg = dir + "/b.env"
        try TestSupport.write("BACKUP_DIR=backups\nTARGETS=files\nTARGET_FILES_KIND=archive\nTARGET_FILES_PATHS=src\nMETRICS_FILE=metrics.txt\n", to: cfg, mode: 0o600)
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("invalid value for METRICS_FILE"), run.stderr)
    }

    func testShippedRulesPassPromtoolAndTheStaleBackupRuleFires() throws {
        let check = try TestSupport.runProgram("promtool", ["check", "rules", "backstop.rules.yml"], directory: Self.examples)
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.contains("SUCCESS: 5 rules found"), check.stdout)
        let test = try TestSupport.runProgram("promtool", ["test", "rules", "backstop.rules.test.yml"], directory: Self.examples)
        XCTAssertEqual(test.status, 0, test.stdout + test.stderr)
        // The unit test really asserts: the same test against a rule that never fires fails.
        let scratchRules = dir + "/rules"
        try FileManager.default.createDirectory(atPath: scratchRules, withIntermediateDirectories: true)
        let rules = try String(contentsOfFile: Self.examples + "/backstop.rules.yml", encoding: .utf8)
        try TestSupport.write(rules.replacingOccurrences(of: "> 86400", with: "> 8640000"), to: scratchRules + "/backstop.rules.yml")
        try FileManager.default.copyItem(atPath: Self.examples + "/backstop.rules.test.yml", toPath: scratchRules + "/backstop.rules.test.yml")
        let broken = try TestSupport.runProgram("promtool", ["test", "rules", "backstop.rules.test.yml"], directory: scratchRules)
        XCTAssertNotEqual(broken.status, 0, broken.stdout)
        XCTAssertTrue((broken.stdout + broken.stderr).contains("alertname: BackupFailed"), broken.stdout + broken.stderr)
    }
}
