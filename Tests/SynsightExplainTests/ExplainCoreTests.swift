import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightExplain

// `explain` without a kernel: the sock_diag codec on bytes laid out as the
// kernel sends them, /proc text parsing, firewall rule matching for a port on
// the recorded fixture ruleset, and the verdict logic on synthetic states.

// MARK: - sock_diag bytes

/// Builds netlink datagrams the way the kernel lays them out (little-endian host).
struct DiagBytes {
    var bytes: [UInt8] = []

    mutating func u16(_ v: UInt16) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }

    /// One SOCK_DIAG_BY_FAMILY message: inet_diag_msg plus attributes.
    mutating func socket(family: UInt8, state: UInt8, sport: UInt16, src: [UInt8], rqueue: UInt32, wqueue: UInt32,
                         inode: UInt32, retrans: UInt8 = 0, attrs: [(UInt16, [UInt8])] = []) {
        var body: [UInt8] = [family, state, retrans > 0 ? 1 : 0, retrans]
        body += [UInt8(sport >> 8), UInt8(sport & 0xFF), 0, 0]           // sport, dport (big-endian)
        body += src + [UInt8](repeating: 0, count: 16 - src.count)       // src[4] words
        body += [UInt8](repeating: 0, count: 16)                          // dst
        body += [UInt8](repeating: 0, count: 4 + 8)                       // if, cookie
        var tail = DiagBytes()
        tail.u32(0); tail.u32(rqueue); tail.u32(wqueue); tail.u32(0); tail.u32(inode)
        body += tail.bytes
        for (type, payload) in attrs {
            var a = DiagBytes()
            a.u16(UInt16(4 + payload.count)); a.u16(type)
            body += a.bytes + payload
            while body.count % 4 != 0 { body.append(0) }
        }
        header(type: 20, length: 16 + body.count)
        bytes += body
    }

    mutating func header(type: UInt16, length: Int) {
        u32(UInt32(length)); u16(type); u16(0x2); u32(1); u32(0)
    }

    mutating func done() { header(type: 3, length: 20); u32(0) }

    mutating func error(_ errno: Int32) { header(type: 2, length: 20); u32(UInt32(bitPattern: -errno)) }
}

@Suite("explain: sock_diag and /proc parsing")
struct ExplainParsingTests {
    @Test("dump request: nlmsghdr + inet_diag_req_v2 with the states and SKMEMINFO")
    func request() {
        let r = SockDiag.dumpRequest(family: .ipv6, states: [SockDiag.stateListen, SockDiag.stateNewSynRecv], seq: 7)
        #expect(r.count == 72)
        #expect(r[0] == 72 && r[1] == 0)                         // nlmsg_len
        #expect(r[4] == 20 && r[5] == 0)                         // SOCK_DIAG_BY_FAMILY
        #expect(r[6] == 0x01 && r[7] == 0x03)                    // NLM_F_REQUEST | NLM_F_DUMP
        #expect(r[8] == 7)                                       // seq
        #expect(r[16] == 10 && r[17] == 6)                       // AF_INET6, IPPROTO_TCP
        #expect(r[18] == 0x40)                                   // 1 << (INET_DIAG_SKMEMINFO - 1)
        let states = UInt32(r[20]) | UInt32(r[21]) << 8 | UInt32(r[22]) << 16 | UInt32(r[23]) << 24
        #expect(states == (1 << 10) | (1 << 12))
        #expect(r[24...].allSatisfy { $0 == 0 })
    }

    @Test("dump request with a remote port: an INET_DIAG_REQ_BYTECODE attribute of one D_EQ comparison")
    func requestRemotePort() {
        let r = SockDiag.dumpRequest(family: .ipv4, states: [SockDiag.stateEstablished], seq: 1, remotePort: 5432)
        #expect(r.count == 84)
        #expect(r[0] == 84 && r[1] == 0)                         // nlmsg_len covers the attribute
        #expect(r[20] == 1 << 1)                                 // TCPF_ESTABLISHED
        #expect(Array(r[72..<76]) == [12, 0, 1, 0])              // nla_len 12, INET_DIAG_REQ_BYTECODE
        #expect(Array(r[76..<80]) == [12, 8, 12, 0])             // INET_DIAG_BC_D_EQ, yes 8 (accept), no 12 (reject)
        #expect(Array(r[80..<84]) == [0, 0, 0x38, 0x15])         // the port, 5432, in `no`
    }

    @Test("a dump: listener with IPV6_V6ONLY and sk_drops, a request socket, then NLMSG_DONE")
    func parse() {
        var d = DiagBytes()
        var mem = DiagBytes()
        for v in [0, 0, 0, 0, 0, 0, 0, 0, 7] as [UInt32] { mem.u32(v) }
        d.socket(family: 10, state: 10, sport: 8080, src: [], rqueue: 3, wqueue: 128, inode: 4242,
                 attrs: [(8, [0]), (11, [1]), (7, mem.bytes)])
        d.socket(family: 2, state: 3, sport: 8080, src: [127, 0, 0, 1], rqueue: 0, wqueue: 0, inode: 0)
        d.socket(family: 2, state: 2, sport: 41000, src: [127, 0, 0, 1], rqueue: 0, wqueue: 0, inode: 77, retrans: 3)
        var out: [SockDiag.Socket] = []
        #expect(SockDiag.parse(d.bytes, into: &out) == .more)
        #expect(out.count == 3)
        #expect(out[2].state == SockDiag.stateSynSent && out[2].retransmits == 3 && out[2].inode == 77)
        #expect(out[0].retransmits == 0)
        let l = out[0]
        #expect(l.family == .ipv6 && l.state == 10)
        #expect(l.local == Endpoint(addr: .any6, port: 8080))
        #expect(l.rqueue == 3 && l.wqueue == 128 && l.inode == 4242)
        #expect(l.ipv6Only == true)
        #expect(l.drops == 7)
        let req = out[1]
        #expect(req.family == .ipv4 && req.state == SockDiag.stateSynRecv && req.inode == 0)
        #expect(req.local == Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 8080))
        #expect(req.ipv6Only == nil && req.drops == nil)

        var end = DiagBytes()
        end.done()
        #expect(SockDiag.parse(end.bytes, into: &out) == .done)
        var err = DiagBytes()
        err.error(2)
        #expect(SockDiag.parse(err.bytes, into: &out) == .failed(2))
    }

    @Test("truncated and malformed datagrams never read out of range")
    func truncated() {
        var d = DiagBytes()
        d.socket(family: 2, state: 10, sport: 80, src: [10, 0, 0, 1], rqueue: 1, wqueue: 5, inode: 9,
                 attrs: [(11, [1])])
        for cut in 0..<d.bytes.count {
            var out: [SockDiag.Socket] = []
            _ = SockDiag.parse(Array(d.bytes.prefix(cut)), into: &out)
            #expect(out.isEmpty, "a cut message must not parse (cut at \(cut))")
        }
        // A header claiming a shorter length than the message body, and an unknown family.
        var bad = d.bytes
        bad[0] = 20
        var out: [SockDiag.Socket] = []
        _ = SockDiag.parse(bad, into: &out)
        #expect(out.isEmpty)
        var fam = d.bytes
        fam[16] = 99
        _ = SockDiag.parse(fam, into: &out)
        #expect(out.isEmpty)
    }

