import Foundation
import Testing

/// A connect() its application gives up on before the kernel's ETIMEDOUT
/// (bpf/timeouts.bpf.h, AbandonedConnects.swift): a client with a 2.5 s
/// connect timeout whose SYNs an nft rule drops, a client killed while
/// connecting, and one answered after a retransmission (not given up: no
/// record). The SYNs-into-a-dummy-route case (no_answer_past_host) is the
/// kernel-matrix scenario sc_connect_abandoned, run on this kernel too.
/// Namespaces and rules are the test's own; tcp_syn_retries stays at its
/// default in the client's namespace (the kernel would wait about 127 s).
@Suite("connect() given up by its application, end to end", .serialized, .enabled(if: Privileged.enabled))
struct AbandonedConnectEndToEndTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// An nft input rule in `server` dropping every SYN to `port`.
    func dropSYNs(in server: NetNS, port: Int) throws {
        try server.loadNft("""
            table inet abandon_test {
              chain input {
                type filter hook input priority 0; policy accept;
                tcp dport \(port) drop comment "abandon-\(port)"
              }
            }
            """)
    }

    func failure(_ trace: TraceSession, ns: NetNS, port: Int, timeout: Double = 10) -> JSONRecord? {
        trace.waitForRecord(timeout: timeout) {
            $0.string("kind") == "connect_failure" && $0.int("netns") == ns.inode && $0.int("port") == port
        }
    }

    /// The SYN retransmissions `ns` counted (/proc/net/snmp RetransSegs): its one connect()'s.
    func retransmitted(_ ns: NetNS) throws -> Int {
        let rows = try sh(["ip", "netns", "exec", ns.name, "cat", "/proc/net/snmp"]).split(separator: "\n")
            .filter { $0.hasPrefix("Tcp:") }.map { $0.split(separator: " ") }
        guard rows.count == 2, let i = rows[0].firstIndex(of: "RetransSegs") else { return -1 }
        return Int(rows[1][i]) ?? -1
    }

    /// A connect() given up by python's 2.5 s timeout (`extra`: peer.py
    /// connect options), its SYNs dropped by nft: the checks both closes
    /// share (the record, its process, no errno, the application's timeout,
    /// the namespace's retransmissions, the hint), then `more` on the record.
    func givenUpAttempt(_ extra: [String] = [], settle: Double = 0,
                        more: (_ r: JSONRecord, _ all: String, _ trace: TraceSession, _ pid: Int, _ port: Int) throws -> Void) throws {
        let client = try NetNS(), server = try NetNS()
        defer { client.remove(); server.remove() }
        try server.link(to: client)  // server 198.18.0.1, client .2
        let port = randomPort()
        try dropSYNs(in: server, port: port)
        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "198.18.0.1", port: port, timeout: 2.5, extra: extra)
        #expect(c.errno == Int(ETIMEDOUT), "python's own timeout; records: \(trace.stdout)")
        let r = try #require(failure(trace, ns: client, port: port), "stdout: \(trace.stdout)\nstderr: \(trace.stderr)")
        Thread.sleep(forTimeInterval: settle)
        trace.stop()
        let all = "\(r)\nall records: \(trace.stdout)"
        #expect(r.string("reason") == "connect_timeout" && r.string("cause") == "dropped_on_host", "\(all)")
        #expect(r.pid("process") == c.pid && r.evidence["abandoned_by"] as? String == "application", "\(all)")
        #expect(r.evidence["errno"] == nil, "no error was reported: \(all)")
        let after = r.evidence["after_ms"] as? Int ?? 0
        #expect(after >= 2500 && after < 4000, "the application's timeout: \(all)")
        let retrans = try retransmitted(client)
        #expect(retrans >= 1 && r.evidence["syn_retransmits"] as? Int == retrans, "RetransSegs \(retrans): \(all)")
        #expect(r.string("hint")?.contains("gave up connecting to 198.18.0.1:\(port) after") == true, "\(all)")
        try more(r, all, trace, c.pid, port)
    }

    @Test("a 2.5 s connect timeout, SYNs dropped by nft: connect_timeout/dropped_on_host, abandoned_by application, no errno, the rule")
    func givenUp() throws {
        try givenUpAttempt { r, all, _, _, port in
            #expect((r.evidence["hook"] as? String)?.hasPrefix("tp_btf/tcp_destroy_sock") == true, "\(all)")
            let drop = try #require(r.evidence["drop"] as? [String: Any], "\(all)")
            #expect(drop["reason"] as? String == "firewall_drop" && drop["rule_comment"] as? String == "abandon-\(port)", "\(all)")
            // Nothing in the server's namespace uses conntrack: no "invalid" state beside a plain port rule.
            #expect(drop["ct_state"] == nil, "\(all)")
        }
    }

    @Test("given up with SO_LINGER 0 (an abort: HAProxy's option nolinger): the same record, its destination and retransmissions from before the abort cleared them; no ECONNRESET connect failure")
    func givenUpWithLingerZero() throws {
        // settle: anything else of this client (the abort's ECONNRESET as a failure of its own) would come by then.
        try givenUpAttempt(["--linger0"], settle: 1) { r, all, trace, pid, _ in
            #expect((r.object("local")?["addr"] as? String) == "198.18.0.2" && (r.object("remote")?["addr"] as? String) == "198.18.0.1",
                    "\(all)")
            let hook = r.evidence["hook"] as? String ?? ""
            #expect(hook.contains("SO_LINGER 0") || hook.hasPrefix("tp_btf/inet_sock_set_state"), "\(all)")
            let others = trace.records.filter { $0.pid("process") == pid && $0.line != r.line }
            #expect(others.isEmpty, "one record of the client: \(others)")
        }
    }

    @Test("a health check that connects and aborts with SO_LINGER 0 (HAProxy's option nolinger): no record; a refused connect() beside it is reported")
    func healthCheckAbort() throws {
        let client = try NetNS(), server = try NetNS()
        defer { client.remove(); server.remove() }
        try server.link(to: client)  // server 198.18.0.1, client .2
        let port = randomPort(), closed = randomPort()
        let listener = try Peer(listenIn: server, addr: "198.18.0.1", port: port)
        let trace = try TraceSession([])
        let out = try sh(["ip", "netns", "exec", client.name, "/usr/bin/python3", "-c", """
            import os, socket, struct
            for _ in range(3):
                c = socket.create_connection(("198.18.0.1", \(port)))
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
            print(os.getpid())
            """])
        let checker = Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        // The refused connect() after them: once it is reported, the aborts' reports are in.
        let refused = try Peer.connect(from: client, addr: "198.18.0.1", port: closed)
        #expect(refused.errno == Int(ECONNREFUSED))
        let r = try #require(trace.waitForRecord(timeout: 10) { $0.int("port") == closed && $0.pid("client") == refused.pid },
                             "stdout: \(trace.stdout)\nstderr: \(trace.stderr)")
        trace.stop()
        _ = listener
        #expect(r.string("reason") == "no_listener", "\(r)")
        let aborts = trace.records.filter { $0.pid("process") == checker || $0.pid("client") == checker }
        #expect(checker > 0 && aborts.isEmpty, "the health check's aborts are not failures: \(aborts)")
    }

    @Test("a client killed while connecting: abandoned_by process_exit, the client named")
    func killed() throws {
        let client = try NetNS(), server = try NetNS()
        defer { client.remove(); server.remove() }
        try server.link(to: client)
        let port = randomPort()
        try dropSYNs(in: server, port: port)
        let trace = try TraceSession([])
        let peer = try Peer(runIn: client, ["connect", "198.18.0.1", String(port), "--timeout", "60"], readyPrefix: "")
        // Killed once its first SYN was retransmitted (the socket's timer
        // says so: a fixed delay would race the client's start).
        let retried = waitUntil(timeout: 10) { ((try? retransmitted(client)) ?? 0) >= 1 }
        #expect(retried, "no SYN retransmission in 10 s")
        let pid = peer.pid
        peer.killHard()
        let r = try #require(failure(trace, ns: client, port: port), "stdout: \(trace.stdout)\nstderr: \(trace.stderr)")
        trace.stop()
        let all = "\(r)\nall records: \(trace.stdout)"
        #expect(r.string("reason") == "connect_timeout" && r.string("cause") == "dropped_on_host", "\(all)")
        #expect(r.evidence["abandoned_by"] as? String == "process_exit", "\(all)")
        #expect(r.pid("process") == pid && r.evidence["closed_by"] == nil, "\(all)")
        #expect(r.string("hint")?.contains("exited while connecting") == true, "\(all)")
    }

    @Test("answered after a retransmission, then closed: not given up, no connect_failure")
    func answeredLate() throws {
        let client = try NetNS(), server = try NetNS()
        defer { client.remove(); server.remove() }
        try server.link(to: client)
        let port = randomPort()
        let listener = try Peer(listenIn: server, addr: "198.18.0.1", port: port)
        try dropSYNs(in: server, port: port)
        let trace = try TraceSession([])
        // The rule goes after the first retransmission (1 s: the socket's
        // timer counts it); the second (3 s) is answered.
        let lift = Process()
        lift.executableURL = URL(fileURLWithPath: "/bin/sh")
        lift.arguments = ["-c", waitForSYNRetransmitShell(in: client, port: port)
                            + "exec ip netns exec \(server.name) nft delete table inet abandon_test\n"]
        try lift.run()
        defer { if lift.isRunning { lift.terminate() }; lift.waitUntilExit() }
        let c = try Peer.connect(from: client, addr: "198.18.0.1", port: port, timeout: 10)
        #expect(c.errno == 0, "records: \(trace.stdout)")
        // The drops were seen (the attempt was pending), and its close is not a failure.
        let fw = trace.waitForRecord { $0.string("reason") == "firewall_drop" && $0.int("port") == port }
        #expect(fw != nil, "no firewall_drop of the first SYNs: \(trace.stdout)")
        #expect(failure(trace, ns: client, port: port, timeout: 3) == nil, "\(trace.stdout)")
        trace.stop()
        _ = listener
    }
}
