import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution

/// Conntrack's two ways of killing a handshake, without a kernel: a full
/// table (conntrack drops the SYN itself: packet_dropped/conntrack_full) and a
/// `ct state invalid` rule (firewall_drop/conntrack_invalid). The kernel
/// side is in Tests/SynsightEndToEndTests/ConntrackTests.swift.

@Suite("conntrack: ct state matching")
struct ConntrackMatchTests {
    let rules = ConntrackRules()

    func packet(_ state: ConntrackState, isSyn: Bool = false) -> FirewallPacket {
        FirewallPacket(netns: 7, family: .ipv4, local: fwClient, remote: fwServer, hook: .input, isSyn: isSyn, ctState: state)
    }

    @Test("`ct state invalid` names the rule for a packet the kernel gave no entry, both nft and iptables-nft, exactly")
    func invalidMatches() {
        let c = rules.ruleset.candidates(for: packet(.invalid))
        #expect(c.map(\.handle) == [2, 2])
        #expect(c.map(\.table) == ["inet filter", "ip filter"])
        #expect(c.allSatisfy { $0.exact && $0.ctStateMatched == .invalid && $0.verdict == .drop })
    }

    @Test("`ct state invalid` is not named for a packet that had an entry (established, new, untracked)")
    func notInvalid() {
        for state in [ConntrackState.established, .new, .related, .untracked] {
            #expect(rules.ruleset.candidates(for: packet(state)).isEmpty, "\(state)")
        }
    }

    @Test("without the kernel's state: a SYN is taken as new, anything else is loose (not exact)")
    func unknownState() {
        // (the iptables rule's match stays unknown: loose)
        #expect(rules.ruleset.candidates(for: packet(.unknown, isSyn: true)).allSatisfy { !$0.exact && $0.table == "ip filter" })
        let c = rules.ruleset.candidates(for: packet(.unknown))
        #expect(!c.isEmpty && c.allSatisfy { !$0.exact && $0.ctStateMatched == nil })
    }

    @Test("iptables' ct state text: lists, negation, and other ct keys left unknown")
    func xtText() {
        let p = packet(.invalid)
        #expect(NftMatch.xtCtState("ct state invalid counter packets 0 bytes 0 drop", p) == .yes)
        #expect(NftMatch.xtCtState("ct state new,invalid drop", p) == .yes)
        #expect(NftMatch.xtCtState("ct state != established,related drop", p) == .yes)
        #expect(NftMatch.xtCtState("ct state established,related accept", p) == .no)
        #expect(NftMatch.xtCtState("ct state invalid ct status dnat drop", p) == .unknown)
        #expect(NftMatch.xtCtState("xt match \"conntrack\" drop", p) == .unknown)
        #expect(NftMatch.xtCtState("ct state invalid drop", packet(.unknown)) == .unknown)
    }
}

@Suite("conntrack: table full or invalid")
struct ConntrackDecisionTests {
    func engine(max: UInt32 = 64) -> AttributionEngine {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.firewall.rules = ConntrackRules()
        e.firewall.conntrack = FixedConntrackLimit(max: max)
        e.drops.reasons = DropReasonNames(core: [("SKB_DROP_REASON_NETFILTER_DROP", 12)])
        return e
    }

    /// A SYN to the service dropped at PREROUTING without a conntrack entry, `count` entries in its namespace.
    static func syn(ts: UInt64, count: UInt32?, state: ConntrackState = .invalid, hook: FirewallHook = .prerouting) -> FirewallDrop {
        FirewallDrop(ts: ts, family: .ipv4, local: fwServer, remote: fwClient, netns: 7, ifindex: 3, tcpFlags: 0x02,
                     hook: hook, skbAddr: 0xAA, location: 0xFFFF_FFFF_8100_0000, ctState: state, ctCount: count,
                     ifname: "veth-s", reasonCode: 12)
    }

    /// A SYN-ACK coming back to a client whose conntrack has no entry for it.
    static func synAck(ts: UInt64, state: ConntrackState) -> FirewallDrop {
        FirewallDrop(ts: ts, family: .ipv4, local: fwClient, remote: fwServer, netns: 8, ifindex: 4, tcpFlags: 0x12,
                     hook: .input, skbAddr: 0xBB, ctState: state, ctCount: state == .invalid ? 3 : nil, ifname: "veth-c",
                     reasonCode: 12)
    }

    static func fullRecords() -> [Record] {
        var e = ConntrackDecisionTests().engine()
        _ = e.ingest(.firewallDrop(syn(ts: 1_000, count: 64)))
        return e.ingest(.firewallDrop(syn(ts: 1_000_001_000, count: 64))) + e.finish()
    }

    /// A `ct state invalid reject with tcp reset` rule (what the kernel gave the packet decides the match).
    struct RejectInvalid: FirewallRuleSource {
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            let rs = NftRuleset(json: #"{"nftables": [{"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 5, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"reject": {"type": "tcp reset"}}]}}]}"#)!
            return FirewallRuleLookup(candidates: rs.candidates(for: packet))
        }
    }

