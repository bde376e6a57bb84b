import CSynsightABI
import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution

/// The handshake's final ACK, and the RST or ICMP error answering a SYN,
/// dropped on this host (issue 17 item 1), without a kernel: the segment each
/// record names, both ends from the SYN's view, one record per attempt and
/// segment, the hint's consequence, and the timeout they explain.
@Suite("drops: the final ACK and the answers")
struct AnswerDropTests {
    static let server = Endpoint(addr: IPAddress(v4: 198, 18, 40, 1), port: 8080)
    static let client = Endpoint(addr: IPAddress(v4: 198, 18, 41, 2), port: 40000)

    /// A kernel with the 6.18 numbering of DropCoreTests.
    static func engine() -> AttributionEngine {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.drops = DropState(reasons: DropReasonNames(core: kernel618, subsystems: subsys618))
        return e
    }

    /// A segment as BPF sends it: `local` its destination (an ICMP's: the quoted SYN's).
    static func drop(ts: UInt64, _ segment: HandshakeSegment, code: UInt32 = 16, icmpCode: UInt8 = 3) -> PacketDrop {
        let flags: UInt8 = [.syn: 0x02, .synAck: 0x12, .ack: 0x10, .rst: 0x14, .icmp: 0x02][segment]!
        let fromServer = segment.fromService
        return PacketDrop(ts: ts, family: .ipv4, local: fromServer ? client : server, remote: fromServer ? server : client,
                          netns: 77, reasonCode: code, ifindex: 2, ifname: "veth-s1", tcpFlags: flags,
                          hook: fromServer || segment == .icmp ? .output : .prerouting, hasSocket: fromServer || segment == .icmp,
                          icmpCode: segment == .icmp ? icmpCode : nil)
    }

    @Test("the ICMP and handshake-shape flags decode: an ICMP's code, the segment, the service end")
    func decode() throws {
        var p = syn_ev_pkt_drop()
        p.hdr = header(SYN_EV_PKT_DROP, size: MemoryLayout<syn_ev_pkt_drop>.size, ts: 0)
        p.t.lport = 8080; p.t.rport = 40000; p.t.family = 2; p.tcp_flags = 0x02
        p.flags = UInt8(SYN_FW_F_ICMP | SYN_FW_F_SK); p.icmp_code = 13
        guard case .packetDrop(let d) = try EventDecoder.decode(rawBytes(of: p)) else { Issue.record("wrong case"); return }
        #expect(d.icmpCode == 13 && d.kind == .icmp && d.server.port == 8080 && d.clientEnd.port == 40000)

        var f = syn_ev_fw_drop()
        f.hdr = header(SYN_EV_FW_DROP, size: MemoryLayout<syn_ev_fw_drop>.size, ts: 0)
        // A RST|ACK sent by the service (port 8080) to the client.
        f.t.lport = 40000; f.t.rport = 8080; f.t.family = 2; f.tcp_flags = 0x14
        f.flags = UInt8(SYN_FW_F_HANDSHAKE | SYN_FW_F_SK); f.ct_count = 5
        guard case .firewallDrop(let r) = try EventDecoder.decode(rawBytes(of: f)) else { Issue.record("wrong case"); return }
        #expect(r.segment == .rst && r.servicePort == 8080 && r.clientEnd.port == 40000 && r.icmpCode == nil)
        // Without the shape flag a RST is other TCP (an abortive close), keyed as it travels.
        f.flags = UInt8(SYN_FW_F_SK)
        guard case .firewallDrop(let o) = try EventDecoder.decode(rawBytes(of: f)) else { Issue.record("wrong case"); return }
        #expect(o.segment == nil && o.servicePort == 40000)
        // An ICMP's code travels in ct_count, and no conntrack count is read from it.
        f.flags = UInt8(SYN_FW_F_ICMP | SYN_FW_F_CT_COUNT); f.tcp_flags = 0x02; f.ct_count = 3
        guard case .firewallDrop(let i) = try EventDecoder.decode(rawBytes(of: f)) else { Issue.record("wrong case"); return }
        #expect(i.segment == .icmp && i.icmpCode == 3 && i.ctCount == nil && !i.isSyn)
    }

