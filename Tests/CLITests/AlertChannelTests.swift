import BackupCore
import Foundation
import TestSupport
import XCTest

/// Every channel at once, received by real listeners on 127.0.0.1 (HTTP, SMTP, and msmtp as
/// a real sendmail); the policy (ALERT_ON, cooldown, consecutive failures, recovery) across
/// several runs; `alert test`; and alerts from a run that could not start.
final class AlertChannelTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("channels")
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
        DEPLOYMENT_NAME=shop
        \(extra)
        """, to: path, mode: 0o600)
        return path
    }

    func body(_ request: String) -> [String: Any] {
        let json = request.components(separatedBy: "\n\n").dropFirst().joined(separator: "\n\n")
        return (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
    }

    func testAFailureReachesEveryChannelWithWhatTheAdministratorNeeds() throws {
        let hook = try LoopbackServer.http(), slack = try LoopbackServer.http(), discord = try LoopbackServer.http(status: 204)
        let ntfy = try LoopbackServer.http(), gotify = try LoopbackServer.http(), ping = try LoopbackServer.http()
        let smtp = try LoopbackServer.smtp()
        let cfg = try config("""
        BACKUP_ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/generic/T0KEN
        SLACK_WEBHOOK_URL=http://127.0.0.1:\(slack.port)/services/T000/B000/XXXXsecretXXXX
        DISCORD_WEBHOOK_URL=http://127.0.0.1:\(discord.port)/api/webhooks/1/abc
        NTFY_URL=http://127.0.0.1:\(ntfy.port)/backups
        NTFY_TOKEN=tk_ntfysecret
        GOTIFY_URL=http://127.0.0.1:\(gotify.port)
        GOTIFY_TOKEN=gotifysecret
        HEALTHCHECK_URL=http://127.0.0.1:\(ping.port)/ping/uuid
        SMTP_URL=smtp://127.0.0.1:\(smtp.port)
        ALERT_EMAIL_FROM=backup@localhost
        ALERT_EMAIL_TO=admin@localhost
        """, paths: "missing-topsecret-pw")
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg])
        XCTAssertEqual(run.status, 1, run.stderr)
        let all = [hook, slack, discord, ntfy, gotify, smtp].map { $0.requests().first ?? "" }
        for text in all + ping.requests(count: 2) {
            XCTAssertFalse(text.contains("topsecret-pw"), text)
        }
        let log = "\(dir)/backups/logs/backup-"
        let next = "next: backstop check --config \(dir)/b.env, then: backstop backup --only files --config \(dir)/b.env"

        let generic = body(all[0])
        XCTAssertTrue(all[0].hasPrefix("POST /generic/T0KEN HTTP/1.1"), all[0])
        XCTAssertEqual(generic["level"] as? String, "failure")
        XCTAssertEqual(generic["ok"] as? Bool, false)
        XCTAssertEqual(generic["deployment"] as? String, "shop")
        XCTAssertEqual(generic["subject"] as? String, "[shop] BACKUP FAILED on \(ProcessInfo.processInfo.hostName): files")
        let lines = generic["lines"] as? [String] ?? []
        XCTAssertTrue(lines.contains { $0.hasPrefix("files (archive): FAILED after") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("log: \(log)") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("run: 20") && $0.contains(" to 20") }, "\(lines)")
        XCTAssertTrue(lines.contains(next), "\(lines)")

        let attachment = try XCTUnwrap((body(all[1])["attachments"] as? [[String: Any]])?.first)
        XCTAssertTrue(all[1].hasPrefix("POST /services/T000/B000/XXXXsecretXXXX"), all[1])
        XCTAssertEqual(attachment["color"] as? String, "danger")
        XCTAssertTrue((attachment["text"] as? String ?? "").contains(next), "\(attachment)")

        let embed = try XCTUnwrap((body(all[2])["embeds"] as? [[String: Any]])?.first)
        XCTAssertEqual(embed["color"] as? Int, 0xE01E5A)
        XCTAssertEqual(embed["title"] as? String, generic["subject"] as? String)

        XCTAssertTrue(all[3].hasPrefix("POST /backups HTTP/1.1"), all[3])
        XCTAssertTrue(all[3].contains("Title: [shop] BACKUP FAILED"), all[3])
        XCTAssertTrue(all[3].contains("Priority: 5") && all[3].contains("Authorization: Bearer tk_ntfysecret"), all[3])
        XCTAssertTrue(all[3].contains(next), all[3])

        XCTAssertTrue(all[4].hasPrefix("POST /message HTTP/1.1"), all[4])
        XCTAssertTrue(all[4].contains("X-Gotify-Key: gotifysecret"), all[4])
        XCTAssertEqual(body(all[4])["priority"] as? Int, 8)

        XCTAssertTrue(all[5].contains("Subject: [shop] BACKUP FAILED"), all[5])
        XCTAssertTrue(all[5].contains(next), all[5])

        let pings = ping.requests(count: 2)
        XCTAssertEqual(pings.map { $0.split(separator: "\n").first.map(String.init) ?? "" },
                       ["POST /ping/uuid/start HTTP/1.1", "POST /ping/uuid/fail HTTP/1.1"])
        // Tokens in URLs and headers never reach the terminal or the log.
        let logText = try String(contentsOfFile: try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: dir + "/backups/logs").first.map { dir + "/backups/logs/" + $0 }), encoding: .utf8)
        for secret in ["T0KEN", "XXXXsecretXXXX", "tk_ntfysecret", "gotifysecret", "topsecret-pw"] {
            XCTAssertFalse(run.stderr.contains(secret), secret)
            XCTAssertFalse(logText.contains(secret), secret)
        }
    }

    func testSendmailDeliversThroughARealMTAToTheListener() throws {
        let smtp = try LoopbackServer.smtp()
        let home = dir + "/home"
        try TestSupport.write("defaults\nauth off\ntls off\naccount default\nhost 127.0.0.1\nport \(smtp.port)\nfrom backup@localhost\n",
                              to: home + "/.msmtprc", mode: 0o600)
        let cfg = try config("ALERT_EMAIL_TO=ops@localhost\nALERT_EMAIL_FROM=backup@localhost\nSENDMAIL=msmtp", paths: "missing")
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg], environment: ["HOME": home])
        XCTAssertEqual(run.status, 1, run.stderr)
        let mail = try XCTUnwrap(smtp.requests().first)
        XCTAssertTrue(mail.contains("RCPT TO:<ops@localhost>"), mail)
        XCTAssertTrue(mail.contains("Subject: [shop] BACKUP FAILED"), mail)
        XCTAssertTrue(mail.contains("files (archive): FAILED after"), mail)
    }

    func testUnreachableChannelsNeverChangeTheExitCode() throws {
        let dead = try LoopbackServer.http()
        let port = dead.port
        dead.stop()
        let live = try LoopbackServer.http()
        let cfg = try config("""
        SLACK_WEBHOOK_URL=http://127.0.0.1:\(port)/services/dead-token
        DISCORD_WEBHOOK_URL=http://127.0.0.1:\(live.port)/api/webhooks/live
        PUSHGATEWAY_URL=http://127.0.0.1:\(port)
        ALERT_ON=always
        ALERT_TIMEOUT=5s
        """)
        let ok = try TestSupport.run("backstop", ["backup", "--config", cfg])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stderr.contains("alert via Slack 127.0.0.1 failed"), ok.stderr)
        XCTAssertTrue(ok.stderr.contains("metrics not pushed"), ok.stderr)
        XCTAssertFalse(ok.stderr.contains("dead-token"), ok.stderr)
        XCTAssertEqual(live.requests().count, 1, "the other channel still got it")

        _ = try config("SLACK_WEBHOOK_URL=http://127.0.0.1:\(port)/services/dead-token", paths: "missing")
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", cfg]).status, 1, "a failed run stays 1")
    }

    func testCooldownConsecutiveFailuresAndRecoveryAcrossRuns() throws {
        let hook = try LoopbackServer.http()
        let settings = "ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/h\nALERT_COOLDOWN=1h\nALERT_AFTER_FAILURES=2"
        let cfg = try config(settings, paths: "later")
        func backup(_ expected: Int32) throws {
            let run = try TestSupport.run("backstop", ["backup", "--config", cfg])
            XCTAssertEqual(run.status, expected, run.stderr)
        }
        try backup(1)
        XCTAssertEqual(hook.requests(timeout: 0.5).count, 0, "one failure is not yet an alert")
        try backup(1)
        XCTAssertEqual(hook.requests(count: 1).count, 1, "the second failure in a row is")
        try backup(1)
        XCTAssertEqual(hook.requests(count: 2, timeout: 0.5).count, 1, "the third is within the cooldown")
        try TestSupport.write("now here\n", to: dir + "/later/x.txt")
        try backup(0)
        let received = hook.requests(count: 2)
        XCTAssertEqual(received.count, 2)
        XCTAssertEqual(body(received[1])["level"] as? String, "recovery")
        XCTAssertTrue((body(received[1])["subject"] as? String ?? "").hasPrefix("[shop] RECOVERED: backup is OK again"), received[1])
        try backup(0)
        XCTAssertEqual(hook.requests(count: 3, timeout: 0.5).count, 2, "successes after a recovery are quiet with ALERT_ON=failure")
        let state = try JSONSerialization.jsonObject(with: TestSupport.read(dir + "/backups/state/alerts-backup.json")) as? [String: Any]
        XCTAssertNotNil((state?["streams"] as? [String: Any])?["backup"])
    }

    func testWarningsAlertOnlyWithAlertOnWarning() throws {
        let hook = try LoopbackServer.http()
        var cfg = try config("ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/h", paths: "src gone")
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", cfg]).status, 0)
        XCTAssertEqual(hook.requests(timeout: 0.5).count, 0)
        cfg = try config("ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/h\nALERT_ON=warning", paths: "src gone")
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", cfg]).status, 0, "warnings keep exit 0")
        let alert = body(try XCTUnwrap(hook.requests().first))
        XCTAssertEqual(alert["level"] as? String, "warning")
        XCTAssertTrue((alert["subject"] as? String ?? "").contains("completed with 1 warning"), "\(alert)")
        XCTAssertTrue((alert["lines"] as? [String] ?? []).contains { $0.contains("gone") }, "\(alert)")
    }

    func testARunThatCannotStartStillAlertsAndPingsFail() throws {
        let hook = try LoopbackServer.http()
        let ping = try LoopbackServer.http()
        let cfg = try config("ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/h\nHEALTHCHECK_URL=http://127.0.0.1:\(ping.port)/p\nTARGET_FILES_PAHTS=typo")
        let run = try TestSupport.run("backstop", ["backup", "--config", cfg])
        XCTAssertEqual(run.status, 2, run.stderr)
        XCTAssertTrue(run.stderr.contains("unknown key TARGET_FILES_PAHTS"), run.stderr)
        let alert = body(try XCTUnwrap(hook.requests().first))
        XCTAssertEqual(alert["subject"] as? String, "[shop] BACKUP COULD NOT START on \(ProcessInfo.processInfo.hostName)")
        XCTAssertTrue((alert["lines"] as? [String] ?? []).contains { $0.contains("unknown key TARGET_FILES_PAHTS") }, "\(alert)")
        XCTAssertTrue(try XCTUnwrap(ping.requests().first).hasPrefix("POST /p/fail HTTP/1.1"))
    }

    func testAlertTestReportsEveryChannel() throws {
        let slack = try LoopbackServer.http(), broken = try LoopbackServer.http(status: 500), ping = try LoopbackServer.http()
        let cfg = try config("""
        SLACK_WEBHOOK_URL=http://127.0.0.1:\(slack.port)/s
        DISCORD_WEBHOOK_URL=http://127.0.0.1:\(broken.port)/d
        HEALTHCHECK_URL=http://127.0.0.1:\(ping.port)/p
        """)
        let run = try TestSupport.run("backstop", ["alert", "test", "--config", cfg])
        XCTAssertEqual(run.status, 1, run.stdout)
        XCTAssertEqual(run.stdout, """
        ok    Slack 127.0.0.1
        FAIL  alert via Discord 127.0.0.1 failed: Discord 127.0.0.1 answered HTTP 500
        skip  health check 127.0.0.1 (pass --ping to ping it)

        """)
        let attachment = try XCTUnwrap((body(try XCTUnwrap(slack.requests().first))["attachments"] as? [[String: Any]])?.first)
        XCTAssertEqual(attachment["color"] as? String, "good")
        XCTAssertEqual(attachment["title"] as? String, "[shop] TEST ALERT from \(ProcessInfo.processInfo.hostName)")
        XCTAssertEqual(ping.requests(timeout: 0.3).count, 0)

        let none = try TestSupport.run("backstop", ["alert", "test", "--config", try config("")])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stdout.contains("no alert channel is configured"), none.stdout)
    }

    func testHealthAlertsWhenWorseThanOKAndOnRecovery() throws {
        let hook = try LoopbackServer.http()
        let cfg = try config("ALERT_WEBHOOK_URL=http://127.0.0.1:\(hook.port)/h\nDISK_USAGE_WARN=100\nDISK_USAGE_CRITICAL=100")
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", cfg]).status, 0)
        let daily = dir + "/backups/daily"
        let set = daily + "/" + (try FileManager.default.contentsOfDirectory(atPath: daily).first { Repository.isSetID($0) } ?? "")
        try TestSupport.age(set: set, by: 60 * 3600)
        XCTAssertEqual(try TestSupport.run("backstop", ["health", "--config", cfg]).status, 2)
        XCTAssertEqual(try TestSupport.run("backstop", ["health", "--config", cfg]).status, 2)
        let first = body(try XCTUnwrap(hook.requests().first))
        XCTAssertEqual(first["subject"] as? String, "[shop] BACKUP HEALTH CRITICAL on \(ProcessInfo.processInfo.hostName)")
        XCTAssertEqual(hook.requests(count: 2, timeout: 0.5).count, 1, "the second check is within the cooldown")
        XCTAssertEqual(try TestSupport.run("backstop", ["backup", "--config", cfg]).status, 0)
        XCTAssertEqual(try TestSupport.run("backstop", ["health", "--config", cfg]).status, 0)
        let received = hook.requests(count: 2)
        XCTAssertEqual(received.count, 2)
        XCTAssertEqual(body(received[1])["level"] as? String, "recovery")
    }
}
