import Foundation
import Testing

/// iptables-legacy rules (x_tables: `nft list ruleset` does not show them)
/// in a server namespace the test creates, reached over a veth from a client
/// namespace: the refusal must name the legacy rule, read with
/// `iptables-legacy-save -c` in the packet's namespace, with its position,
/// comment and owner, and the fix must use iptables-legacy.
@Suite("iptables-legacy rules, end to end", .serialized, .enabled(if: Privileged.enabled))
struct IptablesLegacyRuleTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    @Test("a REJECT in a ufw-style user chain of iptables-legacy: table, chain, position, comment, owner, counter, fix")
    func rejectInUserChain() throws {
        let pair = try NetNSPair(subnet: "198.18.65")
        defer { pair.remove() }
        let port = randomPort()
        let server = pair.server.name
        let ipt = ["ip", "netns", "exec", server, "iptables-legacy", "-w"]
        try sh(ipt + ["-N", "ufw-user-input"])
        try sh(ipt + ["-A", "INPUT", "-j", "ufw-user-input"])
        // An unrelated rule first: the matching one is the chain's second.
        try sh(ipt + ["-A", "ufw-user-input", "-p", "tcp", "--dport", String(port &+ 1), "-j", "DROP"])
        try sh(ipt + ["-A", "ufw-user-input", "-p", "tcp", "--dport", String(port), "-m", "comment", "--comment",
                      "deny \"legacy\" api", "-j", "REJECT", "--reject-with", "tcp-reset"])
        let nft = try sh(["ip", "netns", "exec", server, "nft", "list", "ruleset"])
        #expect(!nft.contains("ufw-user-input"), "the rule must be invisible to nft: \(nft)")
        let trace = try TraceSession([])
        let c = try Peer.connect(from: pair.client, addr: pair.serverAddr, port: port, timeout: 2)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(trace.waitForRecord(timeout: 8) {
            ($0.string("reason") ?? "").hasPrefix("firewall_") && $0.int("netns") == pair.server.inode && $0.int("port") == port
        }, "no firewall record; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("reason") == "firewall_reject")
        #expect(r.evidence["table"] as? String == "iptables-legacy filter", "record: \(r)")
        #expect(r.evidence["chain"] as? String == "ufw-user-input")
        #expect(r.evidence["handle"] as? Int == 2)
        #expect(r.evidence["rule"] as? String == "-A ufw-user-input -p tcp -m tcp --dport \(port) -m comment --comment "
                + "\"deny \\\"legacy\\\" api\" -j REJECT --reject-with tcp-reset")
        #expect(r.evidence["rule_comment"] as? String == "deny \"legacy\" api")
        #expect(r.evidence["rule_owner"] as? String == "ufw")
        #expect(r.evidence["reject_with"] as? String == "tcp-reset")
        #expect((r.evidence["rule_packets"] as? Int ?? 0) >= 1)
        #expect(r.pid("client") == c.pid)
        #expect((r.string("hint") ?? "").contains("iptables-legacy -D ufw-user-input 2"), "hint: \(r.string("hint") ?? "")")
    }
}