    @Test("segments from TCP flags")
    func segments() {
        #expect(HandshakeSegment(tcpFlags: 0x02) == .syn && HandshakeSegment(tcpFlags: 0x12) == .synAck)
        #expect(HandshakeSegment(tcpFlags: 0x10) == .ack && HandshakeSegment(tcpFlags: 0x18) == .ack)
        #expect(HandshakeSegment(tcpFlags: 0x14) == .rst && HandshakeSegment(tcpFlags: 0x02, icmp: true) == .icmp)
        #expect(HandshakeSegment(tcpFlags: 0x11) == nil && HandshakeSegment(tcpFlags: 0x04) == nil)
    }

    @Test("each segment: both ends from the SYN's view, the segment and the consequence in the hint")
    func packetDropped() throws {
        for segment in [HandshakeSegment.ack, .rst, .icmp] {
            var e = Self.engine()
            let out = e.ingest(.packetDrop(Self.drop(ts: 1_000, segment)))
            let r = try #require(out.first)
            #expect(out.count == 1)
            #expect(r.reason == .packetDropped && r.cause == .packetDropped(.rpFilter) && r.port == 8080)
            #expect(r.local == Self.server && r.remote == Self.client)
            let ev = try #require(r.packetDropEvidence)
            #expect(ev.segment == segment.rawValue && ev.dropReason == "ip_rpfilter")
            #expect(r.hint?.contains(segment.text) == true)
            if segment == .ack {
                #expect(r.hint?.contains("believes it is connected") == true)
                #expect(ev.icmp == nil && ev.direction == "ingress")
            } else {
                #expect(r.hint?.contains("never learns it was refused") == true)
                #expect(ev.direction == "egress")
            }
            if segment == .icmp { #expect(ev.icmp == .object([("type", .int(3)), ("code", .int(3))])) }
        }
    }

    @Test("one record per attempt and segment: the SYN's drop and its answer's are both reported, repeats are not")
    func oncePerSegment() {
        var e = Self.engine()
        #expect(e.ingest(.packetDrop(Self.drop(ts: 1_000, .syn))).count == 1)
        #expect(e.ingest(.packetDrop(Self.drop(ts: 2_000, .rst))).count == 1)
        #expect(e.ingest(.packetDrop(Self.drop(ts: 3_000, .rst))).isEmpty)
        #expect(e.ingest(.packetDrop(Self.drop(ts: 4_000, .ack))).count == 1)
        #expect(e.ingest(.packetDrop(Self.drop(ts: 5_000, .ack))).isEmpty)
    }

    @Test("the client's ETIMEDOUT after its RST was dropped: dropped_on_host names the RST's drop")
    func timeoutAfterDroppedRST() throws {
        var e = Self.engine()
        _ = e.ingest(.packetDrop(Self.drop(ts: 1_000_000, .rst)))
        _ = e.ingest(connectFailure(at: 9_000_000_000, from: Self.client, to: Self.server, errno: 110, netns: 77))
        let r = try #require(e.finish().first { $0.reason == .connectTimeout })
        #expect(r.cause == .connectTimeout(.droppedOnHost))
        #expect(r.hint?.contains("the RSTs refusing it") == true)
        #expect(r.connectTimeoutEvidence?.drop?["segment"] == .string("rst"))
    }

    /// A rule dropping RSTs in OUTPUT, one dropping ICMP, one dropping handshake ACKs in INPUT.
    struct AnswerRules: FirewallRuleSource {
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            if packet.icmp {
                return FirewallRuleLookup(candidates: [FirewallRule(table: "inet filter", chain: "output", handle: 5,
                                                                    text: "icmp type destination-unreachable drop", verdict: .drop)])
            }
            let input = FirewallRule(table: "inet filter", chain: "input", handle: 4,
                                     text: "tcp dport 8080 tcp flags & (syn | ack) == ack drop", verdict: .drop)
            let output = FirewallRule(table: "inet filter", chain: "output", handle: 3,
                                      text: "tcp flags & rst == rst drop", verdict: .drop)
            return FirewallRuleLookup(candidates: [packet.hook == .output ? output : input])
        }
    }

