import Foundation
import Testing

/// Injected resets (issue 17): a client namespace reaches a server namespace
/// through a router namespace (all the test's own). The server's RSTs arrive
/// with TTL 63 (one router), the router's `reject with tcp reset` with 64.
/// Where the kernel lets synsight read the RST (fentry or kprobe on
/// tcp_reset: the kernel matrix's 6.1 and 6.12 guests), the refusals carry
/// evidence.reset and the injected one is flagged; where it cannot (this
/// repository's 6.18 CI host), doctor says so and the refusal is attributed
/// without it. The same topology runs in scripts/kernel-matrix/scenarios.py
/// (sc_injected_reset) on every kernel of the matrix.
@Suite("injected resets, end to end", .serialized, .enabled(if: Privileged.enabled))
struct InjectedResetTests {
    static let server = "198.18.64.1"

    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// client -- router -- server, routed both ways.
    func topology() throws -> (client: NetNS, router: NetNS, server: NetNS) {
        let client = try NetNS(), router = try NetNS(), server = try NetNS()
        do {
            try router.link(to: client, subnet: "198.18.63")  // router .1, client .2
            try server.link(to: router, subnet: "198.18.64")  // server .1, router .2
            try sh(["ip", "netns", "exec", router.name, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            try sh(["ip", "-n", client.name, "route", "add", "default", "via", "198.18.63.1"])
            try sh(["ip", "-n", server.name, "route", "add", "default", "via", "198.18.64.2"])
        } catch {
            client.remove(); router.remove(); server.remove()
            throw error
        }
        return (client, router, server)
    }

    func reset(_ r: JSONRecord) -> [String: Any]? { r.evidence["reset"] as? [String: Any] }

    @Test("a router's injected RST is flagged against the server's SYN-ACK TTL; real refusals are not (or: unsupported, said by doctor)")
    func injected() throws {
        let doctor = try sh([TraceSession.binary, "doctor"]).split(separator: "\n").map(String.init)
        let line = try #require(doctor.first { $0.hasPrefix("  injected_reset_suspected ") }, "doctor has no injected_reset_suspected line")
        let plan = try #require(doctor.first { $0.hasPrefix("  injectedResets ") }, "doctor's plan has no injectedResets line")
        let supported = !line.contains("UNAVAILABLE")
        #expect(plan.contains("CANNOT RUN") == !supported, "\(plan)")

        let (client, router, server) = try topology()
        defer { client.remove(); router.remove(); server.remove() }
        let port = randomPort(), closed = port + 1, injected = port + 2
        let trace = try TraceSession([])

        // 1. A real refusal by the server; no baseline yet.
        let c1 = try Peer.connect(from: client, addr: Self.server, port: closed)
        #expect(c1.errno == Int(ECONNREFUSED))
        let first = try #require(trace.waitForRecord { $0.int("port") == closed && $0.pid("client") == c1.pid },
                                 "stdout: \(trace.stdout)")
        #expect(first.string("reason") == "no_listener" && first.int("netns") == server.inode, "\(first)")
        guard supported else {
            #expect(line.contains("needs fentry or kprobe on tcp_reset"), "\(line)")
            #expect(plan.contains("needs fentry or kprobe on tcp_reset and tcp_finish_connect"), "\(plan)")
            #expect(reset(first) == nil, "\(first)")
            trace.stop()
            return
        }
        let r1 = try #require(reset(first), "\(first)")
        #expect((r1["ttl"] as? Int) == 63 && (r1["hops"] as? Int) == 1 && (r1["verdict"] as? String) == "no_baseline", "\(r1)")

        // 2. A connection that succeeds: its SYN-ACK is the baseline.
        let listener = try Peer(listenIn: server, addr: Self.server, port: port)
        #expect(try Peer.connect(from: client, addr: Self.server, port: port).errno == 0)
        listener.killHard()

        // 3. The router answers for the server.
        try router.loadNft("""
            table inet rttl_test {
              chain forward {
                type filter hook forward priority 0; policy accept;
                tcp dport \(injected) reject with tcp reset
              }
            }
            """)
        let c3 = try Peer.connect(from: client, addr: Self.server, port: injected)
        #expect(c3.errno == Int(ECONNREFUSED))
        let flagged = try #require(trace.waitForRecord { $0.int("port") == injected && reset($0) != nil }, "stdout: \(trace.stdout)")
        let e = try #require(reset(flagged))
        #expect((e["ttl"] as? Int) == 64 && (e["hops"] as? Int) == 0, "\(e)")
        #expect((e["verdict"] as? String) == "differs" && (e["likely_middlebox"] as? Bool) == true && (e["hops_closer"] as? Int) == 1, "\(e)")
        let b = try #require(e["baseline"] as? [String: Any], "\(e)")
        #expect((b["ttl_min"] as? Int) == 63 && (b["hops_min"] as? Int) == 1 && ((b["packets"] as? Int) ?? 0) >= 1, "\(b)")
        #expect(flagged.string("hint")?.contains("middlebox") == true, "\(flagged)")

        // 4. A second real refusal: as far as the server's own packets, not flagged.
        let c4 = try Peer.connect(from: client, addr: Self.server, port: closed)
        let second = try #require(trace.waitForRecord { $0.int("port") == closed && $0.pid("client") == c4.pid }, "stdout: \(trace.stdout)")
        let e4 = try #require(reset(second), "\(second)")
        #expect((e4["ttl"] as? Int) == 63 && (e4["verdict"] as? String) == "consistent" && (e4["likely_middlebox"] as? Bool) == false, "\(e4)")
        trace.stop()
    }

    @Test("a peer past this host (tun) rejecting with ICMP: port unreachable is rejected_with_icmp (refused_by icmp), admin prohibited host_unreachable with the firewall fix; a RST is refused_by tcp_reset")
    func icmpRejects() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort(), prohibited = port + 1, closed = port + 2
        let dev = "ricmp\(ns.number)"
        let peer = try Peer(runIn: ns, ["tun", dev, "\(port):icmp3:60,\(prohibited):icmp13:60,\(closed):rst:60"])
        try sh(["ip", "-n", ns.name, "addr", "add", "198.18.67.2/24", "dev", dev])
        try sh(["ip", "-n", ns.name, "link", "set", dev, "up"])
        try sh(["ip", "-n", ns.name, "route", "add", "198.18.68.0/24", "dev", dev])
        let trace = try TraceSession([])

        let c1 = try Peer.connect(from: ns, addr: "198.18.68.1", port: port)
        #expect(c1.errno == Int(ECONNREFUSED))
        let icmp = try #require(trace.waitForRecord { $0.int("port") == port && $0.pid("process") == c1.pid }, "stdout: \(trace.stdout)")
        #expect(icmp.string("kind") == "connect_failure" && icmp.string("reason") == "unknown", "\(icmp)")
        #expect(icmp.string("cause") == "rejected_with_icmp" && icmp.evidence["refused_by"] as? String == "icmp", "\(icmp)")
        #expect(icmp.string("hint")?.contains("ICMP port unreachable, not a TCP reset") == true, "\(icmp)")

        let c2 = try Peer.connect(from: ns, addr: "198.18.68.1", port: prohibited)
        #expect(c2.errno == Int(EHOSTUNREACH))
        let filtered = try #require(trace.waitForRecord { $0.int("port") == prohibited && $0.pid("process") == c2.pid }, "stdout: \(trace.stdout)")
        #expect(filtered.string("cause") == "host_unreachable", "\(filtered)")
        #expect(filtered.string("hint")?.contains("firewalld's default reject") == true, "\(filtered)")

        let c3 = try Peer.connect(from: ns, addr: "198.18.68.1", port: closed)
        #expect(c3.errno == Int(ECONNREFUSED))
        let reset = try #require(trace.waitForRecord { $0.int("port") == closed && $0.pid("process") == c3.pid }, "stdout: \(trace.stdout)")
        #expect(reset.string("cause") == "connection_refused" && reset.evidence["refused_by"] as? String == "tcp_reset", "\(reset)")
        trace.stop()
        // One record per connect(): the kernel reports an ICMP refusal twice (6.18), the repeat is dropped.
        for p in [port, prohibited, closed] {
            #expect(trace.records.filter { $0.int("port") == p }.count == 1, "port \(p): \(trace.stdout)")
        }
        _ = peer
    }

