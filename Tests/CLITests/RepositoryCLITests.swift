import BackupCore
import Foundation
import TestSupport
import XCTest

/// What `list`, `remove`, `stats` and `verify` say about the backup directory itself: sizes,
/// the `latest` link, broken manifests, sidecars, and how many lines they print.
final class RepositoryCLITests: XCTestCase {
    var dir = ""
    var config = ""

    override func setUpWithError() throws {
        dir = try TestSupport.scratch("repocli")
        try TestSupport.write("print('hello')\n", to: dir + "/src/app.py")
        try TestSupport.write("first\n", to: dir + "/media/a.txt")
        config = dir + "/backstop.env"
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=code media
        TARGET_CODE_KIND=archive
        TARGET_CODE_PATHS=src
        TARGET_CODE_BASE=src
        TARGET_MEDIA_KIND=rsync
        TARGET_MEDIA_SOURCE=media
        """, to: config, mode: 0o600)
    }

    override func tearDown() { try? FileOps.removeTree(dir) }

    func backstop(_ args: [String]) throws -> TestSupport.Run {
        try TestSupport.run("backstop", args + ["--config", config])
    }

    func backup() throws -> String {
        let run = try backstop(["backup", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let summary = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        return try XCTUnwrap(summary?["setID"] as? String)
    }

    /// Writes `count` bytes to a file whose name is raw bytes (not valid UTF-8).
    func writeRaw(_ path: RawPath, count: Int) throws {
        let fd = path.withCString { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        guard fd >= 0 else { throw SystemError("create", path.display) }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x5A, count: count)
        XCTAssertEqual(chunk.withUnsafeBytes { write(fd, $0.baseAddress, count) }, count)
    }

    /// Sizes walk names as bytes: a 1 MB file named with byte 0xFF counts in `list --size`,
    /// `remove` and `stats` (it counted as 0).
    func testSizesCountFilesWhoseNamesAreNotUTF8() throws {
        try writeRaw(RawPath(dir + "/media").appending([0x62, 0x61, 0x64, 0xFF, 0x2E, 0x62, 0x69, 0x6E]), count: 1_000_000)
        let id = try backup()
        XCTAssertNotNil(RawPath(dir + "/backups/daily/\(id)/media/tree").appending([0x62, 0x61, 0x64, 0xFF, 0x2E, 0x62, 0x69, 0x6E]).lstat(),
                        "the snapshot holds the file")
        let list = try backstop(["list", "--size", "--json"])
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(rows.first?["bytes"] as? Int), 1_000_000, list.stdout)
        let stats = try backstop(["stats", "--json"])
        let totals = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(totals["totalBytes"] as? Int), 1_000_000, stats.stdout)
        let remove = try backstop(["remove", id, "--force", "--dry-run", "--json"])
        let plan = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(remove.stdout.utf8)) as? [String: Any])
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(plan["bytes"] as? Int), 1_000_000, remove.stdout)
    }

    /// `list --size` and `stats` give the sizes recorded at backup time and say so; `--exact`
    /// walks the trees, and on an untouched repository both agree (issue 20).
    func testRecordedSizesAgreeWithExactOnes() throws {
        for round in 0..<3 {
            try TestSupport.writeRandom(2000 + round * 10, to: dir + "/media/r\(round % 2).bin", seed: UInt64(round))
            try TestSupport.writeRandom(3000, to: dir + "/media/keep\(round).bin", seed: UInt64(50 + round))
            _ = try backup()
        }
        func json(_ args: [String]) throws -> Any {
            let run = try backstop(args)
            XCTAssertEqual(run.status, 0, run.stderr)
            return try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
        }
        let recorded = try XCTUnwrap(try json(["list", "--size", "--json"]) as? [[String: Any]]).map { $0["bytes"] as? Int }
        let exact = try XCTUnwrap(try json(["list", "--size", "--exact", "--json"]) as? [[String: Any]]).map { $0["bytes"] as? Int }
        XCTAssertEqual(recorded.count, 3)
        XCTAssertEqual(recorded, exact)
        XCTAssertNotEqual(recorded[0], recorded[1], "the newest and the middle set free different amounts")
        let stats = try XCTUnwrap(try json(["stats", "--json"]) as? [String: Any])
        let statsExact = try XCTUnwrap(try json(["stats", "--exact", "--json"]) as? [String: Any])
        XCTAssertEqual(stats["totalBytes"] as? Int, statsExact["totalBytes"] as? Int)
        XCTAssertEqual(stats["totalBytesExact"] as? Bool, false)
        XCTAssertEqual(statsExact["totalBytesExact"] as? Bool, true)
        let text = try backstop(["list", "--size"]).stdout
        XCTAssertTrue(text.contains("snapshot trees: sizes as recorded at backup time; --exact walks them"), text)
        XCTAssertTrue(try backstop(["stats"]).stdout.contains("(snapshot trees as recorded; --exact walks them)"))
    }

    /// Removing the newest snapshot moves `links/media/latest` to the newest remaining one;
    /// removing the last one removes the link. It never dangles.
    func testRemovingTheNewestSnapshotMovesTheLatestLink() throws {
        let first = try backup()
        try TestSupport.write("second\n", to: dir + "/media/a.txt")
        let second = try backup()
        XCTAssertNotEqual(first, second)
        let link = dir + "/backups/links/media/latest"
        XCTAssertTrue(try FileManager.default.destinationOfSymbolicLink(atPath: link).contains(second))

        let removed = try backstop(["remove", second])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: link)
        XCTAssertTrue(target.contains(first), target)
        XCTAssertEqual(try String(contentsOfFile: link + "/a.txt", encoding: .utf8), "first\n", "the link resolves to the remaining snapshot")

        XCTAssertEqual(try backstop(["remove", first, "--force"]).status, 0)
        XCTAssertFalse(FileOps.exists(link), "no snapshot remains: no link")
    }

    /// `remove` prints its line once (it printed it on stdout and again on stderr), and the
    /// daily log still records it.
    func testRemovePrintsOneLine() throws {
        let first = try backup()
        _ = try backup()
        let run = try backstop(["remove", first])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = (run.stdout + run.stderr).split(separator: "\n")
        XCTAssertEqual(lines.count, 1, run.stdout + run.stderr)
        XCTAssertTrue(lines[0].hasPrefix("removed ") && lines[0].contains(first), String(lines[0]))
        let logs = dir + "/backups/logs"
        let log = try FileManager.default.contentsOfDirectory(atPath: logs).map { try String(contentsOfFile: logs + "/" + $0, encoding: .utf8) }.joined()
        XCTAssertTrue(log.contains("removed backup daily/\(first)"), log)
    }

    /// A corrupt manifest.json is "manifest unreadable", not "has no manifest", and `list` does
    /// not promise that the next run removes the set (it does not, and must not).
    func testACorruptManifestIsSaidUnreadableAndIsNotPromisedToCleanUp() throws {
        let id = try backup()
        let manifest = dir + "/backups/daily/\(id)/manifest.json"
        try TestSupport.write("{\"format\": 1, \"id\": tru", to: manifest, mode: 0o600)

        let list = try backstop(["list"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertTrue(list.stdout.contains("unreadable"), list.stdout)
        XCTAssertTrue(list.stdout.contains("manifest unreadable"), list.stdout)
        XCTAssertFalse(list.stdout.contains("removes them"), list.stdout)
        XCTAssertFalse(list.stdout.contains("incomplete"), list.stdout)

        let verify = try backstop(["verify", id])
        XCTAssertNotEqual(verify.status, 0)
        XCTAssertTrue((verify.stdout + verify.stderr).contains("manifest unreadable"), verify.stdout + verify.stderr)
        let restore = try backstop(["restore", "code", "--backup", id, "--to", dir + "/out", "--yes"])
        XCTAssertNotEqual(restore.status, 0)
        XCTAssertTrue(restore.stderr.contains("manifest unreadable"), restore.stderr)
        XCTAssertFalse(restore.stderr.contains("has no manifest"), restore.stderr)

        // And the next backup indeed keeps it.
        _ = try backup()
        XCTAssertTrue(FileOps.exists(manifest))
    }

    /// `verify` compares every artifact's `.sha256` sidecar with the manifest: a damaged one
    /// (which makes `sha256sum -c` fail) or a missing one is reported, and verify exits 1.
    func testVerifyReportsADamagedOrMissingSidecar() throws {
        let id = try backup()
        let setDir = dir + "/backups/daily/\(id)"
        XCTAssertEqual(try backstop(["verify", "--deep"]).status, 0)
        let tarball = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: setDir + "/code").first { $0.hasSuffix(".tar.gz") })
        let sidecar = "\(setDir)/code/\(tarball).sha256"
        let original = try String(contentsOfFile: sidecar, encoding: .utf8)
        let flipped = (original.first == "0" ? "1" : "0") + original.dropFirst()
        try TestSupport.write(flipped, to: sidecar, mode: 0o600)

        let sha = Process()
        sha.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        sha.arguments = ["--status", "-c", tarball + ".sha256"]
        sha.currentDirectoryURL = URL(fileURLWithPath: setDir + "/code")
        try sha.run()
        sha.waitUntilExit()
        XCTAssertNotEqual(sha.terminationStatus, 0, "sha256sum -c fails on the damaged sidecar")

        let damaged = try backstop(["verify", "--deep"])
        XCTAssertEqual(damaged.status, 1, damaged.stdout + damaged.stderr)
        XCTAssertTrue(damaged.stdout.contains("\(tarball).sha256") && damaged.stdout.contains("damaged"), damaged.stdout)

        unlink(sidecar)
        let missing = try backstop(["verify"])
        XCTAssertEqual(missing.status, 1, missing.stdout + missing.stderr)
        XCTAssertTrue(missing.stdout.contains("\(tarball).sha256: missing"), missing.stdout)

        // The artifact itself is intact: a restore (which checks the manifest's checksums) works.
        let restore = try backstop(["restore", "code", "--to", dir + "/out", "--yes"])
        XCTAssertEqual(restore.status, 0, restore.stderr)
    }

    /// A backup whose only target fails in preflight prints one line (the reason), not three
    /// (reason, "started", "failed: nothing was kept").
    func testAFailedBackupPrintsOneLine() throws {
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=db
        TARGET_DB_KIND=pg_dump
        TARGET_DB_HOST=127.0.0.1
        TARGET_DB_PORT=1
        TARGET_DB_DATABASE=app
        """, to: config, mode: 0o600)
        let run = try backstop(["backup"])
        XCTAssertEqual(run.status, 1)
        XCTAssertEqual(run.stdout, "")
        let lines = run.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, run.stderr)
        XCTAssertTrue(lines[0].contains("cannot connect"), run.stderr)
        XCTAssertFalse(run.stderr.contains("started"), run.stderr)
        // stats still shows it as the target's last failure.
        XCTAssertTrue(try backstop(["stats", "--json"]).stdout.contains("cannot connect"))
    }
}