    @Test("/proc/<pid>/limits: open files, numbers and unlimited")
    func limits() {
        let text = """
            Limit                     Soft Limit           Hard Limit           Units
            Max cpu time              unlimited            unlimited            seconds
            Max open files            1024                 524288               files
            Max locked memory         8388608              8388608              bytes

            """
        let l = ProcText.openFileLimits(text)
        #expect(l?.soft == 1024 && l?.hard == 524288)
        let u = ProcText.openFileLimits("Max open files            unlimited            unlimited            files\n")
        #expect(u != nil && u?.soft == nil && u?.hard == nil)
        #expect(ProcText.openFileLimits("Max cpu time 1 2 seconds\n") == nil)
    }

    @Test("/proc/net/netstat: TcpExt names and values")
    func netstat() {
        let text = """
            TcpExt: SyncookiesSent ListenOverflows ListenDrops
            TcpExt: 4 12 13
            IpExt: InNoRoutes
            IpExt: 0

            """
        let c = ProcText.netstat(text)
        #expect(c["ListenOverflows"] == 12 && c["ListenDrops"] == 13 && c["SyncookiesSent"] == 4)
        #expect(c["InNoRoutes"] == nil)
        #expect(ProcText.netstat("TcpExt: A B\n").isEmpty)
    }
}

// MARK: - firewall rules for a port

@Suite("explain: firewall rules matching a port")
struct ExplainFirewallTests {
    let rs = NftRuleset(json: FirewallFixture.json, text: FirewallFixture.text)!

    func matches(_ port: UInt16) -> [PortRuleMatch] { rs.portMatches(port: port) }

    @Test("a port-specific reject: certain, inbound, with the handle and reply kind")
    func reject() throws {
        let m = try #require(matches(9110).first { $0.rule.handle == 3 })
        #expect(m.direction == .inbound && m.confidence == .certain && m.portSpecific)
        #expect(m.rule.verdict == .reject("tcp-reset"))
        #expect(m.rule.table == "inet filter" && m.rule.chain == "input")
        #expect(m.name == "nft rule inet filter input handle 3")
        #expect(m.rule.text.contains("tcp dport 9110"))
        #expect(!m.rule.text.contains("counter packets"))
    }

    @Test("sets, ranges and address conditions")
    func setsRanges() throws {
        let set = try #require(matches(9113).first { $0.rule.handle == 6 })
        #expect(set.confidence == .conditional)
        #expect(set.conditions.contains { $0.contains("ip saddr 10.0.0.0/8") })
        #expect(set.families == [.ipv4])
        let range = try #require(matches(9125).first { $0.rule.handle == 8 })
        #expect(range.confidence == .certain && range.rule.verdict == .drop)
        #expect(matches(9131).first { $0.rule.handle == 8 } == nil, "outside the range")
        let v6 = try #require(matches(9115).first { $0.rule.handle == 7 })
        #expect(v6.families == [.ipv6] && v6.confidence == .conditional)
    }

    @Test("output chain: local clients (dport) but not the listener's replies")
    func output() throws {
        let all = matches(9140)
        let out = try #require(all.first { $0.rule.handle == 9 })
        #expect(out.direction == .outbound && out.confidence == .certain)
        #expect(!all.contains { $0.rule.handle == 9 && $0.direction == .reply })
    }

    @Test("policy drop: certain for an unaccepted port, shadowed where an accept rule takes the port")
    func policy() throws {
        let p = try #require(matches(8080).first { $0.rule.verdict == .policyDrop && $0.rule.table == "ip strict" })
        #expect(p.confidence == .certain && p.families == [.ipv4] && !p.portSpecific)
        let ssh = try #require(matches(22).first { $0.rule.verdict == .policyDrop && $0.rule.table == "ip strict" })
        #expect(ssh.confidence == .shadowed && ssh.shadowedBy == 2)
    }

    @Test("iptables-nft REJECT and DROP are named as iptables rules")
    func iptables() throws {
        let r = try #require(matches(9200).first { $0.rule.handle == 2 && $0.rule.table == "ip filter" })
        #expect(r.rule.iptables && r.rule.verdict.isReject && r.confidence == .certain)
        #expect(r.name.hasPrefix("iptables rule ip filter INPUT"))
    }

