@testable import BackupCore
import Foundation
import TestSupport
import XCTest

/// Grandfather-father-son retention: config, worked examples, and properties over 10,000
/// random histories across daylight-saving changes and ISO-week year boundaries, checked
/// against a small independent reference implementation.
final class RetentionPropertyTests: XCTestCase {
    // MARK: config

    func policy(_ values: [String: String], env: [String: String] = [:]) throws -> RetentionPolicy? {
        try RetentionPolicy.from(config: Config(file: "/etc/app.env", values: values, environment: env))
    }

    func message(_ values: [String: String]) -> String {
        do { _ = try policy(values); return "no error" } catch { return "\(error)" }
    }

    func testModeIsChosenByKeysAndExistingTierConfigsKeepTheirMeaning() throws {
        let tiers = try XCTUnwrap(policy(["KEEP_DAILY": "7", "KEEP_WEEKLY_DAYS": "28"]))
        XCTAssertEqual(tiers.mode, .tiers)
        XCTAssertEqual(tiers.limits, ["daily": .init(count: 7), "weekly": .init(days: 28)])
        XCTAssertEqual(try policy(["KEEP_DAILY_SETS": "7"])?.limits, ["daily": .init(count: 7)])

        let gfs = try XCTUnwrap(policy(["KEEP_LAST": "2", "KEEP_DAILY": "7", "KEEP_WEEKLY": "4", "KEEP_MONTHLY": "6", "TZ": "Europe/Berlin"]))
        XCTAssertEqual(gfs.mode, .gfs)
        XCTAssertEqual(gfs.gfs, .init(last: 2, daily: 7, weekly: 4, monthly: 6))
        XCTAssertEqual(gfs.timeZone.identifier, "Europe/Berlin")
        XCTAssertEqual(try policy(["RETENTION": "gfs", "KEEP_DAILY": "7"])?.gfs, .init(daily: 7))
        XCTAssertEqual(try policy(["KEEP_WITHIN": "36h"])?.gfs, .init(within: 36 * 3600))
        // The seeds' keys: RETENTION_DAYS alone is a policy (KEEP_WITHIN in days); CEP's
        // RETENTION_WEEKS keeps its weekly tier that many weeks, in either mode.
        let seed = try XCTUnwrap(policy(["RETENTION_DAYS": "30", "RETENTION_WEEKS": "12"]))
        XCTAssertEqual(seed.mode, .gfs)
        XCTAssertEqual(seed.gfs, .init(within: 30 * 86_400))
        XCTAssertEqual(seed.limits, ["weekly": .init(days: 84)])
        let weeksOnly = try XCTUnwrap(policy(["RETENTION_WEEKS": "12"]))
        XCTAssertEqual(weeksOnly.mode, .tiers, "daily sets stay: only the weekly tier has a limit")
        XCTAssertEqual(weeksOnly.limits, ["weekly": .init(days: 84)])
        // KEEP_HOURLY is a tier count when hourly is a tier.
        let hourlyTier = try XCTUnwrap(policy(["KEEP_TIERS": "hourly", "KEEP_HOURLY": "24"]))
        XCTAssertEqual(hourlyTier.mode, .tiers)
        XCTAssertEqual(hourlyTier.limits, ["hourly": .init(count: 24)])
        XCTAssertNil(try policy([:]))
        XCTAssertEqual(try policy([:], env: ["TZ": ":/etc/localtime", "KEEP_LAST": "1"])?.timeZone, TimeZone.current)
    }

