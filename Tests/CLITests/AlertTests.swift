import BackupCore
import Foundation
import TestSupport
import XCTest

/// Alerts go out over real HTTP and SMTP to listeners on 127.0.0.1, without secrets.
final class AlertTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("alerts")
        try TestSupport.write("hello\n", to: dir + "/src/a.txt")
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func config(_ extra: String, paths: String = "src") throws -> String {
        let path = dir + "/b.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=files
        TARGET_FILES_KIND=archive
        TARGET_FILES_PATHS=\(paths)
        DB_PASSWORD=topsecret-pw
        \(extra)
        """, to: path, mode: 0o600)
        return path
    }

    func testFailureGoesToWebhookHealthcheckAndEmail() throws {
        let hook = try LoopbackServer.http()
        let ping = try LoopbackServer.http()
        let smtp = try LoopbackServer.smtp()
        // The alert says "none of the configured paths exist" without naming the path, so this
        // test cannot see redaction at work: testASecretInAnErrorMessageIsRedactedFromTheAlert does.
        let cfg = try config("""
        ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/hooks/T0KEN
        HEALTHCHECK_URL=http://127.0.0.1:\(ping.port)/ping/abc
        SMTP_URL=smtp://127.0.0.1:\(smtp.port)
        ALERT_EMAIL_FROM=backup@localhost
        ALERT_EMAIL_TO=admin@localhost ops@localhost
        """, paths: "missing-topsecret-pw")
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg])
        XCTAssertEqual(run.status, 1, run.stderr)

        let webhook = try XCTUnwrap(hook.requests().first)
        XCTAssertTrue(webhook.hasPrefix("POST /hooks/T0KEN HTTP/1.1"), webhook)
        XCTAssertTrue(webhook.contains("BACKUP FAILED"), webhook)
        XCTAssertTrue(webhook.contains("\"content\""), webhook)
        XCTAssertFalse(webhook.contains("topsecret-pw"), webhook)

        let pings = ping.requests(count: 2)
        XCTAssertEqual(pings.count, 2, "\(pings)")
        XCTAssertTrue(pings[0].hasPrefix("POST /ping/abc/start HTTP/1.1"), pings[0])
        XCTAssertTrue(pings[1].hasPrefix("POST /ping/abc/fail HTTP/1.1"), pings[1])

        let mail = try XCTUnwrap(smtp.requests().first)
        XCTAssertTrue(mail.contains("MAIL FROM:<backup@localhost>"), mail)
        XCTAssertTrue(mail.contains("RCPT TO:<admin@localhost>") && mail.contains("RCPT TO:<ops@localhost>"), mail)
        XCTAssertTrue(mail.contains("Subject: [backstop] BACKUP FAILED"), mail)
        XCTAssertFalse(mail.contains("topsecret-pw"), mail)
    }

    /// The secret really is in the failure's text here: a stop command whose error output
    /// echoes a credential (as some tools do on a failed login). The alert carries that line,
    /// so it must arrive with the secret replaced by the redaction marker.
    func testASecretInAnErrorMessageIsRedactedFromTheAlert() throws {
        let hook = try LoopbackServer.http()
        let smtp = try LoopbackServer.smtp()
        try TestSupport.write("hello\n", to: dir + "/minio/bucket/object.bin")
        try TestSupport.write("mc: login refused for minio-admin with topsecret-pw\n", to: dir + "/stop-error.txt")
        let path = dir + "/b.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=minio
        TARGET_MINIO_KIND=minio
        TARGET_MINIO_DATA_DIR=minio
        TARGET_MINIO_STOP_CMD=cat \(dir)/stop-error.txt >&2; exit 3
        MINIO_ROOT_PASSWORD=topsecret-pw
        ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/hooks/T0KEN
        SMTP_URL=smtp://127.0.0.1:\(smtp.port)
        ALERT_EMAIL_FROM=backup@localhost
        ALERT_EMAIL_TO=admin@localhost
        """, to: path, mode: 0o600)
        let run = try TestSupport.run("backstop", ["backup", "--config", path])
        XCTAssertEqual(run.status, 1, run.stderr)
        for (channel, text) in [("webhook", try XCTUnwrap(hook.requests().first)), ("e-mail", try XCTUnwrap(smtp.requests().first))] {
            XCTAssertTrue(text.contains("login refused for minio-admin with ***"), "\(channel): the error line arrives, redacted: \(text)")
            XCTAssertFalse(text.contains("topsecret-pw"), "\(channel): \(text)")
        }
        XCTAssertTrue(run.stderr.contains("login refused for minio-admin with ***"), run.stderr)
        XCTAssertFalse(run.stderr.contains("topsecret-pw"), run.stderr)
    }

    func testSuccessPingsHealthcheckButSendsNoFailureAlert() throws {
        let hook = try LoopbackServer.http()
        let ping = try LoopbackServer.http()
        let cfg = try config("""
        ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/hook
        HEALTHCHECK_URL=http://127.0.0.1:\(ping.port)/ping/abc
        """)
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg])
        XCTAssertEqual(run.status, 0, run.stderr)
        let pings = ping.requests(count: 2)
        XCTAssertEqual(pings.count, 2, "\(pings)")
        XCTAssertTrue(pings[0].hasPrefix("POST /ping/abc/start HTTP/1.1"), pings[0])
        XCTAssertTrue(pings[1].hasPrefix("POST /ping/abc HTTP/1.1"), pings[1])
        XCTAssertEqual(hook.requests(timeout: 0.5).count, 0, "ALERT_ON=failure by default")
    }

    func testUnreachableAlertChannelIsLoudNotSilent() throws {
        let dead = try LoopbackServer.http()
        let port = dead.port
        dead.stop()
        let cfg = try config("ALERT_WEBHOOK_URL=http://127.0.0.1:\(port)/secret-hook-path\nALERT_ON=always")
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg])
        XCTAssertEqual(run.status, 0, "the backup itself succeeded")
        XCTAssertTrue(run.stderr.contains("alert via webhook 127.0.0.1 failed"), run.stderr)
        XCTAssertFalse(run.stderr.contains("secret-hook-path"), run.stderr)
    }
}