    @Test("a typical host firewall: established and loopback accepted, then catch-all drop")
    func hostFirewall() throws {
        let json = #"""
        {"nftables": [{"chain": {"family": "inet", "table": "fw", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "fw", "chain": "in", "handle": 2, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
        {"rule": {"family": "inet", "table": "fw", "chain": "in", "handle": 3, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}, {"accept": null}]}},
        {"rule": {"family": "inet", "table": "fw", "chain": "in", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}},
        {"rule": {"family": "inet", "table": "fw", "chain": "in", "handle": 5, "expr": [{"counter": {"packets": 9, "bytes": 540}}, {"drop": null}]}},
        {"rule": {"family": "inet", "table": "fw", "chain": "in", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}}, {"drop": null}]}}]}
        """#
        let rs = try #require(NftRuleset(json: json))
        let web = rs.portMatches(port: 8080)
        let drop = try #require(web.first { $0.rule.handle == 5 })
        // Established traffic is no SYN; loopback clients are accepted first.
        #expect(drop.confidence == .possible, "a catch-all rule: \(drop)")
        #expect(drop.conditions.contains { $0.contains("handle 3") && $0.contains("iifname lo") })
        #expect(drop.rule.packets == 9 && !drop.portSpecific)
        #expect(!web.contains { $0.rule.handle == 6 }, "udp rules never match TCP")
        let ssh = try #require(rs.portMatches(port: 22).first { $0.rule.handle == 5 })
        #expect(ssh.confidence == .shadowed && ssh.shadowedBy == 4)
    }

    @Test("fail2ban's rules, one per banned address: one finding for the jail, the count and the addresses; a single ban stays a rule finding")
    func foldedBans() throws {
        func rule(_ h: Int, _ addr: String) -> String {
            #"{"rule": {"family": "ip", "table": "filter", "chain": "f2b-sshd", "handle": \#(h), "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "\#(addr)"}}, {"xt": {"type": "target", "name": "REJECT"}}]}}"#
        }
        let addrs = (1...25).map { "192.0.2.\($0)" }
        let json = #"{"nftables": [{"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": "ip", "table": "filter", "name": "f2b-sshd", "handle": 2}}, "#
            + #"{"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 99, "expr": [{"jump": {"target": "f2b-sshd"}}]}}, "#
            + addrs.enumerated().map { rule($0.offset + 3, $0.element) }.joined(separator: ", ") + "]}"
        var rs = try #require(NftRuleset(json: json))
        rs.attachIptablesSave("*filter\n" + addrs.map { "-A f2b-sshd -s \($0)/32 -j REJECT --reject-with icmp-port-unreachable\n" }.joined() + "COMMIT\n",
                              family: "ip")
        typealias F = ExplainFixture
        let r = Explain.analyze(F.input([F.listener()], namespaces: [F.namespace(firewall: .ruleset(rs))]))
        let bans = r.findings.filter { $0.code == "firewall_reject" }
        #expect(bans.count == 1, "\(bans.map(\.message))")
        let f = try #require(bans.first)
        #expect(f.message.hasPrefix("fail2ban's jail sshd rejects tcp dport 8080 from 25 banned addresses") && f.message.hasSuffix("192.0.2.20, and 5 more"),
                "\(f.message)")
        #expect(f.evidence.first { $0.0 == "banned_count" }?.1 == .int(25) && f.evidence.first { $0.0 == "cause" }?.1 == .string("address_banned"))
        #expect(f.remediation?.contains("fail2ban-client set sshd unbanip") == true)
        // One banned address: the rule's own finding, with its cause.
        var one = try #require(NftRuleset(json: #"{"nftables": [{"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": "ip", "table": "filter", "name": "f2b-sshd", "handle": 2}}, "#
            + #"{"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 99, "expr": [{"jump": {"target": "f2b-sshd"}}]}}, "# + rule(3, "192.0.2.1") + "]}"))
        one.attachIptablesSave("*filter\n-A f2b-sshd -s 192.0.2.1/32 -j REJECT\nCOMMIT\n", family: "ip")
        let single = Explain.analyze(F.input([F.listener()], namespaces: [F.namespace(firewall: .ruleset(one))]))
        #expect(single.findings.filter { $0.code == "firewall_reject" }.map { $0.message.contains("\"-A f2b-sshd -s 192.0.2.1/32 -j REJECT\"") } == [true])
        // fail2ban's nftables action: one rule testing the jail's set; the finding counts its addresses.
        let set = try #require(NftRuleset(json: #"""
            {"nftables": [{"set": {"family": "inet", "name": "addr-set-sshd", "table": "f2b-table", "type": "ipv4_addr",
                                   "elem": ["192.0.2.7", {"elem": {"val": "192.0.2.8", "timeout": 600, "expires": 500}}]}},
              {"chain": {"family": "inet", "table": "f2b-table", "name": "f2b-chain", "handle": 1, "type": "filter", "hook": "input", "prio": -1, "policy": "accept"}},
              {"rule": {"family": "inet", "table": "f2b-table", "chain": "f2b-chain", "handle": 2, "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@addr-set-sshd"}}, {"reject": null}]}}]}
            """#, text: "table inet f2b-table {\n chain f2b-chain {\n  tcp dport 8080 ip saddr @addr-set-sshd reject # handle 2\n }\n}\n"))
        let s = try #require(Explain.analyze(F.input([F.listener()], namespaces: [F.namespace(firewall: .ruleset(set))])).findings
            .first { $0.code == "firewall_reject" })
        #expect(s.message.hasSuffix("(set addr-set-sshd: 2 banned addresses: 192.0.2.7, 192.0.2.8)"), "\(s.message)")
        #expect(s.evidence.first { $0.0 == "banned_count" }?.1 == .int(2) && s.evidence.first { $0.0 == "ban_list" }?.1 == .string("sshd"))
    }

    @Test("a rule that refuses past a limit (nft meter, iptables connlimit): conditional on the limit, cause rate_limited, a fix that exempts clients")
    func rateLimits() throws {
        let json = #"""
        {"nftables": [{"chain": {"family": "inet", "table": "fw", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "fw", "chain": "in", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
          {"meter": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "stmt": {"ct count": {"val": 4, "inv": true}}, "size": 65535, "name": "m"}}, {"reject": {"type": "tcp reset"}}]}},
        {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
          {"xt": {"type": "match", "name": "connlimit"}}, {"xt": {"type": "target", "name": "REJECT"}}]}}]}
        """#
        var rs = try #require(NftRuleset(json: json, text: """
            table inet fw {
              chain in {
                tcp dport 8080 meter m size 65535 { ip saddr ct count over 4 } reject with tcp reset # handle 2
              }
            }
            """))
        rs.attachIptablesSave("*filter\n-A INPUT -p tcp -m tcp --dport 8080 -m connlimit --connlimit-above 9 --connlimit-mask 32 --connlimit-saddr -j REJECT\nCOMMIT\n",
                              family: "ip")
        let meter = try #require(rs.portMatches(port: 8080).first { $0.rule.table == "inet fw" })
        #expect(meter.confidence == .conditional && meter.conditions == ["past its limit (ct count over 4, counted per ip saddr)"], "\(meter)")
        let conn = try #require(rs.portMatches(port: 8080).first { $0.rule.table == "ip filter" })
        #expect(conn.confidence == .conditional && conn.conditions.first?.hasPrefix("past its limit (-m connlimit --connlimit-above 9") == true,
                "\(conn)")
        typealias F = ExplainFixture
        let r = Explain.analyze(F.input([F.listener()], namespaces: [F.namespace(firewall: .ruleset(rs))]))
        let f = try #require(r.findings.first { $0.code == "firewall_reject" && $0.message.contains("ct count over 4") })
        #expect(f.evidence.first { $0.0 == "cause" }?.1 == .string("rate_limited"))
        #expect(f.evidence.first { $0.0 == "rate_limit" }?.1 == .string("ct count over 4"))
        #expect(f.remediation?.contains("exempt its address before the limit (nft insert rule inet fw in ip saddr <client> tcp dport 8080 accept)") == true,
                "\(f.remediation ?? "")")
    }
}

/// A Docker-like host: input accepts, forward drops by policy and through a
/// regular chain it jumps to; optionally a chain shared by input and forward
/// (dropping one source address), and a DNAT of port 8080 to another address.
enum ForwardFixture {
    static func json(dnat: Bool = false, shared: Bool = true) -> String {
        var items = [
            #"{"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}"#,
            #"{"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}"#,
            #"{"chain": {"family": "inet", "table": "filter", "name": "user", "handle": 3}}"#,
            #"{"chain": {"family": "inet", "table": "filter", "name": "shared", "handle": 4}}"#,
            #"{"rule": {"family": "inet", "table": "filter", "chain": "forward", "handle": 5, "expr": [{"jump": {"target": "user"}}]}}"#,
            #"{"rule": {"family": "inet", "table": "filter", "chain": "forward", "handle": 6, "expr": [{"jump": {"target": "shared"}}]}}"#,
            #"{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 7, "expr": [{"jump": {"target": "shared"}}]}}"#,
            #"{"rule": {"family": "inet", "table": "filter", "chain": "user", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"drop": null}]}}"#,
        ]
        if shared {
            items.append(#"{"rule": {"family": "inet", "table": "filter", "chain": "shared", "handle": 9, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "192.0.2.1"}}, {"drop": null}]}}"#)
        }
        if dnat {
            items += [
                #"{"chain": {"family": "ip", "table": "nat", "name": "pre", "handle": 20, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}"#,
                #"{"rule": {"family": "ip", "table": "nat", "chain": "pre", "handle": 21, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"dnat": {"addr": "10.0.0.2", "port": 80}}]}}"#,
                #"{"rule": {"family": "ip", "table": "nat", "chain": "pre", "handle": 22, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9090}}, {"redirect": {"port": 9091}}]}}"#,
            ]
        }
        return #"{"nftables": ["# + items.joined(separator: ",\n") + "]}"
    }

    static func ruleset(dnat: Bool = false, shared: Bool = true) -> NftRuleset { NftRuleset(json: json(dnat: dnat, shared: shared))! }
}

@Suite("explain: forward-hook rules and local listeners")
struct ExplainForwardTests {
    typealias F = ExplainFixture

    @Test("forward chains and the regular chains only they jump to see forwarded traffic only; a shared chain does not")
    func forwardedOnly() throws {
        let m = ForwardFixture.ruleset().portMatches(port: 8080)
        let policy = try #require(m.first { $0.rule.verdict == .policyDrop && $0.rule.chain == "forward" })
        #expect(policy.forwardedOnly && policy.hook == "forward")
        #expect(policy.conditions.contains(PortRuleMatch.forwardedCondition))
        let user = try #require(m.first { $0.rule.handle == 8 })
        #expect(user.forwardedOnly && user.hook == nil)
        #expect(user.conditions.contains(PortRuleMatch.forwardedCondition))
        let shared = try #require(m.first { $0.rule.handle == 9 })
        #expect(!shared.forwardedOnly, "input jumps to it too")
    }

    @Test("jumps are followed through regular chains, and a jump cycle ends")
    func jumpChains() throws {
        let json = #"""
        {"nftables": [{"chain": {"family": "ip", "table": "t", "name": "fwd", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
        {"chain": {"family": "ip", "table": "t", "name": "a", "handle": 2}},
        {"chain": {"family": "ip", "table": "t", "name": "b", "handle": 3}},
        {"chain": {"family": "ip", "table": "t", "name": "orphan", "handle": 4}},
        {"rule": {"family": "ip", "table": "t", "chain": "fwd", "handle": 5, "expr": [{"jump": {"target": "a"}}]}},
        {"rule": {"family": "ip", "table": "t", "chain": "a", "handle": 6, "expr": [{"goto": {"target": "b"}}]}},
        {"rule": {"family": "ip", "table": "t", "chain": "b", "handle": 7, "expr": [{"jump": {"target": "a"}}]}},
        {"rule": {"family": "ip", "table": "t", "chain": "b", "handle": 8, "expr": [{"drop": null}]}},
        {"rule": {"family": "ip", "table": "t", "chain": "orphan", "handle": 9, "expr": [{"drop": null}]}}]}
        """#
        let rs = try #require(NftRuleset(json: json))
        #expect(rs.hooksReaching()["ip t b"] == ["forward"])
        let m = rs.portMatches(port: 8080)
        #expect(m.first { $0.rule.handle == 8 }?.forwardedOnly == true, "reached through a, by goto")
        #expect(m.first { $0.rule.handle == 9 } == nil, "no chain jumps to it: never reached (ChainEntry.swift)")
    }

    @Test("DNAT rules of a port: dnat names them, a redirect or another port does not")
    func dnat() {
        #expect(ForwardFixture.ruleset(dnat: true).dnatRules(port: 8080) == [21])
        #expect(ForwardFixture.ruleset(dnat: true).dnatRules(port: 9090).isEmpty, "a redirect stays local")
        #expect(ForwardFixture.ruleset(dnat: true).dnatRules(port: 8081).isEmpty)
        #expect(ForwardFixture.ruleset().dnatRules(port: 8080).isEmpty)
    }

    func analyze(_ rs: NftRuleset, listenerNetns: UInt32 = F.ns) -> ExplainReport {
        let l = F.listener(.any6, family: .ipv6, v6only: false, netns: listenerNetns)
        let namespaces = listenerNetns == F.ns ? [F.namespace(firewall: .ruleset(rs))]
            : [F.namespace(firewall: .ruleset(rs)), F.namespace(F.other, name: "app")]
        return Explain.analyze(F.input([l], namespaces: namespaces))
    }

    @Test("a local listener behind a forward chain with policy drop: healthy, no firewall finding, no rule listed")
    func localListener() {
        let r = analyze(ForwardFixture.ruleset(shared: false))
        #expect(r.status == .healthy, "\(r.findings.map(\.message))")
        #expect(r.findings.isEmpty, "\(r.findings.map(\.message))")
        #expect((r.firewall[F.ns] ?? []).isEmpty)
        #expect(r.summary.contains("no firewall rule stops it"), "\(r.summary)")
        // A chain input jumps to still counts, even when forward jumps to it too.
        let shared = analyze(ForwardFixture.ruleset())
        #expect(shared.findings.map(\.code) == ["firewall_drop"], "\(shared.findings.map(\.message))")
        #expect(shared.findings.first?.message.contains("handle 9") == true)
        #expect(shared.findings.first?.severity == .warning)
    }

    @Test("the port DNATed elsewhere: the forward rules are kept, as information naming the DNAT")
    func dnatKeepsThem() throws {
        let r = analyze(ForwardFixture.ruleset(dnat: true, shared: false))
        #expect(r.status == .healthy, "\(r.findings.map(\.message))")
        let policy = try #require(r.findings.first { $0.message.hasPrefix("policy drop of chain inet filter forward") })
        #expect(policy.severity == .info)
        #expect(policy.message.contains("only if the DNAT of handle 21"), "\(policy.message)")
        #expect(r.findings.first { $0.message.contains("handle 8") }?.severity == .info)
        #expect(!r.findings.contains { $0.severity != .info && $0.message.contains("forward") })
    }

    @Test("no listener in the namespace (traffic may be routed through it): forward rules stay, as information")
    func routedThrough() throws {
        let r = analyze(ForwardFixture.ruleset(), listenerNetns: F.other)
        let policy = try #require(r.findings.first { $0.message.hasPrefix("policy drop of chain inet filter forward") })
        #expect(policy.severity == .info)
    }
}

// MARK: - verdicts

enum ExplainFixture {
    static let ns: UInt32 = 4026532300
    static let other: UInt32 = 4026532400

    static func proc(_ pid: UInt32 = 100, comm: String = "nginx", soft: UInt64? = 1024, open: Int? = 40) -> ExplainProcess {
        ExplainProcess(pid: pid, comm: comm, exe: "/usr/sbin/nginx", nofileSoft: soft, nofileHard: 524288,
                       limitsKnown: true, openFds: open)
    }

    static func listener(_ addr: IPAddress = .any4, family: AddressFamily = .ipv4, v6only: Bool? = nil,
                         netns: UInt32 = ns, queue: UInt32 = 0, backlog: UInt32 = 128, syn: UInt32 = 0,
                         processes: [ExplainProcess] = [proc()]) -> ExplainListener {
        ExplainListener(netns: netns, family: family, local: Endpoint(addr: addr, port: 8080), ipv6Only: v6only,
                        inode: 777, acceptQueue: queue, maxBacklog: backlog, synQueue: syn, drops: 0, processes: processes)
    }

    static func namespace(_ inode: UInt32 = ns, name: String? = "web", somaxconn: Int = 4096, syncookies: Int = 1,
                          firewall: FirewallScan = .ruleset(NftRuleset())) -> ExplainNamespace {
        ExplainNamespace(inode: inode, name: name, processCount: 3,
                         sysctls: NetnsSysctls(somaxconn: somaxconn, tcpMaxSynBacklog: 512, tcpSyncookies: syncookies,
                                               tcpAbortOnOverflow: 0),
                         counters: ["ListenOverflows": 10, "ListenDrops": 10], firewall: firewall)
    }

    static func input(_ listeners: [ExplainListener], namespaces: [ExplainNamespace] = [namespace()],
                      viewpoint: UInt32 = ns, recent: RecentActivity = RecentActivity(status: .ran, seconds: 3)) -> ExplainInput {
        ExplainInput(port: 8080, ts: 1_700_000_000_000_000_000, viewpoint: viewpoint, namespaces: namespaces,
                     listeners: listeners, recent: recent)
    }

    static func exitedRecord() -> Record {
        var r = Record(ts: 1_700_000_000_000_000_000, kind: .refusal, reason: .noListener, cause: .noListener(.listenerExited),
                       port: 8080, family: .ipv4, netns: ns,
                       local: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 8080),
                       remote: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 40000),
                       process: ProcessRef(pid: 123, comm: "nginx"), client: ProcessRef(pid: 200, comm: "curl"))
        r.evidence = [("signal", .int(9)), ("signal_name", .string("SIGKILL"))]
        r.hint = "nginx (pid 123) was killed by SIGKILL and nothing listens on port 8080 since: restart the service"
        return r
    }
}

@Suite("explain: findings and verdict")
struct ExplainVerdictTests {
    typealias F = ExplainFixture

    func codes(_ r: ExplainReport, _ severity: Severity? = nil) -> [String] {
        r.findings.filter { severity == nil || $0.severity == severity }.map(\.code)
    }

    @Test("healthy: a dual-stack listener with room in its queues, no rules, no refusals")
    func healthy() {
        let r = Explain.analyze(F.input([F.listener(.any6, family: .ipv6, v6only: false)]))
        #expect(r.status == .healthy, "\(r.findings.map(\.message))")
        #expect(r.findings.isEmpty)
        #expect(r.actions.isEmpty)
        #expect(r.summary == "healthy: nginx (pid 100) listens on [::]:8080 (network namespace 4026532300 (web)); accept queue 0/128; no firewall rule stops it; no refusals in the last 3 s")
    }

    @Test("nothing listens; the trace saw the last listener killed")
    func notListening() throws {
        let recent = RecentActivity(status: .ran, seconds: 3, hook: "tp_btf/tcp_send_reset", records: [F.exitedRecord()])
        let r = Explain.analyze(F.input([], recent: recent))
        #expect(r.status == .broken)
        let f = try #require(r.findings.first)
        #expect(f.code == "not_listening" && f.severity == .critical)
        #expect(f.message == "nothing listens on port 8080 on this host (1 network namespace scanned); the last listener, nginx pid 123, was killed by SIGKILL (seen by the trace); 1 connection refused in the last 3 s")
        #expect(f.remediation == F.exitedRecord().hint)
        // The traced refusal says the same thing: one action, not two.
        #expect(codes(r).contains("recent_refusals"))
        #expect(r.actions == [F.exitedRecord().hint!])
    }

    @Test("never listened, no trace: not_listening with a generic remediation")
    func neverListened() {
        let r = Explain.analyze(F.input([], recent: RecentActivity(status: .skipped)))
        #expect(codes(r) == ["not_listening"])
        #expect(r.findings[0].remediation?.contains("start the service") == true)
    }

    @Test("loopback only")
    func loopback() throws {
        let r = Explain.analyze(F.input([F.listener(IPAddress(v4: 127, 0, 0, 1))]))
        #expect(r.status == .degraded)
        let f = try #require(r.findings.first { $0.code == "loopback_only" })
        #expect(f.severity == .warning)
        #expect(f.message.contains("127.0.0.1:8080 only"))
        #expect(f.remediation?.contains("0.0.0.0") == true)
        // IPv4 loopback only: IPv6 clients of localhost ([::1]) are refused too (info).
        #expect(codes(r, .info) == ["ipv4_only"])
        #expect(r.findings.first { $0.code == "ipv4_only" }?.remediation?.contains("[::1]:8080") == true)
    }

    @Test("nothing listens on the host and a stopped container publishes the port: publisher_stopped with docker start")
    func stoppedPublisher() throws {
        var host = F.namespace()
        host.isHost = true
        var input = F.input([], namespaces: [host])
        input.stoppedPublishers = [DockerPortBinding(id: "4f2a9c0000000000", name: "web", hostIP: "0.0.0.0", hostPort: 8080,
                                                    containerPort: 80, exitCode: 1, finishedAt: "2026-12-06T12:00:00Z")]
        let r = Explain.analyze(input)
        let f = try #require(r.findings.first { $0.code == "publisher_stopped" }, "\(r.findings.map(\.code))")
        #expect(f.severity == .critical)
        #expect(f.message == "container web publishes port 8080 (0.0.0.0:8080 to its port 80) but is not running: exited with code 1 at 2026-12-06T12:00:00Z")
        #expect(f.remediation?.contains("docker start web") == true)
        // Something listens on the host's port after all: the container is not the story.
        var l = F.listener()
        l.netns = host.inode
        var listening = F.input([l], namespaces: [host])
        listening.stoppedPublishers = input.stoppedPublishers
        #expect(!codes(Explain.analyze(listening)).contains("publisher_stopped"))
    }

    @Test("a stopped listener process: listener_stopped (critical) with kill -CONT; one runnable thread: nothing")
    func stoppedListener() throws {
        var p = F.proc()
        p.runState = ProcessRunState(threads: ["T": 2])
        let r = Explain.analyze(F.input([F.listener(processes: [p])]))
        let f = try #require(r.findings.first { $0.code == "listener_stopped" }, "\(r.findings.map(\.code))")
        #expect(f.severity == .critical)
        #expect(f.message.contains("is stopped (2 threads: 2 T (stopped))"), "\(f.message)")
        #expect(f.remediation?.contains("kill -CONT \(p.pid)") == true)
        var blocked = F.proc()
        blocked.runState = ProcessRunState(threads: ["D": 1], waitChannels: ["nfs_wait_bit_killable"])
        let b = Explain.analyze(F.input([F.listener(processes: [blocked])]))
        #expect(b.findings.first { $0.code == "listener_blocked" }?.message.contains("waiting in nfs_wait_bit_killable") == true)
        var busy = F.proc()
        busy.runState = ProcessRunState(threads: ["S": 4, "T": 1])
        #expect(!codes(Explain.analyze(F.input([F.listener(processes: [busy])]))).contains { $0.hasPrefix("listener_") })
    }

    @Test("a listener throttled at its CPU limit: critical with a full queue, a warning otherwise; one process not throttled: nothing")
    func throttledListener() throws {
        let t = CPUThrottle(cgroup: "/docker/abc", hierarchy: .v1, quotaUs: 10_000, periodUs: 100_000,
                            periods: 3, throttled: 3, throttledUs: 240_000, windowNs: 300_000_000)
        var p = F.proc()
        p.cpuThrottle = t
        p.workload = WorkloadIdentity(container: ContainerRef(runtime: .docker, id: String(repeating: "ab", count: 32), name: "web"))
        let full = Explain.analyze(F.input([F.listener(queue: 129, backlog: 128, processes: [p])]))
        let f = try #require(full.findings.first { $0.code == "listener_throttled" }, "\(full.findings.map(\.code))")
        #expect(f.severity == .critical)
        #expect(f.message.contains("is throttled at its CPU limit (0.1 CPU (10 ms per 100 ms period), cgroup /docker/abc; "
                                   + "throttled in 3 of 3 periods (240 ms) in the last 300 ms)"), "\(f.message)")
        #expect(f.remediation?.contains("docker update --cpus <more> web") == true, "\(f.remediation ?? "")")
        let idle = Explain.analyze(F.input([F.listener(processes: [p])]))
        #expect(idle.findings.first { $0.code == "listener_throttled" }?.severity == .warning)
        var free = F.proc()
        free.pid += 1
        #expect(!codes(Explain.analyze(F.input([F.listener(processes: [p, free])]))).contains("listener_throttled"))
        var calm = p
        calm.cpuThrottle?.throttled = 0
        #expect(!codes(Explain.analyze(F.input([F.listener(processes: [calm])]))).contains("listener_throttled"))
    }

    @Test("an IPVS virtual service on the port without a schedulable server: ipvs_no_destination (critical); with one, nothing")
    func ipvsWithoutServers() throws {
        var rs = NftRuleset()
        let vip = Endpoint(addr: IPAddress(v4: 10, 96, 0, 10), port: 8080)
        rs.ipvs = [IPVSService(proto: "TCP", endpoint: vip, scheduler: "rr")]
        let r = Explain.analyze(F.input([], namespaces: [F.namespace(firewall: .ruleset(rs))]))
        let f = try #require(r.findings.first { $0.code == "ipvs_no_destination" }, "\(r.findings.map(\.code))")
        #expect(f.severity == .critical)
        #expect(f.message.contains("IPVS virtual service TCP 10.96.0.10:8080 in") && f.message.contains("has no real server"), "\(f.message)")
        #expect(f.remediation?.contains("ipvsadm -Ln -t 10.96.0.10:8080") == true)
        rs.ipvs[0].destinations = [.init(endpoint: Endpoint(addr: IPAddress(v4: 10, 244, 0, 5), port: 80), forward: "Masq",
                                         weight: 1, active: 0, inactive: 0)]
        #expect(!codes(Explain.analyze(F.input([], namespaces: [F.namespace(firewall: .ruleset(rs))]))).contains("ipvs_no_destination"))
    }

    @Test("kube-proxy nftables mode: a no-endpoint-services element on the port names the Service (critical; drop: no local endpoints, a warning)")
    func kubeProxyMapElements() throws {
        let rs = try #require(NftRuleset(json: VerdictMapFixture.json))
        let r = Explain.analyze(F.input([], namespaces: [F.namespace(firewall: .ruleset(rs))]))
        let f = try #require(r.findings.first { $0.code == "service_without_endpoints" }, "\(r.findings.map(\.code))")
        #expect(f.severity == .critical && f.message.contains("Kubernetes Service shop/api:http has no ready endpoints"), "\(f.message)")
        #expect(f.remediation?.contains("kubectl get endpointslices -n shop") == true)
        let l = try #require(r.findings.first { $0.code == "service_without_local_endpoints" }, "\(r.findings.map(\.code))")
        #expect(l.severity == .warning && l.message.contains("shop/web:http"))
    }

    @Test("a listener bound to a device: a warning naming it; beside an unbound one, info")
    func boundToDevice() throws {
        var l = F.listener()
        l.boundDevice = NetDevice(ifindex: 7, name: "eth1")
        let r = Explain.analyze(F.input([l]))
        let f = try #require(r.findings.first { $0.code == "bound_to_device" })
        #expect(f.severity == .warning)
        #expect(f.message.contains("0.0.0.0:8080%eth1") && f.message.contains("loopback included"), "\(f.message)")
        #expect(f.remediation?.contains("SO_BINDTODEVICE eth1") == true, "\(f.remediation ?? "")")
        #expect(f.evidence.first { $0.0 == "bound_devices" }?.1 == .array([.object([("ifindex", .int(7)), ("name", .string("eth1"))])]))

        var vrf = F.listener(IPAddress(v4: 127, 0, 0, 1))
        vrf.boundDevice = NetDevice(ifindex: 9, name: "blue", isVRF: true)
        let mixed = Explain.analyze(F.input([F.listener(), vrf]))
        let g = try #require(mixed.findings.first { $0.code == "bound_to_device" })
        #expect(g.severity == .info)
        #expect(g.message.contains("in VRF blue only"), "\(g.message)")
        #expect(g.remediation?.contains("ip vrf exec blue") == true, "\(g.remediation ?? "")")
    }

    @Test("IPv6 loopback only ([::1], as \"localhost\" may resolve): IPv4 clients of localhost refused, a warning naming 127.0.0.1")
    func loopbackIPv6() throws {
        let r = Explain.analyze(F.input([F.listener(IPAddress(high: 0, low: 1), family: .ipv6, v6only: true)]))
        #expect(codes(r, .warning) == ["loopback_only", "ipv6_only"])
        let f = try #require(r.findings.first { $0.code == "ipv6_only" })
        #expect(f.message.contains("127.0.0.1:8080"), "\(f.message)")
        // V6ONLY or not, [::1] takes no IPv4: the fix is a 127.0.0.1 socket, not clearing IPV6_V6ONLY.
        #expect(f.remediation?.contains("also listen on 127.0.0.1:8080") == true, "\(f.remediation ?? "")")
        #expect(f.remediation?.contains("clear IPV6_V6ONLY") == false)
    }

    @Test("IPv6-only socket: warning with IPV6_V6ONLY; unknown V6ONLY says nothing; IPv4-only is info")
    func families() {
        let v6only = Explain.analyze(F.input([F.listener(.any6, family: .ipv6, v6only: true)]))
        #expect(codes(v6only, .warning) == ["ipv6_only"])
        #expect(v6only.findings[0].message.contains("IPV6_V6ONLY"))
        let unknown = Explain.analyze(F.input([F.listener(.any6, family: .ipv6, v6only: nil)]))
        #expect(!codes(unknown).contains("ipv6_only"))
        let both = Explain.analyze(F.input([F.listener(.any6, family: .ipv6, v6only: true), F.listener(.any4)]))
        #expect(both.status == .healthy)
        let v4 = Explain.analyze(F.input([F.listener(.any4)]))
        #expect(codes(v4) == ["ipv4_only"] && v4.status == .healthy)
        // An AF_INET6 socket bound to ::ffff:a.b.c.d takes IPv4.
        let mapped = Explain.analyze(F.input([F.listener(IPAddress(v4: 10, 0, 0, 1), family: .ipv6, v6only: false)]))
        #expect(!codes(mapped).contains("ipv6_only"))
        #expect(codes(mapped).contains("specific_address"))
    }

    @Test("listener in another namespace only")
    func otherNetns() throws {
        let r = Explain.analyze(F.input([F.listener(netns: F.other)],
                                        namespaces: [F.namespace(), F.namespace(F.other, name: "db")]))
        let f = try #require(r.findings.first { $0.code == "other_netns_only" })
        #expect(f.severity == .warning && f.netns == F.ns)
        #expect(f.message.contains("network namespace 4026532400 (db) (nginx (pid 100))"))
        #expect(r.status == .degraded)
    }

    @Test("accept queue full 129/128 with the backlog at somaxconn")
    func acceptQueueFull() throws {
        let r = Explain.analyze(F.input([F.listener(queue: 129, backlog: 128)], namespaces: [F.namespace(somaxconn: 128)]))
        #expect(r.status == .broken)
        let f = try #require(r.findings.first)
        #expect(f.code == "accept_queue_full")
        #expect(f.message.hasPrefix("accept queue full 129/128 on 0.0.0.0:8080"))
        #expect(f.remediation?.contains("net.core.somaxconn in network namespace 4026532300 (web) (the backlog is capped at somaxconn 128)") == true)
        #expect(f.evidence.first { $0.0 == "somaxconn" }?.1 == .int(128))
        let atLimit = Explain.analyze(F.input([F.listener(queue: 128, backlog: 128)]))
        #expect(codes(atLimit, .warning).contains("accept_queue_at_limit"))
        let fine = Explain.analyze(F.input([F.listener(queue: 3, backlog: 128)]))
        #expect(!codes(fine).contains { $0.hasPrefix("accept_queue") })
    }

    @Test("fd limit reached: EMFILE named in the queue finding, one fd action")
    func fdLimit() throws {
        let p = F.proc(soft: 64, open: 64)
        let r = Explain.analyze(F.input([F.listener(queue: 129, backlog: 128, processes: [p])]))
        #expect(codes(r, .critical) == ["accept_queue_full", "fd_limit_reached"])
        #expect(r.findings[0].message.contains("EMFILE"))
        let fd = try #require(r.findings.first { $0.code == "fd_limit_reached" })
        #expect(fd.message.hasPrefix("fd limit 64 reached: nginx (pid 100) has 64 open files"))
        #expect(r.actions.count == 1, "ipv4_only is info; queue and fd findings share one action: \(r.actions)")
        #expect(r.actions.first?.hasPrefix("raise the open-file limit of nginx (pid 100)") == true)
        let near = Explain.analyze(F.input([F.listener(processes: [F.proc(soft: 1024, open: 1000)])]))
        #expect(codes(near, .warning) == ["fd_limit_near"])
        let unlimited = Explain.analyze(F.input([F.listener(processes: [F.proc(soft: nil, open: 100_000)])]))
        #expect(!codes(unlimited).contains { $0.hasPrefix("fd_limit") })
    }

    @Test("SYN queue full: critical with syncookies off, a warning with them on")
    func synQueue() {
        let off = Explain.analyze(F.input([F.listener(backlog: 4, syn: 5)], namespaces: [F.namespace(syncookies: 0)]))
        #expect(codes(off, .critical) == ["syn_queue_full"])
        #expect(codes(off).contains("syncookies_off"))
        let on = Explain.analyze(F.input([F.listener(backlog: 4, syn: 5)]))
        #expect(codes(on, .warning) == ["syn_queue_full"])
        // Syncookies off: tcp_max_syn_backlog (512) drops new clients once fewer than a quarter
        // remain: `512 - len < 128`, from 385 requests on; at 384 only the warning that it is near.
        let pressure = Explain.analyze(F.input([F.listener(backlog: 4096, syn: 385)], namespaces: [F.namespace(syncookies: 0)]))
        #expect(codes(pressure, .critical) == ["syn_queue_full"])
        #expect(pressure.findings.first { $0.code == "syn_queue_full" }?.message
                    .contains("at 385, past three quarters of net.ipv4.tcp_max_syn_backlog (512)") == true)
        let below = Explain.analyze(F.input([F.listener(backlog: 4096, syn: 384)], namespaces: [F.namespace(syncookies: 0)]))
        #expect(codes(below, .critical).isEmpty && codes(below, .warning).contains("syn_backlog_reserve"))
    }

    @Test("conntrack table at nf_conntrack_max: critical; within 10%: a warning; below: nothing")
    func conntrackTable() throws {
        func with(count: Int, max: Int) -> ExplainReport {
            var ns = F.namespace()
            ns.sysctls.conntrackCount = count
            ns.sysctls.conntrackMax = max
            return Explain.analyze(F.input([F.listener()], namespaces: [ns]))
        }
        let full = with(count: 64, max: 64)
        let f = try #require(full.findings.first { $0.code == "conntrack_table_full" })
        #expect(f.severity == .critical && f.message.contains("holds 64 of net.netfilter.nf_conntrack_max=64"))
        #expect(f.remediation?.contains("nf_conntrack_max=128") == true)
        #expect(f.evidence.first { $0.0 == "conntrack_count" }?.1 == .int(64))
        #expect(codes(with(count: 60, max: 64), .warning).contains("conntrack_table_full"))
        #expect(!codes(with(count: 10, max: 64)).contains("conntrack_table_full"))
    }

    @Test("counters that grew during the trace: listen_drops")
    func counters() throws {
        var ns = F.namespace()
        ns.countersAtStart = ["ListenOverflows": 4, "ListenDrops": 10]
        let r = Explain.analyze(F.input([F.listener(.any6, family: .ipv6, v6only: false)], namespaces: [ns]))
        let f = try #require(r.findings.first { $0.code == "listen_drops" })
        #expect(f.message.contains("ListenOverflows +6"))
        #expect(!f.message.contains("ListenDrops"))
    }

    @Test("firewall: certain rule where the port listens is critical; elsewhere it is info")
    func firewall() throws {
        let rs = NftRuleset(json: FirewallFixture.json, text: FirewallFixture.text)!
        var l = F.listener(.any6, family: .ipv6, v6only: false)
        l.local.port = 9110
        var input = F.input([l], namespaces: [F.namespace(firewall: .ruleset(rs))])
        input.port = 9110
        let r = Explain.analyze(input)
        let f = try #require(r.findings.first { $0.code == "firewall_reject" })
        #expect(f.severity == .critical)
        #expect(f.message.hasPrefix("nft rule inet filter input handle 3 rejects tcp dport 9110 (incoming connections to port 9110, certain)"))
        #expect(f.remediation?.contains("nft delete rule inet filter input handle 3") == true)
        #expect(f.evidence.first { $0.0 == "reject_with" }?.1 == .string("tcp-reset"))

        var elsewhere = input
        elsewhere.namespaces = [F.namespace(), F.namespace(F.other, name: "x", firewall: .ruleset(rs))]
        let e = Explain.analyze(elsewhere)
        #expect(e.findings.first { $0.code == "firewall_reject" }?.severity == .info)
        #expect(e.status == .healthy)
    }

    @Test("trace unavailable: said as info; the verdict rests on the state")
    func traceUnavailable() throws {
        let recent = RecentActivity(status: .unavailable, detail: "cannot load BPF programs: EPERM")
        let r = Explain.analyze(F.input([F.listener(.any6, family: .ipv6, v6only: false)], recent: recent))
        #expect(r.status == .healthy)
        let f = try #require(r.findings.first { $0.code == "trace_unavailable" })
        #expect(f.message.contains("EPERM"))
        #expect(!r.summary.contains("refusals"))
    }

    @Test("SYN queue attribution: exact address first, then a wildcard of a family that takes it")
    func synQueues() {
        var ls = [F.listener(IPAddress(v4: 127, 0, 0, 1)), F.listener(.any6, family: .ipv6, v6only: false)]
        ls[0].synQueue = 0
        ls[1].synQueue = 0
        Explain.assignSynQueues(&ls, requests: [
            (.ipv4, Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 8080)),
            (.ipv4, Endpoint(addr: IPAddress(v4: 10, 0, 0, 1), port: 8080)),
            (.ipv6, Endpoint(addr: IPAddress(high: 0, low: 1), port: 8080)),
        ])
        #expect(ls[0].synQueue == 1 && ls[1].synQueue == 2)
        var v6only = [F.listener(.any6, family: .ipv6, v6only: true)]
        Explain.assignSynQueues(&v6only, requests: [(.ipv4, Endpoint(addr: IPAddress(v4: 10, 0, 0, 1), port: 8080))])
        #expect(v6only[0].synQueue == 0)
    }

    @Test("output: one JSON object with the documented fields; untrusted strings escaped in text and JSON")
    func output() throws {
        var p = F.proc(comm: "evil\u{1B}[31m")
        p.exe = "/tmp/\u{202E}exe"
        let r = Explain.analyze(F.input([F.listener(IPAddress(v4: 127, 0, 0, 1), processes: [p])],
                                        recent: RecentActivity(status: .ran, seconds: 2.5, records: [F.exitedRecord()])))
        let line = ExplainFormat.jsonLine(r)
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        #expect(!line.contains("\u{1B}") && line.contains("evil\\u001b[31m") && line.contains("\\u202e"))
        let json = ExplainFormat.json(r)
        for key in ["v", "ts", "port", "verdict", "findings", "viewpoint", "listeners", "namespaces", "recent"] {
            #expect(json[key] != nil, "missing \(key)")
        }
        #expect(json["verdict"]?["status"] == .string("broken"))
        #expect(json["recent"]?["duration_ms"] == .int(2500))
        guard case .array(let listeners)? = json["listeners"] else { Issue.record("listeners is not an array"); return }
        #expect(listeners.first?["somaxconn"] == JSONValue.int(4096))
        let text = ExplainFormat.text(r)
        #expect(!text.contains("\u{1B}") && text.contains("evil\\x1b[31m"))
        #expect(!text.contains("\u{202E}"))
        #expect(text.contains("VERDICT: BROKEN"))
    }
}

@Suite("explain: tcp flags rules")
struct ExplainTCPFlagsTests {
    typealias F = ExplainFixture
    /// Output drops every RST (a "stealth" rule); input drops new non-SYNs
    /// (a hardening rule that never stops a SYN) and the SYNs of port 9300.
    static let json = #"""
    {"nftables": [{"chain": {"family": "inet", "table": "t", "name": "out", "handle": 1, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}},
    {"rule": {"family": "inet", "table": "t", "chain": "out", "handle": 2, "expr": [{"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, "rst"]}, "right": "rst"}}, {"drop": null}]}},
    {"chain": {"family": "inet", "table": "t", "name": "in", "handle": 3, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
    {"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 4, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"match": {"op": "!=", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["fin", "syn", "rst", "ack"]]}, "right": "syn"}}, {"drop": null}]}},
    {"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 5, "expr": [{"match": {"op": "in", "left": {"payload": {"protocol": "tcp", "field": "flags"}}, "right": "syn"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9300}}, {"drop": null}]}}]}
    """#

    @Test("a SYN rule is certain, a non-SYN rule never stops a handshake, an RST rule stops refusals only")
    func matches() throws {
        let ms = try #require(NftRuleset(json: Self.json)).portMatches(port: 9300)
        let syn = try #require(ms.first { $0.rule.handle == 5 })
        #expect(syn.direction == .inbound && syn.confidence == .certain && syn.portSpecific)
        #expect(!ms.contains { $0.rule.handle == 4 }, "new non-SYN packets: no SYN is one")
        let rst = try #require(ms.first { $0.rule.handle == 2 && $0.direction == .reply })
        #expect(rst.confidence == .conditional && rst.refusalsOnly && !rst.portSpecific)
        #expect(!ms.contains { $0.rule.handle == 2 && $0.direction == .outbound }, "a client's SYN has no RST")
    }

    @Test("the RST rule is a warning where nothing listens (refusals become timeouts), info where the port listens")
    func findings() throws {
        let rs = try #require(NftRuleset(json: Self.json))
        var input = F.input([], namespaces: [F.namespace(firewall: .ruleset(rs))])
        input.port = 9301
        let r = Explain.analyze(input)
        let f = try #require(r.findings.first { $0.code == "firewall_drop" })
        #expect(f.severity == .warning)
        #expect(f.message.contains("the RSTs refusing connections to port 9301"))
        #expect(f.message.contains("time out instead of being refused"))
        var l = F.listener()
        l.local.port = 9301
        var listening = input
        listening.listeners = [l]
        #expect(Explain.analyze(listening).findings.first { $0.code == "firewall_drop" }?.severity == .info)
    }
}

/// kube-proxy's nftables-mode map: port 8080 of one ClusterIP rejected, of another dropped, as nft -j lists it.
enum VerdictMapFixture {
    static let json = """
        {"nftables": [{"table": {"family": "ip", "name": "kube-proxy", "handle": 1}},
         {"map": {"family": "ip", "name": "no-endpoint-services", "table": "kube-proxy", "handle": 4, "map": "verdict",
                  "type": ["ipv4_addr", "inet_proto", "inet_service"],
                  "elem": [[{"elem": {"val": {"concat": ["10.96.0.10", "tcp", 8080]}, "comment": "shop/api:http"}},
                            {"goto": {"target": "reject-chain"}}],
                           [{"elem": {"val": {"concat": ["10.96.0.11", "tcp", 8080]}, "comment": "shop/web:http"}}, {"drop": null}]]}}]}
        """
}
