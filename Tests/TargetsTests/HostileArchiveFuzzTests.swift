import BackupCore
import Foundation
import TestSupport
@testable import Targets
import XCTest

/// Fuzzes the archive restore path: valid small tarballs (Backstop's own, and pax, GNU and
/// gzip ones from Python's tarfile, with folders, links, hard links, long and NFD names) are
/// mutated at random (seeded), and a third of the runs use well-formed tarballs of random
/// hostile entries generated here; each is restored into a destination with sentinel trees around it.
/// A quarter of the runs also inject a failure at a random entry (`BACKSTOP_FAULT`), so the
/// rollback runs from random points of random archives. Oracle, every time: nothing outside the destination changes; a failed restore leaves the
/// destination as it was; a successful one created no device, FIFO, socket or set-ID file; and
/// no crash (a crash ends the test run, which fails it).
///
/// Runs for `BACKSTOP_FUZZ_SECONDS` (default 20) with seed `BACKSTOP_FUZZ_SEED` (default: the
/// time; printed, so a failure can be replayed). `scripts/fuzz-restore [SECONDS]` runs it longer.
final class HostileArchiveFuzzTests: XCTestCase {
    func testMutatedArchivesNeverWriteOutsideOrLeaveAPartialRestore() throws {
        let dir = try TestSupport.scratch("fuzz")
        defer { try? FileOps.removeTree(dir) }
        let world = HostileWorld(dir)
        try world.reset()
        let env = ProcessInfo.processInfo.environment
        let seconds = env["BACKSTOP_FUZZ_SECONDS"].flatMap(Double.init) ?? 20
        let seed = env["BACKSTOP_FUZZ_SEED"].flatMap(UInt64.init) ?? UInt64(Date().timeIntervalSince1970 * 1000)
        print("fuzz seed: \(seed) (BACKSTOP_FUZZ_SEED=\(seed) BACKSTOP_FUZZ_SECONDS=\(seconds) replays this run)")
        var rng = XorShift(seed: seed)
        let seeds = try makeSeeds(world, dir: dir)
        let failures = dir + "/../backstop-fuzz-failures"
        var runs = 0, restored = 0
        var outcomes: [String: Int] = [:]
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            var bytes: [UInt8], seedName: String
            if rng.below(3) == 0 {
                // A well-formed tarball of random hostile entries: it reaches the restore's own
                // checks and the extraction every time.
                (seedName, bytes) = ("generated", generate(&rng, outside: world.outside))
            } else {
                let (name, original) = seeds[rng.below(seeds.count)]
                (seedName, bytes) = (name, original)
                mutate(&bytes, &rng)
            }
            let path = dir + "/input.tar"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            try world.reset()
            let failuresBefore = testRun?.failureCount ?? 0
            // A quarter of the runs also fail at a random entry, so the rollback runs on
            // random archives too.
            if rng.below(4) == 0 { setenv("BACKSTOP_FAULT", "restore-entry@\(rng.below(10) + 1)", 1) } else { unsetenv("BACKSTOP_FAULT") }
            let result = try world.restore(path)
            unsetenv("BACKSTOP_FAULT")
            if let error = result.failure {
                let text = "\(error)"
                let kind = ["refusing to restore", "was rolled back", "checksum", "ROLLBACK FAILED", "cannot restore"].first { text.contains($0) } ?? String(text.prefix(40))
                outcomes[kind, default: 0] += 1
            }
            if case .success = result {
                restored += 1
                for line in HostileWorld.listing(world.dest, hashing: false) {
                    XCTAssertFalse(line.hasSuffix(" special"), "run \(runs) (\(seedName)): a special file was created: \(line)")
                    let fields = line.split(separator: " ")
                    if fields.count > 1, let mode = Int(fields[1], radix: 8), mode & 0o170000 == 0o100000 {
                        XCTAssertEqual(mode & 0o6000, 0, "run \(runs) (\(seedName)): a set-ID file was created: \(line)")
                    }
                }
            }
            if (testRun?.failureCount ?? 0) > failuresBefore {
                try? FileOps.makeDirectory(failures)
                let kept = failures + "/seed\(seed)-run\(runs).tar"
                try? Data(bytes).write(to: URL(fileURLWithPath: kept))
                print("fuzz: run \(runs) failed; input kept in \(kept)")
                break
            }
            runs += 1
        }
        print("fuzz: \(runs) mutated archives in \(Int(seconds)) s, \(restored) restored; failures: \(outcomes.sorted { $0.value > $1.value }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))")
        XCTAssertGreaterThan(runs, 0)
    }

    /// The valid archives mutations start from.
    private func makeSeeds(_ world: HostileWorld, dir: String) throws -> [(String, [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        func load(_ name: String, _ path: String) throws { seeds.append((name, Array(try Data(contentsOf: URL(fileURLWithPath: path))))) }
        let entries: [CraftedEntry] = [
            .dir("a"), .file("a/f1", "one"), .file("keep.txt", "new keep"), .symlink("a/l", to: "f1"), .hardlink("a/h", to: "a/f1"),
            .dir("ro", mode: 0o555), .file("ro/x", "x"), CraftedEntry(name: Array("cafe\u{301}".utf8), data: [1]),
            .file(String(repeating: "long/", count: 30) + "name", "deep"), .file("bin/s", "s", mode: 0o4755),
        ]
        try load("pax", try world.craft(entries))
        try load("gnu", try world.craft(entries, format: "gnu"))
        try load("ustar", try world.craft(Array(entries.prefix(7)), format: "ustar"))
        try load("pax.gz", try world.craft(entries, gzip: true))
        // Backstop's own writer.
        let src = dir + "/fuzz-src"
        try TestSupport.write("hello\n", to: src + "/docs/readme.txt")
        try TestSupport.write("k=v\n", to: src + "/conf/app.env", mode: 0o600)
        symlink("../docs/readme.txt", src + "/conf/readme")
        let path = dir + "/backstop.tar"
        let w = try HashingFileWriter(path: path)
        let a = try ArchiveWriter(sink: w, format: .tar, compression: .none)
        for name in ["docs", "docs/readme.txt", "conf", "conf/app.env", "conf/readme"] { try a.addPath(src + "/" + name, as: name) }
        try a.close()
        _ = try w.finish()
        try load("backstop", path)
        return seeds
    }

    /// One to a few mutations; tar header checksums are usually fixed afterwards so the
    /// mutation reaches the restore's own checks instead of libarchive's.
    private func mutate(_ bytes: inout [UInt8], _ rng: inout XorShift) {
        let interesting: [UInt8] = Array("/.0123456KLSx\0".utf8) + [0xFF, 0xCC, 0x81, 0x80]
        let hostileNames = ["../x", "/tmp/x", "a/l/x", "lnk/victimdir", "..", ".", "a//..//b", "ro/../../escape"]
        for _ in 0..<(1 + rng.below(4)) {
            guard !bytes.isEmpty else { return }
            switch rng.below(8) {
            case 0, 1:  // random bytes
                for _ in 0..<(1 + rng.below(8)) { bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next()) }
            case 2:  // interesting bytes in a header's name, mode, size, type or link fields
                let block = rng.below(max(1, bytes.count / 512)) * 512
                let fields = [0..<100, 100..<108, 124..<136, 156..<157, 157..<257, 345..<500]
                let field = fields[rng.below(fields.count)]
                let at = block + field.lowerBound + rng.below(field.count)
                if at < bytes.count { bytes[at] = interesting[rng.below(interesting.count)] }
            case 3:  // a hostile name or link target
                let block = rng.below(max(1, bytes.count / 512)) * 512
                let name = Array(hostileNames[rng.below(hostileNames.count)].utf8) + [0]
                let start = block + (rng.below(2) == 0 ? 0 : 157)
                for (i, b) in name.enumerated() where start + i < bytes.count { bytes[start + i] = b }
            case 4:  // a type flag
                let block = rng.below(max(1, bytes.count / 512)) * 512
                if block + 156 < bytes.count { bytes[block + 156] = Array("0123456L".utf8)[rng.below(8)] }
            case 5:  // truncate
                bytes.removeLast(rng.below(bytes.count))
            case 6:  // duplicate a block elsewhere
                let blocks = bytes.count / 512
                guard blocks > 1 else { continue }
                let from = rng.below(blocks) * 512, to = rng.below(blocks) * 512
                let block = Array(bytes[from..<from + 512])
                bytes.insert(contentsOf: block, at: to)
            default:  // pax record text
                if let range = findPaxRecord(bytes, &rng) {
                    let replacement = Array(["path=../p", "path=/p", "linkpath=/etc", "size=99999999", "path=a/l/z", "hdrcharset=BINARY"][rng.below(6)].utf8)
                    for (i, b) in replacement.enumerated() where range.lowerBound + i < range.upperBound { bytes[range.lowerBound + i] = b }
                }
            }
        }
        if rng.below(5) != 0 { fixChecksums(&bytes) }
    }

    /// A valid ustar archive of 1 to 8 random entries: names built from hostile pieces
    /// (`..`, `.`, a leading `/`, NFC and NFD forms, invalid UTF-8, names of links made earlier),
    /// every entry type, and link targets inside, outside and absolute.
    private func generate(_ rng: inout XorShift, outside: String) -> [UInt8] {
        let pieces: [[UInt8]] = [Array("a".utf8), Array("b".utf8), Array("lnk".utf8), Array("..".utf8), Array(".".utf8),
                                 Array("keep.txt".utf8), Array("sub".utf8), Array("caf\u{E9}".utf8), Array("cafe\u{301}".utf8),
                                 [0xFF, 0x41], Array("link-to-keep".utf8)]
        func name() -> [UInt8] {
            var parts: [[UInt8]] = []
            for _ in 0..<(1 + rng.below(3)) { parts.append(pieces[rng.below(pieces.count)]) }
            let joined = Array(parts.joined(separator: [UInt8(ascii: "/")]))
            return rng.below(12) == 0 ? [UInt8(ascii: "/")] + joined : joined
        }
        func target() -> [UInt8] {
            switch rng.below(4) {
            case 0: return Array(outside.utf8)
            case 1: return Array("../outside".utf8)
            default: return name()
            }
        }
        var out: [UInt8] = []
        for _ in 0..<(1 + rng.below(8)) {
            let types: [UInt8] = Array("0000255513467".utf8)
            let type = types[rng.below(types.count)]
            let data: [UInt8] = type == UInt8(ascii: "0") ? Array("data \(rng.below(100))".utf8) : []
            let link: [UInt8] = [UInt8(ascii: "1"), UInt8(ascii: "2")].contains(type) ? target() : []
            let modes = [0o644, 0o755, 0o4755, 0o2755, 0o600, 0o555, 0o777]
            out += ustarHeader(name: name(), type: type, mode: modes[rng.below(modes.count)], size: data.count, link: link)
            out += data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
        }
        return out + [UInt8](repeating: 0, count: 1024)
    }

    private func ustarHeader(name: [UInt8], type: UInt8, mode: Int, size: Int, link: [UInt8]) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int, max: Int) { for (i, b) in bytes.prefix(max).enumerated() { h[offset + i] = b } }
        func octal(_ value: Int, at offset: Int, width: Int) { put(Array(String(format: "%0\(width - 1)o", value).utf8) + [0], at: offset, max: width) }
        put(name, at: 0, max: 100)
        octal(mode, at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(1_700_000_000, at: 136, width: 12)
        h[156] = type
        put(link, at: 157, max: 100)
        put(Array("ustar".utf8) + [0], at: 257, max: 6)
        put(Array("00".utf8), at: 263, max: 2)
        put(Array("root".utf8), at: 265, max: 32)
        put(Array("root".utf8), at: 297, max: 32)
        octal(0, at: 329, width: 8)
        octal(0, at: 337, width: 8)
        fixChecksums(&h)
        return h
    }

    private func findPaxRecord(_ bytes: [UInt8], _ rng: inout XorShift) -> Range<Int>? {
        var hits: [Range<Int>] = []
        let key = Array(" path=".utf8)
        var i = 0
        while i + key.count < bytes.count {
            if bytes[i] == key[0] && Array(bytes[i..<i + key.count]) == key { hits.append(i + 1..<min(bytes.count, i + 40)) }
            i += 1
        }
        return hits.isEmpty ? nil : hits[rng.below(hits.count)]
    }

    /// Recomputes the checksum of every 512-byte block that looks like a ustar header.
    private func fixChecksums(_ bytes: inout [UInt8]) {
        var block = 0
        while block + 512 <= bytes.count {
            if Array(bytes[block + 257..<block + 262]) == Array("ustar".utf8) {
                for i in 148..<156 { bytes[block + i] = 0x20 }
                let sum = bytes[block..<block + 512].reduce(0) { $0 + Int($1) }
                let text = Array(String(format: "%06o", sum).utf8) + [0, 0x20]
                for (i, b) in text.enumerated() { bytes[block + 148 + i] = b }
            }
            block += 512
        }
    }
}

/// A small seeded random generator (xorshift64*), so a run can be replayed from its seed.
struct XorShift {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E3779B97F4A7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2685821657736338717
    }
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
}
