import Testing
import SynsightTestSupport
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightExplain

/// A regular chain's rules are judged with the jumps that send a port's
/// traffic there (ChainEntry.swift): fail2ban's port-specific jump makes its
/// bans port 22's alone.
@Suite("explain: rules of a chain reached by a jump")
struct ChainEntryTests {
    static func rule(_ chain: String, _ h: Int, _ expr: String) -> String {
        #"{"rule": {"family": "ip", "table": "filter", "chain": "\#(chain)", "handle": \#(h), "expr": [\#(expr)]}}"#
    }
    static let dport22 = #"{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}"#
    static func saddr(_ a: String) -> String {
        #"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "\#(a)"}}"#
    }
    static let reject = #"{"xt": {"type": "target", "name": "REJECT"}}"#

    /// INPUT: `-p tcp --dport 22 -j f2b-sshd`, `-j mychain`, `-s 198.51.100.0/24 -j lab`;
    /// f2b-sshd: a ban; mychain: `--dport 8080 -j DROP`; lab: `-j DROP`; orphan: `-j DROP`;
    /// OUTPUT: `-j outonly`, outonly: `-j DROP`.
    static func ruleset() throws -> NftRuleset {
        let chains = ["f2b-sshd", "mychain", "lab", "orphan", "outonly"].enumerated().map {
            #"{"chain": {"family": "ip", "table": "filter", "name": "\#($0.element)", "handle": \#($0.offset + 10)}}"#
        }
        let json = #"{"nftables": [{"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, "#
            + #"{"chain": {"family": "ip", "table": "filter", "name": "OUTPUT", "handle": 2, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}, "#
            + chains.joined(separator: ", ") + ", " + [
                rule("INPUT", 3, dport22 + #", {"jump": {"target": "f2b-sshd"}}"#),
                rule("INPUT", 4, #"{"jump": {"target": "mychain"}}"#),
                rule("INPUT", 5, saddr("198.51.100.0/24") + #", {"jump": {"target": "lab"}}"#),
                rule("OUTPUT", 6, #"{"jump": {"target": "outonly"}}"#),
                rule("f2b-sshd", 20, saddr("192.0.2.7") + ", " + reject),
                rule("mychain", 21, #"{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"drop": null}"#),
                rule("lab", 22, #"{"drop": null}"#),
                rule("orphan", 23, #"{"drop": null}"#),
                rule("outonly", 24, #"{"drop": null}"#),
            ].joined(separator: ", ") + "]}"
        return try #require(NftRuleset(json: json))
    }

    @Test("fail2ban's ban behind a port-22 jump: port 22's alone, with the ban's condition, not 'matches every port'")
    func portSpecificJump() throws {
        let rs = try Self.ruleset()
        let ssh = try #require(rs.portMatches(port: 22).first { $0.rule.handle == 20 })
        #expect(ssh.portSpecific && ssh.confidence == .conditional)
        #expect(ssh.conditions.contains { $0.contains("192.0.2.7") }, "\(ssh.conditions)")
        #expect(!ssh.conditions.contains { $0.contains("another chain") }, "\(ssh.conditions)")
        #expect(!rs.portMatches(port: 443).contains { $0.rule.handle == 20 }, "a ban of port 22 is no finding for 443")
    }

    @Test("an unconditional jump adds no condition; a conditional one adds its matches and names the jump")
    func conditions() throws {
        let rs = try Self.ruleset()
        let web = try #require(rs.portMatches(port: 8080).first { $0.rule.handle == 21 })
        #expect(web.confidence == .certain && web.conditions.isEmpty && web.portSpecific, "\(web)")
        let lab = try #require(rs.portMatches(port: 8080).first { $0.rule.handle == 22 })
        #expect(lab.confidence == .conditional && !lab.portSpecific)
        #expect(lab.conditions.first?.contains("198.51.100.0/24") == true, "\(lab.conditions)")
        #expect(lab.conditions.contains("sent to lab by INPUT handle 5"), "\(lab.conditions)")
    }

    @Test("no jump carries inbound traffic there (an orphan chain, one only OUTPUT jumps to): not a finding")
    func unreachable() throws {
        let m = try Self.ruleset().portMatches(port: 8080)
        #expect(!m.contains { $0.rule.handle == 23 || $0.rule.handle == 24 }, "\(m.map(\.rule.handle))")
    }

    @Test("a table with a verdict map: reachability is not decided from jumps alone (as before)")
    func verdictMap() throws {
        let json = #"{"nftables": [{"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, "#
            + #"{"chain": {"family": "ip", "table": "filter", "name": "svc", "handle": 2}}, "#
            + Self.rule("INPUT", 3, #"{"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": "@ports"}}"#) + ", "
            + Self.rule("svc", 4, #"{"drop": null}"#) + "]}"
        let rs = try #require(NftRuleset(json: json))
        let m = try #require(rs.portMatches(port: 8080).first { $0.rule.handle == 4 })
        #expect(m.conditions.contains("only when another chain jumps to svc") && !m.portSpecific)
    }
}
