import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables

/// `tcp flags` matches as `nft -j list ruleset` 1.0.6 prints them (copied
/// from its output for the rule text in each case's comment).
@Suite("firewall: tcp flags matches")
struct TCPFlagsMatchTests {
    static let flags = #"{"payload": {"protocol": "tcp", "field": "flags"}}"#
    static func match(_ op: String, left: String = flags, _ right: String) -> JSONValue {
        JSONReader.parse(#"{"op": "\#(op)", "left": \#(left), "right": \#(right)}"#)!
    }

    static let syn: UInt8 = 0x02, synAck: UInt8 = 0x12, ack: UInt8 = 0x10, rstAck: UInt8 = 0x14

    @Test("every form nft and iptables-nft write, against the handshake's segments")
    func forms() {
        let cases: [(String, JSONValue, [UInt8: Bool])] = [
            ("tcp flags & rst == rst", Self.match("==", left: #"{"&": [\#(Self.flags), "rst"]}"#, #""rst""#),
             [Self.syn: false, Self.synAck: false, Self.ack: false, Self.rstAck: true]),
            ("tcp flags syn", Self.match("in", #""syn""#),
             [Self.syn: true, Self.synAck: true, Self.ack: false, Self.rstAck: false]),
            ("tcp flags syn / fin,syn,rst,ack (iptables --syn)",
             Self.match("==", left: #"{"&": [\#(Self.flags), ["fin", "syn", "rst", "ack"]]}"#, #""syn""#),
             [Self.syn: true, Self.synAck: false, Self.ack: false, Self.rstAck: false]),
            ("tcp flags { syn | ack, syn }", Self.match("==", #"{"set": [{"|": ["syn", "ack"]}, "syn"]}"#),
             [Self.syn: true, Self.synAck: true, Self.ack: false, Self.rstAck: false]),
            ("tcp flags == 0x12", Self.match("==", "18"),
             [Self.syn: false, Self.synAck: true, Self.ack: false, Self.rstAck: false]),
            ("tcp flags & (syn|ack) != syn", Self.match("!=", left: #"{"&": [\#(Self.flags), ["syn", "ack"]]}"#, #""syn""#),
             [Self.syn: false, Self.synAck: true, Self.ack: true, Self.rstAck: true]),
        ]
        for (text, m, want) in cases {
            #expect(TCPFlagsMatch.isFlags(m), "\(text)")
            for (segment, passes) in want {
                #expect(TCPFlagsMatch.passes(m, flags: segment) == passes, "\(text) on flags \(segment)")
            }
        }
    }

    @Test("forms not understood are not guessed; other matches are not flags matches")
    func unknown() {
        // Unmasked `!=`: nft versions differ between "not exactly" and "none of".
        #expect(TCPFlagsMatch.passes(Self.match("!=", #""syn""#), flags: Self.ack) == nil)
        #expect(TCPFlagsMatch.passes(Self.match("==", #""bogus""#), flags: Self.syn) == nil)
        let dport = Self.match("==", left: #"{"payload": {"protocol": "tcp", "field": "dport"}}"#, "22")
        #expect(!TCPFlagsMatch.isFlags(dport) && TCPFlagsMatch.passes(dport, flags: Self.syn) == nil)
    }

    @Test("a dropped RST is named by the rule that drops RSTs; a SYN-ACK is not")
    func candidates() throws {
        let json = #"""
        {"nftables": [{"chain": {"family": "inet", "table": "t", "name": "out", "handle": 1, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "t", "chain": "out", "handle": 2, "expr": [{"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, "rst"]}, "right": "rst"}}, {"drop": null}]}}]}
        """#
        let rs = try #require(NftRuleset(json: json))
        func packet(_ flags: UInt8?) -> FirewallPacket {
            FirewallPacket(netns: 1, family: .ipv4, local: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 40000),
                           remote: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 7777), hook: .output, isSyn: false,
                           tcpFlags: flags)
        }
        let rst = rs.candidates(for: packet(Self.rstAck))
        #expect(rst.first?.handle == 2 && rst.first?.exact == true)
        #expect(rs.candidates(for: packet(Self.synAck)).isEmpty)
        // Flags not known: still a candidate, not an exact one.
        #expect(rs.candidates(for: packet(nil)).first?.exact == false)
    }
}