    static func firewallDrop(ts: UInt64, _ segment: HandshakeSegment) -> FirewallDrop {
        let p = drop(ts: ts, segment)
        return FirewallDrop(ts: ts, family: .ipv4, local: p.local, remote: p.remote, netns: 77, tcpFlags: p.tcpFlags,
                            hook: p.hook, skbAddr: ts, hasSocket: p.hasSocket, handshakeShape: true, icmpCode: p.icmpCode)
    }

    /// firewall_drop of each: the RST's and ICMP's decided at once, the ACK's after its window.
    static func firewallRecords() -> [Record] {
        var out: [Record] = []
        for segment in [HandshakeSegment.rst, .icmp, .ack] {
            var e = engine()
            e.firewall.rules = AnswerRules()
            out += e.ingest(.firewallDrop(firewallDrop(ts: 1_000, segment)))
            out += e.ingest(.firewallDrop(firewallDrop(ts: 2_000_000, segment)))
            out += e.finish()
        }
        return out
    }

    @Test("firewall: the rule that dropped the answer or the ACK, segment and method")
    func firewall() throws {
        let out = Self.firewallRecords()
        #expect(out.count == 3)
        for (r, segment) in zip(out, [HandshakeSegment.rst, .icmp, .ack]) {
            #expect(r.reason == .firewallDrop && r.kind == .drop && r.port == 8080)
            let ev = try #require(r.firewallEvidence)
            #expect(ev.segment == segment.rawValue)
            // The ACK's second drop (the client answering a retransmitted SYN-ACK) decides it at once.
            #expect(ev.method == (segment == .ack ? "retransmission" : "answer_dropped"))
            #expect(r.hint?.contains(segment.consequence!) == true)
            if segment == .ack {
                #expect(ev.chain == "input" && ev.handle == 4)
            } else {
                // The answered SYN's view: the client is the remote end.
                #expect(r.local == Self.server && r.remote == Self.client)
                #expect(ev.chain == "output" && ev.handle == (segment == .rst ? 3 : 5))
            }
        }
        #expect(out[1].firewallEvidence?.icmp == .object([("type", .int(3)), ("code", .int(3))]))
    }

    @Test("firewall: a REJECTed SYN whose ICMP answer is then dropped gives both records")
    func rejectThenAnswerDropped() {
        var e = Self.engine()
        e.firewall.rules = SchemaRecordsTests.OneRule()
        let syn = FirewallDrop(ts: 1_000, family: .ipv4, local: Self.server, remote: Self.client, netns: 77, hook: .input, skbAddr: 9)
        _ = e.ingest(.firewallICMP(FirewallICMP(ts: 900, local: Self.server, remote: Self.client, netns: 77, skbAddr: 9)))
        var out = e.ingest(.firewallDrop(syn))
        var icmp = Self.firewallDrop(ts: 2_000, .icmp)
        icmp.skbAddr = 10
        out += e.ingest(.firewallDrop(icmp))
        out += e.finish()
        #expect(out.map(\.reason) == [.firewallDrop, .firewallReject] || out.map(\.reason) == [.firewallReject, .firewallDrop])
        #expect(out.contains { $0.firewallEvidence?.segment == "icmp" && $0.reason == .firewallDrop })
    }

    @Test("the loader's reason bits: the answer-failure families only, named from BTF")
    func answerReasonCodes() {
        let codes = DropReasonNames(core: kernel618).codes(of: DropCause.answerFailures)
        // ip_rpfilter 16, tc_ingress 73, ip_innoroutes 88; not no_socket, netfilter_drop, not_specified.
        #expect(codes.keys.sorted() == [16, 73, 88])
    }
}