    /// firewall_drop/conntrack_invalid (a SYN-ACK) and firewall_reject/conntrack_invalid (a SYN refused by a reject rule).
    static func invalidRecords() -> [Record] {
        var e = ConntrackDecisionTests().engine()
        _ = e.ingest(.firewallDrop(synAck(ts: 1_000, state: .invalid)))
        var r = ConntrackDecisionTests().engine()
        r.firewall.rules = RejectInvalid()
        _ = r.ingest(.firewallDrop(syn(ts: 2_000, count: 3, hook: .input)))
        return e.finish() + r.ingest(.connectError(fwConnectError(ts: 3_000, errno: 111))) + r.finish()
    }

    @Test("a SYN without an entry while the namespace held nf_conntrack_max entries: packet_dropped/conntrack_full")
    func full() throws {
        let out = Self.fullRecords()
        let r = try #require(out.first)
        #expect(out.count == 1)
        #expect(r.kind == .drop && r.reason == .packetDropped && r.cause == .packetDropped(.conntrackFull))
        #expect(r.port == 9110 && r.netns == 7 && r.local == fwServer && r.remote == fwClient)
        #expect(r.evidence(.conntrackCount)?.intValue == 64 && r.evidence(.conntrackMax)?.intValue == 64)
        #expect(r.evidence(.sysctl)?.stringValue == "net.netfilter.nf_conntrack_max")
        #expect(r.evidence(.dropReason)?.stringValue == "netfilter_drop" && r.evidence(.dropReasonCode)?.intValue == 12)
        #expect(r.evidence(.interface)?.stringValue == "veth-s" && r.evidence(.chainHook)?.stringValue == "prerouting")
        #expect(r.evidence(.ctState)?.stringValue == "invalid" && r.evidence(.drops)?.intValue == 2)
        #expect(r.evidence(.segment)?.stringValue == "syn" && r.evidence(.direction)?.stringValue == "ingress")
        #expect(r.evidence(.rule) == nil)
        // Not even where `ct state invalid drop` would match (a SYN seen past routing): a SYN without an
        // entry under a full table was dropped by conntrack before any filter chain.
        var e = engine()
        _ = e.ingest(.firewallDrop(Self.syn(ts: 1_000, count: 64, hook: .input)))
        let past = try #require(e.finish().first)
        #expect(past.cause == .packetDropped(.conntrackFull) && past.evidence(.rule) == nil)
        let hint = r.hint ?? ""
        #expect(hint.contains("64 entries") && hint.contains("nf_conntrack_max=128") && hint.contains("conntrack -C"))
    }

    @Test("below the limit, or with an entry, or not a SYN: not conntrack_full")
    func notFull() {
        var e = engine()
        _ = e.ingest(.firewallDrop(Self.syn(ts: 1_000, count: 63, hook: .input)))
        var out = e.finish()
        #expect(out.count == 1, "\(out.map(\.json))")
        #expect(out.first?.reason == .firewallDrop && out.first?.cause == .firewall(.conntrackInvalid), "\(out.map(\.json))")
        e = engine()
        _ = e.ingest(.firewallDrop(Self.syn(ts: 1_000, count: nil, hook: .input)))
        out = e.finish()
        #expect(out.first?.cause != .packetDropped(.conntrackFull))
        e = engine()
        _ = e.ingest(.firewallDrop(Self.syn(ts: 1_000, count: 64, state: .new, hook: .input)))
        out = e.finish()
        #expect(out.first?.reason == .firewallReject || out.first?.reason == .firewallDrop)
        #expect(out.first?.evidence(.ctState)?.stringValue == "new")
        e = engine(max: 0)  // no limit
        _ = e.ingest(.firewallDrop(Self.syn(ts: 1_000, count: 64)))
        #expect(e.finish().first?.cause != .packetDropped(.conntrackFull))
    }

    @Test("a SYN-ACK conntrack had no entry for, dropped by `ct state invalid`: firewall_drop/conntrack_invalid with the rule")
    func invalid() throws {
        let r = try #require(Self.invalidRecords().first)
        #expect(r.kind == .drop && r.reason == .firewallDrop && r.cause == .firewall(.conntrackInvalid))
        #expect(r.port == 9110 && r.netns == 8)
        #expect(r.evidence(.rule)?.stringValue == "ct state invalid drop")
        #expect(r.evidence(.table)?.stringValue == "inet filter" && r.evidence(.handle)?.intValue == 2)
        #expect(r.evidence(.ctState)?.stringValue == "invalid")
        let hint = r.hint ?? ""
        #expect(hint.contains("ct state invalid") && hint.contains("asymmetric routing") && hint.contains("nf_conntrack_tcp_be_liberal"))
    }

