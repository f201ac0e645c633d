@testable import BackupCore
import Foundation
import TestSupport
import XCTest

final class ConfigTests: XCTestCase {
    func testParsesQuotesCommentsAndExport() throws {
        let text = """
        # a comment
        export BACKUP_DIR=/var/backups
        PLAIN = value with spaces   # trailing comment
        SINGLE='literal $HOME \\n'
        DOUBLE="line1\\nline2 \\"quoted\\""
        EMPTY=
        HASH="a # not a comment"
        """
        let v = try EnvFile.parse(text, file: "x.env")
        XCTAssertEqual(v["BACKUP_DIR"], "/var/backups")
        XCTAssertEqual(v["PLAIN"], "value with spaces")
        XCTAssertEqual(v["SINGLE"], "literal $HOME \\n")
        XCTAssertEqual(v["DOUBLE"], "line1\nline2 \"quoted\"")
        XCTAssertEqual(v["EMPTY"], "")
        XCTAssertEqual(v["HASH"], "a # not a comment")
    }

    func testSyntaxErrorsNameFileAndLine() {
        XCTAssertThrowsError(try EnvFile.parse("A=1\nNOEQUALS\n", file: "/etc/b.env")) { error in
            XCTAssertEqual((error as? ConfigError)?.message, "config: /etc/b.env:2: expected KEY=VALUE")
        }
        XCTAssertThrowsError(try EnvFile.parse("A=\"open\n", file: "c.env")) { error in
            XCTAssertTrue("\(error)".contains("unterminated"), "\(error)")
        }
    }

    func testEnvironmentOverridesFileAndErrorsNameKeyAndFile() throws {
        let config = Config(file: "/srv/.env", values: ["A": "file", "N": "abc", "B": "maybe"], environment: ["A": "env"])
        XCTAssertEqual(config.string("A"), "env")
        XCTAssertThrowsError(try config.require("MISSING")) { error in
            XCTAssertEqual("\(error)", "config: missing required key MISSING: there is no config file /srv/.env (pass --config FILE) and MISSING is not set in the environment")
            XCTAssertEqual((error as? UserFacingError)?.exitStatus, .usage)
        }
        XCTAssertThrowsError(try config.int("N", default: 1, range: 1...10)) { error in
            XCTAssertTrue("\(error)".contains("invalid value for N in /srv/.env: 'abc'"), "\(error)")
        }
        XCTAssertThrowsError(try config.bool("B", default: false))
        XCTAssertEqual(config.resolve("data/x.db"), "/srv/data/x.db")
    }

    func testWarnsWhenPasswordFileIsReadableByOthers() throws {
        let dir = try TestSupport.scratch()
        defer { try? FileOps.removeTree(dir) }
        try TestSupport.write("DB_PASSWORD=s3cret\n", to: dir + "/.env", mode: 0o644)
        let loose = try Config.load(path: dir + "/.env", required: true, environment: [:])
        XCTAssertEqual(loose.warnings.count, 1)
        XCTAssertTrue(try XCTUnwrap(loose.warnings.first).contains("chmod 600"))
        chmod(dir + "/.env", 0o600)
        XCTAssertEqual(try Config.load(path: dir + "/.env", required: true, environment: [:]).warnings, [])
        XCTAssertEqual(loose.secretValues, ["s3cret"])
    }

    func testRedactorRemovesSecretsPairsAndURLPasswords() {
        let r = Redactor(secrets: ["hunter22"])
        let out = r.redact("connect password=abc123 token: xyz url=postgres://app:pw@db/x and hunter22")
        XCTAssertFalse(out.contains("abc123"))
        XCTAssertFalse(out.contains("xyz"))
        XCTAssertFalse(out.contains(":pw@"))
        XCTAssertFalse(out.contains("hunter22"))
        XCTAssertTrue(out.contains("postgres://app:***@db/x"), out)
    }

    func testUnknownTargetKeyIsReported() throws {
        let config = Config(file: "b.env", values: ["TARGET_DB_PATH": "/x", "TARGET_DB_PAHT": "/y"])
        let s = TargetSettings(name: "db", config: config)
        _ = s.string("PATH")
        XCTAssertThrowsError(try s.rejectUnknownKeys()) { error in
            XCTAssertTrue("\(error)".contains("unknown key TARGET_DB_PAHT in b.env"), "\(error)")
        }
    }

    func testAURLPasswordIsRedactedDecodedToo() {
        let config = Config(file: "/x.env", values: ["DATABASE_URL": "postgresql://app:p%40ss%21word@db/app"])
        XCTAssertTrue(config.secretValues.contains("p@ss!word"), "\(config.secretValues)")
        XCTAssertEqual(Redactor(secrets: config.secretValues).redact("FATAL: password p@ss!word rejected"), "FATAL: password *** rejected")
    }

    func testABadValueFromTheEnvironmentIsBlamedOnTheEnvironment() {
        let config = Config(file: "/etc/app.env", values: ["PORT": "5432"], environment: ["PORT": "abc"])
        XCTAssertThrowsError(try config.int("PORT", default: 1, range: 1...65535)) {
            XCTAssertEqual("\($0)", "config: invalid value for PORT in the environment: 'abc' (expected an integer from 1 to 65535)")
        }
    }
}
