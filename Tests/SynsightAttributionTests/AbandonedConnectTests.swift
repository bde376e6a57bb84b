import CSynsightABI
import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightAttribution

/// A connect() its application gave up on while unanswered
/// (ConnectAbandoned, AbandonedConnects.swift), from synthetic events:
/// explained like a timeout, with `abandoned_by` and no errno.
@Suite("connect() attempts given up by their application")
struct AbandonedConnectTests {
    static let client = TimeoutCoreTests.client
    static let server = TimeoutCoreTests.server

    static func abandoned(at ts: UInt64, from: Endpoint = client, to: Endpoint = server, pid: UInt32 = 42,
                          closer: UInt32? = nil, exiting: Bool = false, seen: Bool = true, after: UInt64 = 3_002_000_000,
                          egress: ConnectTimeoutRoute.Egress? = .init(ifname: "dummy0", ifindex: 3, gateway: TimeoutCoreTests.gateway),
                          retransmits: UInt32 = 2, aborted: Bool = false) -> KernelEvent {
        let family: AddressFamily = from.addr.isV4Mapped ? .ipv4 : .ipv6
        let task = TaskInfo(pid: pid, comm: "curl")
        let attempt = ConnectError(ts: ts, connectTs: seen ? ts - min(after, ts) : nil, family: family, local: from, remote: to,
                                   task: seen ? task : nil, netns: hostNS, errno: 0)
        let route = ConnectTimeoutRoute(ts: ts, family: family, local: from, remote: to, netns: hostNS, egress: egress,
                                        synRetransmits: retransmits)
        return .connectAbandoned(ConnectAbandoned(attempt: attempt, route: route,
                                                  closer: TaskInfo(pid: closer ?? pid, comm: closer == nil ? "curl" : "supervisor"),
                                                  closerExiting: exiting, aborted: aborted))
    }

    /// One record of each shape: past the host, dropped on it, exited, unexplained.
    static func records() -> [Record] {
        var e = engine()
        var out = e.ingest(abandoned(at: 4_000_000_000))
        out += e.ingest(abandoned(at: 5_000_000_000, from: Endpoint(addr: client.addr, port: 41010), closer: 9, exiting: true))
        out += e.ingest(abandoned(at: 6_000_000_000, from: Endpoint(addr: client.addr, port: 41011),
                                  egress: .init(ifname: "lo", ifindex: 1, loopback: true)))
        out += e.ingest(abandoned(at: 7_000_000_000, from: Endpoint(addr: client.addr, port: 41012), seen: false))
        return out + e.finish()
    }

    @Test("given up past the host: connect_timeout/no_answer_past_host, abandoned_by application, after_ms the application's timeout, no errno")
    func pastHost() throws {
        var e = engine()
        let r = try single(e.ingest(Self.abandoned(at: 4_000_000_000)))
        #expect(r.kind == .connectFailure && r.reason == .connectTimeout)
        #expect(r.cause?.rawValue == Cause.ConnectTimeout.noAnswerPastHost.rawValue)
        #expect(r.process?.pid == 42 && r.port == 443 && r.local == Self.client)
        #expect(r.evidence("abandoned_by") == .string("application"))
        #expect(r.evidence("errno") == nil && r.evidence("closed_by") == nil)
        #expect(r.evidence("after_ms") == .int(3002))
        #expect(r.evidence("syn_retransmits") == .int(2) && r.evidence("egress_interface") == .string("dummy0"))
        #expect(r.evidence("hook") == .string("tp_btf/inet_sock_set_state (SYN_SENT -> CLOSE, no sk_err)"))
        let hint = r.hint ?? ""
        #expect(hint.hasPrefix("curl (pid 42) gave up connecting to 198.18.78.9:443 after 3002 ms (3 SYNs unanswered"), "\(hint)")
        #expect(hint.contains("left this host through dummy0") && hint.contains("past this host"), "\(hint)")
        #expect(e.finish().isEmpty)
    }

