import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

/// Hostile archives (built with Python's tarfile), each restored as root into a destination
/// with sentinel trees beside and around it: nothing outside the destination may change, and a
/// failed restore must leave the destination exactly as it was (`HostileWorld.restore` checks
/// both every time).
final class HostileArchiveTests: XCTestCase {
    var dir = ""
    var world: HostileWorld!

    override func setUpWithError() throws {
        dir = try TestSupport.scratch("hostile")
        world = HostileWorld(dir)
        try world.reset()
        unsetenv("BACKSTOP_FAULT")
    }

    override func tearDown() {
        unsetenv("BACKSTOP_FAULT")
        try? FileOps.removeTree(dir)
    }

    private func assertRefused(_ entries: [CraftedEntry], _ expected: [String], format: String = "pax",
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try world.restore(try world.craft(entries, format: format), file: file, line: line)
        guard let error = result.failure else { return XCTFail("restored a hostile archive", file: file, line: line) }
        for text in expected {
            XCTAssertTrue("\(error)".contains(text), "\(error) lacks \(text)", file: file, line: line)
        }
    }

    func testDotDotAndAbsoluteNamesAreRefused() throws {
        try assertRefused([.file("ok.txt"), .file("../escaped.txt"), .file("sub/../../escaped2.txt"), .file(world.outside + "/abs.txt")],
                          ["would write outside", "'../escaped.txt'", "'sub/../../escaped2.txt'", "abs.txt"])
        XCTAssertFalse(FileOps.exists(world.dest + "/ok.txt"), "not even the safe entry is written")
    }

    /// The acceptance run's case (issue 9, item 1): a symlink to a folder outside, a folder
    /// through it, then an entry that fails (a symlink target longer than PATH_MAX). The old
    /// rollback chmod-ed and deleted /elsewhere/victimdir through the link.
    func testSymlinkThenEntriesThroughItAreRefusedAndNothingOutsideIsTouched() throws {
        let long = String(repeating: "x", count: 5000)
        try assertRefused([.symlink("lnk", to: world.outside), .dir("lnk/victimdir", mode: 0o700), .file("lnk/victimdir/new.txt"),
                           .symlink("toolong", to: long)],
                          ["goes through the symbolic link 'lnk' of the same archive", "longer than the system allows"])
        XCTAssertTrue(FileOps.exists(world.outside + "/victimdir/file.txt"))
        XCTAssertFalse(FileOps.exists(world.dest + "/lnk"))
        // The failing entry before the ones through the link: the old rollback removed
        // `lnk/victimdir` by name, through the link, outside the destination.
        try assertRefused([.symlink("lnk", to: world.outside), .symlink("toolong", to: long), .dir("lnk/victimdir", mode: 0o700),
                           .file("lnk/victimdir/new.txt")],
                          ["goes through the symbolic link 'lnk' of the same archive"])
        XCTAssertTrue(FileOps.exists(world.outside + "/victimdir/file.txt"))
    }

