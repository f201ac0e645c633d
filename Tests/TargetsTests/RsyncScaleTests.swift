import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

/// Issue 20: sorted, streamed per-file manifests and sizes from records, against real rsync.
final class RsyncScaleTests: XCTestCase {
    var dir = ""
    var src = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("rsync-scale")
        src = dir + "/src"
        for i in 0..<12 { try TestSupport.writeRandom(1000 + i * 100, to: "\(src)/d\(i % 3)/f\(i).bin", seed: UInt64(i)) }
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func engine() -> BackupEngine { TestSupport.engine(dir + "/repo", [RsyncSnapshotTarget(name: "media", source: src)]) }
    func fact(_ record: TargetRecord, _ key: String) -> Int { Int(record.facts[key]?.numberValue ?? -1) }
    func write(_ name: [UInt8], _ text: String) {
        let fd = RawPath(src).appending(name).withCString { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }
    func manifestPaths(_ file: String) throws -> [[UInt8]] {
        var paths: [[UInt8]] = []
        try FileTreeManifest.Reader(path: file).forEach { paths.append($0.path.bytes) }
        return paths
    }

    /// `a-b` sorts before `a/x` by bytes ('-' is 0x2D, '/' is 0x2F), though a walk that lists
    /// folder `a` before file `a-b` would write them the other way round.
    func testManifestIsSortedByRawPathBytesAndTheOldParserReadsIt() throws {
        try FileOps.makeDirectory(src + "/a")
        for name: [UInt8] in [Array("a-b".utf8), Array("a/x".utf8), Array("a.c".utf8), Array("a/ y".utf8), [0xFF, 0x41], Array("a0".utf8), Array("100%".utf8)] {
            write(name, "content of \(name)")
        }
        let e = engine()
        let s1 = try e.backup()
        XCTAssertTrue(s1.succeeded, "\(s1.targets)")
        let record = try XCTUnwrap(s1.targets.first)
        XCTAssertEqual(record.facts["manifestOrder"]?.stringValue, "path-bytes")
        let file = s1.directory! + "/media/files.manifest"
        let paths = try manifestPaths(file)
        XCTAssertEqual(paths.count, 19)
        XCTAssertEqual(paths, paths.sorted { $0.lexicographicallyPrecedes($1) }, "sorted by raw bytes")
        let ab = try XCTUnwrap(paths.firstIndex(of: Array("a-b".utf8))), ax = try XCTUnwrap(paths.firstIndex(of: Array("a/x".utf8)))
        XCTAssertLessThan(ab, ax)
        // The whole-file parser (the reader of earlier versions, same header and line format) reads it too.
        let parsed = try FileTreeManifest.parse(try Data(contentsOf: URL(fileURLWithPath: file)))
        XCTAssertEqual(parsed.map(\.path.bytes), paths)
        XCTAssertEqual(try RsyncSnapshotTarget.loadEntries(record, targetDirectory: s1.directory! + "/media"), parsed)
    }

    /// A snapshot written before manifests were sorted (walk order, no `manifestOrder` fact) is
    /// still the base of the next one: its hashes are carried, nothing is re-hashed needlessly.
    func testWalkOrderedManifestOfAnOlderSnapshotStillCarriesHashes() throws {
        try FileOps.makeDirectory(src + "/a")
        write(Array("a-b".utf8), "one")
        write(Array("a/x".utf8), "two")
        let e = engine()
        let s1 = try e.backup()
        let set1 = try XCTUnwrap(e.repository.completeSets().first)
        var manifest = try XCTUnwrap(set1.manifest)
        // Rewrite it as an older version did: unsorted lines, no order fact.
        let file = set1.directory + "/media/files.manifest"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        var lines = text.split(separator: "\n").map(String.init)
        let header = lines.removeFirst()
        let old = ([header] + lines.reversed()).joined(separator: "\n") + "\n"
        XCTAssertNotEqual(old, text)
        try old.write(toFile: file, atomically: true, encoding: .utf8)
        let newSHA = try sha256OfFile(file).hex
        let sidecar = try String(contentsOfFile: file + ".sha256", encoding: .utf8)
        try sidecar.replacingOccurrences(of: manifest.targets[0].artifacts[0].sha256, with: newSHA).write(toFile: file + ".sha256", atomically: true, encoding: .utf8)
        manifest.targets[0].artifacts[0].sha256 = newSHA
        manifest.targets[0].artifacts[0].bytes = FileOps.size(file)!
        manifest.targets[0].facts["manifestOrder"] = nil
        try e.repository.writeManifest(manifest, in: set1.directory)
        let v1 = try e.verify(e.repository.completeSets(), deep: true)
        XCTAssertTrue(v1.allSatisfy(\.ok), "an unsorted manifest verifies deep: \(v1.flatMap(\.findings))")

        try TestSupport.writeRandom(4321, to: src + "/d0/f0.bin", seed: 99)
        let s2 = try e.backup()
        let r2 = try XCTUnwrap(s2.targets.first)
        XCTAssertTrue(s2.succeeded, "\(s2.targets)")
        XCTAssertEqual(fact(r2, "filesHashed"), 1, "only the changed file is hashed")
        XCTAssertEqual(fact(r2, "filesCarriedForward"), 13)
        XCTAssertEqual(r2.warnings, [])
        XCTAssertTrue(try e.verify(e.repository.completeSets(), deep: true).allSatisfy(\.ok))
        _ = s1
    }

    /// A manifest whose lines are out of order although its record says they are sorted is not
    /// trusted for the merge: the backup warns and hashes the rest, the manifest stays right.
    func testOutOfOrderSortedManifestIsNotTrusted() throws {
        let e = engine()
        _ = try e.backup()
        let set1 = try XCTUnwrap(e.repository.completeSets().first)
        var manifest = try XCTUnwrap(set1.manifest)
        let file = set1.directory + "/media/files.manifest"
        var lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init)
        lines.swapAt(1, lines.count - 1)
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        manifest.targets[0].artifacts[0].sha256 = try sha256OfFile(file).hex
        try e.repository.writeManifest(manifest, in: set1.directory)
        let s2 = try e.backup()
        let r2 = try XCTUnwrap(s2.targets.first)
        XCTAssertTrue(r2.warnings.contains { $0.contains("out of order") }, "\(r2.warnings)")
        XCTAssertEqual(r2.facts["previousDroppedBytes"], .null, "what the predecessor left behind is unknown")
        let deep = try e.verify([try XCTUnwrap(e.repository.completeSets().first)], deep: true)
        XCTAssertTrue(deep.allSatisfy(\.ok), "\(deep.flatMap(\.findings))")
    }