    @Test("closed with SO_LINGER 0: abandoned_by application, the hint says it reset the socket, the hook names the close's report in either mode")
    func lingerAbort() throws {
        for hook in [ClientErrorHook.errorReport, .stateChange] {
            var e = engine()
            e.clientErrorHook = hook
            let r = try single(e.ingest(Self.abandoned(at: 4_000_000_000, aborted: true)))
            #expect(r.reason == .connectTimeout && r.evidence("abandoned_by") == .string("application"))
            #expect(r.evidence("errno") == nil && r.port == 443 && r.local == Self.client)
            #expect(r.evidence("hook") == .string("tp_btf/inet_sk_error_report (ECONNRESET of a close with SO_LINGER 0 in SYN_SENT)"))
            let hint = r.hint ?? ""
            #expect(hint.contains("it reset the socket with SO_LINGER 0 before the kernel's own timeout"), "\(hint)")
        }
        var e = engine()
        e.clientErrorHook = .errorReport
        let plain = try single(e.ingest(Self.abandoned(at: 4_000_000_000)))
        #expect(plain.evidence("hook") == .string("tp_btf/tcp_destroy_sock (closed in SYN_SENT, no sk_err)"))
        #expect(plain.hint?.contains("it closed the socket before") == true)
    }

    @Test("a drop of the same attempt first: dropped_on_host names it, as for ETIMEDOUT")
    func droppedOnHost() throws {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.drops = DropState(reasons: DropReasonNames(core: kernel618))
        let drop = PacketDrop(ts: 1_000, family: .ipv4, local: Self.server, remote: Self.client, netns: 77,
                              reasonCode: 16, ifindex: 2, ifname: "veth-s1", client: TaskInfo(pid: 42, comm: "curl"))
        #expect(try single(e.ingest(.packetDrop(drop))).reason == .packetDropped)
        let r = try single(e.ingest(Self.abandoned(at: 3_002_001_000)))
        #expect(r.reason == .connectTimeout && r.cause?.rawValue == Cause.ConnectTimeout.droppedOnHost.rawValue)
        #expect(r.evidence("abandoned_by") == .string("application") && r.evidence("drop") != nil)
        #expect(r.hint?.contains("gave up connecting") == true && r.hint?.contains("drop reason ip_rpfilter") == true, "\(r.hint ?? "")")
    }

    @Test("closed as its process exited, by another task: abandoned_by process_exit, closed_by names the closer")
    func processExit() throws {
        var e = engine()
        let r = try single(e.ingest(Self.abandoned(at: 5_000_000_000, closer: 9, exiting: true)))
        #expect(r.evidence("abandoned_by") == .string("process_exit"))
        guard case .object(let closer)? = r.evidence("closed_by") else { Issue.record("no closed_by: \(r.json)"); return }
        #expect(closer.first { $0.0 == "pid" }?.1 == .int(9) && closer.first { $0.0 == "comm" }?.1 == .string("supervisor"))
        #expect(r.hint?.hasPrefix("curl (pid 42) exited while connecting to 198.18.78.9:443") == true, "\(r.hint ?? "")")
    }

    @Test("SYNs that never left the host and no drop seen: unknown/timed_out, still abandoned_by, no errno")
    func unexplained() throws {
        var e = engine()
        let r = try single(e.ingest(Self.abandoned(at: 6_000_000_000, egress: .init(ifname: "lo", ifindex: 1, loopback: true))))
        #expect(r.reason == .unknown && r.cause?.rawValue == Cause.Unknown.timedOut.rawValue)
        #expect(r.evidence("abandoned_by") == .string("application") && r.evidence("errno") == nil)
        #expect(r.hint?.contains("nothing traced on this host explains") == true, "\(r.hint ?? "")")
    }

    @Test("a firewall attempt still waiting for its client: decided as the drop its retransmissions said, then the abandoned attempt names it")
    func firewallAttempt() throws {
        let records = FirewallAbandonFixture.records()
        let fw = try #require(records.first { $0.reason == .firewallDrop }, "\(records.map(\.json))")
        #expect(fw.client?.pid == 42)
        let r = try #require(records.first { $0.reason == .connectTimeout }, "\(records.map(\.json))")
        #expect(r.cause?.rawValue == Cause.ConnectTimeout.droppedOnHost.rawValue)
        #expect(r.evidence("abandoned_by") == .string("application"))
    }