    /// Issue 9, item 11: a symlink with an entry below it was silently turned into a folder
    /// (and the restore said it succeeded). Now the archive is refused and the link stays a link
    /// when restored on its own.
    func testSymlinkIsNotTurnedIntoAFolder() throws {
        try assertRefused([.dir("real"), .symlink("l", to: "real"), .file("l/x")],
                          ["entry 'l/x' goes through the symbolic link 'l' of the same archive"])
        XCTAssertFalse(FileOps.exists(world.dest + "/l"))
        _ = try world.restore(try world.craft([.dir("real"), .symlink("l", to: "real"), .file("real/x")])).get()
        var st = stat()
        XCTAssertEqual(lstat(world.dest + "/l", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFLNK)
    }

    /// The same escape through a relative link, with the entry before the link.
    func testEntryThroughALaterRelativeSymlinkIsRefused() throws {
        try assertRefused([.file("up/secret.txt", "overwritten"), .symlink("up", to: "../outside")],
                          ["entry 'up/secret.txt' goes through the symbolic link 'up'"])
    }

    /// A symlink already in the destination (made by an earlier restore, or by hand) is never
    /// followed either: the restore stops before writing anything.
    func testSymlinkAlreadyInTheDestinationIsNotFollowed() throws {
        symlink("../outside", world.dest + "/prelink")
        let result = try world.restore(try world.craft([.file("new.txt"), .dir("prelink/victimdir"), .file("prelink/victimdir/file.txt", "evil")]))
        XCTAssertTrue("\(result.failure.map { "\($0)" } ?? "restored")".contains("symbolic link is in the way"), "\(result)")
        XCTAssertFalse(FileOps.exists(world.dest + "/new.txt"))
        // The destination itself being a link is refused too, naming where it points.
        symlink(world.dest, world.world + "/dest-link")
        let target = ArchiveTarget(name: "t", paths: [world.dest], base: world.dest)
        let (record, set) = try world.record(for: try world.craft([.file("x")]), target: target)
        let context = RestoreContext(setDirectory: set, setID: "hostile", safetyDirectory: dir + "/safety",
                                     options: RestoreOptions(destination: world.world + "/dest-link"),
                                     logger: TestSupport.logger().0, showProgress: false)
        XCTAssertThrowsError(try target.restore(record, context: context)) { error in
            XCTAssertTrue("\(error)".contains("is a symbolic link to \(self.world.dest)"), "\(error)")
        }
        XCTAssertFalse(FileOps.exists(world.dest + "/x"))
    }

    /// Symlinks are restored as symlinks (issue 9, item 11: they became folders when a later
    /// entry went through them; now such an archive is refused, and a plain one keeps links).
    func testSymlinksAreRestoredAsLinksAndNeverFollowed() throws {
        let result = try world.restore(try world.craft([.dir("d"), .file("d/f", "content"), .symlink("d/rel", to: "f"),
                                                       .symlink("abs", to: world.outside + "/secret.txt"),
                                                       .symlink("link-to-keep", to: world.outside)]))
        XCTAssertNil(result.failure)
        var buf = [CChar](repeating: 0, count: 512)
        XCTAssertEqual(readlink(world.dest + "/d/rel", &buf, 511), 1)
        let n = readlink(world.dest + "/abs", &buf, 511)
        XCTAssertEqual(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self), world.outside + "/secret.txt")
        let m = readlink(world.dest + "/link-to-keep", &buf, 511)
        XCTAssertEqual(String(decoding: buf[0..<m].map { UInt8(bitPattern: $0) }, as: UTF8.self), world.outside,
                       "an existing link is replaced by the archive's link, not followed")
    }

    func testHardLinksOutsideOrToNonFilesAreRefused() throws {
        try assertRefused([.file("f"), .hardlink("h1", to: "../outside/secret.txt")], ["hard link 'h1' points outside"])
        try assertRefused([.hardlink("h2", to: world.outside + "/secret.txt")], ["hard link 'h2' points outside"])
        try assertRefused([.dir("d"), .hardlink("h3", to: "d")], ["hard link 'h3' points to 'd', which is not a regular file"])
        try assertRefused([.hardlink("h4", to: "keep.txt")], ["hard link 'h4' points to 'keep.txt', which is not a regular file earlier in this archive"])
        // A hard link to a file of the archive is fine.
        let ok = try world.restore(try world.craft([.file("f", "shared"), .hardlink("h", to: "f")]))
        XCTAssertNil(ok.failure)
        var a = stat(), b = stat()
        lstat(world.dest + "/f", &a)
        lstat(world.dest + "/h", &b)
        XCTAssertEqual(a.st_ino, b.st_ino)
    }

    func testTooLongSymlinkTargetIsRefused() throws {
        try assertRefused([.file("a.txt"), .symlink("long", to: String(repeating: "a/", count: 2100))],
                          ["symbolic link 'long' has a target of 4200 bytes"])
    }

