import CSynsightABI
import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution

/// Kernel drops of handshake segments without a kernel: the record's
/// decoding, naming reasons from synthetic BTF enum lists (two kernels that
/// number them differently, the 6.4+ subsystems), the cause table, and the
/// engine's record.

/// The start of `enum skb_drop_reason` as 6.1 numbers it (no SKB_CONSUMED).
let kernel61: [(String, Int64)] = [
    ("SKB_NOT_DROPPED_YET", 0), ("SKB_DROP_REASON_NOT_SPECIFIED", 1), ("SKB_DROP_REASON_NO_SOCKET", 2),
    ("SKB_DROP_REASON_PKT_TOO_SMALL", 3), ("SKB_DROP_REASON_TCP_CSUM", 4), ("SKB_DROP_REASON_SOCKET_FILTER", 5),
    ("SKB_DROP_REASON_UDP_CSUM", 6), ("SKB_DROP_REASON_NETFILTER_DROP", 7), ("SKB_DROP_REASON_OTHERHOST", 8),
    ("SKB_DROP_REASON_IP_CSUM", 9), ("SKB_DROP_REASON_IP_INHDR", 10), ("SKB_DROP_REASON_IP_RPFILTER", 11),
    ("SKB_DROP_REASON_MAX", 12),
]
/// The same reasons as 6.18 numbers them, with the subsystem mask.
let kernel618: [(String, Int64)] = [
    ("SKB_NOT_DROPPED_YET", 0), ("SKB_CONSUMED", 1), ("SKB_DROP_REASON_NOT_SPECIFIED", 2),
    ("SKB_DROP_REASON_NO_SOCKET", 3), ("SKB_DROP_REASON_NETFILTER_DROP", 12), ("SKB_DROP_REASON_IP_RPFILTER", 16),
    ("SKB_DROP_REASON_IP_INNOROUTES", 88), ("SKB_DROP_REASON_TC_INGRESS", 73), ("SKB_DROP_REASON_MAX", 128),
    ("SKB_DROP_REASON_SUBSYS_MASK", 0xFFFF_0000),
]
let subsys618: [(String, Int64)] = [
    ("SKB_DROP_REASON_SUBSYS_CORE", 0), ("SKB_DROP_REASON_SUBSYS_MAC80211_UNUSABLE", 1),
    ("SKB_DROP_REASON_SUBSYS_OPENVSWITCH", 2), ("SKB_DROP_REASON_SUBSYS_NUM", 3),
]
/// openvswitch's `enum ovs_drop_reason` (module BTF): full values.
let ovsReasons: [(String, Int64)] = [
    ("__OVS_DROP_REASON", 0x20000), ("OVS_DROP_LAST_ACTION", 0x20001), ("OVS_DROP_ACTION_ERROR", 0x20002),
]

@Suite("drops: reason names from BTF")
struct DropReasonNameTests {
    @Test("the same reason is named on kernels that number it differently")
    func renumbered() {
        let old = DropReasonNames(core: kernel61), new = DropReasonNames(core: kernel618)
        #expect(old.name(11).name == "ip_rpfilter")
        #expect(new.name(16).name == "ip_rpfilter")
        #expect(old.name(16).name == "unknown" && !old.name(16).known)
        #expect(new.name(1).name == "consumed" && new.name(73).name == "tc_ingress")
        // Markers are not reasons.
        #expect(old.count == 12 && new.count == 8)
        #expect(new.name(128).name == "unknown")
    }

    @Test("an unnamed value keeps its number")
    func unknown() {
        let n = DropReasonNames(core: kernel618).name(200)
        #expect(n.name == "unknown" && n.code == 200 && n.subsystem == nil && !n.known)
    }

