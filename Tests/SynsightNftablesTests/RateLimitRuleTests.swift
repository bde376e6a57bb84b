@testable import SynsightModel
@testable import SynsightNftables
import Testing

/// Rules that refuse past a limit, as nft prints them and as iptables-save
/// writes iptables ones; rules that refuse whatever the count are not.
@Suite("firewall: rules that refuse past a limit")
struct RateLimitRuleTests {
    func rule(_ text: String, chain: String = "in", saved: String? = nil, verdict: FirewallVerdict = .drop) -> FirewallRule {
        FirewallRule(table: saved == nil ? "inet t" : "ip filter", chain: chain, handle: 3, text: text, verdict: verdict,
                     iptables: saved != nil, saved: saved.map { IptablesSave.tokens(Substring($0)) })
    }

    @Test("nft: ct count and limit rate over, alone or per the key of a meter or a dynamic set", arguments: [
        ("tcp dport 22 ct state new ct count over 4 reject with tcp reset", "ct count over 4", nil),
        ("tcp dport 80 limit rate over 5/minute burst 3 packets drop", "limit rate over 5/minute burst 3 packets", nil),
        ("tcp dport 80 limit rate over 10 mbytes/second drop", "limit rate over 10 mbytes/second", nil),
        ("tcp dport 2227 ct state new meter m2 size 65535 { ip saddr ct count over 4 } reject", "ct count over 4", "ip saddr"),
        ("tcp dport 22 add @meter1 { ip6 saddr limit rate over 10/minute } drop", "limit rate over 10/minute", "ip6 saddr"),
        ("tcp dport 22 update @s { ip saddr . tcp dport limit rate over 3/second burst 5 packets } drop",
         "limit rate over 3/second burst 5 packets", "ip saddr . tcp dport"),
    ] as [(String, String, String?)])
    func nft(text: String, limit: String, per: String?) throws {
        let l = try #require(RateLimitRule(rule(text)))
        #expect(l.limit == limit && l.per == per && l.cause == .rateLimited)
    }