    /// Deep verify finds a missing, an extra and a changed file by merging the walk with the manifest.
    func testDeepVerifyFindsMissingExtraAndChangedFiles() throws {
        let e = engine()
        let s1 = try e.backup()
        let tree = s1.directory! + "/media/tree"
        unlink(tree + "/d1/f4.bin")
        try TestSupport.write("extra\n", to: tree + "/d1/f4.bin-extra")
        let f0 = tree + "/d0/f0.bin"
        let size = FileOps.size(f0)!
        try TestSupport.writeRandom(Int(size), to: f0, seed: 7777)
        let results = try e.verify(e.repository.completeSets(), deep: true)
        let text = results.flatMap(\.findings).map(\.message).joined(separator: "\n")
        XCTAssertTrue(text.contains("d1/f4.bin: missing"), text)
        XCTAssertTrue(text.contains("d1/f4.bin-extra: extra file"), text)
        XCTAssertTrue(text.contains("d0/f0.bin: content changed"), text)
        XCTAssertTrue(text.contains("1 missing, 1 changed, 1 extra of 12 files"), text)
        let shallow = try e.verify(e.repository.completeSets(), deep: false).flatMap(\.findings).map(\.message).joined(separator: "\n")
        XCTAssertTrue(shallow.contains("1 missing, 0 changed, 0 extra of 12 files"), shallow)
    }

