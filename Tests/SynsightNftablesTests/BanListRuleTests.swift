@testable import SynsightModel
@testable import SynsightNftables
import Testing

/// Bans of fail2ban, sshguard and CrowdSec by the names their actions give
/// chains, tables and sets; named sets decided by their elements.
@Suite("firewall: bans of intrusion-prevention tools, and named sets")
struct BanListRuleTests {
    func rule(_ text: String, table: String = "inet f2b-table", chain: String = "f2b-chain", saved: String? = nil) -> FirewallRule {
        FirewallRule(table: table, chain: chain, handle: 4, text: text, verdict: .reject("icmp port-unreachable"),
                     iptables: saved != nil, saved: saved.map { IptablesSave.tokens(Substring($0)) })
    }

    @Test("fail2ban: iptables chain f2b-<jail>, nft sets addr-set-<jail> / addr6-set-<jail>, ipset f2b-<jail>")
    func fail2ban() {
        #expect(BanListRule(rule("ip saddr 203.0.113.4 counter reject", table: "ip filter", chain: "f2b-sshd"))
                == BanListRule(tool: .fail2ban, list: "sshd"))
        #expect(BanListRule(rule("tcp dport { 22 } ip saddr @addr-set-sshd reject with icmp port-unreachable"))?.list == "sshd")
        #expect(BanListRule(rule("tcp dport { 443 } ip6 saddr @addr6-set-nginx-http-auth reject"))?.list == "nginx-http-auth")
        let ipset = BanListRule(rule("xt match set reject", table: "ip filter", chain: "INPUT",
                                     saved: "-A INPUT -p tcp -m multiport --dports 22 -m set --match-set f2b-sshd src -j REJECT --reject-with icmp-port-unreachable"))
        #expect(ipset == BanListRule(tool: .fail2ban, list: "sshd"))
        #expect(ipset?.who == "fail2ban's jail sshd" && ipset?.cause == .addressBanned)
        // A name the unban command could not carry as is is left out, never pasted into it.
        #expect(BanListRule(rule("ip saddr 203.0.113.4 reject", table: "ip filter", chain: "f2b-x;reboot")) == BanListRule(tool: .fail2ban))
    }

    @Test("sshguard and CrowdSec by their tables, chains and sets; other rules are not bans")
    func others() {
        #expect(BanListRule(rule("ip saddr @attackers drop", table: "ip sshguard", chain: "blacklist")) == BanListRule(tool: .sshguard, list: "attackers"))
        #expect(BanListRule(rule("xt match set drop", table: "ip filter", chain: "sshguard",
                                 saved: "-A sshguard -m set --match-set sshguard4 src -j DROP"))?.list == "sshguard4")
        #expect(BanListRule(rule("ip saddr @crowdsec-blacklists-0 drop", table: "ip crowdsec", chain: "crowdsec-chain"))?.tool == .crowdsec)
        #expect(BanListRule(rule("xt match set drop", table: "ip filter", chain: "CROWDSEC_CHAIN",
                                 saved: "-A CROWDSEC_CHAIN -m set --match-set crowdsec-blacklists src -j DROP"))?.list == "crowdsec-blacklists")
        #expect(BanListRule(rule("tcp dport 22 reject", table: "inet filter", chain: "input")) == nil)
        #expect(BanListRule(rule("ip saddr @blocked drop", table: "inet filter", chain: "input")) == nil)
        // fail2ban's nftables chain without one of its sets is not a ban by itself.
        #expect(BanListRule(rule("tcp dport 22 reject")) == nil)
        #expect(FirewallOwner.recognise(table: "ip sshguard", chain: "blacklist") == .sshguard)
        #expect(FirewallOwner.recognise(table: "ip filter", chain: "CROWDSEC_CHAIN") == .crowdsec)
    }

    @Test("the fix lifts the ban the tool's way and keeps it from coming back")
    func advice() {
        var f = Advice.Facts(port: 22)
        f.banned(BanListRule(tool: .fail2ban, list: "sshd"), client: IPAddress(v4: 203, 0, 113, 4))
        let fix = Advice.for(reason: .firewallReject, cause: .firewall(.addressBanned), facts: f).fix
        #expect(fix.contains("fail2ban-client set sshd unbanip 203.0.113.4") && fix.contains("ignoreip"), "\(fix)")
        f.banned(BanListRule(tool: .sshguard, list: "attackers"), client: IPAddress(v4: 203, 0, 113, 4))
        #expect(Advice.for(reason: .firewallDrop, cause: .firewall(.addressBanned), facts: f).fix
                    .contains("nft delete element ip sshguard attackers { 203.0.113.4 }"))
        f.banned(BanListRule(tool: .sshguard, list: "sshguard4"), client: IPAddress(v4: 203, 0, 113, 4))
        #expect(Advice.for(reason: .firewallDrop, cause: .firewall(.addressBanned), facts: f).fix.contains("ipset del sshguard4 203.0.113.4"))
        f.banned(BanListRule(tool: .crowdsec), client: IPAddress(v4: 203, 0, 113, 4))
        #expect(Advice.for(reason: .firewallDrop, cause: .firewall(.addressBanned), facts: f).fix.contains("cscli decisions delete --ip 203.0.113.4"))
    }

    @Test("a named set decides by its elements: plain, with a timeout, a prefix, a range; not in it: the rule does not match")
    func namedSets() throws {
        let json = #"""
        {"nftables": [
          {"set": {"family": "inet", "name": "banned", "table": "t", "type": "ipv4_addr", "flags": ["timeout", "interval"],
                   "elem": ["10.9.9.9", {"elem": {"val": "198.18.77.2", "timeout": 600, "expires": 599}},
                            {"prefix": {"addr": "10.1.0.0", "len": 16}}, {"range": ["192.168.1.1", "192.168.1.9"]}]}},
          {"set": {"family": "inet", "name": "empty", "table": "t", "type": "ipv4_addr"}},
          {"chain": {"family": "inet", "table": "t", "name": "in", "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
          {"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 2, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@banned"}}, {"drop": null}]}},
          {"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 3, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@empty"}}, {"drop": null}]}},
          {"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 4, "expr": [
            {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@unknown"}}, {"drop": null}]}}]}
        """#
        let rs = try #require(NftRuleset(json: json))
        func handles(from a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> [Int?] {
            rs.candidates(for: FirewallPacket(netns: 1, family: .ipv4, local: Endpoint(addr: IPAddress(v4: 10, 0, 0, 1), port: 22),
                                              remote: Endpoint(addr: IPAddress(v4: a, b, c, d), port: 40000), hook: .input))
                .filter(\.exact).map(\.handle)
        }
        #expect(handles(from: 198, 18, 77, 2) == [2])  // the element with a timeout
        #expect(handles(from: 10, 9, 9, 9) == [2] && handles(from: 10, 1, 200, 3) == [2] && handles(from: 192, 168, 1, 5) == [2])
        #expect(handles(from: 198, 18, 77, 3).isEmpty && handles(from: 192, 168, 1, 10).isEmpty)
        // A set not listed (@unknown) is not evaluated: that rule stays a loose candidate.
        #expect(rs.candidates(for: FirewallPacket(netns: 1, family: .ipv4, local: Endpoint(addr: IPAddress(v4: 10, 0, 0, 1), port: 22),
                                                  remote: Endpoint(addr: IPAddress(v4: 1, 2, 3, 4), port: 1), hook: .input))
                    .contains { $0.handle == 4 && !$0.exact })
    }
}
