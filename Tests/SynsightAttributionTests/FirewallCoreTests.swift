import CSynsightABI
import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution

/// Firewall records, reject/drop decisions and rule matching, without a kernel.
/// The ruleset fixture was recorded with `nft -j list ruleset` / `nft -a list
/// ruleset` in a scratch namespace holding native nft rules, a base chain with
/// `policy drop`, and iptables-nft REJECT/DROP rules.

@Suite("firewall: decoding")
struct FirewallDecodeTests {
    func bytes<T>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    @Test("SYN_EV_FW_DROP decodes every field")
    func drop() throws {
        var e = syn_ev_fw_drop()
        e.hdr.kind = UInt8(SYN_EV_FW_DROP.rawValue); e.hdr.abi = UInt8(SYN_ABI_VERSION); e.hdr.ts_ns = 123
        e.hdr.size = UInt16(MemoryLayout<syn_ev_fw_drop>.size)
        withUnsafeMutableBytes(of: &e.t.local) { $0[10] = 0xFF; $0[11] = 0xFF; $0[12] = 198; $0[13] = 18; $0[14] = 7; $0[15] = 1 }
        withUnsafeMutableBytes(of: &e.t.remote) { $0[10] = 0xFF; $0[11] = 0xFF; $0[12] = 198; $0[13] = 18; $0[14] = 7; $0[15] = 2 }
        e.t.lport = 9110; e.t.rport = 40000; e.t.family = 2
        e.task.pid = 55; e.task.tid = 56
        withUnsafeMutableBytes(of: &e.task.comm) { $0[0] = UInt8(ascii: "n"); $0[1] = UInt8(ascii: "c") }
        e.skbaddr = 0xFFFF_8888_0000_1000; e.location = 0xFFFF_FFFF_8100_0000
        e.netns = 4026531840; e.mark = 0x1140; e.ifindex = 3; e.tcp_flags = 0x02
        e.hook = UInt8(SYN_FW_HOOK_OUTPUT.rawValue)
        e.flags = UInt8(SYN_FW_F_SK | SYN_FW_F_TASK | SYN_FW_F_PROC_CTX | SYN_FW_F_CT_COUNT)
        e.ct_state = UInt8(SYN_CT_INVALID.rawValue); e.ct_count = 64; e.reason = 12
        withUnsafeMutableBytes(of: &e.ifname) { $0[0] = UInt8(ascii: "v"); $0[1] = UInt8(ascii: "0") }
        e.isn = 0x0102_0304
        guard case .firewallDrop(let d) = try EventDecoder.decode(bytes(e)) else { Issue.record("wrong case"); return }
        #expect(d.isn == 0x0102_0304)
        #expect(d.ctState == .invalid && d.ctCount == 64 && d.reasonCode == 12 && d.ifname == "v0")
        #expect(d.ts == 123 && d.family == .ipv4 && d.netns == 4026531840 && d.mark == 0x1140 && d.ifindex == 3)
        #expect(d.local == fwServer)
        #expect(d.remote == fwClient)
        #expect(d.hook == .output && d.hasSocket && d.processContext && d.isSyn)
        #expect(d.client?.pid == 55 && d.client?.comm == "nc")
        #expect(d.skbAddr == 0xFFFF_8888_0000_1000 && d.location == 0xFFFF_FFFF_8100_0000)
    }

    @Test("SYN_EV_FW_DROP without SYN_FW_F_TASK has no client")
    func dropNoTask() throws {
        var e = syn_ev_fw_drop()
        e.hdr.kind = UInt8(SYN_EV_FW_DROP.rawValue); e.hdr.abi = UInt8(SYN_ABI_VERSION)
        e.t.family = 10; e.tcp_flags = 0x12; e.task.pid = 99
        guard case .firewallDrop(let d) = try EventDecoder.decode(bytes(e)) else { Issue.record("wrong case"); return }
        #expect(d.client == nil && !d.isSyn && d.family == .ipv6 && d.hook == .unknown)
        #expect(d.ctState == .unknown && d.ctCount == nil && d.ifname.isEmpty)
    }

