import Foundation
import Testing

/// Listen-queue overflows against the real kernel: stalled servers with tiny
/// backlogs in namespaces the tests create; sysctls set only inside them.
@Suite("listen-queue overflow, end to end", .serialized, .enabled(if: Privileged.enabled))
struct OverflowTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    func overflowRecord(_ trace: TraceSession, ns: NetNS, port: Int, reason: String,
                        timeout: Double = 10) -> JSONRecord? {
        trace.waitForRecord(timeout: timeout) {
            $0.int("netns") == ns.inode && $0.int("port") == port && $0.string("reason") == reason
        }
    }

    /// A stalled server (backlog 1: the accept queue holds 2) and two held
    /// connections; the third client's SYN is dropped.
    func fillAcceptQueue(ns: NetNS, port: Int) throws -> [Peer] {
        var holders: [Peer] = []
        for _ in 0..<2 {
            holders.append(try Peer(runIn: ns, ["hold", "127.0.0.1", String(port), "--seconds", "20"],
                                    readyPrefix: "connected"))
        }
        return holders
    }

    @Test("accept queue full (listener started before the tracer): drop, the listener's pid, queue evidence",
          arguments: [false, true])
    func acceptQueueFull(abortOnOverflow: Bool) throws {
        let ns = try NetNS()
        defer { ns.remove() }
        if abortOnOverflow {
            try sh(["ip", "netns", "exec", ns.name, "sysctl", "-qw", "net.ipv4.tcp_abort_on_overflow=1"])
        }
        let port = randomPort()
        // Started first: known only through the /proc snapshot and iter/tcp.
        let server = try Peer(runIn: ns, ["stall", "127.0.0.1", String(port), "--backlog", "1"])
        let trace = try TraceSession([])
        let holders = try fillAcceptQueue(ns: ns, port: port)
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port, timeout: 1.5)
        #expect(c.errno != 0, "the third connection should not complete")
        let r = try #require(overflowRecord(trace, ns: ns, port: port, reason: "accept_queue_full"),
                             "stderr: \(trace.stderr) stdout: \(trace.stdout)")
        trace.stop()
        _ = holders

        #expect(r.string("kind") == "drop")
        #expect(r.string("cause") == "listener_not_accepting")
        #expect(r.pid("process") == server.pid)
        #expect(r.pid("client") == c.pid)
        #expect((r.evidence["stage"] as? String) == "syn")
        #expect((r.evidence["max_backlog"] as? Int) == 1)
        #expect((r.evidence["accept_queue"] as? Int) == 2)
        #expect((r.evidence["somaxconn"] as? Int ?? 0) > 0)
        #expect((r.evidence["method"] as? String)?.contains("consume_skb") == true)
        #expect(r.string("hint")?.contains("backlog") == true)
    }

    @Test("accept() failing with EMFILE behind a full queue: cause fd_exhausted")
    func fdExhausted() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let server = try Peer(runIn: ns, ["stall", "127.0.0.1", String(port), "--backlog", "1", "--emfile"])
        let holders = try fillAcceptQueue(ns: ns, port: port)
        let fd = try #require(trace.waitForRecord {
            $0.string("reason") == "fd_exhausted" && $0.pid("process") == server.pid
        }, "no fd_exhausted record: \(trace.stdout)")
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port, timeout: 1.5)
        let r = try #require(overflowRecord(trace, ns: ns, port: port, reason: "accept_queue_full"),
                             "stdout: \(trace.stdout)")
        trace.stop()
        _ = holders

        #expect(fd.string("kind") == "overflow")
        #expect((fd.evidence["errno"] as? String) == "EMFILE")
        #expect((fd.evidence["nofile_limit"] as? Int ?? 0) > 0)
        #expect(fd.int("port") == port)
        #expect(r.string("cause") == "fd_exhausted")
        #expect(r.pid("process") == server.pid)
        #expect(r.pid("client") == c.pid)
        #expect((r.evidence["accept_errno"] as? String) == "EMFILE")
    }

    /// Clients in their own namespace whose SYN-ACKs are dropped there: the
    /// server's request sockets stay in its SYN queue.
    @Test("SYN queue full: dropped with syncookies off, cookies sent with them on",
          arguments: [0, 1])
    func synQueueFull(syncookies: Int) throws {
        let server = try NetNS()
        defer { server.remove() }
        let client = try NetNS()
        defer { client.remove() }
        try server.link(to: client)
        try sh(["ip", "netns", "exec", server.name, "sysctl", "-qw", "net.ipv4.tcp_syncookies=\(syncookies)"])
        try sh(["ip", "netns", "exec", client.name, "nft",
                "add table inet t; add chain inet t in { type filter hook input priority 0; }; "
                + "add rule inet t in tcp flags & (syn | ack) == (syn | ack) drop"])
        let port = randomPort()
        let listener = try Peer(runIn: server, ["stall", "0.0.0.0", String(port), "--backlog", "2"])
        let trace = try TraceSession([])
        // The SYN queue takes backlog+1 = 3 request sockets; the rest overflow.
        var clients: [Process] = []
        for _ in 0..<6 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            p.arguments = ["netns", "exec", client.name, "/usr/bin/python3", Peer.script,
                           "connect", "198.18.0.1", String(port), "--timeout", "1"]
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            clients.append(p)
        }
        let r = try #require(overflowRecord(trace, ns: server, port: port, reason: "syn_queue_full"),
                             "stdout: \(trace.stdout)")
        for p in clients { p.waitUntilExit() }
        trace.stop()

        #expect(r.pid("process") == listener.pid)
        #expect((r.evidence["max_backlog"] as? Int) == 2)
        #expect((r.evidence["syn_queue"] as? Int ?? 0) > 2)
        #expect((r.object("remote")?["addr"] as? String) == "198.18.0.2")
        if syncookies == 0 {
            #expect(r.string("kind") == "drop")
            #expect(r.string("cause") == "syncookies_off")
            #expect(r.string("hint")?.contains("tcp_syncookies") == true)
        } else {
            #expect(r.string("kind") == "overflow")
            #expect(r.string("cause") == "syncookies_sent")
        }
    }

    /// ACK-stage overflow: two clients complete their side of the handshake
    /// but their ACKs are held (nft in their namespace) while the accept
    /// queue is filled from elsewhere; released, the ACKs overflow.
    @Test("accept queue full at the ACK stage: dropped ACK, or RST with tcp_abort_on_overflow",
          arguments: [false, true])
    func ackStageOverflow(abortOnOverflow: Bool) throws {
        let server = try NetNS()
        defer { server.remove() }
        let client = try NetNS()
        defer { client.remove() }
        try server.link(to: client)
        if abortOnOverflow {
            try sh(["ip", "netns", "exec", server.name, "sysctl", "-qw", "net.ipv4.tcp_abort_on_overflow=1"])
        }
        let port = randomPort()
        let listener = try Peer(runIn: server, ["stall", "0.0.0.0", String(port), "--backlog", "1"])
        let trace = try TraceSession([])
        try sh(["ip", "netns", "exec", client.name, "nft",
                "add table inet hold; add chain inet hold out { type filter hook output priority 0; }; "
                + "add rule inet hold out tcp dport \(port) tcp flags & (syn | ack | fin | rst) == ack drop"])
        var held: [Peer] = []
        for _ in 0..<2 {
            held.append(try Peer(runIn: client, ["hold", "198.18.0.1", String(port), "--seconds", "20"],
                                 readyPrefix: "connected"))
        }
        // Fill the accept queue from the server's own namespace (SYN queue full: cookies).
        var fillers: [Peer] = []
        for _ in 0..<2 {
            fillers.append(try Peer(runIn: server, ["hold", "198.18.0.1", String(port), "--seconds", "20"],
                                    readyPrefix: "connected"))
        }
        try sh(["ip", "netns", "exec", client.name, "nft", "delete table inet hold"])
        // The server retransmits its SYN-ACK after ~1 s; the clients' ACKs then overflow.
        let r = try #require(trace.waitForRecord(timeout: 15) {
            $0.int("netns") == server.inode && $0.int("port") == port
                && $0.string("reason") == "accept_queue_full" && ($0.evidence["stage"] as? String) == "ack"
        }, "stdout: \(trace.stdout)")
        trace.stop()
        _ = fillers

        #expect(r.pid("process") == listener.pid)
        #expect(Set(held.map(\.pid)).contains(r.pid("client") ?? -1), "client: \(r)")
        #expect((r.object("remote")?["addr"] as? String) == "198.18.0.2")
        if abortOnOverflow {
            #expect(r.string("kind") == "refusal")
            #expect(r.evidence["tcp_abort_on_overflow"] as? Bool == true)
        } else {
            #expect(r.string("kind") == "drop")
            #expect((r.evidence["method"] as? String)?.contains("TCP_LISTEN_OVERFLOW") == true)
        }
    }
}