    /// Issue 9, item 3: a block device with mode 0666 was created by a root restore.
    func testDeviceNodesFIFOsAreRefusedAndListed() throws {
        try assertRefused([.file("ok"), .special("disk", "blk"), .special("tty", "chr"), .special("pipe", "fifo")],
                          ["'disk' is a block device", "'tty' is a character device", "'pipe' is a FIFO"])
        XCTAssertFalse(FileOps.exists(world.dest + "/disk"))
    }

    func testSetuidAndSetgidBitsAreRemovedUnlessAsked() throws {
        let entries: [CraftedEntry] = [.file("bin/su", "#!/bin/sh\n", mode: 0o4755), .file("bin/sg", "#!/bin/sh\n", mode: 0o2755),
                                       .dir("shared", mode: 0o2775)]
        let report = try world.restore(try world.craft(entries)).get()
        var st = stat()
        lstat(world.dest + "/bin/su", &st)
        XCTAssertEqual(st.st_mode & 0o7777, 0o755)
        lstat(world.dest + "/bin/sg", &st)
        XCTAssertEqual(st.st_mode & 0o7777, 0o755)
        lstat(world.dest + "/shared", &st)
        XCTAssertEqual(st.st_mode & 0o7777, 0o2775, "a set-group-ID folder (group inheritance) is kept")
        XCTAssertTrue(report.lines.contains { $0.contains("set-user-ID/set-group-ID bits removed from 2 file(s)") && $0.contains("bin/su") }, "\(report.lines)")
        _ = try world.restore(try world.craft(entries), options: RestoreOptions(keepSetuid: true)).get()
        lstat(world.dest + "/bin/su", &st)
        XCTAssertEqual(st.st_mode & 0o7777, 0o4755, "--keep-setuid keeps them")
    }

    /// Issue 9, item 2: `cafe` + U+0301 (NFD, macOS uploads) and `café` (NFC) are two files.
    /// Python's tarfile writes UTF-8 pax names, as Backstop's previous version did.
    func testNFCAndNFDNamesStayTwoFiles() throws {
        let nfc = Array("caf\u{E9}.txt".utf8), nfd = Array("cafe\u{301}.txt".utf8)
        XCTAssertNotEqual(nfc, nfd)
        for format in ["pax", "gnu"] {
            try world.reset()
            let report = try world.restore(try world.craft([CraftedEntry(name: nfc, data: Array("nfc".utf8)),
                                                            CraftedEntry(name: nfd, data: Array("nfd".utf8)),
                                                            CraftedEntry(name: Array("dir-\u{E9}/".utf8), type: "dir"),
                                                            CraftedEntry(name: Array("dir-e\u{301}/in".utf8), data: Array("in".utf8))],
                                                           format: format)).get()
            let dest = RawPath(world.dest)
            XCTAssertEqual(TestSupport.readStart(dest.appending(nfc)), "nfc", format)
            XCTAssertEqual(TestSupport.readStart(dest.appending(nfd)), "nfd", format)
            XCTAssertEqual(TestSupport.readStart(dest.appending(Array("dir-e\u{301}".utf8)).appending(Array("in".utf8))), "in", format)
            XCTAssertNotNil(dest.appending(Array("dir-\u{E9}".utf8)).lstat(), format)
            XCTAssertTrue(report.lines.contains("restored 4 entries, 9 B in 0.0 s") || report.lines.contains { $0.hasPrefix("restored 4 entries") }, "\(report.lines)")
        }
        // --path compares bytes: the NFD prefix selects only the NFD folder.
        try world.reset()
        let only = try world.restore(try world.craft([CraftedEntry(name: Array("dir-\u{E9}/a".utf8), data: [1]),
                                                      CraftedEntry(name: Array("dir-e\u{301}/b".utf8), data: [2])]),
                                     options: RestoreOptions(paths: ["dir-e\u{301}"])).get()
        XCTAssertTrue(only.lines.contains { $0.hasPrefix("entries to write: 1 ") }, "\(only.lines)")
        XCTAssertNil(RawPath(world.dest).appending(Array("dir-\u{E9}".utf8)).lstat())
    }

