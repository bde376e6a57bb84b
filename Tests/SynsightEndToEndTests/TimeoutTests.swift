import Foundation
import Testing

/// Timeouts explained (issue 17): a local connect() that times out names
/// the drop on this host that caused it (an nft DROP in a peer namespace),
/// or where its SYNs left the host and that nothing came back (a route via a
/// `dummy` interface, which consumes what it is given). Namespaces, routes,
/// rules and sysctls are the test's own; tcp_syn_retries=1 ends each
/// connect() after a few seconds.
@Suite("connect() timeouts explained, end to end", .serialized, .enabled(if: Privileged.enabled))
struct TimeoutTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    func timeout(_ trace: TraceSession, ns: NetNS, port: Int) -> JSONRecord? {
        trace.waitForRecord(timeout: 15) {
            $0.string("kind") == "connect_failure" && $0.int("netns") == ns.inode && $0.int("port") == port
        }
    }

    func synRetries(_ ns: NetNS) throws {
        try sh(["ip", "netns", "exec", ns.name, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])
    }

    /// Retransmitted segments counted by the namespace's own TCP MIB
    /// (/proc/net/snmp, Tcp RetransSegs): the SYN retransmissions of the
    /// one connect() made there, counted independently of synsight.
    func retransSegs(_ ns: NetNS) throws -> Int {
        let lines = try sh(["ip", "netns", "exec", ns.name, "cat", "/proc/net/snmp"])
            .split(separator: "\n").filter { $0.hasPrefix("Tcp:") }
        guard lines.count == 2 else { return -1 }
        let names = lines[0].split(separator: " "), values = lines[1].split(separator: " ")
        guard let i = names.firstIndex(of: "RetransSegs"), i < values.count else { return -1 }
        return Int(values[i]) ?? -1
    }

    func ifindex(_ ns: NetNS, _ dev: String) throws -> Int {
        let line = try sh(["ip", "-n", ns.name, "-o", "link", "show", "dev", dev])
        return Int(line.split(separator: ":")[0].trimmingCharacters(in: .whitespaces)) ?? -1
    }

    /// A client namespace whose only route to `dest` goes via `gateway` on a dummy device.
    func dummyClient(v6: Bool) throws -> (NetNS, String) {
        let client = try NetNS()
        let dev = "tmo\(client.number)"
        do {
            // dummy consumes what it is sent; where the kernel lacks the
            // module, ifb (no redirect configured) consumes it the same way.
            if (try? sh(["ip", "-n", client.name, "link", "add", dev, "type", "dummy"])) == nil {
                try sh(["ip", "-n", client.name, "link", "add", dev, "type", "ifb"])
            }
            try sh(["ip", "-n", client.name, "link", "set", dev, "up"])
            if v6 {
                try sh(["ip", "-n", client.name, "-6", "addr", "add", "fd00:77::2/64", "dev", dev, "nodad"])
                try sh(["ip", "-n", client.name, "-6", "route", "add", "fd00:78::/64", "via", "fd00:77::1", "dev", dev])
            } else {
                try sh(["ip", "-n", client.name, "addr", "add", "198.18.77.2/24", "dev", dev])
                try sh(["ip", "-n", client.name, "route", "add", "198.18.78.0/24", "via", "198.18.77.1", "dev", dev])
            }
            try synRetries(client)
        } catch {
            client.remove()
            throw error
        }
        return (client, dev)
    }

    func expectPastHost(_ r: JSONRecord, pid: Int, dev: String, ifindex: Int, nextHop: String, routeFrom: [String],
                        retransmits: Int) {
        #expect(r.string("reason") == "connect_timeout", "\(r)")
        #expect(r.string("cause") == "no_answer_past_host", "\(r)")
        #expect(r.pid("process") == pid)
        #expect((r.evidence["errno"] as? String) == "ETIMEDOUT")
        #expect((r.evidence["egress_interface"] as? String) == dev)
        #expect((r.evidence["ifindex"] as? Int) == ifindex)
        #expect((r.evidence["next_hop"] as? String) == nextHop)
        #expect(retransmits >= 1)
        #expect((r.evidence["syn_retransmits"] as? Int) == retransmits)
        #expect(routeFrom.contains(r.evidence["route_from"] as? String ?? ""), "\(r)")
        #expect(r.string("hint")?.contains(dev) == true)
    }

    @Test("SYNs into a dummy route: no_answer_past_host names the interface, the gateway, the retransmissions")
    func pastHostV4() throws {
        let (client, dev) = try dummyClient(v6: false)
        defer { client.remove() }
        let index = try ifindex(client, dev)
        let port = randomPort()
        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "198.18.78.9", port: port, timeout: 15)
        #expect(c.errno == Int(ETIMEDOUT))
        let r = try #require(timeout(trace, ns: client, port: port), "stdout: \(trace.stdout)")
        trace.stop()
        expectPastHost(r, pid: c.pid, dev: dev, ifindex: index, nextHop: "198.18.77.1", routeFrom: ["socket"],
                       retransmits: try retransSegs(client))
        #expect((r.object("remote")?["addr"] as? String) == "198.18.78.9")
    }

    @Test("IPv6 SYNs into a dummy route: the route of the last retransmitted SYN (the socket's is reset)")
    func pastHostV6() throws {
        let (client, dev) = try dummyClient(v6: true)
        defer { client.remove() }
        let index = try ifindex(client, dev)
        let port = randomPort()
        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "fd00:78::9", port: port, timeout: 15)
        #expect(c.errno == Int(ETIMEDOUT))
        let r = try #require(timeout(trace, ns: client, port: port), "stdout: \(trace.stdout)")
        trace.stop()
        expectPastHost(r, pid: c.pid, dev: dev, ifindex: index, nextHop: "fd00:77::1",
                       routeFrom: ["last_retransmit"], retransmits: try retransSegs(client))
        #expect(r.string("family") == "ipv6")
    }

    @Test("SYNs dropped by an nft rule in the peer namespace: dropped_on_host names the drop and the rule")
    func droppedOnHost() throws {
        let client = try NetNS(), server = try NetNS()
        defer { client.remove(); server.remove() }
        try server.link(to: client)  // server 198.18.0.1, client .2
        try synRetries(client)
        let port = randomPort()
        try server.loadNft("""
            table inet tmo_test {
              chain input {
                type filter hook input priority 0; policy accept;
                tcp dport \(port) drop comment "tmo-\(port)"
              }
            }
            """)
        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "198.18.0.1", port: port, timeout: 15)
        #expect(c.errno == Int(ETIMEDOUT))
        let r = try #require(timeout(trace, ns: client, port: port), "stdout: \(trace.stdout)")
        trace.stop()
        #expect(r.string("reason") == "connect_timeout", "\(r)")
        #expect(r.string("cause") == "dropped_on_host", "\(r)")
        #expect(r.pid("process") == c.pid)
        #expect((r.evidence["errno"] as? String) == "ETIMEDOUT")
        #expect((r.evidence["syn_retransmits"] as? Int) == (try retransSegs(client)))
        let drop = try #require(r.evidence["drop"] as? [String: Any], "\(r)")
        #expect((drop["reason"] as? String) == "firewall_drop")
        #expect((drop["netns"] as? Int) == server.inode)
        #expect((drop["rule"] as? String)?.contains("drop") == true, "\(r)")
        #expect((drop["rule_comment"] as? String) == "tmo-\(port)")
        #expect((drop["chain"] as? String) == "input")
        #expect(r.string("hint")?.contains("dropped on this host") == true)
        // The drop itself is its own record, with the same client.
        let fw = trace.records.first { $0.string("reason") == "firewall_drop" && $0.int("port") == port }
        #expect(fw?.pid("client") == c.pid, "\(trace.stdout)")
    }

    @Test("SYN-ACKs dropped by an nft rule in the client's own namespace: dropped_on_host, the SYN-ACK named")
    func synAckDroppedOnHost() throws {
        let client = try NetNS(), server = try NetNS()
        defer { client.remove(); server.remove() }
        try server.link(to: client)  // server 198.18.0.1, client .2
        try synRetries(client)
        let port = randomPort()
        let listener = try Peer(listenIn: server, addr: "198.18.0.1", port: port)
        try client.loadNft("""
            table inet tmo_test {
              chain input {
                type filter hook input priority 0; policy accept;
                tcp sport \(port) tcp flags & (syn | ack) == syn | ack drop comment "tmo-synack-\(port)"
              }
            }
            """)
        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "198.18.0.1", port: port, timeout: 15)
        #expect(c.errno == Int(ETIMEDOUT))
        let r = try #require(timeout(trace, ns: client, port: port), "stdout: \(trace.stdout)")
        trace.stop()
        _ = listener
        #expect(r.string("reason") == "connect_timeout", "\(r)")
        #expect(r.string("cause") == "dropped_on_host", "\(r)")
        #expect(r.pid("process") == c.pid)
        let drop = try #require(r.evidence["drop"] as? [String: Any], "\(r)")
        #expect((drop["reason"] as? String) == "firewall_drop")
        #expect((drop["netns"] as? Int) == client.inode)
        #expect((drop["tcp_flags"] as? Int) == 0x12, "\(drop)")
        // The rule itself is not asserted: the firewall area infers the hook
        // from the skb's state and places this received SYN-ACK at
        // postrouting (likely: early demux has set skb->sk to the connecting
        // socket before INPUT), where the input rule is not looked for.
        #expect(r.string("hint")?.contains("SYN-ACKs coming back") == true, "\(r)")
    }

    @Test("SYNs dropped by a listener's full accept queue over loopback: dropped_on_host names the queue")
    func acceptQueueFullOnHost() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        try synRetries(ns)
        let port = randomPort()
        let server = try Peer(runIn: ns, ["stall", "127.0.0.1", String(port), "--backlog", "1"])
        let trace = try TraceSession([])
        // Backlog 1: the accept queue holds 2; the third connect's SYNs are dropped.
        var holders: [Peer] = []
        for _ in 0..<2 {
            holders.append(try Peer(runIn: ns, ["hold", "127.0.0.1", String(port), "--seconds", "30"], readyPrefix: "connected"))
        }
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port, timeout: 15)
        #expect(c.errno == Int(ETIMEDOUT))
        let r = try #require(trace.waitForRecord(timeout: 15) {
            $0.string("kind") == "connect_failure" && $0.int("netns") == ns.inode && $0.int("port") == port
        }, "stdout: \(trace.stdout)")
        trace.stop()
        _ = (server, holders)
        #expect(r.string("reason") == "connect_timeout", "\(r)")
        #expect(r.string("cause") == "dropped_on_host", "\(r)")
        #expect(r.pid("process") == c.pid)
        #expect((r.evidence["egress_interface"] as? String) == "lo")
        let drop = try #require(r.evidence["drop"] as? [String: Any], "\(r)")
        #expect((drop["reason"] as? String) == "accept_queue_full")
        #expect((drop["stage"] as? String) == "syn")
        #expect((drop["max_backlog"] as? Int) == 1)
        #expect(r.string("hint")?.contains("full accept queue") == true, "\(r)")
    }
}
