import BackupCore
import XCTest

/// Key declarations: edit distance, "did you mean", families, and the settings that refuse
/// what the declaration lacks.
final class ConfigKeyTests: XCTestCase {
    func testEditDistance() {
        XCTAssertEqual(ConfigKey.editDistance("", ""), 0)
        XCTAssertEqual(ConfigKey.editDistance("PASSWORD", "PASSWORD"), 0)
        XCTAssertEqual(ConfigKey.editDistance("PASWORD", "PASSWORD"), 1)      // deletion
        XCTAssertEqual(ConfigKey.editDistance("PAHT", "PATH"), 2)             // two substitutions
        XCTAssertEqual(ConfigKey.editDistance("KITTEN", "SITTING"), 3)
        XCTAssertEqual(ConfigKey.editDistance("", "ABC"), 3)
    }

    func testNearestIsWithinTwoEditsAndUnambiguous() {
        XCTAssertEqual(ConfigKey.nearest(to: "TARGET_DB_PASWORD", among: ["TARGET_DB_PASSWORD", "TARGET_DB_PASSFILE"]), "TARGET_DB_PASSWORD")
        XCTAssertNil(ConfigKey.nearest(to: "TARGET_DB_PSWRD", among: ["TARGET_DB_PASSWORD"]), "three edits away")
        XCTAssertEqual(ConfigKey.nearest(to: "KEEP_DAILLY", among: ["KEEP_DAILY", "KEEP_WEEKLY"]), "KEEP_DAILY")
        XCTAssertNil(ConfigKey.nearest(to: "SOME_KEY_A", among: ["SOME_KEY_B", "SOME_KEY_C"]), "a tie names neither")
        XCTAssertNil(ConfigKey.nearest(to: "DB", among: ["TZ"]), "a short key allows fewer edits")
        XCTAssertNil(ConfigKey.nearest(to: "TARGEST", among: ["TARGETS"]), "seven characters allow one edit")
        XCTAssertEqual(ConfigKey.nearest(to: "TARGET", among: ["TARGETS"]), "TARGETS")
        XCTAssertNil(ConfigKey.nearest(to: "PATH", among: ["PATH"]), "the key itself is no suggestion")
    }

    func testAFamilyMatchesItsMembersOnly() {
        let key = ConfigKey("KEEP_<TIER>_DAYS", .int, help: "x")
        XCTAssertTrue(key.isPattern)
        XCTAssertTrue(key.matches("KEEP_DAILY_DAYS"))
        XCTAssertTrue(key.matches("KEEP_HOURLY_2_DAYS"))
        XCTAssertFalse(key.matches("KEEP_DAILY"))
        XCTAssertFalse(key.matches("XKEEP_DAILY_DAYS"))
        XCTAssertFalse(ConfigKey("TZ", .string, help: "x").matches("TZZ"))
    }

    func testUndeclaredTargetKeyGetsADidYouMean() throws {
        let config = Config(file: "b.env", values: ["TARGET_DB_PATH": "/x", "TARGET_DB_PAHT": "/y"])
        let s = TargetSettings(name: "db", config: config, declared: [ConfigKey("PATH", .path, help: "the file")])
        _ = s.string("PATH")
        XCTAssertThrowsError(try s.rejectUnknownKeys()) { error in
            XCTAssertEqual("\(error)", "config: unknown key TARGET_DB_PAHT in b.env (did you mean TARGET_DB_PAHT → TARGET_DB_PATH?)")
        }
        // Declared keys need not be read to be known, and the common keys are always known.
        let quiet = TargetSettings(name: "db", config: Config(file: "b.env", values: ["TARGET_DB_PATH": "/x", "TARGET_DB_MAX_AGE": "2h"]),
                                   declared: [ConfigKey("PATH", .path, help: "the file")])
        XCTAssertNoThrow(try quiet.rejectUnknownKeys())
    }

    func testReadingAnUndeclaredKeyIsADefect() {
        let s = TargetSettings(name: "db", config: Config(file: "b.env", values: [:]), declared: [ConfigKey("PATH", .path, help: "the file")])
        _ = s.string("PAHT")
        XCTAssertThrowsError(try s.rejectUnknownKeys()) { error in
            XCTAssertEqual("\(error)", "internal error: target db read TARGET_DB_PAHT, which its kind does not declare")
        }
    }

    func testGlobalKeysAreDeclaredOnce() {
        let names = GlobalKeys.all.map(\.name)
        XCTAssertEqual(names.count, Set(names).count, "a global key declared twice")
        XCTAssertNotNil(GlobalKeys.declaration(of: "KEEP_DAILY_DAYS"))
        XCTAssertNotNil(GlobalKeys.declaration(of: "SCHEDULE_WEEKLY_COMMAND"))
        XCTAssertNil(GlobalKeys.declaration(of: "BACKUP_DRI"))
    }