    @Test("SYN_EV_FW_ICMP, SYN_EV_FW_SYN_RETRANS and SYN_EV_FW_SOFT_ERROR decode")
    func others() throws {
        var i = syn_ev_fw_icmp()
        i.hdr.kind = UInt8(SYN_EV_FW_ICMP.rawValue); i.hdr.abi = UInt8(SYN_ABI_VERSION)
        i.t.family = 2; i.t.lport = 80; i.skbaddr = 7; i.type = 3; i.code = 13; i.netns = 5
        guard case .firewallICMP(let ic) = try EventDecoder.decode(bytes(i)) else { Issue.record("wrong case"); return }
        #expect(ic.skbAddr == 7 && ic.local.port == 80 && ic.rejectWith == "icmp admin-prohibited" && ic.netns == 5)

        var r = syn_ev_fw_syn_retrans()
        r.hdr.kind = UInt8(SYN_EV_FW_SYN_RETRANS.rawValue); r.hdr.abi = UInt8(SYN_ABI_VERSION)
        r.t.family = 2; r.t.lport = 40000; r.t.rport = 9110; r.task.pid = 77; r.netns = 9
        guard case .synRetransmit(let rt) = try EventDecoder.decode(bytes(r)) else { Issue.record("wrong case"); return }
        #expect(rt.task.pid == 77 && rt.local.port == 40000 && rt.remote.port == 9110 && rt.netns == 9)

        var s = syn_ev_connect_error()
        s.hdr.kind = UInt8(SYN_EV_FW_SOFT_ERROR.rawValue); s.hdr.abi = UInt8(SYN_ABI_VERSION)
        s.t.family = 2; s.err = 111; s.task.pid = 78
        guard case .connectError(let ce) = try EventDecoder.decode(bytes(s)) else { Issue.record("wrong case"); return }
        #expect(ce.errno == 111 && ce.task?.pid == 78)
    }

    @Test("truncated firewall records are rejected with their size")
    func truncated() {
        for (kind, size) in [(SYN_EV_FW_DROP.rawValue, MemoryLayout<syn_ev_fw_drop>.size),
                             (SYN_EV_FW_ICMP.rawValue, MemoryLayout<syn_ev_fw_icmp>.size),
                             (SYN_EV_FW_SYN_RETRANS.rawValue, MemoryLayout<syn_ev_fw_syn_retrans>.size)] {
            var raw = [UInt8](repeating: 0, count: size - 1)
            raw[0] = UInt8(kind); raw[1] = UInt8(SYN_ABI_VERSION)
            #expect(throws: DecodeError.truncated(kind: UInt8(kind), got: size - 1, need: size)) { try EventDecoder.decode(raw) }
        }
        #expect(MemoryLayout<syn_ev_fw_drop>.size == 160)
        #expect(MemoryLayout<syn_ev_fw_icmp>.size == 72)
        #expect(MemoryLayout<syn_ev_fw_syn_retrans>.size == 112)
    }
}

@Suite("firewall: reject or drop")
struct FirewallDecisionTests {
    func engine() -> AttributionEngine {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.firewall.rules = FixtureRules()
        return e
    }