    @Test("SYN_EV_CONNECT_ABANDONED decodes every field")
    func decode() throws {
        var e = syn_ev_connect_abandoned()
        e.hdr.kind = UInt8(SYN_EV_CONNECT_ABANDONED.rawValue); e.hdr.abi = UInt8(SYN_ABI_VERSION); e.hdr.ts_ns = 5_000
        e.hdr.size = UInt16(MemoryLayout<syn_ev_connect_abandoned>.size)
        withUnsafeMutableBytes(of: &e.t.local) { $0[10] = 0xFF; $0[11] = 0xFF; $0[12] = 198; $0[13] = 18; $0[14] = 77; $0[15] = 2 }
        withUnsafeMutableBytes(of: &e.route.gateway) { $0[10] = 0xFF; $0[11] = 0xFF; $0[12] = 198; $0[13] = 18; $0[14] = 77; $0[15] = 1 }
        e.t.lport = 41000; e.t.rport = 443; e.t.family = 2
        e.task.pid = 42; e.task.tid = 43; e.connect_ts_ns = 1_000
        withUnsafeMutableBytes(of: &e.task.comm) { for (i, c) in "curl".utf8.enumerated() { $0[i] = c } }
        e.closer.pid = 9
        withUnsafeMutableBytes(of: &e.closer.comm) { for (i, c) in "sh".utf8.enumerated() { $0[i] = c } }
        e.closer_exiting = 1
        e.netns = 77; e.syn_retransmits = 3; e.route.ifindex = 3; e.route.gw_family = 2
        e.route.flags = UInt8(SYN_TMO_F_ROUTE | SYN_TMO_F_GATEWAY | SYN_TMO_F_STASHED)
        withUnsafeMutableBytes(of: &e.route.ifname) { for (i, c) in "eth0".utf8.enumerated() { $0[i] = c } }
        let raw = withUnsafeBytes(of: e) { Array($0) }
        guard case .connectAbandoned(let a) = try EventDecoder.decode(raw) else { Issue.record("wrong case"); return }
        #expect(a.attempt.ts == 5_000 && a.attempt.connectTs == 1_000 && a.attempt.errno == 0 && a.attempt.netns == 77)
        #expect(a.attempt.local == Self.client && a.attempt.remote.port == 443 && a.attempt.task?.pid == 42)
        #expect(a.attempt.task?.comm == "curl" && a.closer.pid == 9 && a.closer.comm == "sh" && a.by == .processExit)
        #expect(a.route.egress == .init(ifname: "eth0", ifindex: 3, gateway: TimeoutCoreTests.gateway))
        #expect(a.route.synRetransmits == 3 && a.route.fromLastRetransmit && !a.aborted)
        e.aborted = 1
        guard case .connectAbandoned(let aborted) = try EventDecoder.decode(withUnsafeBytes(of: e) { Array($0) }) else { return }
        #expect(aborted.aborted)
        e.aborted = 0

        e.task.pid = 0
        guard case .connectAbandoned(let unseen) = try EventDecoder.decode(withUnsafeBytes(of: e) { Array($0) }) else { return }
        #expect(unseen.attempt.task == nil && unseen.attempt.connectTs == nil)
        #expect(throws: DecodeError.truncated(kind: UInt8(SYN_EV_CONNECT_ABANDONED.rawValue), got: 199, need: 200)) {
            try EventDecoder.decode(Array(raw.dropLast()))
        }
    }
}

/// A firewall DROP of the attempt, then the client gives up before the
/// firewall's decision window ends.
enum FirewallAbandonFixture {
    static func records() -> [Record] {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.firewall.rules = FixtureRules()
        var out = e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 9201)))
        out += e.ingest(AbandonedConnectTests.abandoned(at: 600_000_000, from: fwClient,
                                                        to: Endpoint(addr: fwServer.addr, port: 9201), after: 500_000_000))
        return out + e.finish()
    }
}
