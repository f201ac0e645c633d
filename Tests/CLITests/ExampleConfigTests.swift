import BackupCore
import Foundation
import TestSupport
import XCTest

/// The configs in Examples/ are what users copy: each must parse, with every key known to its
/// target kind. (`check` may still fail to reach servers that do not exist here; that is exit
/// 1, while a config error would be exit 2 with a `config:` line.)
final class ExampleConfigTests: XCTestCase {
    func testEveryExampleConfigParses() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples").path
        let names = try FileManager.default.contentsOfDirectory(atPath: examples).filter { $0.hasSuffix(".env.example") }
        XCTAssertGreaterThanOrEqual(names.count, 3, "\(names)")
        for name in names {
            let executable = name.hasPrefix("journal-backup") ? "journal-backup" : "backstop"
            // BACKUP_DIR points at a scratch folder so nothing is written under /var.
            let scratch = try TestSupport.scratch("example")
            defer { try? FileOps.removeTree(scratch) }
            let run = try TestSupport.run(executable, ["check", "--config", examples + "/" + name], environment: ["BACKUP_DIR": scratch])
            XCTAssertNotEqual(run.status, 2, "\(name): \(run.stderr)")
            XCTAssertFalse(run.stderr.contains("config:"), "\(name): \(run.stderr)")
        }
    }
}
