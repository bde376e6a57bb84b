import Foundation
import Testing

/// No-listener refusals against the real kernel: real sockets in network
/// namespaces created (and always deleted) by each test, traced by the real
/// `synsight trace --json` binary. Every test asserts the attributed fields.
@Suite("no-listener refusals, end to end", .serialized, .enabled(if: Privileged.enabled))
struct NoListenerTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// The refusal synsight reports for a SYN to `port` in namespace `ns`.
    func refusal(_ trace: TraceSession, ns: NetNS, port: Int) -> JSONRecord? {
        trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == ns.inode && $0.int("port") == port
        }
    }

    func assertCommon(_ r: JSONRecord, port: Int, family: String = "ipv4", cause: String,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.int("v") == 1, sourceLocation: sourceLocation)
        #expect(r.string("reason") == "no_listener", sourceLocation: sourceLocation)
        #expect(r.string("cause") == cause, "record: \(r)", sourceLocation: sourceLocation)
        #expect(r.int("port") == port, sourceLocation: sourceLocation)
        #expect(r.string("family") == family, sourceLocation: sourceLocation)
        #expect((r.object("local")?["port"] as? Int) == port, sourceLocation: sourceLocation)
        #expect(!(r.string("hint") ?? "").isEmpty, sourceLocation: sourceLocation)
        #expect(r.string("ts")?.hasSuffix("Z") == true, sourceLocation: sourceLocation)
    }

    @Test("closed port, IPv4 and IPv6: never_listened, with the connecting client's pid")
    func closedPort() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let c4 = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        let c6 = try Peer.connect(from: ns, addr: "::1", port: port)
        #expect(c4.errno == Int(ECONNREFUSED))
        #expect(c6.errno == Int(ECONNREFUSED))

        let v4 = try #require(trace.waitForRecord {
            $0.int("netns") == ns.inode && $0.int("port") == port && $0.string("family") == "ipv4"
        }, "no IPv4 refusal reported; stderr: \(trace.stderr)")
        let v6 = try #require(trace.waitForRecord {
            $0.int("netns") == ns.inode && $0.int("port") == port && $0.string("family") == "ipv6"
        }, "no IPv6 refusal reported")
        trace.stop()

        assertCommon(v4, port: port, cause: "never_listened")
        #expect(v4.string("kind") == "refusal")
        #expect(v4.pid("client") == c4.pid)
        #expect((v4.object("client")?["comm"] as? String)?.hasPrefix("python") == true)
        #expect(v4.object("process") == nil)
        #expect((v4.object("local")?["addr"] as? String) == "127.0.0.1")
        #expect((v4.object("remote")?["addr"] as? String) == "127.0.0.1")
        #expect((v4.evidence["hook"] as? String) == "tp_btf/tcp_send_reset")

        assertCommon(v6, port: port, family: "ipv6", cause: "never_listened")
        #expect(v6.pid("client") == c6.pid)
        #expect((v6.object("local")?["addr"] as? String) == "::1")
    }

    @Test("listener killed with SIGKILL: listener_exited, signal 9, its pid")
    func listenerKilled() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let listener = try Peer(listenIn: ns, addr: "127.0.0.1", port: port)
        listener.killHard()
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(refusal(trace, ns: ns, port: port), "stderr: \(trace.stderr)")
        trace.stop()

        assertCommon(r, port: port, cause: "listener_exited")
        #expect(r.pid("process") == listener.pid)
        #expect((r.object("process")?["comm"] as? String)?.hasPrefix("python") == true)
        #expect((r.evidence["signal"] as? Int) == 9)
        #expect((r.evidence["signal_name"] as? String) == "SIGKILL")
        #expect(r.evidence["exited_at"] is String)
        #expect(r.pid("client") == c.pid)
    }

    @Test("listener closed but process alive: listener_closed, its pid")
    func listenerClosed() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let listener = try Peer(listenIn: ns, addr: "0.0.0.0", port: port, extra: ["--close-after", "0.2"])
        #expect(waitUntil { listener.output.contains("closed") })
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        let r = try #require(refusal(trace, ns: ns, port: port), "stderr: \(trace.stderr)")
        trace.stop()

        assertCommon(r, port: port, cause: "listener_closed")
        #expect(r.pid("process") == listener.pid)
        #expect(r.pid("client") == c.pid)
        #expect(r.evidence["closed_at"] is String)
        #expect(r.evidence["exited_at"] == nil)
    }

    @Test("listener on 127.0.0.1 reached over veth from another namespace: bound_to_other_address")
    func loopbackOnlyOverVeth() throws {
        let server = try NetNS()
        defer { server.remove() }
        let client = try NetNS()
        defer { client.remove() }
        try server.link(to: client)
        let port = randomPort()
        let listener = try Peer(listenIn: server, addr: "127.0.0.1", port: port)
        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "198.18.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(refusal(trace, ns: server, port: port), "stderr: \(trace.stderr)")
        trace.stop()

        assertCommon(r, port: port, cause: "bound_to_other_address")
        #expect(r.pid("process") == listener.pid)
        #expect((r.object("local")?["addr"] as? String) == "198.18.0.1")
        #expect((r.object("remote")?["addr"] as? String) == "198.18.0.2")
        // The client lives in another namespace of this host: still joined.
        #expect(r.pid("client") == c.pid)
        let listeners = r.evidence["listeners"] as? [[String: Any]] ?? []
        #expect(listeners.contains { ($0["addr"] as? String) == "127.0.0.1" && ($0["pid"] as? Int) == listener.pid })
        #expect(r.string("hint")?.contains("127.0.0.1") == true)
    }

    @Test("IPv6-only listener reached over IPv4: family_mismatch")
    func ipv6OnlyOverIPv4() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let listener = try Peer(listenIn: ns, addr: "::", port: port, extra: ["--v6only"])
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(refusal(trace, ns: ns, port: port), "stderr: \(trace.stderr)")
        trace.stop()

        assertCommon(r, port: port, cause: "family_mismatch")
        #expect(r.pid("process") == listener.pid)
        #expect(r.pid("client") == c.pid)
        let listeners = r.evidence["listeners"] as? [[String: Any]] ?? []
        #expect(listeners.first?["ipv6only"] as? Bool == true)
        #expect(listeners.first?["family"] as? String == "ipv6")
    }

    @Test("port listening only in another namespace: other_netns")
    func otherNamespace() throws {
        let server = try NetNS()
        defer { server.remove() }
        let client = try NetNS()
        defer { client.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let listener = try Peer(listenIn: server, addr: "0.0.0.0", port: port)
        let c = try Peer.connect(from: client, addr: "127.0.0.1", port: port)
        let r = try #require(refusal(trace, ns: client, port: port), "stderr: \(trace.stderr)")
        trace.stop()

        assertCommon(r, port: port, cause: "other_netns")
        #expect(r.pid("process") == listener.pid)
        #expect(r.pid("client") == c.pid)
        let listeners = r.evidence["listeners"] as? [[String: Any]] ?? []
        #expect(listeners.contains { ($0["netns"] as? Int) == server.inode })
    }

    @Test("listener that existed before the tracer started: known from the snapshot, its exit seen")
    func preexistingListener() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "127.0.0.1", port: port)
        let trace = try TraceSession([])

        // 127.0.0.2 is local (lo holds 127/8) but the listener is bound to .1 only.
        let c1 = try Peer.connect(from: ns, addr: "127.0.0.2", port: port)
        let r1 = try #require(refusal(trace, ns: ns, port: port), "stderr: \(trace.stderr)")
        assertCommon(r1, port: port, cause: "bound_to_other_address")
        #expect(r1.pid("process") == listener.pid)
        #expect(r1.pid("client") == c1.pid)

        listener.killHard()
        let c2 = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        let r2 = try #require(trace.waitForRecord {
            $0.int("netns") == ns.inode && $0.int("port") == port && $0.string("cause") == "listener_exited"
        }, "no listener_exited after killing a pre-existing listener: \(trace.stdout)")
        trace.stop()
        #expect(r2.pid("process") == listener.pid)
        #expect((r2.evidence["signal"] as? Int) == 9)
        #expect(r2.pid("client") == c2.pid)
    }

    @Test("kfree_skb fallback hook (kernels 5.17-6.9) attributes the same refusal")
    func kfreeSkbFallback() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession(["--reset-hook", "kfree_skb"])
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        let r = try #require(refusal(trace, ns: ns, port: port), "stderr: \(trace.stderr)")
        trace.stop()
        assertCommon(r, port: port, cause: "never_listened")
        #expect(r.pid("client") == c.pid)
        #expect((r.evidence["hook"] as? String) == "tp_btf/kfree_skb")
    }

    @Test("--port filters in the kernel; the summary counts what was shown")
    func portFilter() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let wanted = randomPort()
        let other = wanted + 1
        let trace = try TraceSession(["--port", String(wanted)])
        _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: other)
        _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: wanted)
        #expect(refusal(trace, ns: ns, port: wanted) != nil)
        usleep(400_000) // past the join window: a record for `other` would be out by now
        let summary = trace.stop()
        #expect(!trace.records.contains { $0.int("port") == other })
        #expect(summary.contains("\(wanted)"))
        #expect(summary.contains("0 events lost"))
    }

    @Test("--count stops the trace by itself")
    func countStops() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession(["--count", "2", "--port", String(port)])
        for _ in 0..<3 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        let exited = waitUntil(timeout: 10) { !trace.process.isRunning }
        #expect(exited)
        if exited {
            #expect(trace.process.terminationStatus == 0)
            #expect(trace.records.filter { $0.string("kind") == "refusal" }.count == 2)
        }
    }
}
