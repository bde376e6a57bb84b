import Foundation
import Testing

/// Destination NAT against the real kernel: a client namespace connects to a
/// "published" address on a router namespace, whose nft DNAT rule sends the
/// SYN to a server namespace (a container's, as Docker `-p` or a kube-proxy
/// Service do). Everything lives in namespaces the test creates and deletes.
@Suite("destination NAT and wrong ports, end to end", .serialized, .enabled(if: Privileged.enabled))
struct NATTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    static let (clientAddr, routerFront) = ("198.18.9.2", "198.18.9.1")
    static let (routerBack, serverAddr) = ("198.18.10.1", "198.18.10.2")

    /// client --veth-- router (DNAT, forwarding) --veth-- server.
    struct Topology {
        let client: NetNS, router: NetNS, server: NetNS

        init(publishedPort: Int, targetPort: Int) throws {
            client = try NetNS()
            router = try NetNS()
            server = try NetNS()
            let n = router.number
            try Self.veth(client, NATTests.clientAddr, "natc\(n)", router, NATTests.routerFront, "natr\(n)")
            try Self.veth(server, NATTests.serverAddr, "nats\(n)", router, NATTests.routerBack, "natb\(n)")
            try sh(["ip", "-n", client.name, "route", "add", "default", "via", NATTests.routerFront])
            try sh(["ip", "-n", server.name, "route", "add", "default", "via", NATTests.routerBack])
            try sh(["ip", "netns", "exec", router.name, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            let ruleset = """
                table ip synsight_nat {
                  chain prerouting { type nat hook prerouting priority -100;
                    tcp dport \(publishedPort) dnat to \(NATTests.serverAddr):\(targetPort) comment "published"
                  }
                }
                """
            try router.loadNft(ruleset)
        }

        static func veth(_ a: NetNS, _ aAddr: String, _ aDev: String, _ b: NetNS, _ bAddr: String, _ bDev: String) throws {
            try sh(["ip", "link", "add", aDev, "netns", a.name, "type", "veth", "peer", "name", bDev, "netns", b.name])
            try sh(["ip", "-n", a.name, "addr", "add", "\(aAddr)/24", "dev", aDev])
            try sh(["ip", "-n", b.name, "addr", "add", "\(bAddr)/24", "dev", bDev])
            try sh(["ip", "-n", a.name, "link", "set", aDev, "up"])
            try sh(["ip", "-n", b.name, "link", "set", bDev, "up"])
        }

        func remove() {
            client.remove()
            router.remove()
            server.remove()
        }
    }

    @Test("a published port mapped to the wrong container port: wrong_port, the listener, the client and its original destination")
    func publishedToTheWrongPort() throws {
        let published = randomPort()
        let target = published + 1, actual = published + 2
        let topo = try Topology(publishedPort: published, targetPort: target)
        defer { topo.remove() }
        let trace = try TraceSession([])
        let listener = try Peer(listenIn: topo.server, addr: "0.0.0.0", port: actual)
        let c = try Peer.connect(from: topo.client, addr: Self.routerFront, port: published)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = trace.waitForRecord { $0.string("reason") == "no_listener" && $0.int("port") == target }
        trace.stop()
        guard let r else {
            Issue.record("no refusal for port \(target): \(trace.stdout)")
            return
        }
        #expect(r.string("kind") == "refusal")
        #expect(r.string("cause") == "wrong_port", "\(r)")
        #expect(r.int("netns") == topo.server.inode)
        #expect(r.pid("process") == listener.pid, "\(r)")
        #expect(r.pid("client") == c.pid, "\(r)")
        let original = r.object("original_destination")
        #expect(original?["addr"] as? String == Self.routerFront, "\(r)")
        #expect(original?["port"] as? Int == published, "\(r)")
        #expect(r.evidence["nat"] as? String == "dnat", "\(r)")
        let listeners = r.evidence["listeners"] as? [[String: Any]]
        #expect(listeners?.first?["port"] as? Int == actual, "\(r)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("\(Self.routerFront):\(published)") && hint.contains("listens on \(actual)"), "\(hint)")
        _ = listener
    }

    @Test("a published port with nothing in the container: the client is joined across the DNAT")
    func publishedToNothing() throws {
        let published = randomPort()
        let target = published + 1
        let topo = try Topology(publishedPort: published, targetPort: target)
        defer { topo.remove() }
        let trace = try TraceSession([])
        let c = try Peer.connect(from: topo.client, addr: Self.routerFront, port: published)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = trace.waitForRecord { $0.string("reason") == "no_listener" && $0.int("port") == target }
        trace.stop()
        guard let r else {
            Issue.record("no refusal for port \(target): \(trace.stdout)")
            return
        }
        #expect(r.string("cause") == "never_listened", "\(r)")
        #expect(r.int("netns") == topo.server.inode)
        #expect(r.pid("client") == c.pid, "\(r)")
        #expect(r.object("original_destination")?["port"] as? Int == published, "\(r)")
        // One record for the connection: no separate client-side failure.
        #expect(!trace.records.contains { $0.string("reason") == "connection_refused" || $0.string("cause") == "connection_refused" },
                "\(trace.stdout)")
    }

    /// DNAT inside the server's own namespace: the original destination comes
    /// from the SYN's conntrack entry (read in BPF), and the client is joined on it.
    @Test("DNAT in the refusing namespace: original_destination from conntrack, and the client")
    func dnatInTheSameNamespace() throws {
        let pair = try FirewallTests.Pair()
        defer { pair.remove() }
        let published = randomPort(), target = published + 1
        let ruleset = """
            table ip synsight_nat {
                chain prerouting {
                    type nat hook prerouting priority dstnat; policy accept;
                    tcp dport \(published) dnat to \(FirewallTests.v4Server):\(target)
                }
            }
            """
        try pair.server.loadNft(ruleset)
        let trace = try TraceSession([])
        let c = try Peer.connect(from: pair.client, addr: FirewallTests.v4Server, port: published, timeout: 2)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == pair.server.inode && $0.int("port") == target
        }, "no refusal on the translated port; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("reason") == "no_listener")
        // never_listened, or other_netns when a concurrent test listens on that port elsewhere.
        #expect(["never_listened", "other_netns"].contains(r.string("cause") ?? ""), "record: \(r)")
        #expect((r.object("local")?["port"] as? Int) == target)
        #expect(r.object("original_destination")?["addr"] as? String == FirewallTests.v4Server, "record: \(r)")
        #expect(r.object("original_destination")?["port"] as? Int == published, "record: \(r)")
        #expect(r.pid("client") == c.pid, "record: \(r)")
        #expect((r.string("hint") ?? "").contains("the client connected to \(FirewallTests.v4Server):\(published)"))
    }
}
