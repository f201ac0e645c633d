import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

/// The rsync snapshot target against real rsync and real files.
final class RsyncSnapshotTargetTests: XCTestCase {
    var dir = ""
    var src = ""
    override func setUpWithError() throws {
        dir = try TestSupport.scratch("rsync")
        src = dir + "/src"
        for i in 0..<12 { try TestSupport.writeRandom(1000 + i * 100, to: "\(src)/d\(i % 3)/f\(i).bin", seed: UInt64(i)) }
        try TestSupport.write("hello\n", to: src + "/top.txt")
        symlink("top.txt", src + "/link-to-top")
    }
    override func tearDown() { try? FileOps.removeTree(dir) }

    func engine(_ target: RsyncSnapshotTarget) -> BackupEngine { TestSupport.engine(dir + "/repo", [target]) }
    func target(_ extra: (inout RsyncSnapshotTarget) -> Void = { _ in }) -> RsyncSnapshotTarget {
        var t = RsyncSnapshotTarget(name: "media", source: src)
        extra(&t)
        return t
    }

    func inode(_ path: String) -> ino_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_ino : nil
    }

    func fact(_ record: TargetRecord, _ key: String) -> Int { Int(record.facts[key]?.numberValue ?? -1) }

    func entries(_ e: BackupEngine, _ setDirectory: String) throws -> [String: FileTreeEntry] {
        let set = try XCTUnwrap(e.repository.completeSets().first { $0.directory == setDirectory })
        let record = try XCTUnwrap(set.manifest?.record(for: "media"))
        var map: [String: FileTreeEntry] = [:]
        for entry in try RsyncSnapshotTarget.loadEntries(record, targetDirectory: setDirectory + "/media") { map[entry.path.display] = entry }
        return map
    }

    /// Every regular file and symlink under `root` with its SHA-256, by relative path.
    func hashes(_ root: String) throws -> [String: String] {
        var result: [String: String] = [:]
        try TreeWalk.walk(RawPath(root)) { rel, st in
            let type = st.st_mode & S_IFMT
            guard type == S_IFREG || type == S_IFLNK else { return }
            result[rel.display] = try FileTreeManifest.hash(RawPath(root).appending(rel), isLink: type == S_IFLNK)
        }
        return result
    }

    func testThreeSnapshotsShareInodesAndHashOnlyWhatChanged() throws {
        let e = engine(target())
        let s1 = try e.backup()
        XCTAssertTrue(s1.succeeded, "\(s1.targets)")
        let r1 = try XCTUnwrap(s1.targets.first)
        XCTAssertEqual(fact(r1, "files"), 13)
        XCTAssertEqual(fact(r1, "symlinks"), 1)
        XCTAssertEqual(fact(r1, "filesHashed"), 14, "the first snapshot hashes everything once")
        XCTAssertEqual(fact(r1, "filesTransferred"), 13)
        XCTAssertEqual(r1.facts["linkDest"], .null)
        XCTAssertEqual(fact(r1, "uniqueBytes"), fact(r1, "apparentBytes"), "nothing is shared yet")

        // Change two files (different sizes, so rsync's quick check sees it), add one, delete one.
        try TestSupport.writeRandom(5000, to: src + "/d0/f0.bin", seed: 100)
        try TestSupport.writeRandom(5001, to: src + "/d1/f1.bin", seed: 101)
        try TestSupport.writeRandom(777, to: src + "/d2/new.bin", seed: 102)
        unlink(src + "/d2/f2.bin")
        let s2 = try e.backup()
        XCTAssertTrue(s2.succeeded)
        let r2 = try XCTUnwrap(s2.targets.first)
        XCTAssertEqual(fact(r2, "filesHashed"), 3, "only the two changed files and the new one are hashed")
        XCTAssertEqual(fact(r2, "filesTransferred"), 3)
        XCTAssertEqual(fact(r2, "filesCarriedForward"), 11, "ten files and the symlink")
        XCTAssertEqual(fact(r2, "itemizedNotFound"), 0)
        XCTAssertEqual(r2.facts["linkDest"]?.stringValue, s1.directory! + "/media/tree", "link-dest is the absolute previous tree")
        XCTAssertEqual(fact(r2, "uniqueBytes"), 5000 + 5001 + 777, "unique bytes are the files with one link")

        try TestSupport.write("hello again\n", to: src + "/top.txt")
        let s3 = try e.backup()
        let r3 = try XCTUnwrap(s3.targets.first)
        XCTAssertEqual(fact(r3, "filesHashed"), 1)
        XCTAssertEqual(fact(r3, "filesTransferred"), 1)

        let t1 = s1.directory! + "/media/tree", t2 = s2.directory! + "/media/tree", t3 = s3.directory! + "/media/tree"
        XCTAssertEqual(inode(t1 + "/d0/f3.bin"), inode(t2 + "/d0/f3.bin"), "unchanged files share an inode")
        XCTAssertEqual(inode(t2 + "/d0/f3.bin"), inode(t3 + "/d0/f3.bin"))
        XCTAssertNotEqual(inode(t1 + "/d0/f0.bin"), inode(t2 + "/d0/f0.bin"), "changed files do not")
        XCTAssertNotEqual(inode(t2 + "/top.txt"), inode(t3 + "/top.txt"))
        XCTAssertFalse(FileOps.exists(t2 + "/d2/f2.bin"), "deleted files are gone from the new snapshot")
        XCTAssertTrue(FileOps.exists(t1 + "/d2/f2.bin"), "and kept in the old one")

        // Every manifest is complete and right: it lists every file of its snapshot with the right hash.
        for (set, tree) in [(s1, t1), (s2, t2), (s3, t3)] {
            let manifest = try entries(e, set.directory!)
            let actual = try hashes(tree)
            XCTAssertEqual(manifest.mapValues(\.sha256), actual, set.setID!)
            var st = stat()
            lstat(tree + "/d1/f4.bin", &st)
            XCTAssertEqual(manifest["d1/f4.bin"]?.size, Int64(st.st_size))
            XCTAssertEqual(manifest["d1/f4.bin"]?.mtimeSeconds, st.st_mtim.tv_sec)
            XCTAssertEqual(manifest["d1/f4.bin"]?.mode, UInt32(st.st_mode & 0o7777))
        }
        XCTAssertEqual(try hashes(t3), try hashes(src), "the newest snapshot is the source")

        // The link points at the newest snapshot; Backstop's own files are 0600 in 0700 folders.
        let link = e.repository.root + "/links/media/latest"
        XCTAssertEqual(URL(fileURLWithPath: link).resolvingSymlinksInPath().path, URL(fileURLWithPath: t3).resolvingSymlinksInPath().path)
        var st = stat()
        stat(s3.directory! + "/media/files.manifest", &st)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        stat(e.repository.root + "/links/media", &st)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertTrue(try e.verify(e.repository.completeSets(), deep: true).allSatisfy(\.ok))
        let (sumOutcome, _) = try ChildProcess("sha256sum", ["-c", "files.manifest.sha256"], workingDirectory: s3.directory! + "/media").capture()
        XCTAssertEqual(sumOutcome.status, 0, "the manifest's own sidecar passes sha256sum -c")
    }

    /// A same-size corruption in the snapshot passes the cheap size check, so restore re-hashes
    /// first: the damaged copy must never overwrite the good live file.
    func testRestoreRefusesASnapshotWithACorruptFile() throws {
        let e = engine(target())
        let s = try e.backup()
        XCTAssertTrue(s.succeeded)
        let live = src + "/d1/f7.bin"
        let good = try TestSupport.read(live)
        try TestSupport.flipByte(s.directory! + "/media/tree/d1/f7.bin", at: 10)
        XCTAssertNotEqual(try TestSupport.read(live), try TestSupport.read(s.directory! + "/media/tree/d1/f7.bin"))
        XCTAssertThrowsError(try e.restore(target: "media", id: "latest", options: RestoreOptions())) {
            XCTAssertTrue("\($0)".contains("failed verification") && "\($0)".contains("d1/f7.bin"), "\($0)")
        }
        XCTAssertEqual(try TestSupport.read(live), good, "the live file is untouched")
    }

    func testBitRotInAHardLinkedFileIsFoundInEverySnapshot() throws {
        let e = engine(target())
        var sets: [String] = []
        for i in 0..<3 {
            try TestSupport.write("round \(i)\n", to: src + "/changing.txt")
            let s = try e.backup()
            XCTAssertTrue(s.succeeded)
            sets.append(s.setID!)
        }
        // Flip one byte in place in the file all three snapshots share: same size, same mtime.
        let rotten = e.repository.root + "/daily/\(sets[2])/media/tree/d1/f7.bin"
        var before = stat()
        lstat(rotten, &before)
        XCTAssertEqual(before.st_nlink, 3, "one inode shared by three snapshots")
        let fd = open(rotten, O_RDWR)
        var byte: UInt8 = 0
        pread(fd, &byte, 1, 100)
        byte ^= 0x40
        pwrite(fd, &byte, 1, 100)
        var times = [before.st_atim, before.st_mtim]
        futimens(fd, &times)
        close(fd)
        var after = stat()
        lstat(rotten, &after)
        XCTAssertEqual(after.st_mtim.tv_sec, before.st_mtim.tv_sec)
        XCTAssertEqual(after.st_size, before.st_size)

        XCTAssertTrue(try e.verify(e.repository.completeSets()).allSatisfy(\.ok), "the cheap check cannot see same-size rot")
        let deep = try e.verify(e.repository.completeSets(), deep: true)
        XCTAssertEqual(deep.count, 3)
        for r in deep {
            XCTAssertFalse(r.ok, "snapshot \(r.id) holds the rotten file")
            let errors = r.findings.filter { $0.severity == .error }
            XCTAssertTrue(errors.contains { $0.message.contains("d1/f7.bin: content changed") }, "\(r.id): \(errors)")
            XCTAssertFalse(errors.contains { $0.message.contains("f3.bin") }, "only the rotten file is named")
        }
        XCTAssertEqual(Set(deep.map(\.id)), Set(sets), "every affected snapshot is named")
    }

    func testDeletingAMiddleSnapshotKeepsTheOthersAndTheLink() throws {
        let e = engine(target())
        var summaries: [RunSummary] = []
        for i in 0..<3 {
            try TestSupport.write("round \(i) " + String(repeating: "x", count: i), to: src + "/changing.txt")
            summaries.append(try e.backup())
        }
        _ = try e.remove(id: summaries[1].setID!, force: false, dryRun: false)
        XCTAssertFalse(FileOps.exists(summaries[1].directory!))
        let results = try e.verify(e.repository.completeSets(), deep: true)
        XCTAssertEqual(results.count, 2)
        XCTAssertTrue(results.allSatisfy(\.ok), "\(results.flatMap(\.findings))")
        let link = e.repository.root + "/links/media/latest"
        let newest = summaries[2].directory! + "/media/tree"
        XCTAssertEqual(URL(fileURLWithPath: link).resolvingSymlinksInPath().path, URL(fileURLWithPath: newest).resolvingSymlinksInPath().path)
        XCTAssertEqual(try String(contentsOfFile: link + "/changing.txt", encoding: .utf8), "round 2 xx")
        // The next snapshot links against the newest remaining one.
        let next = try e.backup()
        XCTAssertEqual(try XCTUnwrap(next.targets.first).facts["linkDest"]?.stringValue, newest)
        XCTAssertEqual(inode(newest + "/d0/f0.bin"), inode(next.directory! + "/media/tree/d0/f0.bin"))
        XCTAssertEqual(fact(try XCTUnwrap(next.targets.first), "filesHashed"), 0)
    }

    func testRestoreWholeTreeAndPathSubsetWithSafetyCopies() throws {
        try TestSupport.write("finder junk", to: src + "/.DS_Store")
        let e = engine(target())
        let backup = try e.backup()
        XCTAssertTrue(backup.succeeded)
        XCTAssertFalse(FileOps.exists(backup.directory! + "/media/tree/.DS_Store"), "default excludes")
        let original = try hashes(backup.directory! + "/media/tree")

        // The live tree drifts: a change, a new file, a deletion.
        try TestSupport.write("damaged\n", to: src + "/top.txt")
        try TestSupport.write("stray\n", to: src + "/d0/stray.txt")
        unlink(src + "/d1/f1.bin")
        let plan = try e.restore(target: "media", id: "latest", options: RestoreOptions(dryRun: true))
        XCTAssertTrue(plan.lines.contains("files to write: 2; files to delete: 1"), "\(plan.lines)")
        XCTAssertEqual(try String(contentsOfFile: src + "/top.txt", encoding: .utf8), "damaged\n", "a plan changes nothing")

        let report = try e.restore(target: "media", id: "latest", options: RestoreOptions(verifyAfter: true))
        var now = try hashes(src)
        XCTAssertEqual(now.removeValue(forKey: ".DS_Store"), try FileTreeManifest.hash(RawPath(src + "/.DS_Store"), isLink: false),
                       "excluded files are left alone by --delete")
        XCTAssertEqual(now, original, "the whole tree is back, the stray file removed")
        XCTAssertEqual(report.facts["files"], .number(14))
        XCTAssertTrue(report.lines.contains { $0.contains("sizes and SHA-256 of 14 file(s) match") }, "\(report.lines)")
        let safety = try XCTUnwrap(report.safetyCopy)
        XCTAssertTrue(safety.hasPrefix(e.repository.root + "/pre-restore/media-"))
        XCTAssertEqual(try String(contentsOfFile: safety + "/top.txt", encoding: .utf8), "damaged\n", "the safety copy holds what was there")
        XCTAssertTrue(FileOps.exists(safety + "/d0/stray.txt"))
        XCTAssertFalse(FileOps.exists(safety + "/d1/f1.bin"))

        // --path: only that part comes back; nothing else is touched or deleted.
        try TestSupport.write("damaged d0\n", to: src + "/d0/f0.bin")
        try TestSupport.write("changed d1\n", to: src + "/d1/f1.bin")
        try TestSupport.write("new in d0\n", to: src + "/d0/extra.txt")
        let part = try e.restore(target: "media", id: "latest", options: RestoreOptions(paths: ["d0/"]))
        XCTAssertEqual(try FileTreeManifest.hash(RawPath(src + "/d0/f0.bin"), isLink: false), original["d0/f0.bin"])
        XCTAssertEqual(try String(contentsOfFile: src + "/d1/f1.bin", encoding: .utf8), "changed d1\n", "outside --path: untouched")
        XCTAssertTrue(FileOps.exists(src + "/d0/extra.txt"), "no --delete with --path")
        XCTAssertEqual(part.facts["files"], .number(4))
        let partSafety = try XCTUnwrap(part.safetyCopy)
        XCTAssertEqual(try String(contentsOfFile: partSafety + "/d0/f0.bin", encoding: .utf8), "damaged d0\n")
        XCTAssertFalse(FileOps.exists(partSafety + "/d1"), "the safety copy covers the restored part")

        // Into an empty place: no safety copy needed; owner and group can be set.
        let out = dir + "/out"
        let freshPlan = try e.restore(target: "media", id: "latest", options: RestoreOptions(destination: out, dryRun: true))
        XCTAssertTrue(freshPlan.lines.contains("  write  d2/f5.bin"), "\(freshPlan.lines)")
        XCTAssertFalse(FileOps.exists(out), "a plan creates nothing")
        let fresh = try e.restore(target: "media", id: "latest", options: RestoreOptions(destination: out, owner: "65534", group: "65534"))
        XCTAssertNil(fresh.safetyCopy)
        XCTAssertEqual(try hashes(out), original)
        if getuid() == 0 {
            var st = stat()
            lstat(out + "/d2/f5.bin", &st)
            XCTAssertEqual(st.st_uid, 65534)
            XCTAssertEqual(st.st_gid, 65534)
        }
        XCTAssertThrowsError(try e.restore(target: "media", id: "latest", options: RestoreOptions(paths: ["../etc"])))
        XCTAssertThrowsError(try e.restore(target: "media", id: "latest", options: RestoreOptions(paths: ["nope"])))
    }

    /// Names with spaces, newlines, tabs, leading dashes, backslashes and invalid UTF-8.
    func testOddFileNamesSurviveTheRoundTrip() throws {
        let odd = RawPath(dir + "/odd")
        try FileOps.makeDirectory(odd.display)
        let names: [[UInt8]] = [
            Array("with space.txt".utf8), Array("new\nline.txt".utf8), Array("-leading-dash".utf8), Array("--delete".utf8),
            Array("caf".utf8) + [0xE9] + Array(".txt".utf8), [0xFF, 0xFE, 0x41], Array("tab\there".utf8),
            Array("back\\#123slash".utf8), Array("ünïcödé ✓".utf8), Array("pipe|name".utf8), Array("100%25".utf8),
        ]
        func writeAll(_ suffix: String) {
            for (i, name) in names.enumerated() {
                let fd = odd.appending(name).withCString { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
                XCTAssertGreaterThanOrEqual(fd, 0)
                _ = "content \(i)\(suffix)".withCString { write(fd, $0, strlen($0)) }
                close(fd)
            }
        }
        writeAll("")
        let e = engine(RsyncSnapshotTarget(name: "media", source: odd.display))
        let first = try e.backup()
        XCTAssertEqual(fact(try XCTUnwrap(first.targets.first), "files"), names.count)
        XCTAssertEqual(fact(try XCTUnwrap(first.targets.first), "itemizedNotFound"), 0, "every name rsync printed was decoded back to its bytes")
        writeAll(" changed")
        let second = try e.backup()
        XCTAssertEqual(fact(try XCTUnwrap(second.targets.first), "filesTransferred"), names.count)
        XCTAssertEqual(fact(try XCTUnwrap(second.targets.first), "itemizedNotFound"), 0)
        XCTAssertTrue(try e.verify(e.repository.completeSets(), deep: true).allSatisfy(\.ok))
        let manifest = try entries(e, second.directory!)
        XCTAssertEqual(Set(manifest.values.map(\.path.bytes)), Set(names))

        let out = RawPath(dir + "/odd-out")
        _ = try e.restore(target: "media", id: "latest", options: RestoreOptions(destination: out.display))
        XCTAssertEqual(out.children(), odd.children())
        for (i, name) in names.enumerated() {
            XCTAssertEqual(TestSupport.readStart(out.appending(name)), "content \(i) changed", RawPath(bytes: name).display)
        }
    }

    /// A file that vanishes while rsync runs makes rsync exit 24: a warning, not a failure.
    func testVanishedFileIsAWarning() throws {
        try TestSupport.writeRandom(1_500_000, to: src + "/a-big.bin", seed: 9)
        try TestSupport.write("soon gone\n", to: src + "/zz-vanishing.txt")
        let e = engine(target { $0 = RsyncSnapshotTarget(name: "media", source: $0.source, bandwidthLimit: 1000) })
        let daily = e.repository.root + "/daily"
        let deleter = Thread { [src] in
            // Once rsync is writing the big file (its temporary file exists), delete a later one.
            _ = TestSupport.waitFor(30) {
                let staging = ((try? FileManager.default.contentsOfDirectory(atPath: daily)) ?? []).first { $0.hasSuffix(".partial") }
                guard let staging else { return false }
                let names = (try? FileManager.default.contentsOfDirectory(atPath: daily + "/" + staging + "/media/tree")) ?? []
                return names.contains { $0.hasPrefix(".a-big.bin.") }
            }
            unlink(src + "/zz-vanishing.txt")
        }
        deleter.start()
        let summary = try e.backup()
        let record = try XCTUnwrap(summary.targets.first)
        XCTAssertEqual(record.status, .ok, record.error ?? "")
        XCTAssertEqual(fact(record, "rsyncExit"), 24)
        XCTAssertTrue(record.warnings.contains { $0.hasPrefix("rsync exit 24") }, "\(record.warnings)")
        let stored = try XCTUnwrap(e.repository.completeSets().first?.manifest?.record(for: "media"))
        XCTAssertEqual(stored.warnings, record.warnings, "the warning is in the manifest")
        XCTAssertNil(try entries(e, summary.directory!)["zz-vanishing.txt"])
        XCTAssertEqual(try e.verify(e.repository.completeSets(), deep: true).map(\.ok), [true])
    }

    /// Any other rsync failure (here rsync is killed mid-copy) fails the target and leaves no
    /// snapshot and no link.
    func testOtherRsyncFailuresFailTheTargetAndLeaveNoSnapshot() throws {
        try TestSupport.writeRandom(1_500_000, to: src + "/a-big.bin", seed: 9)
        let e = engine(target { $0 = RsyncSnapshotTarget(name: "media", source: $0.source, bandwidthLimit: 1000) })
        let daily = e.repository.root + "/daily"
        let killer = Thread {
            _ = TestSupport.waitFor(30) {
                let staging = ((try? FileManager.default.contentsOfDirectory(atPath: daily)) ?? []).first { $0.hasSuffix(".partial") }
                guard let staging else { return false }
                let names = (try? FileManager.default.contentsOfDirectory(atPath: daily + "/" + staging + "/media/tree")) ?? []
                return names.contains { $0.hasPrefix(".a-big.bin.") }
            }
            // The oldest rsync whose command line names this test's folder is the one Backstop started.
            if let (_, pid) = try? ChildProcess("pgrep", ["-o", "-f", "rsync.*\(daily)/"]).capture(), let n = Int32(pid.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(n, SIGKILL)
            }
        }
        killer.start()
        let summary = try e.backup()
        XCTAssertFalse(summary.succeeded)
        // Said as administrators know it, not as a shell's 128+9.
        XCTAssertTrue(try XCTUnwrap(summary.targets.first).error?.contains("rsync failed (killed by SIGKILL)") ?? false, summary.targets.first?.error ?? "")
        XCTAssertFalse(summary.targets.first?.error?.contains("137") ?? true, summary.targets.first?.error ?? "")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: daily), [], "no snapshot is left")
        XCTAssertFalse(FileOps.exists(e.repository.root + "/links/media/latest"))
    }

    func testConfigErrorsNameTheKey() throws {
        try TestSupport.write("", to: dir + "/b.env")
        let cases: [([String: String], String)] = [
            (["TARGET_MEDIA_KIND": "rsync"], "config: missing required key TARGET_MEDIA_SOURCE"),
            (["TARGET_MEDIA_KIND": "rsync", "TARGET_MEDIA_SOURCE": "src", "TARGET_MEDIA_BWLIMIT": "fast"], "invalid value for TARGET_MEDIA_BWLIMIT"),
            (["TARGET_MEDIA_KIND": "rsync", "TARGET_MEDIA_SOURCE": "src", "TARGET_MEDIA_LINK": "a/b"], "invalid value for TARGET_MEDIA_LINK"),
            (["TARGET_MEDIA_KIND": "rsync", "TARGET_MEDIA_SOURCE": "src", "TARGET_MEDIA_HARD_LINKS": "maybe"], "invalid value for TARGET_MEDIA_HARD_LINKS"),
            (["TARGET_MEDIA_KIND": "rsync", "TARGET_MEDIA_SOURCE": "src", "TARGET_MEDIA_RESTORE_OWNER": "www data"], "invalid value for TARGET_MEDIA_RESTORE_OWNER"),
            (["TARGET_MEDIA_KIND": "rsync", "TARGET_MEDIA_SOURCE": "src", "TARGET_MEDIA_EXCLUDES": "*.log"], "unknown key TARGET_MEDIA_EXCLUDES"),
        ]
        for (values, expected) in cases {
            let config = Config(file: dir + "/b.env", values: values.merging(["TARGETS": "media"]) { a, _ in a })
            XCTAssertThrowsError(try TargetRegistry.buildAll(config: config)) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
                XCTAssertTrue("\(error)".contains(self.dir + "/b.env"))
                XCTAssertEqual("\(error)".split(separator: "\n").count, 1)
            }
        }
        let ok = Config(file: dir + "/b.env", values: ["TARGETS": "media", "TARGET_MEDIA_KIND": "rsync", "TARGET_MEDIA_SOURCE": "src",
                                                     "TARGET_MEDIA_LINK": "last", "TARGET_MEDIA_EXCLUDE": "*.log cache",
                                                     "TARGET_MEDIA_DEFAULT_EXCLUDES": "false", "TARGET_MEDIA_RESTORE_CHMOD": "D755,F644"])
        let built = try XCTUnwrap(try TargetRegistry.buildAll(config: ok).first as? RsyncSnapshotTarget)
        XCTAssertEqual(built.source, dir + "/src")
        XCTAssertEqual(built.linkName, "last")
        XCTAssertEqual(built.excludes, ["*.log", "cache"])
    }
}


