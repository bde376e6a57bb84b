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
            try client.veth("natc\(n)", NATTests.clientAddr, to: router, "natr\(n)", NATTests.routerFront)
            try server.veth("nats\(n)", NATTests.serverAddr, to: router, "natb\(n)", NATTests.routerBack)
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

    @Test("a local client of a published port, translated into another namespace and masqueraded (Podman's and Docker's loopback forwarding, a NodePort from the node): one record, with the client, its original destination and its masqueraded source")
    func localClientMasqueraded() throws {
        try masqueraded(randomFully: false)
    }

    @Test("the same, masqueraded with fully-random (kube-proxy's --random-fully): the port changes too; joined as the one candidate")
    func localClientMasqueradedRandomFully() throws {
        try masqueraded(randomFully: true)
    }

    func masqueraded(randomFully: Bool) throws {
        let published = randomPort()
        let target = published + 1, actual = published + 2
        // The "host" (client and NAT in one namespace, as on a node) and a "container".
        let host = try NetNS(), container = try NetNS()
        defer { host.remove(); container.remove() }
        let n = host.number
        try host.veth("natm\(n)", Self.routerBack, to: container, "natn\(n)", Self.serverAddr)
        // Loopback-sourced packets may leave through the veth only with
        // route_localnet (CNI's portmap and Docker set it on their bridges).
        try sh(["ip", "netns", "exec", host.name, "sysctl", "-qw", "net.ipv4.conf.natm\(n).route_localnet=1"])
        try host.loadNft("""
            table ip synsight_masq {
              chain output { type nat hook output priority -100;
                ip daddr 127.0.0.1 tcp dport \(published) dnat to \(Self.serverAddr):\(target)
              }
              chain postrouting { type nat hook postrouting priority 100;
                ip daddr \(Self.serverAddr) masquerade\(randomFully ? " fully-random" : "")
              }
            }
            """)
        let trace = try TraceSession([])
        let listener = try Peer(listenIn: container, addr: "0.0.0.0", port: actual)
        let c = try Peer.connect(from: host, addr: "127.0.0.1", port: published)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = trace.waitForRecord { $0.string("reason") == "no_listener" && $0.int("port") == target }
        Thread.sleep(forTimeInterval: 0.5)  // past the join window: a separate client-side record would be out
        trace.stop()
        guard let r else {
            Issue.record("no refusal for port \(target): \(trace.stdout)")
            return
        }
        #expect(r.string("cause") == "wrong_port", "\(r)")
        #expect(r.int("netns") == container.inode)
        #expect(r.pid("process") == listener.pid, "\(r)")
        #expect(r.pid("client") == c.pid, "\(r)")
        #expect(r.object("original_destination")?["addr"] as? String == "127.0.0.1", "\(r)")
        #expect(r.object("original_destination")?["port"] as? Int == published, "\(r)")
        #expect(r.evidence["nat"] as? String == "dnat", "\(r)")
        #expect((r.evidence["translated_source"] as? [String: Any])?["addr"] as? String == Self.routerBack, "\(r)")
        #expect(r.evidence["nat_match"] as? String == (randomFully ? "only_candidate" : "source_port"), "\(r)")
        #expect((r.string("hint") ?? "").contains("its source masqueraded to \(Self.routerBack):"), "\(r)")
        // One record for the connection: no client-side "nothing on this host explains it".
        #expect(!trace.records.contains { $0.int("port") == published }, "\(trace.stdout)")
    }

    @Test("--port with the port before a DNAT in the listener's own namespace keeps the refusal, filtered in the kernel")
    func portFilterMatchesTheOriginalPort() throws {
        // A redirect in the server's own namespace (REDIRECT, a DNAT to a
        // local process, a node's NodePort): the refused SYN still carries
        // its conntrack entry, whose original port the kernel's filter
        // reads. (Across namespaces, as for a container's published port,
        // the entry stays behind in the namespace that translated: see the
        // README's --port.)
        let published = randomPort()
        let target = published + 1
        let client = try NetNS(), server = try NetNS()
        defer { client.remove(); server.remove() }
        try server.link(to: client)  // server 198.18.0.1, client .2
        try server.loadNft("""
            table ip synsight_nat {
              chain prerouting { type nat hook prerouting priority -100;
                tcp dport \(published) redirect to :\(target) comment "redirect"
              }
            }
            """)
        let trace = try TraceSession(["--port", String(published)])
        // First a refusal at a port the filter names neither way: not reported.
        let other = try Peer.connect(from: client, addr: "198.18.0.1", port: target)
        #expect(other.errno == Int(ECONNREFUSED))
        let c = try Peer.connect(from: client, addr: "198.18.0.1", port: published)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = trace.waitForRecord { $0.string("reason") == "no_listener" && $0.int("port") == target }
        trace.stop()
        guard let r else {
            Issue.record("no refusal for port \(target) under --port \(published): \(trace.stdout)\n\(trace.stderr)")
            return
        }
        #expect(r.int("netns") == server.inode, "\(r)")
        #expect(r.pid("client") == c.pid, "\(r)")
        #expect(r.object("original_destination")?["port"] as? Int == published, "\(r)")
        let refusals = trace.records.filter { $0.string("reason") == "no_listener" }
        #expect(refusals.count == 1, "only the redirected port's refusal: \(trace.stdout)")
    }
}
