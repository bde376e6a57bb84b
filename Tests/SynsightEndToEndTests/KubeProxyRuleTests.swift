import Foundation
import Testing

/// A kube-proxy-shaped iptables-nft rule (INPUT -> KUBE-SERVICES, a REJECT
/// with kube-proxy's "has no endpoints" comment) in a server namespace the
/// test creates, reached over a veth from a client namespace: the refusal
/// must carry the rule's comment, its owner, and name the Service.
@Suite("kube-proxy rule comments, end to end", .serialized, .enabled(if: Privileged.enabled))
struct KubeProxyRuleTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    @Test("kube-proxy no-endpoints reject: cause service_without_endpoints, the Service named from the rule's comment")
    func serviceWithoutEndpoints() throws {
        let pair = try NetNSPair(subnet: "198.18.7")
        defer { pair.remove() }
        let port = randomPort()
        let server = pair.server.name
        try sh(["ip", "netns", "exec", server, "iptables", "-N", "KUBE-SERVICES"])
        try sh(["ip", "netns", "exec", server, "iptables", "-A", "INPUT", "-j", "KUBE-SERVICES"])
        try sh(["ip", "netns", "exec", server, "iptables", "-A", "KUBE-SERVICES", "-p", "tcp", "--dport", String(port),
                "-m", "comment", "--comment", "shop/api:http has no endpoints",
                "-j", "REJECT", "--reject-with", "icmp-port-unreachable"])
        let trace = try TraceSession([])
        let c = try Peer.connect(from: pair.client, addr: pair.serverAddr, port: port, timeout: 2)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(trace.waitForRecord(timeout: 8) {
            ($0.string("reason") ?? "").hasPrefix("firewall_") && $0.int("netns") == pair.server.inode && $0.int("port") == port
        }, "no firewall record; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("kind") == "refusal")
        #expect(r.string("reason") == "firewall_reject")
        #expect(r.string("cause") == "service_without_endpoints", "record: \(r)")
        #expect(r.evidence["service"] as? String == "shop/api:http")
        #expect(r.evidence["rule_comment"] as? String == "shop/api:http has no endpoints")
        #expect(r.evidence["rule_owner"] as? String == "kube-proxy")
        #expect(r.evidence["table"] as? String == "ip filter")
        #expect(r.evidence["chain"] as? String == "KUBE-SERVICES")
        #expect(r.pid("client") == c.pid)
        #expect((r.string("hint") ?? "").contains("Service shop/api:http has no ready endpoints"))
        #expect(r.string("netns_name") == server)
    }
}