/// The built `backstop` killed while rsync copies: nothing looks complete, the link still
/// points at the previous good snapshot, and the next run succeeds.
final class RsyncKillTests: XCTestCase {
    func testKilledSnapshotLeavesTheLinkOnThePreviousOne() throws {
        let dir = try TestSupport.scratch("rsync-kill")
        defer { try? FileOps.removeTree(dir) }
        for i in 0..<5 { try TestSupport.writeRandom(2000, to: "\(dir)/src/f\(i).bin", seed: UInt64(i)) }
        let config = dir + "/b.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=media
        TARGET_MEDIA_KIND=rsync
        TARGET_MEDIA_SOURCE=src
        TARGET_MEDIA_LINK=last
        TARGET_MEDIA_BWLIMIT=2000
        """, to: config)
        func backstop(_ args: [String]) throws -> TestSupport.Run { try TestSupport.run("backstop", args + ["--config", config]) }
        func completeSets() throws -> [String] {
            let rows = try JSONSerialization.jsonObject(with: Data(try backstop(["list", "--json"]).stdout.utf8)) as? [[String: Any]] ?? []
            return rows.filter { $0["status"] as? String == "complete" }.compactMap { $0["id"] as? String }
        }
        let link = dir + "/backups/links/media/last"
        func linkTarget() -> String { URL(fileURLWithPath: link).resolvingSymlinksInPath().path }

        let first = try backstop(["backup"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let firstID = try XCTUnwrap(try completeSets().first)
        let firstTree = URL(fileURLWithPath: "\(dir)/backups/daily/\(firstID)/media/tree").resolvingSymlinksInPath().path
        XCTAssertEqual(linkTarget(), firstTree)

        try TestSupport.writeRandom(3_000_000, to: dir + "/src/big.bin", seed: 99)
        let daily = dir + "/backups/daily"
        for signal in [SIGTERM, SIGKILL] {
            let p = try TestSupport.start("backstop", ["backup", "--config", config])
            let copying = TestSupport.waitFor(30) {
                let staging = ((try? FileManager.default.contentsOfDirectory(atPath: daily)) ?? []).first { $0.hasSuffix(".partial") }
                guard let staging else { return false }
                let names = (try? FileManager.default.contentsOfDirectory(atPath: daily + "/" + staging + "/media/tree")) ?? []
                return names.contains { $0.hasPrefix(".big.bin.") }
            }
            XCTAssertTrue(copying, "rsync started copying")
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            if signal == SIGKILL {
                // The orphaned rsync dies on its broken output pipe; wait for it before going on.
                XCTAssertTrue(TestSupport.waitFor(30) { (try? ChildProcess("pgrep", ["-f", "rsync.*\(daily)/"]).run().status) == 1 })
            } else {
                XCTAssertEqual(p.terminationStatus, 143)
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: daily), [firstID], "SIGTERM removes the partial snapshot")
            }
            XCTAssertEqual(try completeSets(), [firstID], "no new snapshot looks complete")
            XCTAssertEqual(linkTarget(), firstTree, "the link still points at the previous good snapshot")
        }
        let next = try backstop(["backup"])
        XCTAssertEqual(next.status, 0, next.stderr)
        let sets = try completeSets()
        XCTAssertEqual(sets.count, 2)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: daily).sorted(), sets.sorted(), "the killed run's leftovers are gone")
        let newestSet = try XCTUnwrap(sets.first)
        XCTAssertEqual(linkTarget(), URL(fileURLWithPath: "\(daily)/\(newestSet)/media/tree").resolvingSymlinksInPath().path)
        let verify = try backstop(["verify", "--all", "--deep"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        XCTAssertTrue(verify.stdout.contains("unique to this snapshot now"), verify.stdout)
    }
}