    @Test("6.4+ subsystems: named by enum skb_drop_reason_subsys and the subsystem's own enum")
    func subsystems() {
        let n = DropReasonNames(core: kernel618, subsystems: subsys618, subsystemReasons: ovsReasons)
        #expect(n.subsystemCount == 2)
        let last = n.name(0x20001)
        #expect(last.name == "openvswitch:last_action" && last.subsystem == "openvswitch" && last.known)
        #expect(n.name(0x20002).name == "openvswitch:action_error")
        // A subsystem whose module is not loaded (no enum): its name and the number.
        let wifi = n.name(0x10005)
        #expect(wifi.name == "mac80211_unusable:unknown" && wifi.subsystem == "mac80211_unusable" && !wifi.known)
        // A subsystem this kernel does not have.
        #expect(n.name(0x70001).name == "subsystem_7:unknown")
    }

    @Test("a subsystem enum's shared prefix is dropped")
    func commonPrefix() {
        #expect(DropReasonNames.commonPrefix(["RX_DROP_U_MIC_FAIL", "RX_DROP_U_REPLAY"]) == "RX_DROP_U_")
        #expect(DropReasonNames.commonPrefix(["OVS_DROP_LAST_ACTION"]) == "")
    }
}

@Suite("drops: causes")
struct DropCauseTests {
    func name(_ s: String) -> DropReasonName { DropReasonName(name: s, code: 1, subsystem: nil, known: true) }

    @Test(arguments: [("ip_rpfilter", DropCause.rpFilter), ("ip_innoroutes", .noRoute), ("ip_outnoroutes", .noRoute),
                      ("tc_ingress", .bpfProgram), ("tc_egress", .bpfProgram), ("bpf_cgroup_egress", .bpfProgram),
                      ("xdp", .bpfProgram), ("xfrm_policy", .xfrmPolicy), ("socket_filter", .socketFilter),
                      ("tcp_csum", .checksum), ("tcp_md5failure", .tcpMD5),
                      ("tcp_minttl", .minTTL), ("not_specified", .unspecified), ("a_reason_of_2030", .other)])
    func family(reason: String, cause: DropCause) {
        #expect(DropCause.of(name(reason)) == cause)
    }

    @Test("each kernel reason belongs to one family")
    func oneFamily() {
        let all = DropCause.reasons.values.flatMap { $0 }
        #expect(all.count == Set(all).count)
    }

    @Test("IP_INADDRERRORS: forwarding off for IPv4 (ip_error sets it only then), for IPv6 only at ip6_forward (else a destination it cannot take)")
    func forwardingDisabled() {
        #expect(DropCause.of(name("ip_inaddrerrors"), family: .ipv4, function: "ip_error") == .forwardingDisabled)
        #expect(DropCause.of(name("ip_inaddrerrors"), family: .ipv6, function: "ip6_forward") == .forwardingDisabled)
        #expect(DropCause.of(name("ip_inaddrerrors"), family: .ipv6, function: "ip6_pkt_drop") == .badDestination)
        #expect(DropCause.of(name("ip_inaddrerrors"), family: .ipv6, function: nil) == .badDestination)
        #expect(DropCause.forwardingDisabled.sysctl(family: .ipv4, interface: "docker0") == "net.ipv4.conf.docker0.forwarding")
    }

    @Test("a subsystem's reasons: openvswitch, else other")
    func subsystemFamily() {
        #expect(DropCause.of(DropReasonName(name: "openvswitch:last_action", code: 0x20001, subsystem: "openvswitch", known: true)) == .openvswitch)
        #expect(DropCause.of(DropReasonName(name: "mac80211_unusable:unknown", code: 0x10001, subsystem: "mac80211_unusable", known: false)) == .other)
    }
}

@Suite("drops: decoding and attribution")
struct DropAttributionTests {
    func bytes<T>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    static let server = Endpoint(addr: IPAddress(v4: 198, 18, 40, 1), port: 8080)
    static let client = Endpoint(addr: IPAddress(v4: 198, 18, 41, 2), port: 40000)

    struct Symbols: KernelSymbolizer {
        func symbolize(_ address: UInt64) -> (name: String, offset: UInt64)? {
            switch address {
            case 0xFFFF_FFFF_8100_0260: return ("ip_rcv_finish_core", 0x260)
            case 0xFFFF_FFFF_8200_0010: return ("tcp_v4_rcv", 0x10)
            default: return nil
            }
        }
    }

