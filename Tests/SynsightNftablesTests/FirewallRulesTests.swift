import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables

@Suite("firewall: rule matching on a recorded ruleset")
struct FirewallRulesTests {
    let rs = NftRuleset(json: FirewallFixture.json, text: FirewallFixture.text)!

    func packet(_ port: UInt16, v6: Bool = false, src: IPAddress = IPAddress(v4: 198, 18, 7, 2),
                hook: FirewallHook = .input) -> FirewallPacket {
        let dst = v6 ? IPAddress(high: 0, low: 1) : IPAddress(v4: 198, 18, 7, 1)
        return FirewallPacket(netns: 1, family: v6 ? .ipv6 : .ipv4, local: Endpoint(addr: dst, port: port),
                              remote: Endpoint(addr: v6 ? IPAddress(high: 0, low: 1) : src, port: 40000), hook: hook)
    }

    @Test("tcp dport rule, with comment, counters stripped from the text")
    func dport() {
        let c = rs.candidates(for: packet(9110))
        #expect(c.first?.table == "inet filter" && c.first?.chain == "input" && c.first?.handle == 3)
        #expect(c.first?.text == "tcp dport 9110 reject with tcp reset comment \"x\"")
        #expect(c.first?.verdict == .reject("tcp-reset") && c.first?.packets == 0 && c.first?.exact == true)
        // The ip strict table's input chain has policy drop: a later candidate.
        #expect(c.last?.verdict == .policyDrop && c.last?.table == "ip strict")
    }

    @Test("plain reject in an inet table is icmpx port-unreachable")
    func plainReject() {
        #expect(rs.candidates(for: packet(9111)).first?.verdict == .reject("icmpx port-unreachable"))
    }

    @Test("ip saddr prefix and anonymous set")
    func prefixAndSet() {
        let inside = rs.candidates(for: packet(9113, src: IPAddress(v4: 10, 1, 2, 3)))
        #expect(inside.first?.handle == 6 && inside.first?.verdict == .drop)
        let outside = rs.candidates(for: packet(9113))
        #expect(!outside.contains { $0.handle == 6 })
    }

    @Test("ip6 daddr rule fits IPv6 only; IPv4 tables do not")
    func families() {
        let v6 = rs.candidates(for: packet(9115, v6: true))
        #expect(v6.first?.handle == 7 && v6.first?.verdict == .reject("icmpv6 port-unreachable"))
        #expect(!v6.contains { $0.table.hasPrefix("ip ") })
        #expect(!rs.candidates(for: packet(9115)).contains { $0.handle == 7 })
    }

    @Test("port range, and hooks: an output rule does not explain an input drop")
    func rangeAndHook() {
        #expect(rs.candidates(for: packet(9125)).first?.handle == 8)
        #expect(!rs.candidates(for: packet(9140)).contains { $0.handle == 9 })
        #expect(rs.candidates(for: packet(9140, hook: .output)).first?.handle == 9)
    }

    @Test("iptables-nft REJECT and DROP: reject type from the rule text, table marked as iptables")
    func iptables() {
        let rej = rs.candidates(for: packet(9200)).first
        #expect(rej?.table == "ip filter" && rej?.chain == "INPUT" && rej?.handle == 2)
        #expect(rej?.verdict == .reject("tcp-reset") && rej?.iptables == true)
        #expect(rej?.text == "tcp dport 9200 reject with tcp reset")
        #expect(rs.candidates(for: packet(9201)).first?.verdict == .drop)
    }

    @Test("accept rules are not candidates; only the policy explains a drop of port 22")
    func accepted() {
        let c = rs.candidates(for: packet(22))
        #expect(c.count == 1 && c.first?.verdict == .policyDrop)
    }

    @Test("JSON reader: escapes, nesting, rejection of garbage")
    func json() {
        #expect(JSONReader.parse(#"{"a": [1, -2, "x\"y\u0041"], "b": null, "c": true}"#)?["a"]
                == .array([.int(1), .int(-2), .string("x\"yA")]))
        #expect(JSONReader.parse("{\"a\": ") == nil)
        #expect(JSONReader.parse("[1] x") == nil)
        #expect(NftRuleset(json: "not json") == nil)
    }

    @Test("address parsing for rule matching")
    func addresses() {
        #expect(IPAddress.parse("fd00:5e::1")?.description == "fd00:5e::1")
        #expect(IPAddress.parse("::ffff:1.2.3.4") == IPAddress(v4: 1, 2, 3, 4))
        #expect(IPAddress.parse("1.2.3") == nil)
        #expect(IPAddress(v4: 10, 9, 8, 7).inPrefix(IPAddress(v4: 10, 0, 0, 0), length: 104))
    }
}
