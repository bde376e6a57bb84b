import CSynsightABI
import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightAttribution

/// Timeouts explained (TimeoutAttribution.swift), from synthetic events: the
/// route record of a timed-out connect() joined with its ETIMEDOUT in either
/// order, a drop of the same attempt taking precedence, and the fallback
/// when no route record comes.
@Suite("connect() timeouts explained")
struct TimeoutCoreTests {
    static let client = Endpoint(addr: v4(198, 18, 77, 2), port: 41000)
    static let server = Endpoint(addr: v4(198, 18, 78, 9), port: 443)
    static let gateway = v4(198, 18, 77, 1)

    static func route(ts: UInt64, from: Endpoint = client, to: Endpoint = server, netns: UInt32 = hostNS,
                      egress: ConnectTimeoutRoute.Egress? = .init(ifname: "dummy0", ifindex: 3, gateway: gateway),
                      retransmits: UInt32 = 1, fromLastRetransmit: Bool = false) -> KernelEvent {
        .connectTimeout(ConnectTimeoutRoute(ts: ts, family: from.addr.isV4Mapped ? .ipv4 : .ipv6, local: from, remote: to,
                                            netns: netns, egress: egress, synRetransmits: retransmits,
                                            fromLastRetransmit: fromLastRetransmit))
    }

    /// One no_answer_past_host record per family (IPv4 via a gateway, route
    /// first; IPv6 directly connected, from the last retransmission, error first).
    static func pastHostRecords() -> [Record] {
        var e = engine()
        var out = e.ingest(route(ts: 3_000_000_000))
        out += e.ingest(connectFailure(at: 3_000_000_100, from: client, to: server, errno: 110))
        let c6 = Endpoint(addr: IPAddress(bytes: v6(0xfd00, 0x77, 0, 0, 0, 0, 0, 2)), port: 41001)
        let s6 = Endpoint(addr: IPAddress(bytes: v6(0xfd00, 0x77, 0, 0, 0, 0, 0, 9)), port: 443)
        out += e.ingest(connectFailure(at: 4_000_000_000, from: c6, to: s6, errno: 110))
        out += e.ingest(route(ts: 4_000_000_100, from: c6, to: s6, egress: .init(ifname: "eth0", ifindex: 2),
                              retransmits: 2, fromLastRetransmit: true))
        return out + e.finish()
    }

    @Test("route then ETIMEDOUT: no_answer_past_host with interface, ifindex, gateway, retransmissions")
    func pastHost() throws {
        var e = engine()
        #expect(e.ingest(Self.route(ts: 3_000_000_000)).isEmpty)
        let r = try single(e.ingest(connectFailure(at: 3_000_000_100, from: Self.client, to: Self.server, pid: 42, errno: 110)))
        #expect(r.kind == .connectFailure && r.reason == .connectTimeout)
        #expect(r.cause?.rawValue == Cause.ConnectTimeout.noAnswerPastHost.rawValue)
        #expect(r.process?.pid == 42 && r.port == 443)
        #expect(r.evidence("egress_interface") == .string("dummy0"))
        #expect(r.evidence("ifindex") == .int(3))
        #expect(r.evidence("next_hop") == .string("198.18.77.1"))
        #expect(r.evidence("syn_retransmits") == .int(1))
        #expect(r.evidence("route_from") == .string("socket"))
        #expect(r.hint?.contains("2 SYNs") == true && r.hint?.contains("past this host") == true)
        #expect(e.finish().isEmpty)
    }

    /// Timeouts of a connect() the kernel side did not see (no task, no
    /// connect() time): explained past the host, and not explained.
    static func unseenClientRecords() -> [Record] {
        var e = engine()
        let unseen = { (ts: UInt64) -> KernelEvent in
            .connectError(ConnectError(ts: ts, connectTs: nil, family: .ipv4, local: client, remote: server,
                                       task: nil, netns: hostNS, errno: 110))
        }
        var out = e.ingest(route(ts: 3_000_000_000))
        out += e.ingest(unseen(3_000_000_100))
        out += e.ingest(unseen(5_000_000_000))
        return out + e.finish()
    }

    @Test("a timed-out connect() whose connect() was not seen (its entry given up, or before synsight): still reported, without a process or a time")
    func unseenClient() throws {
        let records = Self.unseenClientRecords()
        #expect(records.count == 2)
        let past = try #require(records.first { $0.reason == .connectTimeout })
        #expect(past.process == nil && past.evidence("after_ms") == nil && past.evidence("client_seen") == .bool(false))
        #expect(past.hint?.contains("never answered \(ConnectError.unseenClient)'s 2 SYNs") == true, "\(past.hint ?? "")")
        let unknown = try #require(records.first { $0.reason == .unknown })
        #expect(unknown.process == nil && unknown.cause?.rawValue == Cause.Unknown.timedOut.rawValue)
        #expect(unknown.hint?.contains(ConnectError.unseenClient) == true, "\(unknown.hint ?? "")")
    }