    @Test("ECONNREFUSED from the local client: firewall_reject by client_errno, with the rule and the client")
    func clientRefused() {
        var e = engine()
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 1_000))).isEmpty)
        let out = e.ingest(.connectError(fwConnectError(ts: 2_000, errno: 111)))
        #expect(out.count == 1)
        let r = out[0]
        #expect(r.kind == .refusal && r.reason == .firewallReject && r.port == 9110)
        #expect(r.client?.pid == 4242)
        #expect(r.json["evidence"]?["method"]?.stringValue == "client_errno")
        #expect(r.json["evidence"]?["reject_with"]?.stringValue == "tcp-reset")
        #expect(r.json["evidence"]?["table"]?.stringValue == "inet filter")
        #expect(r.json["evidence"]?["handle"]?.intValue == 3)
        #expect(r.json["evidence"]?["rule"]?.stringValue == "tcp dport 9110 reject with tcp reset comment \"x\"")
        #expect(r.hint?.contains("handle 3") == true)
        #expect(e.finish().isEmpty)
    }

    @Test("the client outcome may arrive before the drop")
    func earlyClient() {
        var e = engine()
        #expect(e.ingest(.connectError(fwConnectError(ts: 1_000, errno: 111))).isEmpty)
        let out = e.ingest(.firewallDrop(fwDrop(ts: 2_000)))
        #expect(out.first?.reason == .firewallReject && out.first?.client?.pid == 4242)
    }

    @Test("ICMP for the same skb: firewall_reject by icmp_send, waits for the client")
    func icmp() {
        var e = engine()
        let ic = FirewallICMP(ts: 900, local: Endpoint(addr: fwServer.addr, port: 9111), remote: fwClient, netns: 7, skbAddr: 0xBB)
        #expect(e.ingest(.firewallICMP(ic)).isEmpty)
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 9111, skb: 0xBB))).isEmpty)
        let out = e.ingest(.connectError(fwConnectError(ts: 5_000, port: 9111, errno: 111)))
        #expect(out.count == 1)
        #expect(out.first?.reason == .firewallReject && out.first?.client?.pid == 4242)
        #expect(out.first?.json["evidence"]?["method"]?.stringValue == "icmp_send")
        #expect(out.first?.json["evidence"]?["reject_with"]?.stringValue == "icmp port-unreachable")
        #expect(out.first?.json["evidence"]?["handle"]?.intValue == 4)
    }

    @Test("a second drop of the same 4-tuple: firewall_drop by retransmission, reported once")
    func retransmission() {
        var e = engine()
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 9112, skb: 1))).isEmpty)
        let out = e.ingest(.firewallDrop(fwDrop(ts: 1_001_000_000, port: 9112, skb: 2)))
        #expect(out.count == 1)
        #expect(out.first?.kind == .drop && out.first?.reason == .firewallDrop)
        #expect(out.first?.json["evidence"]?["method"]?.stringValue == "retransmission")
        // 10.0.0.0/8 does not hold 198.18.7.2: the set rule does not match; the ip strict
        // table's input policy drops it.
        #expect(out.first?.json["evidence"]?["table"]?.stringValue == "ip strict")
        #expect(out.first?.json["evidence"]?["rule"]?.stringValue == "policy drop")
        #expect(out.first?.hint?.contains("policy drop") == true)
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 3_001_000_000, port: 9112, skb: 3))).isEmpty)
        #expect(e.ingest(.connectError(fwConnectError(ts: 130_000_000_000, port: 9112, errno: 110))).isEmpty)
    }

    @Test("a client reusing its 4-tuple after a reported attempt starts a new attempt (another ISN): reported again")
    func reusedTupleAfterDecision() {
        var e = engine()
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 9112, isn: 100))).isEmpty)
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 1_001_000_000, port: 9112, isn: 100))).count == 1)
        // The same attempt again: a retransmission, not reported.
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 3_001_000_000, port: 9112, isn: 100))).isEmpty)
        // A new attempt 5 s later, same 4-tuple: pending, then refused.
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 5_000_000_000, port: 9112, isn: 7_000))).isEmpty)
        let out = e.ingest(.connectError(fwConnectError(ts: 5_000_100_000, port: 9112, errno: 111)))
        #expect(out.count == 1)
        #expect(out.first?.reason == .firewallReject && out.first?.client?.pid == 4242)
        #expect(out.first?.json["evidence"]?["method"]?.stringValue == "client_errno")
        #expect(out.first?.json["evidence"]?["drops"]?.intValue == 1)
    }

    @Test("a segment without an ISN (data, a FIN) joins the reported attempt of its 4-tuple")
    func noISNJoins() {
        var e = engine()
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 9112, isn: 100))).isEmpty)
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 2_000, port: 9112, flags: 0x18, isn: 0))).count == 1)
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 3_000, port: 9112, flags: 0x18, isn: 0))).isEmpty)
        #expect(e.finish().isEmpty)
    }

    @Test("a new attempt on a pending attempt's 4-tuple decides the pending one (single_drop) and waits itself")
    func reusedTupleWhilePending() {
        var e = engine()
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 9200, isn: 1))).isEmpty)
        // The first attempt was answered (its refused client closed without an error
        // seen here); the client's next attempt reuses the port 1 ms later.
        let first = e.ingest(.firewallDrop(fwDrop(ts: 1_001_000, port: 9200, isn: 2)))
        #expect(first.count == 1)
        #expect(first.first?.json["evidence"]?["method"]?.stringValue == "single_drop")
        #expect(first.first?.json["evidence"]?["drops"]?.intValue == 1)
        #expect(first.first?.ts == ClockMapping(bootToEpochOffsetNs: 0).epoch(1_000))
        let second = e.finish()
        #expect(second.count == 1)
        #expect(second.first?.ts == ClockMapping(bootToEpochOffsetNs: 0).epoch(1_001_000))
        #expect(second.first?.json["evidence"]?["drops"]?.intValue == 1)
    }

    @Test("the local client's SYN retransmission decides DROP and names the client")
    func clientRetransmit() {
        var e = engine()
        #expect(e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 9125))).isEmpty)
        let rt = SynRetransmit(ts: 1_000_001_000, family: .ipv4, local: fwClient, remote: Endpoint(addr: fwServer.addr, port: 9125),
                               task: TaskInfo(pid: 31, comm: "wget"), netns: 8)
        let out = e.ingest(.synRetransmit(rt))
        #expect(out.first?.reason == .firewallDrop && out.first?.client?.pid == 31)
        #expect(out.first?.json["evidence"]?["rule"]?.stringValue == "tcp dport 9120-9130 drop")
    }

    @Test("ETIMEDOUT from the client: firewall_drop by client_errno")
    func clientTimedOut() {
        var e = engine()
        _ = e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 9201)))
        let out = e.ingest(.connectError(fwConnectError(ts: 2_000, port: 9201, errno: 110)))
        #expect(out.first?.kind == .drop && out.first?.json["evidence"]?["table"]?.stringValue == "ip filter")
        #expect(out.first?.hint?.contains("iptables") == true)
    }

    @Test("a single drop and silence: decided at the window's end by the rule's verdict (single_drop)")
    func singleDrop() {
        var e = engine()
        _ = e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 9140, hook: .output)))
        _ = e.ingest(.firewallDrop(fwDrop(ts: 2_000, port: 9200)))
        #expect(e.expire(now: 1_000_000_000).isEmpty)
        let out = e.expire(now: 2_000_000_000)
        #expect(out.count == 2)
        let drop = out.first { $0.port == 9140 }, reject = out.first { $0.port == 9200 }
        #expect(drop?.kind == .drop && drop?.json["evidence"]?["method"]?.stringValue == "single_drop")
        #expect(drop?.json["evidence"]?["chain"]?.stringValue == "output")
        #expect(reject?.kind == .refusal && reject?.json["evidence"]?["reject_with"]?.stringValue == "tcp-reset")
        #expect(reject?.json["evidence"]?["chain"]?.stringValue == "INPUT")
    }

    @Test("without a rule source: still decided, hint tells how to find the rule")
    func noRules() {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        _ = e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 5555)))
        let out = e.finish()
        #expect(out.count == 1 && out.first?.reason == .firewallReject)
        #expect(out.first?.hint?.contains("nft -a list ruleset") == true)
    }

    @Test("a dropped SYN-ACK is a drop on the service's port")
    func synAck() {
        var e = engine()
        _ = e.ingest(.firewallDrop(fwDrop(ts: 1_000, port: 40001, flags: 0x12)))
        let out = e.finish()
        #expect(out.first?.kind == .drop && out.first?.port == 40000)
        #expect(out.first?.json["evidence"]?["syn"] == .bool(false))
    }
}