    func testWrappedKeepsLinesShort() {
        let lines = ConfigKey.wrapped(["head:"] + Array(repeating: "KEY_NAME", count: 30), indent: "  ", width: 40)
        XCTAssertTrue(lines.allSatisfy { $0.count <= 40 }, "\(lines)")
        XCTAssertTrue(lines[0].hasPrefix("  head: KEY_NAME"))
        XCTAssertTrue(lines.dropFirst().allSatisfy { $0.hasPrefix("      KEY_NAME") })
        XCTAssertEqual(lines.joined().components(separatedBy: "KEY_NAME").count - 1, 30)
    }
}

/// The one parser of `COMPRESSION`, `LEVEL` and `THREADS`.
final class CompressionSettingsTests: XCTestCase {
    func settings(_ values: [String: String]) -> TargetSettings {
        TargetSettings(name: "x", config: Config(file: "b.env", values: values), declared: Compression.configKeys())
    }

    func testDefaultsAndExplicitValues() throws {
        XCTAssertEqual(try Compression(settings: settings([:])), .gzip(level: 6))
        XCTAssertEqual(try Compression(settings: settings([:]), defaultName: "zstd", threads: false), .zstd(level: 3, threads: 1))
        XCTAssertEqual(try Compression(settings: settings(["TARGET_X_COMPRESSION": "zstd", "TARGET_X_LEVEL": "19", "TARGET_X_THREADS": "4"])),
                       .zstd(level: 19, threads: 4))
        XCTAssertEqual(try Compression(settings: settings(["TARGET_X_COMPRESSION": "none"])), Compression.none)
        XCTAssertNil(try Compression.read(settings([:])).level)
        XCTAssertEqual(try Compression.read(settings(["TARGET_X_LEVEL": "9"])).level, 9)
    }

    func testBadValuesNameTheKey() {
        let cases: [([String: String], String)] = [
            (["TARGET_X_COMPRESSION": "lz4"], "config: invalid value for TARGET_X_COMPRESSION in b.env: 'lz4' (expected one of gzip, zstd, none)"),
            (["TARGET_X_LEVEL": "12"], "config: invalid value for TARGET_X_LEVEL in b.env: '12' (expected an integer from 1 to 9)"),
            (["TARGET_X_COMPRESSION": "zstd", "TARGET_X_LEVEL": "20"], "config: invalid value for TARGET_X_LEVEL in b.env: '20' (expected an integer from 1 to 19)"),
            (["TARGET_X_THREADS": "0"], "config: invalid value for TARGET_X_THREADS in b.env: '0' (expected an integer from 1 to 64)"),
        ]
        for (values, message) in cases {
            XCTAssertThrowsError(try Compression(settings: settings(values))) { XCTAssertEqual("\($0)", message) }
        }
    }
}

/// The one set-ID time format.
final class SetIDTimeTests: XCTestCase {
    func testRoundTripInUTCAndSuffixes() throws {
        let date = Date(timeIntervalSince1970: 1_796_695_200)   // 2026-12-08 02:00:00 UTC
        XCTAssertEqual(SetIDTime.string(from: date), "20261208_020000")
        XCTAssertEqual(SetIDTime.date(from: "20261208_020000"), date)
        XCTAssertEqual(SetIDTime.date(from: "20261208_020000_2"), date)
        XCTAssertEqual(SetIDTime.string(from: date, timeZone: TimeZone(identifier: "Europe/Berlin")!), "20261208_030000")
        for bad in ["2026120_020000", "20261208-020000", "20261208_020000_", "x20261208_020000", "20261340_020000"] {
            XCTAssertNil(SetIDTime.date(from: bad), bad)
        }
        // A new set's ID is the stamp of its time.
        let dir = NSTemporaryDirectory() + "setid-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(Repository(root: dir).newSetID(at: date, tier: "daily"), "20261208_020000")
    }
}

/// The one trailing-slash rule.
final class TrailingSlashTests: XCTestCase {
    func testTrailingSlashesGoButTheRootStays() {
        XCTAssertEqual(FileOps.trimmingTrailingSlashes("/srv/data/"), "/srv/data")
        XCTAssertEqual(FileOps.trimmingTrailingSlashes("/srv/data//"), "/srv/data")
        XCTAssertEqual(FileOps.trimmingTrailingSlashes("/srv/data"), "/srv/data")
        XCTAssertEqual(FileOps.trimmingTrailingSlashes("/"), "/")
        XCTAssertEqual(FileOps.trimmingTrailingSlashes("//"), "/")
        XCTAssertEqual(FileOps.trimmingTrailingSlashes("data/"), "data")
        XCTAssertEqual(FileOps.trimmingTrailingSlashes(""), "")
    }
}
