import Foundation
import Testing

/// The client's view of failures no server-side event on this host explains:
/// a destination that does not answer ARP (EHOSTUNREACH) and one whose frames
/// go nowhere (ETIMEDOUT). Namespaces, neighbours and sysctls are the test's own.
@Suite("client-side connect failures, end to end", .serialized, .enabled(if: Privileged.enabled))
struct ClientFailureTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    func failure(_ trace: TraceSession, ns: NetNS, port: Int) -> JSONRecord? {
        trace.waitForRecord(timeout: 15) {
            $0.string("kind") == "connect_failure" && $0.int("netns") == ns.inode && $0.int("port") == port
        }
    }

    @Test("no ARP answer: host_unreachable, the client's pid")
    func hostUnreachable() throws {
        let client = try NetNS()
        defer { client.remove() }
        let other = try NetNS()
        defer { other.remove() }
        try other.link(to: client)  // client is 198.18.0.2; nothing answers for .77
        let port = randomPort()
        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "198.18.0.77", port: port, timeout: 15)
        #expect(c.errno == Int(EHOSTUNREACH))
        let r = try #require(failure(trace, ns: client, port: port), "stdout: \(trace.stdout)")
        trace.stop()
        #expect(r.string("reason") == "unknown")
        #expect(r.string("cause") == "host_unreachable")
        #expect(r.pid("process") == c.pid)
        #expect((r.object("remote")?["addr"] as? String) == "198.18.0.77")
        #expect((r.evidence["errno"] as? String) == "EHOSTUNREACH")
    }

    @Test("SYNs that vanish: no_answer_past_host after the SYN retries, the client's pid and egress")
    func timedOut() throws {
        let client = try NetNS()
        defer { client.remove() }
        let other = try NetNS()
        defer { other.remove() }
        // The client's end of the veth (named by link(), not parsed from `ip link`,
        // which may also print "Peer netns reference is invalid." under load).
        let dev = try other.link(to: client).peer
        // .88 "exists" for the client (a permanent neighbour), but its frames reach no one.
        try sh(["ip", "-n", client.name, "neigh", "add", "198.18.0.88", "lladdr", "02:00:00:00:00:88",
                "dev", dev, "nud", "permanent"])
        try sh(["ip", "netns", "exec", client.name, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])
        let port = randomPort()
        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "198.18.0.88", port: port, timeout: 15)
        #expect(c.errno == Int(ETIMEDOUT))
        let r = try #require(failure(trace, ns: client, port: port), "stdout: \(trace.stdout)")
        trace.stop()
        // The SYNs left through the veth to a directly connected address: past this host.
        #expect(r.string("reason") == "connect_timeout")
        #expect(r.string("cause") == "no_answer_past_host")
        #expect((r.evidence["egress_interface"] as? String) == dev)
        #expect((r.evidence["next_hop"] as? String) == "directly connected")
        #expect((r.evidence["syn_retransmits"] as? Int ?? 0) >= 1)
        #expect(r.pid("process") == c.pid)
        #expect((r.evidence["after_ms"] as? Int ?? 0) >= 1000)
        #expect(r.string("hint")?.contains("198.18.0.88") == true)
    }
}