    func testBadRetentionConfigGivesOneLineNamingTheKey() {
        XCTAssertEqual(message(["RETENTION": "tiers", "KEEP_LAST": "3"]),
                       "config: invalid value for KEEP_LAST in /etc/app.env: '3' (expected nothing while RETENTION=tiers: KEEP_LAST is a grandfather-father-son rule (set RETENTION=gfs, or remove it))")
        XCTAssertTrue(message(["KEEP_DAILY": "7", "KEEP_DAILY_SETS": "7"]).contains("KEEP_DAILY_SETS"))
        XCTAssertTrue(message(["KEEP_WITHIN": "7x"]).hasPrefix("config: invalid value for KEEP_WITHIN in /etc/app.env: '7x' (expected a duration"))
        XCTAssertTrue(message(["KEEP_WITHIN": "7d", "RETENTION_DAYS": "7"]).contains("only one of KEEP_WITHIN and RETENTION_DAYS"))
        XCTAssertTrue(message(["KEEP_LAST": "1", "TZ": "Mars/Olympus"]).hasPrefix("config: invalid value for TZ"))
        XCTAssertTrue(message(["RETENTION": "gfs"]).contains("missing required key KEEP_LAST"))
        XCTAssertTrue(message(["RETENTION": "sometimes"]).hasPrefix("config: invalid value for RETENTION"))
        XCTAssertEqual(message(["KEEP_LAST": "2", "KEEP_DAYLY": "7"]), "config: unknown key KEEP_DAYLY in /etc/app.env (did you mean KEEP_DAYLY → KEEP_DAILY?)")
        XCTAssertTrue(message(["KEEP_LAST": "2", "KEEP_SOMETIMES": "7"]).hasPrefix("config: unknown key KEEP_SOMETIMES in /etc/app.env (with RETENTION=gfs"))
        XCTAssertTrue(message(["RETENTION_DAYS": "0"]).hasPrefix("config: invalid value for RETENTION_DAYS"))
        XCTAssertTrue(message(["RETENTION_WEEKS": "12", "KEEP_WEEKLY_DAYS": "84"]).contains("only one of KEEP_WEEKLY_DAYS and RETENTION_WEEKS"))
    }

    // MARK: worked examples

    static let utc = TimeZone(identifier: "UTC")!

    func date(_ text: String, _ tz: TimeZone = utc) -> Date {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = tz
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.date(from: text)!
    }

    func candidate(_ when: Date, _ n: Int, targets: [(String, Bool)] = [("a", true)], tier: String = "daily") -> RetentionCandidate {
        RetentionCandidate(key: "\(tier)/\(n)", id: String(format: "%06d", n), tier: tier, startedAt: when, targets: targets)
    }

    /// Daily sets over 70 days: each rule counts on its own, and the reasons say which ones.
    func testEachRuleCountsOnItsOwnAndTheReasonsNameThem() {
        var sets: [RetentionCandidate] = []
        let start = date("2024-01-01 02:00")
        for day in 0..<70 { sets.append(candidate(start.addingTimeInterval(Double(day) * 86_400), day)) }
        let policy = RetentionPolicy(gfs: .init(daily: 3, weekly: 2, monthly: 3), timeZone: Self.utc)
        let verdicts = policy.decide(sets, now: start)
        let byKey = Dictionary(uniqueKeysWithValues: verdicts.map { ($0.key, $0) })
        // Day 69 is 2024-03-10, a Sunday: the newest daily, weekly and monthly at once.
        XCTAssertEqual(byKey["daily/69"]?.reason, "kept: daily #1, weekly #1, monthly #1")
        XCTAssertEqual(byKey["daily/67"]?.reason, "kept: daily #3")
        XCTAssertEqual(byKey["daily/62"]?.reason, "kept: weekly #2")            // Sunday 2024-03-03
        XCTAssertEqual(byKey["daily/59"]?.reason, "kept: monthly #2")           // 2024-02-29
        XCTAssertEqual(byKey["daily/30"]?.reason, "kept: monthly #3")           // 2024-01-31
        XCTAssertEqual(byKey["daily/66"]?.reason, "no rule keeps it")
        XCTAssertEqual(verdicts.filter(\.keep).count, 6)
        XCTAssertEqual(verdicts.map(\.key), sets.reversed().map(\.key), "newest first")
    }

    /// ISO weeks: 2020-12-31 (Thursday) and 2021-01-03 (Sunday) are both in 2020-W53, so one
    /// weekly slot covers them; 2021-01-04 opens 2021-W01.
    func testISOWeeksAcrossTheYearBoundary() {
        let sets = [candidate(date("2020-12-27 12:00"), 1), candidate(date("2020-12-31 12:00"), 2),
                    candidate(date("2021-01-03 12:00"), 3), candidate(date("2021-01-04 12:00"), 4)]
        let v = RetentionPolicy(gfs: .init(weekly: 3), timeZone: Self.utc).decide(sets, now: Date())
        XCTAssertEqual(v.map(\.reason), ["kept: weekly #1", "kept: weekly #2", "no rule keeps it", "kept: weekly #3"])
    }

