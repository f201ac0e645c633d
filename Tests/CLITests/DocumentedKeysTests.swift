import Foundation
import XCTest

/// Every config key the monitoring code (alerts, health, metrics) reads is documented in the
/// README as `KEY`, so an administrator can find it. Keys are taken from the source itself.
final class DocumentedKeysTests: XCTestCase {
    func testMonitoringKeysAreInTheReadme() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        var keys = Set<String>()
        for folder in ["Alerts", "Health", "Metrics"] {
            let dir = root.appendingPathComponent("Sources/BackupCore/" + folder)
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".swift") {
                let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
                let regex = try NSRegularExpression(pattern: #""([A-Z][A-Z0-9_]{3,})""#)
                for m in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    keys.insert(String(text[Range(m.range(at: 1), in: text)!]))
                }
            }
        }
        // Status words in output, and the prefix of per-target keys: not keys themselves.
        keys.subtract(["OK", "WARNING", "CRITICAL", "UNKNOWN", "FAILED", "TARGET_"])
        XCTAssertGreaterThan(keys.count, 25, "\(keys.sorted())")
        for key in keys.sorted() {
            XCTAssertTrue(readme.contains("`\(key)`"), "\(key) is read by the monitoring code but not documented in README.md")
        }
        for perTarget in ["MAX_AGE", "MIN_SIZE", "SHRINK_WARN"] {
            XCTAssertTrue(readme.contains("`TARGET_<NAME>_\(perTarget)`"), perTarget)
        }
    }
}