/// Whether `pid` is a live process (a zombie waiting for its parent does not count).
func processIsLive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
}

/// Children die with Backstop, even when it is killed with -9: the child and what it started
/// in its process group (they were left running, reparented).
final class ChildrenDieWithBackstopTests: XCTestCase {
    func alive(_ pid: Int32) -> Bool { processIsLive(pid) }

    func testKill9OfBackstopKillsItsChildren() throws {
        let dir = try TestSupport.scratch("orphans")
        defer { try? FileOps.removeTree(dir) }
        try TestSupport.write("x\n", to: dir + "/minio/bucket/object")
        try TestSupport.write("""
        BACKUP_DIR=backups
        TARGETS=minio
        TARGET_MINIO_KIND=minio
        TARGET_MINIO_DATA_DIR=minio
        TARGET_MINIO_STOP_CMD=echo $$ > \(dir)/child.pid; sleep 300 & echo $! > \(dir)/grandchild.pid; wait
        """, to: dir + "/backstop.env", mode: 0o600)
        let p = try TestSupport.start("backstop", ["backup", "--config", dir + "/backstop.env"])
        XCTAssertTrue(TestSupport.waitFor(30) { FileOps.size(dir + "/grandchild.pid") ?? 0 > 0 }, "the stop command started")
        let child = try XCTUnwrap(Int32(try String(contentsOfFile: dir + "/child.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let grandchild = try XCTUnwrap(Int32(try String(contentsOfFile: dir + "/grandchild.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertTrue(alive(child) && alive(grandchild))
        kill(p.processIdentifier, SIGKILL)
        defer { kill(child, SIGKILL); kill(grandchild, SIGKILL) }
        // Not Process.waitUntilExit: here it also waited for the orphans (minutes, before the fix).
        XCTAssertTrue(TestSupport.waitFor(5) { !self.alive(p.processIdentifier) })
        XCTAssertTrue(TestSupport.waitFor(3) { !self.alive(child) }, "the child outlived Backstop")
        XCTAssertTrue(TestSupport.waitFor(3) { !self.alive(grandchild) }, "the child's own child outlived Backstop")
    }
}