    @Test("ETIMEDOUT then route (the report after tcp_done): joined when the route comes; directly connected")
    func errorFirst() throws {
        var e = engine()
        #expect(e.ingest(connectFailure(at: 3_000_000_000, from: Self.client, to: Self.server, errno: 110)).isEmpty)
        let r = try single(e.ingest(Self.route(ts: 3_000_000_050, egress: .init(ifname: "veth1", ifindex: 7),
                                               fromLastRetransmit: true)))
        #expect(r.cause?.rawValue == Cause.ConnectTimeout.noAnswerPastHost.rawValue)
        #expect(r.evidence("next_hop") == .string(ConnectTimeoutRoute.Egress.directlyConnected))
        #expect(r.evidence("route_from") == .string("last_retransmit"))
        #expect(r.hint?.contains("directly connected") == true)
    }

    @Test("no route record within the window, or one without a route, or another namespace's: unknown/timed_out")
    func fallback() throws {
        var e = engine()
        #expect(e.ingest(connectFailure(at: 1_000, from: Self.client, to: Self.server, errno: 110)).isEmpty)
        #expect(e.expire(now: 1_000 + 100_000_000).isEmpty)
        let r = try single(e.expire(now: 1_000 + 200_000_000))
        #expect(r.reason == .unknown && r.cause?.rawValue == Cause.Unknown.timedOut.rawValue)

        #expect(e.ingest(Self.route(ts: 5_000, egress: nil)).isEmpty)
        #expect(try single(e.ingest(connectFailure(at: 5_010, from: Self.client, to: Self.server, errno: 110))).reason == .unknown)

        #expect(e.ingest(Self.route(ts: 9_000, netns: 99)).isEmpty)
        #expect(e.ingest(connectFailure(at: 9_010, from: Self.client, to: Self.server, errno: 110)).isEmpty)
        #expect(try single(e.finish()).reason == .unknown)
    }

    @Test("a drop of the same attempt first: dropped_on_host names it; the drop stays its own record")
    func droppedOnHost() throws {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.drops = DropState(reasons: DropReasonNames(core: kernel618))
        let drop = PacketDrop(ts: 1_000, family: .ipv4, local: Self.server, remote: Self.client, netns: 77,
                              reasonCode: 16, ifindex: 2, ifname: "veth-s1", client: TaskInfo(pid: 31, comm: "curl"))
        let d = try single(e.ingest(.packetDrop(drop)))
        #expect(d.reason == .packetDropped && d.cause?.rawValue == "rp_filter")
        #expect(e.ingest(Self.route(ts: 3_000_000_000)).isEmpty)
        let r = try single(e.ingest(connectFailure(at: 3_000_000_100, from: Self.client, to: Self.server, pid: 31, errno: 110)))
        #expect(r.reason == .connectTimeout && r.cause?.rawValue == Cause.ConnectTimeout.droppedOnHost.rawValue)
        guard case .object(let fields)? = r.evidence("drop") else { Issue.record("no drop evidence: \(r.json)"); return }
        let f = Dictionary(fields, uniquingKeysWith: { a, _ in a })
        #expect(f["reason"] == .string("packet_dropped") && f["cause"] == .string("rp_filter"))
        #expect(f["drop_reason"] == .string("ip_rpfilter") && f["interface"] == .string("veth-s1"))
        #expect(f["netns"] == .int(77))
        #expect(r.evidence("egress_interface") == .string("dummy0"))
        #expect(r.hint?.contains("drop reason ip_rpfilter") == true)
        // A drop of another attempt (other client port) does not explain this one.
        #expect(e.ingest(Self.route(ts: 4_000_000_000, from: Endpoint(addr: Self.client.addr, port: 41001))).isEmpty)
        let other = try single(e.ingest(connectFailure(at: 4_000_000_100, from: Endpoint(addr: Self.client.addr, port: 41001),
                                                       to: Self.server, errno: 110)))
        #expect(other.cause?.rawValue == Cause.ConnectTimeout.noAnswerPastHost.rawValue)
    }