    /// Buckets are cut in the configured zone: 23:30 UTC is the next day in Berlin.
    func testBucketsUseTheConfiguredTimeZone() {
        let sets = [candidate(date("2024-06-01 21:00"), 1), candidate(date("2024-06-01 23:30"), 2)]
        let utc = RetentionPolicy(gfs: .init(daily: 5), timeZone: Self.utc).decide(sets, now: Date())
        XCTAssertEqual(utc.map(\.keep), [true, false])
        let berlin = RetentionPolicy(gfs: .init(daily: 5), timeZone: TimeZone(identifier: "Europe/Berlin")!).decide(sets, now: Date())
        XCTAssertEqual(berlin.map(\.keep), [true, true])
    }

    /// New York, 2024-11-03: 01:30 EDT and 01:10 EST (40 minutes later) are the same local hour,
    /// so one hourly slot covers both; the spring gap (02:00-03:00 on 2024-03-10) has no hour.
    func testHourlyBucketsAcrossDaylightSavingChanges() {
        let ny = TimeZone(identifier: "America/New_York")!
        let autumn = [candidate(date("2024-11-03 05:30"), 1), candidate(date("2024-11-03 06:10"), 2), candidate(date("2024-11-03 07:05"), 3)]
        let a = RetentionPolicy(gfs: .init(hourly: 10), timeZone: ny).decide(autumn, now: Date())
        XCTAssertEqual(a.map(\.reason), ["kept: hourly #1", "kept: hourly #2", "no rule keeps it"])
        // 01:59 EST and 03:01 EDT are a minute apart in real time but two hour buckets.
        let spring = [candidate(date("2024-03-10 06:59"), 1), candidate(date("2024-03-10 07:01"), 2)]
        let s = RetentionPolicy(gfs: .init(hourly: 10), timeZone: ny).decide(spring, now: Date())
        XCTAssertEqual(s.map(\.reason), ["kept: hourly #1", "kept: hourly #2"])
    }

    /// KEEP_WITHIN counts back from the stream's newest set, not from now: backups that
    /// stopped a month ago lose nothing to the passing of time.
    func testWithinCountsFromTheNewestSet() {
        let start = date("2024-01-01 02:00")
        let sets = (0..<10).map { candidate(start.addingTimeInterval(Double($0) * 86_400), $0) }
        let v = RetentionPolicy(gfs: .init(within: 3 * 86_400), timeZone: Self.utc).decide(sets, now: start.addingTimeInterval(90 * 86_400))
        XCTAssertEqual(v.filter(\.keep).map(\.key), ["daily/9", "daily/8", "daily/7", "daily/6"])
        XCTAssertEqual(v[0].reason, "kept: within 3d")
    }

    /// Streams: sets holding different targets (`backup --only db`, `--only media`) are
    /// counted apart, so one stream's sets never push out another's.
    func testStreamsAreCountedApart() {
        let t = date("2024-05-05 02:00")
        let sets = [candidate(t, 1, targets: [("db", true)]), candidate(t.addingTimeInterval(1800), 2, targets: [("media", true)]),
                    candidate(t.addingTimeInterval(86_400), 3, targets: [("db", true)]), candidate(t.addingTimeInterval(88_200), 4, targets: [("media", true)])]
        let v = RetentionPolicy(gfs: .init(last: 1), timeZone: Self.utc).decide(sets, now: Date())
        XCTAssertEqual(v.filter(\.keep).map(\.key).sorted(), ["daily/3", "daily/4"])
    }

    // MARK: properties

    /// SplitMix64: a small seeded generator, so a failure can be replayed.
    struct PRNG {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
        mutating func chance(_ p: Double) -> Bool { Double(next() % 1_000_000) / 1_000_000 < p }
        mutating func maybe(_ p: Double, _ range: ClosedRange<Int>) -> Int? { chance(p) ? int(range) : nil }
    }

