import CSynsightABI
import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightAttribution

/// Injected resets (ResetTTLEvidence.swift, ResetTTLAttribution.swift), from
/// synthetic events: the initial-TTL inference, the comparison with the
/// peer's baseline by hop count, and the record each refusal becomes.
@Suite("injected resets: the refusing RST's TTL against the peer's")
struct ResetTTLTests {
    static let client = Endpoint(addr: v4(198, 18, 90, 2), port: 41000)
    static let server = Endpoint(addr: v4(198, 18, 91, 2), port: 8080)

    static func baseline(_ lo: UInt8, _ hi: UInt8? = nil, packets: UInt32 = 3, at ts: UInt64 = 1_000_000_000) -> PeerTTLBaseline {
        PeerTTLBaseline(ttlMin: lo, ttlMax: hi ?? lo, ttlLast: hi ?? lo, packets: packets, lastTs: ts)
    }

    static func reset(at ts: UInt64, ttl: UInt8?, baseline: PeerTTLBaseline?, from: Endpoint = client, to: Endpoint = server,
                      family: AddressFamily = .ipv4) -> KernelEvent {
        .connectReset(ConnectReset(ts: ts, family: family, local: from, remote: to, netns: hostNS, ttl: ttl,
                                   baseline: baseline, hook: .fentry))
    }

    static func evidence(_ ttl: UInt8?, _ b: PeerTTLBaseline?) -> ResetTTLEvidence {
        ResetTTLEvidence(ttl: ttl, family: .ipv4, baseline: b, hook: "fentry/tcp_reset")
    }

    @Test("the initial TTL is the smallest of 64, 128, 255 not below what arrived; hops are the difference")
    func initialTTL() {
        let cases: [(UInt8, UInt8, Int)] = [(1, 64, 63), (63, 64, 1), (64, 64, 0), (65, 128, 63), (120, 128, 8),
                                            (128, 128, 0), (129, 255, 126), (250, 255, 5), (255, 255, 0)]
        for (observed, initial, hops) in cases {
            #expect(HopCount.initialTTL(observed: observed) == initial, "\(observed)")
            #expect(HopCount.hops(observed: observed) == hops, "\(observed)")
        }
    }

    @Test("verdicts: no baseline, consistent, differs (nearer and farther), unreadable")
    func verdicts() {
        #expect(Self.evidence(63, nil).verdict == .noBaseline && !Self.evidence(63, nil).likelyMiddlebox)
        #expect(Self.evidence(63, Self.baseline(63)).verdict == .consistent)
        let injected = Self.evidence(64, Self.baseline(63))
        #expect(injected.verdict == .differs && injected.likelyMiddlebox && injected.hopsCloser == 1)
        // A peer whose RSTs start from 255 and SYN-ACKs from 64, one hop away: the same distance.
        #expect(Self.evidence(254, Self.baseline(63)).verdict == .consistent)
        // A Windows-like middlebox (128) nearer than a Linux peer 9 hops away.
        let windows = Self.evidence(127, Self.baseline(55))
        #expect(windows.verdict == .differs && windows.hopsCloser == 8)
        // A baseline that varies by a hop (ECMP): within it is consistent; beyond it, farther.
        #expect(Self.evidence(62, Self.baseline(62, 63)).verdict == .consistent)
        let farther = Self.evidence(60, Self.baseline(62, 63))
        #expect(farther.verdict == .differs && farther.hopsCloser == -2)
        #expect(Self.evidence(nil, Self.baseline(63)).verdict == .unreadable)
    }