    /// Backstop's own writer and reader keep NFC/NFD pairs and non-UTF-8 names byte for byte,
    /// through a full backup and restore.
    func testBackupAndRestoreKeepNamesAsBytes() throws {
        let src = RawPath(dir + "/names")
        try FileOps.makeDirectory(src.display)
        let names: [[UInt8]] = [Array("caf\u{E9}".utf8), Array("cafe\u{301}".utf8), [0x6C, 0xE9, 0x74, 0xE9], Array("Å-\u{212B}".utf8)]
        for (i, name) in names.enumerated() {
            let fd = src.appending(name).withCString { open($0, O_WRONLY | O_CREAT | O_EXCL, 0o644) }
            XCTAssertGreaterThanOrEqual(fd, 0)
            _ = "file \(i)".withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        let e = TestSupport.engine(dir + "/repo2", [ArchiveTarget(name: "names", paths: [src.display], base: src.display)])
        XCTAssertTrue(try e.backup().succeeded)
        let out = RawPath(dir + "/names-out")
        let report = try e.restore(target: "names", id: "latest", options: RestoreOptions(destination: out.display))
        XCTAssertTrue(report.lines.contains { $0.hasPrefix("restored 4 entries") }, "\(report.lines)")
        XCTAssertEqual(out.children(), src.children())
        for (i, name) in names.enumerated() { XCTAssertEqual(TestSupport.readStart(out.appending(name)), "file \(i)") }
    }

    func testNonUTF8NamesInPaxAndGnuArchives() throws {
        for format in ["pax", "gnu", "ustar"] {
            try world.reset()
            let name: [UInt8] = [0x62, 0x61, 0x64, 0xE9, 0xFF]
            _ = try world.restore(try world.craft([CraftedEntry(name: name, data: Array("latin".utf8))], format: format)).get()
            XCTAssertEqual(TestSupport.readStart(RawPath(world.dest).appending(name)), "latin", format)
        }
    }

    /// Issue 9, item 12: after a failed restore, a deep chain of folders it created stayed.
    func testVeryDeepTreeRestoresAndRollsBackCompletely() throws {
        let deep = Array(repeating: "d", count: 400).joined(separator: "/")
        let archive = try world.craft([.file("top.txt"), .file(deep + "/leaf.txt", "deep")])
        setenv("BACKSTOP_FAULT", "restore-entry@3", 1)  // after both entries: at the finishing step
        let failed = try world.restore(archive)
        XCTAssertTrue("\(failed.failure.map { "\($0)" } ?? "")".contains("was rolled back"), "\(failed)")
        XCTAssertFalse(FileOps.exists(world.dest + "/d"), "every folder it created is gone")
        unsetenv("BACKSTOP_FAULT")
        _ = try world.restore(archive).get()
        XCTAssertEqual(TestSupport.readStart(RawPath(world.dest + "/" + deep + "/leaf.txt")), "deep")
    }

    /// The same without a test hook: an entry that cannot be created (a symlink target longer
    /// than PATH_MAX) after files deep in folders the archive does not list. Before, the rollback
    /// removed the files but left the folder chain; now the entry is refused before anything is
    /// written.
    func testFolderChainIsNotLeftBehindWhenALaterEntryFails() throws {
        let result = try world.restore(try world.craft([.file("new/deep/er/x", "x"), .file("a/f1", "changed"),
                                                        .symlink("bad", to: String(repeating: "y", count: 5000))]))
        XCTAssertNotNil(result.failure)
        XCTAssertFalse(FileOps.exists(world.dest + "/new"))
    }

    /// A failure injected before every entry (and after the last) of a small archive that
    /// creates folders, overwrites files, makes links and changes an existing folder's mode:
    /// every time, the destination comes back exactly as it was.
    func testFailureAtEveryEntryRollsBackToTheSameDestination() throws {
        let entries: [CraftedEntry] = [
            .dir("a", mode: 0o750), .file("a/f1", "new f1", mode: 0o600), .file("keep.txt", "new keep"),
            .file("new/deep/er/x", "x"), .dir("ro", mode: 0o555), .file("ro/inside", "in"),
            .symlink("a/l", to: "f1"), .hardlink("a/h", to: "a/f1"), .dir("sub", mode: 0o700),
            .symlink("link-to-keep", to: "a/f1"), .file("bin/tool", "t", mode: 0o4755),
        ]
        let archive = try world.craft(entries)
        for n in 0...entries.count {
            try world.reset()
            setenv("BACKSTOP_FAULT", "restore-entry@\(n + 1)", 1)
            let result = try world.restore(archive)
            XCTAssertTrue("\(result.failure.map { "\($0)" } ?? "restored")".contains("failed and was rolled back"), "fault at \(n): \(result)")
        }
        unsetenv("BACKSTOP_FAULT")
        try world.reset()
        let report = try world.restore(archive).get()
        XCTAssertEqual(try String(contentsOfFile: world.dest + "/keep.txt", encoding: .utf8), "new keep")
        XCTAssertTrue(report.lines.contains { $0.hasPrefix("entries to write: 11 (3 existing file(s) overwritten)") }, "\(report.lines)")
    }

    /// When the rollback itself fails, the error says so in capitals and names the safety copy.
    func testFailedRollbackIsLoudAndNamesTheSafetyCopy() throws {
        setenv("BACKSTOP_FAULT", "restore-entry@2,rollback", 1)
        let result = try world.restore(try world.craft([.file("keep.txt", "new"), .file("other", "o")]), rollbackMustSucceed: false)
        let message = "\(result.failure.map { "\($0)" } ?? "restored")"
        XCTAssertTrue(message.contains("ROLLBACK FAILED"), message)
        XCTAssertTrue(message.contains("is NOT as it was"), message)
        XCTAssertTrue(message.contains("safety copy \(dir)/safety/t-"), message)
        XCTAssertEqual((result.failure as? UserFacingError)?.exitStatus, .failure)
        // What it says is true: the overwritten file is not back, and the safety copy holds it.
        XCTAssertEqual(try String(contentsOfFile: world.dest + "/keep.txt", encoding: .utf8), "new")
        let safety = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: dir + "/safety").first)
        let check = dir + "/check"
        try FileOps.makeDirectory(check)
        try ArchiveTarget.extractAll(dir + "/safety/" + safety, into: check)
        XCTAssertEqual(try String(contentsOfFile: check + "/keep.txt", encoding: .utf8), "keep\n")
    }

    /// MinIO restores go through the same extraction.
    func testMinioRestoreGoesThroughTheSafePath() throws {
        let minio = MinioDataTarget(name: "t", dataDirectory: world.dest)
        let bad = try world.restore(try world.craft([.symlink("bucket", to: world.outside), .file("bucket/victimdir/file.txt", "evil"),
                                                     .special("bucket2/dev", "blk")]), target: minio)
        XCTAssertTrue("\(bad.failure.map { "\($0)" } ?? "restored")".contains("goes through the symbolic link 'bucket'"), "\(bad)")
        let nfc = Array("bucket/caf\u{E9}".utf8), nfd = Array("bucket/cafe\u{301}".utf8)
        _ = try world.restore(try world.craft([CraftedEntry(name: nfc, data: [0x31]), CraftedEntry(name: nfd, data: [0x32])]), target: minio).get()
        XCTAssertEqual(TestSupport.readStart(RawPath(world.dest).appending(nfc)), "1")
        XCTAssertEqual(TestSupport.readStart(RawPath(world.dest).appending(nfd)), "2")
    }
}