    static let zones = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago", "UTC",
                        "Asia/Kolkata", "Pacific/Auckland", "America/St_Johns"].map { TimeZone(identifier: $0)! }
    /// Instants near daylight-saving changes and ISO-week year boundaries.
    static let anchorTexts = ["2024-03-10 07:00", "2024-11-03 06:00", "2024-03-31 01:00", "2024-10-27 01:00",
                          "2020-12-31 12:00", "2021-01-03 23:00", "2026-12-28 00:00", "2027-01-03 12:00",
                          "2015-12-31 23:30", "2024-04-07 02:30", "2024-09-29 02:00", "2023-01-01 00:30"]
    static let anchors: [Date] = anchorTexts.map { text in
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = utc
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.date(from: text)!
    }

    func randomHistory(_ rng: inout PRNG) -> (RetentionPolicy, [RetentionCandidate], Date) {
        let tz = Self.zones[rng.int(0...Self.zones.count - 1)]
        let anchor = Self.anchors[rng.int(0...Self.anchors.count - 1)]
        var t = anchor.addingTimeInterval(-Double(rng.int(0...4 * 86_400)))
        let streams: [[String]] = [["a"], ["a", "b"], ["b"]]
        var sets: [RetentionCandidate] = []
        for n in 0..<rng.int(1...30) {
            let stream = streams[rng.chance(0.7) ? 0 : rng.int(0...2)]
            sets.append(RetentionCandidate(key: "\(rng.chance(0.8) ? "daily" : "weekly")/\(n)", id: String(format: "%06d", n),
                                           tier: rng.chance(0.8) ? "daily" : "weekly", startedAt: t,
                                           targets: stream.map { ($0, rng.chance(0.8)) }))
            let gaps = [rng.int(60...3600), rng.int(3000...4000), rng.int(82_000...90_000), rng.int(6 * 86_400...8 * 86_400), rng.int(27 * 86_400...33 * 86_400)]
            t = t.addingTimeInterval(Double(gaps[rng.int(0...4)]))
        }
        // Keys must be unique; the tier in the key is what the set's tier is.
        sets = sets.map { var s = $0; s.key = "\(s.tier)/\(s.id)"; return s }
        let within = rng.maybe(0.4, 1...(20 * 24)).map { TimeInterval($0) * 3600 }
        let gfs = RetentionPolicy.GFS(last: rng.maybe(0.4, 1...5), hourly: rng.maybe(0.4, 1...5), daily: rng.maybe(0.5, 1...7),
                                      weekly: rng.maybe(0.5, 1...5), monthly: rng.maybe(0.4, 1...4), yearly: rng.maybe(0.3, 1...3), within: within)
        var limits: [String: RetentionPolicy.Limit] = [:]
        if rng.chance(0.3) { limits["daily"] = .init(count: rng.maybe(0.6, 1...6), days: rng.maybe(0.6, 1...20)) }
        if rng.chance(0.2) { limits["weekly"] = .init(count: rng.maybe(0.6, 1...4), days: rng.maybe(0.6, 1...60)) }
        let minimum = rng.int(1...2)
        let policy = rng.chance(0.8)
            ? RetentionPolicy(gfs: gfs, limits: limits, timeZone: tz, minimumGood: minimum)
            : RetentionPolicy(limits: limits, minimumGood: minimum)
        let now = t.addingTimeInterval(Double(rng.int(0...10 * 86_400)))
        return (policy, sets, now)
    }

    /// Local calendar fields computed by plain arithmetic from the zone's offset (Howard
    /// Hinnant's civil-from-days), independent of Foundation's Calendar.
    struct LocalFields {
        let year, month, day, hour, isoYear, isoWeek: Int
        init(_ date: Date, _ tz: TimeZone) {
            let local = Int(date.timeIntervalSince1970.rounded(.down)) + tz.secondsFromGMT(for: date)
            let days = Int((Double(local) / 86_400).rounded(.down))
            hour = (local - days * 86_400) / 3600
            (year, month, day) = LocalFields.civil(days)
            let weekday = ((days % 7) + 7 + 3) % 7 + 1        // 1970-01-01 was a Thursday; Monday = 1
            let thursday = days - (weekday - 1) + 3
            let (ty, _, _) = LocalFields.civil(thursday)
            isoYear = ty
            isoWeek = (thursday - LocalFields.daysFromCivil(ty, 1, 1)) / 7 + 1
        }
        static func civil(_ z0: Int) -> (Int, Int, Int) {
            let z = z0 + 719_468
            let era = (z >= 0 ? z : z - 146_096) / 146_097
            let doe = z - era * 146_097
            let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
            let mp = (5 * doy + 2) / 153
            let d = doy - (153 * mp + 2) / 5 + 1
            let m = mp < 10 ? mp + 3 : mp - 9
            return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
        }
        static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
            let y = m <= 2 ? y0 - 1 : y0
            let era = (y >= 0 ? y : y - 399) / 400
            let yoe = y - era * 400
            let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
            return era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
        }
    }

    /// The rules that keep each set, by grouping: each bucket's newest set, the newest N buckets.
    func referenceRules(_ policy: RetentionPolicy, _ sets: [RetentionCandidate], now: Date) -> [String: [String]] {
        var rules: [String: [String]] = [:]
        let newerFirst = { (a: RetentionCandidate, b: RetentionCandidate) in (a.startedAt, a.id) > (b.startedAt, b.id) }
        for tier in Set(sets.map(\.tier)) {
            let inTier = sets.filter { $0.tier == tier }.sorted(by: newerFirst)
            guard let limit = policy.limits[tier] else {
                if policy.mode == .tiers { for s in inTier { rules[s.key, default: []].append("tier \(tier) has no limit") } }
                continue
            }
            for (i, s) in inTier.enumerated() where i < (limit.count ?? .max) && now.timeIntervalSince(s.startedAt) <= Double(limit.days ?? .max / 2) * 86_400 {
                rules[s.key, default: []].append("tier \(tier) #\(i + 1)")
            }
        }
        guard policy.mode == .gfs else { return rules }
        var fields: [String: LocalFields] = [:]
        for s in sets { fields[s.key] = LocalFields(s.startedAt, policy.timeZone) }
        for streamName in Set(sets.map(\.stream)) {
            let stream = sets.filter { $0.stream == streamName }
            let g = policy.gfs
            let keyers: [(String, Int?, (RetentionCandidate) -> [Int])] = [
                ("last", g.last, { [Int($0.id)!] }),
                ("hourly", g.hourly, { let f = fields[$0.key]!; return [f.year, f.month, f.day, f.hour] }),
                ("daily", g.daily, { let f = fields[$0.key]!; return [f.year, f.month, f.day] }),
                ("weekly", g.weekly, { let f = fields[$0.key]!; return [f.isoYear, f.isoWeek] }),
                ("monthly", g.monthly, { let f = fields[$0.key]!; return [f.year, f.month] }),
                ("yearly", g.yearly, { let f = fields[$0.key]!; return [f.year] }),
            ]
            for (name, limit, keyOf) in keyers {
                guard let limit else { continue }
                var newestOfBucket: [[Int]: RetentionCandidate] = [:]
                for s in stream {
                    let k = keyOf(s)
                    if let cur = newestOfBucket[k], newerFirst(cur, s) { continue }
                    newestOfBucket[k] = s
                }
                for (rank, s) in newestOfBucket.values.sorted(by: newerFirst).prefix(limit).enumerated() {
                    rules[s.key, default: []].append("\(name) #\(rank + 1)")
                }
            }
            if let within = g.within, let newest = stream.max(by: { newerFirst($1, $0) }) {
                for s in stream where s.startedAt >= newest.startedAt.addingTimeInterval(-within) {
                    rules[s.key, default: []].append("within \(ConfigUnits.format(within))")
                }
            }
        }
        return rules
    }

    /// 10,000 random histories: the floor holds, decisions are deterministic (whatever the
    /// input order), and every kept-by rule matches the reference.
    func testPropertiesOverRandomHistories() {
        var rng = PRNG(state: 20_241_208)
        var checkedBuckets = 0
        for round in 0..<10_000 {
            let (policy, sets, now) = randomHistory(&rng)
            let verdicts = policy.decide(sets, now: now)
            // Deterministic, and independent of the order the sets are listed in.
            var shuffled = sets
            for i in shuffled.indices.reversed() { shuffled.swapAt(i, rng.int(0...i)) }
            // (Plain comparisons with XCTFail: XCTAssert in a loop this hot costs seconds.)
            if policy.decide(shuffled, now: now) != verdicts { XCTFail("round \(round): the order of the input changed the decisions") }
            if Set(verdicts.map(\.key)) != Set(sets.map(\.key)) { XCTFail("round \(round): not every set got a verdict") }
            // Buckets: the rules that keep each set are exactly the reference's.
            let reference = referenceRules(policy, sets, now: now)
            for v in verdicts {
                let rules = v.keptBy.filter { !$0.hasPrefix("floor") }
                if rules.sorted() != (reference[v.key] ?? []).sorted() {
                    XCTFail("round \(round), set \(v.key), \(policy.summary): \(rules) but the reference says \(reference[v.key] ?? [])")
                }
                if !v.keep && !v.keptBy.isEmpty { XCTFail("round \(round): a removed set has rules") }
                if v.keptBy.contains(where: { $0.hasPrefix("floor") }) && !rules.isEmpty { XCTFail("the floor only keeps what no rule keeps") }
                checkedBuckets += rules.count
            }
            // The floor: the newest `minimumGood` good backups of every target stay; and a set
            // that goes is neither kept by a rule nor one of those.
            let kept = Set(verdicts.filter(\.keep).map(\.key))
            var protected = Set<String>()
            for name in ["a", "b"] {
                let good = sets.filter { $0.targets.contains { $0.name == name && $0.ok } }.sorted { ($0.startedAt, $0.id) > ($1.startedAt, $1.id) }
                for s in good.prefix(policy.minimumGood) {
                    if !kept.contains(s.key) { XCTFail("round \(round): one of the newest good backups of \(name) was removed") }
                    protected.insert(s.key)
                }
            }
            for v in verdicts where v.keep != (!(reference[v.key] ?? []).isEmpty || protected.contains(v.key)) {
                XCTFail("round \(round), set \(v.key): kept \(v.keep), but the rules and the floor say otherwise")
            }
        }
        XCTAssertGreaterThan(checkedBuckets, 50_000, "the histories exercise the rules")
    }

    /// The dry run and the real run decide the same, on real repositories.
    func testDryRunEqualsRealRun() throws {
        var rng = PRNG(state: 7)
        for round in 0..<8 {
            let dir = try TestSupport.scratch("retention-dry")
            defer { try? FileOps.removeTree(dir) }
            let engine = TestSupport.engine(dir + "/repo", [BytesTarget(name: "a", content: Data()), BytesTarget(name: "b", content: Data())])
            let (policy, history, now) = randomHistory(&rng)
            for spec in history.prefix(10) {
                let failing = spec.targets.filter { !$0.ok }.map(\.name)
                let run = TestSupport.engine(engine.repository.root, spec.targets.map { BytesTarget(name: $0.name, content: Data("x".utf8), fail: failing.contains($0.name)) })
                guard let setDir = try run.backup(tier: spec.tier).directory else { continue }
                var manifest = try XCTUnwrap(Repository.readManifest(setDir).0)
                manifest.startedAt = spec.startedAt
                try engine.repository.writeManifest(manifest, in: setDir)
            }
            let dry = try engine.prune(policy, dryRun: true, now: now)
            let before = Set(engine.repository.completeSets().map { "\($0.tier)/\($0.id)" })
            let real = try engine.prune(policy, dryRun: false, now: now)
            XCTAssertEqual(dry.map(\.id), real.map(\.id), "round \(round)")
            XCTAssertEqual(dry.map(\.remove), real.map(\.remove), "round \(round)")
            XCTAssertEqual(dry.map(\.reason), real.map(\.reason), "round \(round)")
            XCTAssertEqual(dry.map(\.bytes), real.map(\.bytes), "round \(round)")
            let after = Set(engine.repository.completeSets().map { "\($0.tier)/\($0.id)" })
            XCTAssertEqual(after, before.subtracting(real.filter(\.remove).map { "\($0.tier)/\($0.id)" }), "round \(round)")
            XCTAssertEqual(after, Set(real.filter { !$0.remove }.map { "\($0.tier)/\($0.id)" }))
        }
    }
}