    @Test("the evidence object: the RST's TTL and hops, the baseline and its hops, the verdict")
    func json() {
        var ev = Self.evidence(64, Self.baseline(63, packets: 2))
        ev.baselineAgeMs = 1500
        let object = ev.json
        guard case .object(let f) = object else { Issue.record("not an object"); return }
        let keys = f.map(\.0)
        #expect(keys == ["field", "ttl", "initial_ttl", "hops", "baseline", "verdict", "likely_middlebox", "hops_closer", "hook"])
        let get = { (k: String) in f.first { $0.0 == k }?.1 }
        #expect(get("ttl") == .int(64) && get("hops") == .int(0) && get("verdict") == .string("differs"))
        guard case .object(let b)? = get("baseline") else { Issue.record("no baseline"); return }
        #expect(b.first { $0.0 == "hops_min" }?.1 == .int(1) && b.first { $0.0 == "packets" }?.1 == .int(2)
            && b.first { $0.0 == "age_ms" }?.1 == .int(1500))
        let v6 = ResetTTLEvidence(ttl: 64, family: .ipv6, baseline: nil, hook: "kprobe/tcp_reset")
        guard case .object(let g) = v6.json else { return }
        #expect(g.first { $0.0 == "field" }?.1 == .string("hop_limit") && !g.contains { $0.0 == "baseline" })
        #expect(v6.sentence(peer: Self.server.addr).contains("hop limit 64 (0 hops away)"))
    }

    /// The records of a remote peer's refusals: injected (differs), real (consistent), first (no baseline).
    static func remoteRefusals() -> [Record] {
        var e = engine()
        var out: [Record] = []
        let c2 = Endpoint(addr: client.addr, port: 41001), c3 = Endpoint(addr: client.addr, port: 41002)
        out += e.ingest(reset(at: 1_000_000_000, ttl: 63, baseline: nil))
        out += e.ingest(connectFailure(at: 1_000_000_100, from: client, to: server))
        out += e.ingest(reset(at: 2_000_000_000, ttl: 64, baseline: baseline(63, at: 1_500_000_000), from: c2))
        out += e.ingest(connectFailure(at: 2_000_000_100, from: c2, to: server))
        out += e.ingest(reset(at: 3_000_000_000, ttl: 63, baseline: baseline(63), from: c3))
        out += e.ingest(connectFailure(at: 3_000_000_100, from: c3, to: server))
        return out + e.finish()
    }

    @Test("a remote refusal: injected_reset_suspected when the hops differ, connection_refused otherwise, the reset in evidence")
    func remote() throws {
        let records = Self.remoteRefusals()
        try #require(records.count == 3, "\(records.map(\.json))")
        let byPort = Dictionary(uniqueKeysWithValues: records.map { ($0.local!.port, $0) })
        let first = try #require(byPort[41000]), injected = try #require(byPort[41001]), real = try #require(byPort[41002])
        #expect(first.cause == .unknown(.connectionRefused))
        #expect(first.evidence(.reset).flatMap { Self.field($0, "verdict") } == .string("no_baseline"))
        #expect(injected.reason == .unknown && injected.cause == .unknown(.injectedResetSuspected))
        let ev = try #require(injected.evidence(.reset))
        #expect(Self.field(ev, "ttl") == .int(64) && Self.field(ev, "likely_middlebox") == .bool(true) && Self.field(ev, "hops_closer") == .int(1))
        let hint = try #require(injected.hint)
        #expect(hint.contains("TTL 64 (0 hops away)") && hint.contains("TTL 63 (1 hop away, 3 measured)") && hint.contains("tcpdump"), "\(hint)")
        #expect(injected.process?.pid == 777)
        #expect(real.cause == .unknown(.connectionRefused) && Self.field(real.evidence(.reset)!, "verdict") == .string("consistent"))
        #expect(real.hint?.contains("TTL") == false)
    }

    @Test("a refusal of this host's own server: the no_listener record joined with the client carries the reset")
    func joinedNoListener() throws {
        var e = engine()
        let records = run(&e, [rst(at: 1_000, to: Self.server, from: Self.client),
                               Self.reset(at: 1_100, ttl: 64, baseline: Self.baseline(63)),
                               connectFailure(at: 1_200, from: Self.client, to: Self.server)])
        let r = try single(records)
        #expect(r.reason == .noListener && r.client?.pid == 777)
        let ev = try #require(r.evidence(.reset))
        #expect(Self.field(ev, "verdict") == .string("differs"))
        #expect(r.hint?.contains("likely middlebox") == true, "\(r.hint ?? "")")
    }

    @Test("a reset with no refusal to join leaves other records alone and expires")
    func unjoined() throws {
        var e = engine()
        var out = e.ingest(Self.reset(at: 1_000, ttl: 64, baseline: Self.baseline(63)))
        out += e.ingest(connectFailure(at: 2_000, from: Endpoint(addr: Self.client.addr, port: 50000), to: Self.server, errno: 113))
        let r = try single(out + e.finish())
        #expect(r.cause == .unknown(.hostUnreachable) && r.evidence(.reset) == nil)
        #expect(e.resets.notes.isEmpty)
    }

    @Test("the advice for injected_reset_suspected: capture on the path, the server's view, the middleboxes")
    func advice() {
        let a = Advice.for(reason: .unknown, cause: .unknown(.injectedResetSuspected),
                           facts: Advice.Facts(port: 8080, address: Self.server.addr, family: .ipv4))
        #expect(a.fix.contains("tcpdump") && a.fix.contains("198.18.91.2") && a.fix.contains("IPS"), "\(a.fix)")
        #expect(a.steps.count == 3 && a.steps.joined().contains("evidence.reset"))
        #expect(RecordCause(reason: .unknown, rawValue: "injected_reset_suspected") == .unknown(.injectedResetSuspected))
    }

    @Test("SYN_EV_CONNECT_RESET decodes every field")
    func decode() throws {
        var e = syn_ev_connect_reset()
        e.hdr = header(SYN_EV_CONNECT_RESET, size: MemoryLayout<syn_ev_connect_reset>.size, ts: 9)
        e.t = tuple(local: mapped(198, 18, 90, 2), lport: 41000, remote: mapped(198, 18, 91, 2), rport: 8080, family: 2)
        e.netns = 77; e.ttl = 64; e.baseline_packets = 3; e.baseline_min = 62; e.baseline_max = 63; e.baseline_last = 63
        e.baseline_last_ns = 5; e.source = UInt8(SYN_RTTL_SRC_KPROBE.rawValue)
        let raw = rawBytes(of: e)
        guard case .connectReset(let r) = try EventDecoder.decode(raw) else { Issue.record("wrong case"); return }
        #expect(r.ts == 9 && r.local == Self.client && r.remote == Self.server && r.netns == 77 && r.ttl == 64 && r.hook == .kprobe)
        #expect(r.baseline == PeerTTLBaseline(ttlMin: 62, ttlMax: 63, ttlLast: 63, packets: 3, lastTs: 5))
        e.baseline_packets = 0; e.ttl = 0
        guard case .connectReset(let none) = try EventDecoder.decode(rawBytes(of: e)) else { return }
        #expect(none.baseline == nil && none.ttl == nil)
        e.source = 9
        #expect(throws: DecodeError.unknownHook(9)) { try EventDecoder.decode(rawBytes(of: e)) }
        #expect(throws: DecodeError.truncated(kind: UInt8(SYN_EV_CONNECT_RESET.rawValue), got: 79, need: 80)) {
            try EventDecoder.decode(Array(raw.dropLast()))
        }
    }

    static func field(_ v: JSONValue, _ key: String) -> JSONValue? {
        if case .object(let f) = v { return f.first { $0.0 == key }?.1 }
        return nil
    }
}