    /// What removing sets frees, from the records, equals what a walk counting hard links says:
    /// each set alone, the oldest ones together, the newest, all sets' total, and after a set
    /// in the middle is removed (a gap: those trees are walked).
    func testRecordedSizesMatchTheWalk() throws {
        let e = engine()
        var dirs: [String] = []
        for round in 0..<5 {
            if round > 0 {
                try TestSupport.writeRandom(3000 + round, to: "\(src)/d\(round % 3)/f\(round).bin", seed: UInt64(100 + round))
                try TestSupport.writeRandom(500 * round, to: "\(src)/new\(round).bin", seed: UInt64(200 + round))
                unlink("\(src)/new\(round - 1).bin")
                if round == 3 { unlink(src + "/d2/f11.bin") }
            }
            let s = try e.backup()
            XCTAssertTrue(s.succeeded, "\(s.targets)")
            dirs.append(s.directory!)
        }
        let r2 = try XCTUnwrap(e.repository.completeSets().first { $0.directory == dirs[2] }?.manifest?.targets.first)
        XCTAssertEqual(r2.facts["previousSet"]?.stringValue, "daily/" + (dirs[1] as NSString).lastPathComponent)
        XCTAssertEqual(fact(r2, "sharedBytes"), fact(r2, "apparentBytes") - 3002 - 1000, "all but the rewritten and the new file")
        XCTAssertEqual(fact(r2, "previousDroppedBytes"), 1200 + 500, "d2/f2.bin (1200 bytes) rewritten, new1.bin (500) deleted")
        XCTAssertEqual(fact(r2, "previousAloneBytes"), 500, "only set 1 held new1.bin; set 0 shares its d2/f2.bin")
        XCTAssertNotEqual(fact(r2, "previousDroppedBytes"), fact(r2, "previousAloneBytes"))

        func check(_ label: String) {
            let complete = e.repository.completeSets()
            let present = complete.map(\.directory)
            var sizes = SetSizes(sets: complete)
            var groups = present.map { [$0] }
            let oldestFirst = Array(present.reversed())
            groups += (2...oldestFirst.count).map { Array(oldestFirst.prefix($0)) }
            for group in groups {
                XCTAssertEqual(sizes.freed(Set(group)), FileOps.freedSize(group), "\(label): removing \(group.map { ($0 as NSString).lastPathComponent })")
            }
            XCTAssertEqual(sizes.total(), FileOps.diskUsage(present), "\(label): total")
        }
        var sizes = SetSizes(sets: e.repository.completeSets())
        _ = sizes.total()
        _ = sizes.freed([dirs[2]])
        XCTAssertFalse(sizes.walkedTrees, "an unbroken chain is answered from the records")
        check("five snapshots")
        _ = try e.remove(id: (dirs[2] as NSString).lastPathComponent, force: false, dryRun: false)
        check("after removing the middle one")
        _ = try e.remove(id: (dirs[0] as NSString).lastPathComponent, force: false, dryRun: false)
        check("after removing the oldest")
    }

    /// `prune` reports what each removal frees, oldest first, from the records; the sum is what
    /// removing them all frees (checked against a walk before they are removed).
    func testPruneSizesSumToWhatRemovingTheSetsFrees() throws {
        let e = engine()
        for round in 0..<5 {
            try TestSupport.writeRandom(2000 + round, to: "\(src)/d\(round % 3)/f\(round).bin", seed: UInt64(300 + round))
            try TestSupport.writeRandom(700, to: "\(src)/only\(round).bin", seed: UInt64(400 + round))
            if round > 0 { unlink("\(src)/only\(round - 1).bin") }
            XCTAssertTrue(try e.backup().succeeded)
        }
        let policy = RetentionPolicy(limits: ["daily": .init(count: 2)])
        let decisions = e.pruneDecisions(policy)
        let removed = decisions.filter(\.remove)
        XCTAssertEqual(removed.count, 3)
        let dirs = e.repository.completeSets().filter { s in removed.contains { $0.id == s.id } }.map(\.directory)
        let walked = FileOps.freedSize(dirs)
        XCTAssertGreaterThan(walked, 0)
        XCTAssertEqual(removed.reduce(0) { $0 + $1.bytes }, walked)
        XCTAssertTrue(removed.allSatisfy { $0.bytes > 0 }, "\(removed.map(\.bytes))")
    }
}