    @Test("the local client whose SYN-ACK was dropped is joined by its retransmitted SYN")
    func synAckClient() throws {
        var e = engine()
        _ = e.ingest(.firewallDrop(Self.synAck(ts: 1_000, state: .invalid)))
        let out = e.ingest(.synRetransmit(SynRetransmit(ts: 1_000_000_000, family: .ipv4, local: fwClient, remote: fwServer,
                                                        task: TaskInfo(pid: 4242, comm: "curl"), netns: 8)))
        let r = try #require(out.first)
        #expect(out.count == 1 && r.cause == .firewall(.conntrackInvalid) && r.client?.pid == 4242, "\(out.map(\.json))")
        #expect(r.evidence(.method)?.stringValue == "retransmission")
    }

    @Test("a `ct state invalid` reject rule: firewall_reject/conntrack_invalid")
    func invalidReject() throws {
        let r = try #require(Self.invalidRecords().first { $0.reason == .firewallReject })
        #expect(r.kind == .refusal && r.cause == .firewall(.conntrackInvalid) && r.evidence(.handle)?.intValue == 5)
        #expect(r.evidence(.rejectWith)?.stringValue == "tcp-reset" && r.evidence(.ctState)?.stringValue == "invalid")
    }

    /// A plain `tcp dport 9110 drop` (no ct match).
    struct DropPort: FirewallRuleSource {
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            let rs = NftRuleset(json: #"{"nftables": [{"chain": {"family": "inet", "table": "t", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9110}}, {"drop": null}]}}]}"#)!
            return FirewallRuleLookup(candidates: rs.candidates(for: packet))
        }
    }

    @Test("no entry in a namespace conntrack does not track (count 0): no `ct_state: invalid` beside a rule that never asked")
    func conntrackIdle() throws {
        var e = engine()
        e.firewall.rules = DropPort()
        _ = e.ingest(.firewallDrop(Self.syn(ts: 1_000, count: 0, hook: .input)))
        let r = try #require(e.finish().first)
        #expect(r.reason == .firewallDrop && r.evidence(.handle)?.intValue == 4, "\(r.json)")
        #expect(r.evidence(.ctState) == nil, "\(r.json)")
        // Entries in the namespace: conntrack tracks it, and gave this SYN none (what nft calls invalid).
        e = engine()
        e.firewall.rules = DropPort()
        _ = e.ingest(.firewallDrop(Self.syn(ts: 1_000, count: 5, hook: .input)))
        #expect(e.finish().first?.evidence(.ctState)?.stringValue == "invalid")
        // A `ct state invalid` rule that matched keeps it, count 0 or not.
        var k = engine()
        k.firewall.rules = RejectInvalid()
        _ = k.ingest(.firewallDrop(Self.syn(ts: 2_000, count: 0, hook: .input)))
        let kept = k.ingest(.connectError(fwConnectError(ts: 3_000, errno: 111))) + k.finish()
        #expect(kept.first?.evidence(.ctState)?.stringValue == "invalid", "\(kept.map(\.json))")
    }

    @Test("an established SYN-ACK is not blamed on the `ct state invalid` rule")
    func establishedNotInvalid() throws {
        var e = engine()
        _ = e.ingest(.firewallDrop(Self.synAck(ts: 1_000, state: .established)))
        let r = try #require(e.finish().first)
        #expect(r.reason == .firewallDrop && r.cause == nil && r.evidence(.rule) == nil)
        #expect(r.evidence(.ruleMethod)?.stringValue == "no_match" && r.evidence(.ctState)?.stringValue == "established")
    }

    @Test("the advice: conntrack_full raises the limit and finds who fills the table; conntrack_invalid names the causes")
    func advice() {
        var f = Advice.Facts(port: 80)
        f.conntrackMax = 1000
        let full = Advice.for(reason: .packetDropped, cause: .packetDropped(.conntrackFull), facts: f)
        #expect(full.fix.contains("nf_conntrack_max=2000") && full.fix.contains("hashsize") && full.fix.contains("conntrack -L"))
        #expect(full.steps.count >= 3 && full.steps.contains { $0.contains("conntrack -C") })
        let invalid = Advice.for(reason: .firewallDrop, cause: .firewall(.conntrackInvalid), facts: Advice.Facts(port: 80))
        #expect(invalid.fix.contains("nf_conntrack_tcp_loose") && invalid.fix.contains("NAT"))
        #expect(invalid.steps.contains { $0.contains("asymmetric routing") })
        #expect(ConntrackLimits.parse(max: "262144\n") == ConntrackLimits(max: 262144))
        #expect(ConntrackLimits.parse(max: "x") == nil)
        #expect(ConntrackLimits(max: 64).isFull(count: 64) && !ConntrackLimits(max: 64).isFull(count: 63))
        #expect(!ConntrackLimits(max: 0).isFull(count: 1000))
    }
}
