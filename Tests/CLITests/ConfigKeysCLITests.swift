import BackupCore
import CLI
import Foundation
import Targets
import TestSupport
import XCTest

/// The declarations as the administrator meets them: `--help`, `check --keys`, and `check`
/// naming the key a typo meant.
final class ConfigKeysCLITests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("keys") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func testCheckSuggestsTheKeyAMisspeltTargetKeyMeant() throws {
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db
        TARGET_DB_KIND=pg_dump
        TARGET_DB_DATABASE=app
        TARGET_DB_PASWORD=secret
        """, to: dir + "/b.env", mode: 0o600)
        let run = try TestSupport.run("backstop", ["check", "--config", dir + "/b.env"])
        XCTAssertEqual(run.status, 2, run.stdout + run.stderr)
        XCTAssertEqual(run.stderr, "backstop: error: config: unknown key TARGET_DB_PASWORD in \(dir)/b.env (did you mean TARGET_DB_PASWORD → TARGET_DB_PASSWORD?)\n")
        XCTAssertFalse(run.stderr.contains("secret"))

        // Far from every key: the kind's keys instead of a guess.
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db
        TARGET_DB_KIND=sqlite
        TARGET_DB_PATH=app.db
        TARGET_DB_WHATEVER=1
        """, to: dir + "/b.env", mode: 0o600)
        let far = try TestSupport.run("backstop", ["check", "--config", dir + "/b.env"])
        XCTAssertEqual(far.status, 2)
        XCTAssertTrue(far.stderr.contains("unknown key TARGET_DB_WHATEVER"), far.stderr)
        XCTAssertTrue(far.stderr.contains("keys for this target: PATH, COMPRESSION, LEVEL, KIND, MAX_AGE, MIN_SIZE, SHRINK_WARN"), far.stderr)
        XCTAssertFalse(far.stderr.contains("did you mean"), far.stderr)
    }

    func testCheckWarnsOfAGlobalKeyNearADeclaredOne() throws {
        try TestSupport.write("print(1)\n", to: dir + "/src/a.py")
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        ALERT_COOLDOWM=2h
        FLASK_SECRET_KEY=not-ours
        """, to: dir + "/b.env", mode: 0o600)
        let run = try TestSupport.run("backstop", ["check", "--config", dir + "/b.env"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("warning: config: unknown key ALERT_COOLDOWM in \(dir)/b.env (did you mean ALERT_COOLDOWM → ALERT_COOLDOWN?)"), run.stdout)
        // The application's own keys in a shared .env are no typo of ours.
        XCTAssertFalse(run.stdout.contains("FLASK_SECRET_KEY"), run.stdout)
    }

    func testHelpListsEveryKey() throws {
        let help = try TestSupport.run("backstop", ["--help"])
        XCTAssertEqual(help.status, 0)
        let words = Set(help.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        for key in GlobalKeys.all { XCTAssertTrue(words.contains(key.name), "--help lacks \(key.name)") }
        for kind in TargetRegistry.kinds {
            // The kind's line and its continuation lines (indented further).
            let lines = help.stdout.components(separatedBy: "\n")
            let start = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("    \(kind.kindName): ") }, kind.kindName)
            let line = ([lines[start]] + lines[(start + 1)...].prefix { $0.hasPrefix("        ") }).joined(separator: " ")
            let inKind = Set(line.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
            for key in kind.configKeys { XCTAssertTrue(inKind.contains("_" + key.name), "--help lacks \(kind.kindName)'s \(key.name): \(line)") }
        }
        let keys = try TestSupport.run("backstop", ["check", "--keys"])
        XCTAssertEqual(keys.status, 0, keys.stderr)
        for key in GlobalKeys.all { XCTAssertTrue(keys.stdout.contains(key.line()), key.name) }
        for kind in TargetRegistry.kinds {
            for key in TargetRegistry.keys(of: kind) where key.name != "KIND" {
                XCTAssertTrue(keys.stdout.contains(key.line(prefix: "TARGET_<NAME>_", width: 34)), "\(kind.kindName) \(key.name)")
            }
        }

        let journal = try TestSupport.run("journal-backup", ["--help"])
        XCTAssertEqual(journal.status, 0)
        let journalWords = Set(journal.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        for section in JournalFrontend.keySections {
            for key in section.keys { XCTAssertTrue(journalWords.contains(key.name), "journal-backup --help lacks \(key.name)") }
        }
        XCTAssertFalse(journalWords.contains("TARGETS"), "journal-backup reads no TARGETS")
    }
}
