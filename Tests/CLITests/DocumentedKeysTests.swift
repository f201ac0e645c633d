import BackupCore
import CLI
import Foundation
import Targets
import XCTest

/// Every declared config key (each kind's `configKeys`, `GlobalKeys`, the journal's keys) is
/// documented in the README, and the code reads no key it does not declare.
final class DocumentedKeysTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func readme() throws -> String {
        try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
    }

    /// The README's paragraph and tables for `kind`: from the line starting "`kind` — " to the
    /// next such line or heading.
    static func section(of kind: String, in readme: String) -> String? {
        let lines = readme.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.hasPrefix("`\(kind)` — ") }) else { return nil }
        let rest = lines[(start + 1)...]
        let end = rest.firstIndex { $0.hasPrefix("#") || $0.range(of: "^`[a-z_]+` — ", options: .regularExpression) != nil } ?? lines.endIndex
        return lines[start..<end].joined(separator: "\n")
    }

    /// The declared keys `readme` does not document, as `KIND: KEY` or `KEY`.
    static func undocumented(in readme: String) -> [String] {
        var missing: [String] = []
        for kind in TargetRegistry.kinds {
            guard let section = section(of: kind.kindName, in: readme) else {
                missing.append("\(kind.kindName): its section (a line starting \"`\(kind.kindName)` — \")")
                continue
            }
            for key in kind.configKeys where !section.contains("`TARGET_<NAME>_\(key.name)`") && !section.contains("`_\(key.name)`") {
                missing.append("\(kind.kindName): TARGET_<NAME>_\(key.name)")
            }
        }
        for key in TargetSettings.commonKeys where !readme.contains("`TARGET_<NAME>_\(key.name)`") {
            missing.append("every kind: TARGET_<NAME>_\(key.name)")
        }
        let globals = GlobalKeys.all + JournalFrontend.journalKeys.keys
        for key in globals where !readme.contains("`\(key.name)`") && !readme.contains("`\(key.name)=") {
            missing.append(key.name)
        }
        return missing
    }

    func testEveryDeclaredKeyIsInTheReadme() throws {
        XCTAssertEqual(Self.undocumented(in: try readme()), [])
    }

    /// The check above can fail: a README without one kind's key, or without a global key, is
    /// caught (the same edit made to the file by hand fails the test above).
    func testAnUndocumentedKeyIsCaught() throws {
        let text = try readme()
        let withoutBwlimit = text.replacingOccurrences(of: "| `TARGET_<NAME>_BWLIMIT` |", with: "| (removed) |")
        XCTAssertNotEqual(withoutBwlimit, text, "the README's rsync table has a TARGET_<NAME>_BWLIMIT row")
        XCTAssertEqual(Self.undocumented(in: withoutBwlimit), ["rsync: TARGET_<NAME>_BWLIMIT"])
        let withoutTimeout = text.replacingOccurrences(of: "`ALERT_TIMEOUT`", with: "ALERT-TIMEOUT")
        XCTAssertEqual(Self.undocumented(in: withoutTimeout), ["ALERT_TIMEOUT"])
    }

    /// The code reads no global key the declarations lack: every quoted key-like string in the
    /// files that read config is declared (or is not a key: output words, prefixes).
    func testEveryKeyTheCodeReadsIsDeclared() throws {
        var keys = Set<String>()
        let files = ["Sources/BackupCore/Alerts", "Sources/BackupCore/Health", "Sources/BackupCore/Metrics",
                     "Sources/BackupCore/Crypto/ArtifactEncryption.swift", "Sources/BackupCore/Engine/Retention.swift",
                     "Sources/BackupCore/Schedule/Schedule.swift", "Sources/CLI/Frontends", "Sources/CLI/Monitoring.swift"]
        let regex = try NSRegularExpression(pattern: #""([A-Z][A-Z0-9_]{2,})""#)
        for entry in files {
            let url = Self.root.appendingPathComponent(entry)
            let names = entry.hasSuffix(".swift") ? [url] : try FileManager.default.contentsOfDirectory(atPath: url.path)
                .filter { $0.hasSuffix(".swift") }.map { url.appendingPathComponent($0) }
            for file in names {
                let text = try String(contentsOf: file, encoding: .utf8)
                for m in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    keys.insert(String(text[Range(m.range(at: 1), in: text)!]))
                }
            }
        }
        // Status words in output, help placeholders, an HTTP method, and the prefixes of key
        // families: not keys themselves.
        keys.subtract(["OK", "WARNING", "CRITICAL", "UNKNOWN", "FAILED", "COULD", "ARGS", "CRON", "PUT", "TARGET_", "KEEP_", "SCHEDULE_", "_COMMAND", "_SETS", "_DAYS"])
        XCTAssertGreaterThan(keys.count, 40, "\(keys.sorted())")
        let declared = GlobalKeys.all + JournalFrontend.journalKeys.keys + SchedgenFrontend.schedgenKeys.keys + TargetSettings.commonKeys
        for key in keys.sorted() {
            XCTAssertNotNil(GlobalKeys.declaration(of: key, among: declared), "\(key) is read by the code but not declared in GlobalKeys")
        }
    }
}