    @Test("a peer past this host (tun): unknown/injected_reset_suspected for a RST nearer than its SYN-ACKs (or: connection_refused without the hook)",
          arguments: [false, true])
    func remotePeer(v6: Bool) throws {
        let supported = try !sh([TraceSession.binary, "doctor"]).split(separator: "\n")
            .contains { $0.hasPrefix("  injected_reset_suspected UNAVAILABLE") }
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort(), closed = port + 1, injected = port + 2
        let dev = "rttl\(ns.number)"
        let peer = try Peer(runIn: ns, ["tun", dev, "\(port):synack:60,\(closed):rst:60,\(injected):rst:64"])
        if v6 {
            try sh(["ip", "-n", ns.name, "-6", "addr", "add", "fd00:65::2/64", "dev", dev, "nodad"])
        } else {
            try sh(["ip", "-n", ns.name, "addr", "add", "198.18.65.2/24", "dev", dev])
        }
        try sh(["ip", "-n", ns.name, "link", "set", dev, "up"])
        try sh(["ip", "-n", ns.name] + (v6 ? ["-6", "route", "add", "fd00:66::/64"] : ["route", "add", "198.18.66.0/24"]) + ["dev", dev])
        let remote = v6 ? "fd00:66::1" : "198.18.66.1"
        let field = v6 ? "hop_limit" : "ttl"
        let trace = try TraceSession([])

        // 1. Refused by the peer (TTL 60: 4 hops): nothing on this host explains it.
        let c1 = try Peer.connect(from: ns, addr: remote, port: closed)
        #expect(c1.errno == Int(ECONNREFUSED))
        let first = try #require(trace.waitForRecord { $0.int("port") == closed && $0.pid("process") == c1.pid }, "stdout: \(trace.stdout)")
        #expect(first.string("kind") == "connect_failure" && first.string("reason") == "unknown", "\(first)")
        #expect(first.string("cause") == "connection_refused", "\(first)")
        guard supported else {
            #expect(reset(first) == nil, "\(first)")
            trace.stop()
            _ = peer
            return
        }
        let r1 = try #require(reset(first), "\(first)")
        #expect((r1["ttl"] as? Int) == 60 && (r1["hops"] as? Int) == 4 && (r1["verdict"] as? String) == "no_baseline", "\(r1)")
        #expect((r1["field"] as? String) == field && first.string("family") == (v6 ? "ipv6" : "ipv4"), "\(first)")

        // 2. The peer's SYN-ACK (TTL 60) completes a handshake: the baseline.
        #expect(try Peer.connect(from: ns, addr: remote, port: port).errno == 0)

        // 3. A RST with TTL 64 in the peer's name: 4 hops nearer than its SYN-ACKs.
        let c3 = try Peer.connect(from: ns, addr: remote, port: injected)
        #expect(c3.errno == Int(ECONNREFUSED))
        let flagged = try #require(trace.waitForRecord { $0.int("port") == injected && $0.pid("process") == c3.pid }, "stdout: \(trace.stdout)")
        #expect(flagged.string("reason") == "unknown" && flagged.string("cause") == "injected_reset_suspected", "\(flagged)")
        let e = try #require(reset(flagged))
        #expect((e["ttl"] as? Int) == 64 && (e["verdict"] as? String) == "differs" && (e["hops_closer"] as? Int) == 4, "\(e)")
        #expect(((e["baseline"] as? [String: Any])?["ttl_min"] as? Int) == 60, "\(e)")
        #expect(flagged.string("hint")?.contains("tcpdump") == true, "\(flagged)")

        // 4. Refused by the peer again: not flagged.
        let c4 = try Peer.connect(from: ns, addr: remote, port: closed)
        let again = try #require(trace.waitForRecord { $0.int("port") == closed && $0.pid("process") == c4.pid }, "stdout: \(trace.stdout)")
        #expect(again.string("cause") == "connection_refused" && (reset(again)?["verdict"] as? String) == "consistent", "\(again)")
        trace.stop()
        _ = peer
    }
}
