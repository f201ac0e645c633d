import BackupCore
import Foundation
import TestSupport
import XCTest

/// The flat-name links and the legacy layout against hostile folders: only regular files are
/// legacy files, and only links of ours that point at nothing inside the folder are removed.
final class LegacyLayoutTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.scratch("legacy") }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func layout() -> FlatFileLayout {
        FlatFileLayout(directory: dir + "/backups", patterns: [
            .init(target: "db", prefix: "db_schedgen_", suffix: ".sql.gz", format: "pg_dump+sql-gzip", minimumBytes: 1024),
            .init(target: "minio", prefix: "minio_schedgen-pdfs_", suffix: ".tar.gz", format: "tar+gzip", minimumBytes: 512),
        ], timeZone: TimeZone(identifier: "Europe/Berlin")!)
    }

    func testOnlyRegularFilesWithAStampAreLegacySets() throws {
        let b = dir + "/backups"
        try TestSupport.write("dump", to: b + "/db_schedgen_20240708_020000.sql.gz")
        try TestSupport.write("tar", to: b + "/minio_schedgen-pdfs_20240708_020000.tar.gz")
        try TestSupport.write("dump", to: b + "/db_schedgen_20240709_020000_2.sql.gz")
        try TestSupport.write("x", to: b + "/db_schedgen_2024070_020000.sql.gz")        // not a timestamp
        try TestSupport.write("x", to: b + "/db_schedgen_20241340_020000.sql.gz")       // no such date
        try TestSupport.write("x", to: b + "/db_schedgen_20240710_020000.sql.gz/inner")  // a folder
        try TestSupport.write("secret", to: dir + "/outside")
        XCTAssertEqual(symlink(dir + "/outside", b + "/db_schedgen_20240711_020000.sql.gz"), 0)
        let sets = layout().sets()
        XCTAssertEqual(sets.map(\.id), ["20240709_020000_2", "20240708_020000"])
        XCTAssertEqual(sets[1].files.map(\.target).sorted(), ["db", "minio"])
        // 02:00 in Berlin in July is 00:00 UTC.
        XCTAssertEqual(sets[1].date, Date(timeIntervalSince1970: 1_720_396_800))
        XCTAssertEqual(layout().facts(for: sets[1].files[0]), [:])
    }

    func testDanglingLinksOfOursGoOthersStay() throws {
        let b = dir + "/backups"
        try TestSupport.write("data", to: b + "/daily/20240708_020000/db/db_schedgen_20240708_020000.sql.gz")
        try TestSupport.write("keep", to: dir + "/outside")
        let links = [
            ("db_schedgen_20240708_020000.sql.gz", "daily/20240708_020000/db/db_schedgen_20240708_020000.sql.gz"),  // alive
            ("db_schedgen_20240701_020000.sql.gz", "daily/20240701_020000/db/db_schedgen_20240701_020000.sql.gz"),  // dangling: goes
            ("db_schedgen_20240601_020000.sql.gz", dir + "/gone"),                                                 // absolute: not ours
            ("db_schedgen_20240501_020000.sql.gz", "../outside-gone"),                                              // ..: not ours
            ("other-name", "daily/nothing"),                                                                          // not a seed name
        ]
        for (name, destination) in links { XCTAssertEqual(symlink(destination, b + "/" + name), 0) }
        try FlatLinks.removeDangling(root: b) { $0.hasPrefix("db_schedgen_") }
        let left = Set(FlatLinks.links(root: b) { _ in true }.map(\.name))
        XCTAssertEqual(left, ["db_schedgen_20240708_020000.sql.gz", "db_schedgen_20240601_020000.sql.gz",
                              "db_schedgen_20240501_020000.sql.gz", "other-name"])
        XCTAssertEqual(String(decoding: try TestSupport.read(dir + "/outside"), as: UTF8.self), "keep")
    }
}