    func engine() -> AttributionEngine {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.drops = DropState(reasons: DropReasonNames(core: kernel618, subsystems: subsys618), symbols: Symbols())
        return e
    }

    func drop(ts: UInt64, code: UInt32 = 16, flags: UInt8 = 0x02, location: UInt64 = 0xFFFF_FFFF_8100_0260,
              client: TaskInfo? = TaskInfo(pid: 31, comm: "curl"), isn: UInt32 = 0x5EED) -> PacketDrop {
        let synack = flags & 0x12 == 0x12
        return PacketDrop(ts: ts, family: .ipv4, local: synack ? Self.client : Self.server,
                          remote: synack ? Self.server : Self.client, netns: 77, reasonCode: code,
                          location: location, ifindex: 2, ifname: "veth-s1", tcpFlags: flags,
                          hook: .prerouting, client: client, isn: isn)
    }

    @Test("SYN_EV_PKT_DROP decodes every field")
    func decode() throws {
        var e = syn_ev_pkt_drop()
        e.hdr.kind = UInt8(SYN_EV_PKT_DROP.rawValue); e.hdr.abi = UInt8(SYN_ABI_VERSION); e.hdr.ts_ns = 9
        e.hdr.size = UInt16(MemoryLayout<syn_ev_pkt_drop>.size)
        withUnsafeMutableBytes(of: &e.t.local) { $0[10] = 0xFF; $0[11] = 0xFF; $0[12] = 198; $0[13] = 18; $0[14] = 40; $0[15] = 1 }
        e.t.lport = 8080; e.t.rport = 40000; e.t.family = 2
        e.task.pid = 31
        e.location = 0xFFFF_FFFF_8100_0260; e.netns = 77; e.reason = 0x20001; e.ifindex = 2; e.tcp_flags = 0x02
        e.hook = UInt8(SYN_FW_HOOK_PREROUTING.rawValue); e.flags = UInt8(SYN_FW_F_TASK)
        withUnsafeMutableBytes(of: &e.ifname) { for (i, c) in "eth0".utf8.enumerated() { $0[i] = c } }
        e.isn = 0xDEAD_BEEF
        guard case .packetDrop(let d) = try EventDecoder.decode(bytes(e)) else { Issue.record("wrong case"); return }
        #expect(d.isn == 0xDEAD_BEEF)
        #expect(d.ts == 9 && d.local == Endpoint(addr: IPAddress(v4: 198, 18, 40, 1), port: 8080) && d.remote.port == 40000)
        #expect(d.reasonCode == 0x20001 && d.location == 0xFFFF_FFFF_8100_0260 && d.netns == 77)
        #expect(d.ifindex == 2 && d.ifname == "eth0" && d.hook == .prerouting && !d.hasSocket)
        #expect(d.client?.pid == 31 && d.direction == "ingress" && !d.isSynAck)

        var raw = bytes(e)
        raw.removeLast()
        #expect(throws: DecodeError.truncated(kind: UInt8(SYN_EV_PKT_DROP.rawValue), got: 143, need: 144)) {
            try EventDecoder.decode(raw)
        }
    }

    @Test("rp_filter: reason, cause, interface, sysctl, location and the hint")
    func rpFilter() throws {
        var e = engine()
        let r = try single(e.ingest(.packetDrop(drop(ts: 1_000))))
        #expect(r.kind == .drop && r.reason == .packetDropped && r.cause?.rawValue == "rp_filter" && r.port == 8080)
        #expect(r.local == Self.server && r.remote == Self.client && r.netns == 77 && r.client?.pid == 31)
        let ev = JSONValue.object(r.evidence)
        #expect(ev["drop_reason"]?.stringValue == "ip_rpfilter" && ev["drop_reason_code"]?.intValue == 16)
        #expect(ev["location"]?.stringValue == "ip_rcv_finish_core+0x260")
        #expect(ev["interface"]?.stringValue == "veth-s1" && ev["ifindex"]?.intValue == 2)
        #expect(ev["direction"]?.stringValue == "ingress" && ev["segment"]?.stringValue == "syn")
        #expect(ev["sysctl"]?.stringValue == "net.ipv4.conf.veth-s1.rp_filter")
        #expect(r.hint?.contains("reverse-path filter on veth-s1") == true)
        #expect(r.hint?.contains("net.ipv4.conf.veth-s1.rp_filter=2") == true)
        #expect(r.hint?.contains("198.18.41.2") == true)
    }

    @Test("retransmitted SYNs and the client's ETIMEDOUT are the same attempt")
    func oneRecordPerAttempt() {
        var e = engine()
        #expect(e.ingest(.packetDrop(drop(ts: 1_000))).count == 1)
        #expect(e.ingest(.packetDrop(drop(ts: 1_001_000_000))).isEmpty)
        let ce = ConnectError(ts: 2_000_000_000, connectTs: 0, family: .ipv4, local: Self.client, remote: Self.server,
                              task: TaskInfo(pid: 31, comm: "curl"), netns: 78, errno: 110)
        #expect(e.ingest(.connectError(ce)).isEmpty)
        // A refused connect is not explained by a drop.
        var refused = ce
        refused.errno = 111
        refused.local.port = 40001
        _ = e.ingest(.connectError(refused))
        #expect(!e.finish().isEmpty)
    }

    @Test("a new attempt reusing the 4-tuple (another ISN) is reported again; its SYN's retransmission is not")
    func reusedTuple() {
        var e = engine()
        #expect(e.ingest(.packetDrop(drop(ts: 1_000, isn: 1))).count == 1)
        #expect(e.ingest(.packetDrop(drop(ts: 1_001_000_000, isn: 1))).isEmpty)
        let again = e.ingest(.packetDrop(drop(ts: 2_000_000_000, isn: 2)))
        #expect(again.count == 1 && again.first?.cause?.rawValue == "rp_filter")
        #expect(e.ingest(.packetDrop(drop(ts: 3_000_000_000, isn: 2))).isEmpty)
        // TCP's own rejections need the same attempt twice: two attempts once each are not confirmed.
        var t = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        t.drops = DropState(reasons: DropReasonNames(core: kernel618 + [("SKB_DROP_REASON_TCP_INVALID_SYN", 46)]))
        #expect(t.ingest(.packetDrop(drop(ts: 1, code: 46, flags: 0x12, isn: 1))).isEmpty)
        #expect(t.ingest(.packetDrop(drop(ts: 2, code: 46, flags: 0x12, isn: 2))).isEmpty)
        #expect(t.ingest(.packetDrop(drop(ts: 3, code: 46, flags: 0x12, isn: 2))).count == 1)
    }

    @Test("a SYN-ACK drop: the service port is its source, the server is `local`")
    func synAck() throws {
        var e = engine()
        let r = try single(e.ingest(.packetDrop(drop(ts: 1, code: 73, flags: 0x12, client: nil))))
        #expect(r.port == 8080 && r.local == Self.server && r.remote == Self.client && r.cause?.rawValue == "bpf_program")
        let ev = JSONValue.object(r.evidence)
        #expect(ev["segment"]?.stringValue == "syn_ack" && ev["attach_point"]?.stringValue == "tc ingress")
    }

    @Test("a value this kernel cannot name: cause other, the number kept, the address when no symbol")
    func unknownReason() throws {
        var e = engine()
        let r = try single(e.ingest(.packetDrop(drop(ts: 1, code: 999, location: 0xFFFF_FFFF_9999_0000))))
        #expect(r.cause?.rawValue == "other")
        let ev = JSONValue.object(r.evidence)
        #expect(ev["drop_reason"]?.stringValue == "unknown" && ev["drop_reason_code"]?.intValue == 999)
        #expect(ev["location"]?.stringValue == "0xffffffff99990000")
        var other = engine()
        let sub = try single(other.ingest(.packetDrop(drop(ts: 2, code: 0x20009, location: 0))))
        #expect(JSONValue.object(sub.evidence)["drop_reason"]?.stringValue == "openvswitch:unknown")
        #expect(JSONValue.object(sub.evidence)["drop_reason_subsystem"]?.stringValue == "openvswitch")
        #expect(JSONValue.object(sub.evidence)["location"] == nil)
        #expect(sub.cause?.rawValue == "openvswitch")
    }

    @Test("every cause comes out of the engine, once each")
    func everyCause() {
        let recs = DropRecords.everyCause()
        // conntrack_full is decided from a NETFILTER_DROP (ConntrackCoreTests), not a drop reason.
        #expect(recs.map(\.cause?.rawValue) == DropCause.allCases.filter { $0 != .conntrackFull }.map(\.rawValue))
    }

    @Test("a retransmitted SYN freed by tcp_v4_rcv without a reason is not a failure")
    func benign() {
        var e = engine()
        #expect(e.ingest(.packetDrop(drop(ts: 1, code: 2, location: 0xFFFF_FFFF_8200_0010))).isEmpty)
        // The same reason elsewhere is reported.
        #expect(e.ingest(.packetDrop(drop(ts: 2, code: 2))).first?.cause?.rawValue == "unspecified")
        // A frame for another MAC address: a bridge's other ports drop their flooded copies.
        var other = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        other.drops = DropState(reasons: DropReasonNames(core: kernel618 + [("SKB_DROP_REASON_OTHERHOST", 13)]))
        #expect(other.ingest(.packetDrop(drop(ts: 3, code: 13))).isEmpty)
    }

    @Test("TCP's own rejections are reported at the second drop of the same attempt")
    func tcpStateNeedsARepeat() throws {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.drops = DropState(reasons: DropReasonNames(core: kernel618 + [("SKB_DROP_REASON_TCP_INVALID_SYN", 46)]))
        // A one-off (a duplicate SYN-ACK after the connection is up): nothing.
        #expect(e.ingest(.packetDrop(drop(ts: 1, code: 46, flags: 0x12))).isEmpty)
        // The same attempt dropped again: reported once, with the count.
        let r = try single(e.ingest(.packetDrop(drop(ts: 1_000_000_000, code: 46, flags: 0x12))))
        #expect(r.cause?.rawValue == "tcp_state")
        #expect(JSONValue.object(r.evidence)["drops"]?.intValue == 2)
        #expect(e.ingest(.packetDrop(drop(ts: 3_000_000_000, code: 46, flags: 0x12))).isEmpty)
    }
}