    @Test("iptables: connlimit above, hashlimit above, recent's hit count, from the saved rule's words")
    func iptables() throws {
        let conn = try #require(RateLimitRule(rule("tcp dport 2222 xt match connlimit reject with tcp reset", chain: "INPUT",
            saved: "-A INPUT -p tcp -m tcp --dport 2222 -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset")))
        #expect(conn.limit == "-m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr" && conn.per == "source address")
        #expect(conn.condition == "past its limit (-m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr, counted per source address)")
        let all = RateLimitRule(rule("x", chain: "INPUT", saved: "-A INPUT -p tcp -m connlimit --connlimit-above 100 --connlimit-mask 0 -j DROP"))
        #expect(all?.per == nil)
        let hash = RateLimitRule(rule("x", chain: "INPUT",
            saved: "-A INPUT -p tcp -m hashlimit --hashlimit-above 10/sec --hashlimit-mode srcip --hashlimit-name http -j DROP"))
        #expect(hash?.limit == "-m hashlimit --hashlimit-above 10/sec --hashlimit-mode srcip --hashlimit-name http" && hash?.per == "source address")
        let recent = RateLimitRule(rule("x", chain: "INPUT",
            saved: "-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 60 --hitcount 4 --name SSH --rsource -j DROP"))
        #expect(recent?.limit == "-m recent --update --seconds 60 --hitcount 4 --name SSH --rsource" && recent?.per == "source address")
    }

    @Test("ufw's limit chain; iptables-nft without iptables-save: the match's name only")
    func ufwAndUnsaved() {
        #expect(RateLimitRule(rule("counter reject", chain: "ufw-user-limit"))?.per == "source address")
        #expect(RateLimitRule(rule("counter reject", chain: "ufw6-user-limit"))?.limit.hasPrefix("ufw limit") == true)
        #expect(RateLimitRule(rule("tcp dport 2222 xt match connlimit reject with tcp reset"))?.limit == "-m connlimit")
    }

    @Test("rules that refuse whatever the count are not limits")
    func notLimits() {
        #expect(RateLimitRule(rule("tcp dport 22 reject")) == nil)
        #expect(RateLimitRule(rule("policy drop", verdict: .policyDrop)) == nil)
        // Below the limit, or a blocklist without a hit count: not a limit that was passed.
        #expect(RateLimitRule(rule("x", chain: "INPUT", saved: "-A INPUT -p tcp -m connlimit --connlimit-upto 5 -j DROP")) == nil)
        #expect(RateLimitRule(rule("x", chain: "INPUT", saved: "-A INPUT -m recent --rcheck --name BAN -j DROP")) == nil)
        #expect(RateLimitRule(rule("x", chain: "INPUT", saved: "-A INPUT -p tcp -m hashlimit --hashlimit-upto 5/sec -j DROP")) == nil)
        // A limit under an accept is not in a rule that refuses (ct count under, limit rate without over).
        #expect(RateLimitRule(rule("tcp dport 80 limit rate 5/second drop")) == nil)
        #expect(RateLimitRule(rule("tcp dport 80 ct count 5 drop")) == nil)
    }

    @Test("the fix: exempt the client before the limit (iptables, nft, ufw), not delete the rule")
    func advice() {
        var facts = Advice.Facts(port: 2222, rule: Advice.Rule(table: "ip filter", chain: "INPUT", handle: 2, iptables: true, policyDrop: false))
        facts.rateLimited(RateLimitRule(limit: "-m connlimit --connlimit-above 2", per: "source address"), client: IPAddress(v4: 198, 18, 77, 2))
        let ipt = Advice.for(reason: .firewallReject, cause: .firewall(.rateLimited), facts: facts)
        #expect(ipt.fix.contains("iptables -I INPUT -s 198.18.77.2 -p tcp --dport 2222 -j ACCEPT"), "\(ipt.fix)")
        #expect(ipt.fix.contains("raise the limit (-m connlimit --connlimit-above 2, counted per source address)") && !ipt.fix.contains("delete"))
        facts.rule = Advice.Rule(table: "inet t", chain: "in", handle: 3, iptables: false, policyDrop: false)
        facts.clientAddress = IPAddress(high: 0x2001_0db8_0000_0000, low: 5)
        #expect(Advice.for(reason: .firewallDrop, cause: .firewall(.rateLimited), facts: facts).fix
                    .contains("nft insert rule inet t in ip6 saddr 2001:db8::5 tcp dport 2222 accept"))
        facts.rule = Advice.Rule(table: "ip filter", chain: "ufw-user-limit", handle: 9, iptables: true, policyDrop: false)
        #expect(Advice.for(reason: .firewallReject, cause: .firewall(.rateLimited), facts: facts).fix
                    .contains("ufw insert 1 allow from 2001:db8::5 to any port 2222 proto tcp"))
    }

    @Test("an iptables-nft rule is deleted by its saved words, quoted for the shell")
    func exactDelete() {
        let saved = IptablesSave.tokens(#"-A INPUT -p tcp -m tcp --dport 80 -m comment --comment "no web; it's closed" -j REJECT --reject-with tcp-reset"#)
        let rule = Advice.Rule(table: "ip filter", chain: "INPUT", handle: 7, iptables: true, policyDrop: false, saved: saved)
        let fix = Advice.for(reason: .firewallReject, cause: nil, facts: Advice.Facts(port: 80, rule: rule)).fix
        #expect(fix.contains(#"iptables -D INPUT -p tcp -m tcp --dport 80 -m comment --comment 'no web; it'\''s closed' -j REJECT --reject-with tcp-reset"#), "\(fix)")
        let nat = Advice.Rule(table: "ip nat", chain: "PREROUTING", handle: 7, iptables: true, policyDrop: false,
                              saved: ["-A", "PREROUTING", "-p", "tcp", "-j", "DROP"])
        #expect(Advice.for(reason: .firewallDrop, cause: nil, facts: Advice.Facts(port: 80, rule: nat)).fix.contains("iptables -t nat -D PREROUTING -p tcp -j DROP"))
    }

    @Test("iptables-save's words are joined to iptables-nft rules by chain and position, with their comments")
    func attachSaved() throws {
        let json = #"""
        {"nftables": [{"table": {"family": "ip", "name": "filter"}},
          {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
          {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 2, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 2222}},
            {"xt": {"type": "match", "name": "connlimit"}}, {"xt": {"type": "match", "name": "comment"}},
            {"xt": {"type": "target", "name": "REJECT"}}]}}]}
        """#
        var rs = try #require(NftRuleset(json: json))
        #expect(rs.hasIptablesNftRules)
        rs.attachIptablesSave("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 2222 -m connlimit --connlimit-above 2 -m comment --comment \"per-client cap\" -j REJECT\nCOMMIT\n", family: "ip")
        let c = try #require(rs.candidates(for: FirewallPacket(netns: 1, family: .ipv4, local: Endpoint(addr: IPAddress(v4: 10, 0, 0, 1), port: 2222),
                                                            remote: Endpoint(addr: IPAddress(v4: 10, 0, 0, 2), port: 40000), hook: .input)).first)
        #expect(c.comment == "per-client cap" && c.saved?.first == "-A" && c.saved?.last == "REJECT")
        #expect(RateLimitRule(c)?.limit == "-m connlimit --connlimit-above 2")
        // A rule added between nft's listing and iptables-save: the chain's rules keep nft's text only.
        var raced = try #require(NftRuleset(json: json))
        raced.attachIptablesSave("*filter\n-A INPUT -s 203.0.113.9/32 -j DROP\n-A INPUT -p tcp -m tcp --dport 2222 -m connlimit --connlimit-above 2 -j REJECT\nCOMMIT\n",
                                 family: "ip")
        #expect(raced.rules.allSatisfy { $0.saved == nil })
        #expect(!(try #require(NftRuleset(json: #"{"nftables": [{"chain": {"family": "inet", "table": "t", "name": "in", "hook": "input"}}]}"#))).hasIptablesNftRules)
    }
}