    @Test("a SYN dropped by a full accept queue explains the timeout; a loopback route is not past this host")
    func overflowAndLoopback() throws {
        var e = engine()
        let o = ListenOverflow(ts: 1_000, family: .ipv4, local: Self.server, remote: Self.client, listenerInode: 90,
                               netns: 55, listenerPID: 800, acceptQueue: 5, maxBacklog: 4, stage: .synAcceptQueue)
        let d = try single(e.ingest(.listenOverflow(o)))
        #expect(d.kind == .drop && d.reason == .acceptQueueFull)
        #expect(e.ingest(Self.route(ts: 3_000_000_000, egress: .init(ifname: "lo", ifindex: 1, loopback: true))).isEmpty)
        let r = try single(e.ingest(connectFailure(at: 3_000_000_100, from: Self.client, to: Self.server, errno: 110)))
        #expect(r.reason == .connectTimeout && r.cause?.rawValue == Cause.ConnectTimeout.droppedOnHost.rawValue)
        #expect(r.hint?.contains("full accept queue (5 of 4 waiting)") == true, "\(r.hint ?? "")")
        // The drop carries the queue's sizes as its record wrote them, not its listener or method.
        guard case .object(let fields)? = r.connectTimeoutEvidence?.drop else { Issue.record("no drop evidence: \(r.json)"); return }
        let queueKeys: Set<EvidenceKey> = [.stage, .acceptQueue, .maxBacklog, .synQueue, .somaxconn, .listenerDrops]
        let expected = d.evidence.filter { EvidenceKey(rawValue: $0.0).map(queueKeys.contains) ?? false }
        #expect(fields.map(\.0) == ["reason", "cause", "netns", "ts"] + expected.map(\.0))
        #expect(JSONValue.object(Array(fields.dropFirst(4))) == .object(expected))
        #expect(expected.map(\.0).starts(with: ["stage", "accept_queue", "max_backlog"]))

        let other = Endpoint(addr: Self.client.addr, port: 41002)
        #expect(e.ingest(Self.route(ts: 4_000_000_000, from: other, egress: .init(ifname: "lo", ifindex: 1, loopback: true))).isEmpty)
        let l = try single(e.ingest(connectFailure(at: 4_000_000_100, from: other, to: Self.server, errno: 110)))
        #expect(l.reason == .unknown && l.cause?.rawValue == Cause.Unknown.timedOut.rawValue)
    }

    @Test("SYN_EV_CONNECT_TIMEOUT decodes every field")
    func decode() throws {
        var e = syn_ev_connect_timeout()
        e.hdr.kind = UInt8(SYN_EV_CONNECT_TIMEOUT.rawValue); e.hdr.abi = UInt8(SYN_ABI_VERSION); e.hdr.ts_ns = 9
        e.hdr.size = UInt16(MemoryLayout<syn_ev_connect_timeout>.size)
        withUnsafeMutableBytes(of: &e.t.local) { $0[10] = 0xFF; $0[11] = 0xFF; $0[12] = 198; $0[13] = 18; $0[14] = 77; $0[15] = 2 }
        withUnsafeMutableBytes(of: &e.route.gateway) { $0[10] = 0xFF; $0[11] = 0xFF; $0[12] = 198; $0[13] = 18; $0[14] = 77; $0[15] = 1 }
        e.t.lport = 41000; e.t.rport = 443; e.t.family = 2
        e.netns = 77; e.route.ifindex = 3; e.syn_retransmits = 2; e.total_retrans = 2; e.route.gw_family = 2
        e.route.flags = UInt8(SYN_TMO_F_ROUTE | SYN_TMO_F_GATEWAY | SYN_TMO_F_STASHED | SYN_TMO_F_LOOPBACK)
        withUnsafeMutableBytes(of: &e.route.ifname) { for (i, c) in "dummy0".utf8.enumerated() { $0[i] = c } }
        let raw = withUnsafeBytes(of: e) { Array($0) }
        guard case .connectTimeout(let t) = try EventDecoder.decode(raw) else { Issue.record("wrong case"); return }
        #expect(t.ts == 9 && t.local == Self.client && t.remote.port == 443 && t.netns == 77)
        #expect(t.egress == .init(ifname: "dummy0", ifindex: 3, gateway: Self.gateway, loopback: true))
        #expect(t.synRetransmits == 2 && t.fromLastRetransmit)

        e.route.flags = 0
        guard case .connectTimeout(let none) = try EventDecoder.decode(withUnsafeBytes(of: e) { Array($0) }) else { return }
        #expect(none.egress == nil && !none.fromLastRetransmit)
        #expect(throws: DecodeError.truncated(kind: UInt8(SYN_EV_CONNECT_TIMEOUT.rawValue), got: 111, need: 112)) {
            try EventDecoder.decode(Array(raw.dropLast()))
        }
    }
}