/// One `packet_dropped` record of every cause, through the engine (the
/// reason names built into a synthetic kernel, `tcp_state` dropped twice).
enum DropRecords {
    static func everyCause() -> [Record] {
        var core: [(String, Int64)] = []
        var codes: [DropCause: UInt32] = [.openvswitch: 0x20001]
        for (i, cause) in DropCause.allCases.enumerated() where cause != .openvswitch && cause != .conntrackFull {
            let name = cause == .other ? "a_reason_of_2030" : DropCause.reasons[cause]![0]
            core.append(("SKB_DROP_REASON_" + name.uppercased(), Int64(10 + i)))
            codes[cause] = UInt32(10 + i)
        }
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.drops = DropState(reasons: DropReasonNames(core: core, subsystems: subsys618, subsystemReasons: ovsReasons),
                            symbols: DropAttributionTests.Symbols())
        var out: [Record] = []
        for (i, cause) in DropCause.allCases.enumerated() where cause != .conntrackFull {
            let d = PacketDrop(ts: UInt64(i) * 10 + 1, family: .ipv4, local: DropAttributionTests.server,
                               remote: Endpoint(addr: IPAddress(v4: 198, 18, 41, 2), port: 41000 + UInt16(i)), netns: 77,
                               reasonCode: codes[cause]!, location: 0xFFFF_FFFF_8100_0260, ifindex: 2, ifname: "veth0",
                               client: TaskInfo(pid: 31, comm: "curl"))
            out += e.ingest(.packetDrop(d))
            if DropState.confirmedByRepeat.contains(cause) {
                var again = d
                again.ts += 1
                out += e.ingest(.packetDrop(again))
            }
        }
        return out
    }
}
