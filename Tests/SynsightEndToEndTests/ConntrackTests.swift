import Foundation
import Testing

/// Conntrack killing a handshake, against the real kernel, in namespaces
/// each test creates and deletes:
/// - a `ct state invalid` rule dropping a SYN-ACK conntrack has no entry for
///   (the client's SYN left untracked by a raw-table `notrack`), in nft and
///   in iptables-nft: firewall_drop/conntrack_invalid with the rule;
/// - a full conntrack table: N ASSURED connections held in the server's
///   namespace, the global nf_conntrack_max lowered to N for a few seconds
///   (always restored, by a detached watchdog too if this process dies), one
///   more connection whose SYN conntrack drops: packet_dropped/conntrack_full
///   with the table's use and size.
/// Serialized: the global limit must not be lowered by two tests at once.
@Suite("conntrack invalid and table full, end to end", .serialized, .enabled(if: Privileged.enabled))
struct ConntrackTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Support/conntrack_peer.py").path

    /// Server (.1) and client (.2) namespaces joined by a veth pair in `subnet`.
    func pair(subnet: String) throws -> (server: NetNS, client: NetNS, serverDev: String) {
        let server = try NetNS(), client = try NetNS()
        do {
            let (dev, _) = try server.link(to: client, subnet: subnet)
            return (server, client, dev)
        } catch {
            server.remove()
            client.remove()
            throw error
        }
    }

    func assertInvalid(_ r: JSONRecord?, port: Int, table: String, chain: String, handle: Int?,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        guard let r else {
            Issue.record("no firewall_drop record for port \(port)", sourceLocation: sourceLocation)
            return
        }
        #expect(r.string("kind") == "drop", "\(r)", sourceLocation: sourceLocation)
        #expect(r.string("cause") == "conntrack_invalid", "\(r)", sourceLocation: sourceLocation)
        #expect(r.int("port") == port, sourceLocation: sourceLocation)
        let ev = r.evidence
        #expect(ev["ct_state"] as? String == "invalid", "\(r)", sourceLocation: sourceLocation)
        #expect((ev["rule"] as? String)?.contains("ct state invalid") == true, "\(r)", sourceLocation: sourceLocation)
        #expect(ev["table"] as? String == table, "\(r)", sourceLocation: sourceLocation)
        #expect(ev["chain"] as? String == chain, "\(r)", sourceLocation: sourceLocation)
        #expect(ev["handle"] as? Int == handle, "\(r)", sourceLocation: sourceLocation)
        // The SYN-ACK coming back, not the SYN: dropped for the client, on its input path.
        #expect(ev["syn"] as? Bool == false && ev["tcp_flags"] as? Int == 0x12, "\(r)", sourceLocation: sourceLocation)
        #expect(ev["chain_hook"] as? String == "input", "\(r)", sourceLocation: sourceLocation)
        #expect((r.string("hint") ?? "").contains("asymmetric routing"), "\(r)", sourceLocation: sourceLocation)
    }

    /// The handle nft gave the rule whose text contains `match`.
    func handle(_ ns: NetNS, _ match: String) throws -> Int? {
        let text = try sh(["ip", "netns", "exec", ns.name, "nft", "-a", "list", "ruleset"])
        for line in text.split(separator: "\n") where line.contains(match) {
            if let r = line.range(of: "# handle ") { return Int(line[r.upperBound...].trimmingCharacters(in: .whitespaces)) }
        }
        return nil
    }

    @Test("a `ct state invalid` rule drops the SYN-ACK of an untracked SYN: firewall_drop/conntrack_invalid, nft and iptables-nft")
    func invalid() throws {
        let (server, client, _) = try pair(subnet: "198.18.60")
        defer { server.remove(); client.remove() }
        let nftPort = randomPort(), iptPort = nftPort + 1
        // The client's SYNs leave untracked (notrack in raw output); the
        // SYN-ACKs coming back have no entry (and mid-stream pickup is off):
        // conntrack calls them invalid.
        try client.loadNft("""
            table inet ctinv {
              chain out { type filter hook output priority raw; tcp dport { \(nftPort), \(iptPort) } notrack; }
              chain in { type filter hook input priority 0; tcp sport \(nftPort) ct state invalid counter drop; }
            }
            """)
        try sh(["ip", "netns", "exec", client.name, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0"])
        try sh(["ip", "netns", "exec", client.name, "iptables-nft", "-A", "INPUT", "-p", "tcp", "--sport", String(iptPort),
                "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"])
        let nftHandle = try handle(client, "tcp sport \(nftPort) ct state invalid")
        let iptHandle = try handle(client, "tcp sport \(iptPort) ct state invalid")
        let l1 = try Peer(listenIn: server, addr: "0.0.0.0", port: nftPort)
        let l2 = try Peer(listenIn: server, addr: "0.0.0.0", port: iptPort)

        // Filtered on the service's ports: a SYN-ACK is kept by its source port.
        let trace = try TraceSession(["--port", String(nftPort), "--port", String(iptPort)])
        var pids: [Int] = []
        for port in [nftPort, iptPort] {
            let c = try Peer.connect(from: client, addr: "198.18.60.1", port: port, timeout: 2)
            #expect(c.errno == Int(ETIMEDOUT), "errno \(c.errno)")
            pids.append(c.pid)
        }
        let match = { (port: Int) in { (r: JSONRecord) in
            r.string("reason") == "firewall_drop" && r.int("netns") == client.inode && r.int("port") == port
        } }
        let nft = trace.waitForRecord(timeout: 8, match(nftPort))
        let ipt = trace.waitForRecord(timeout: 8, match(iptPort))
        trace.stop()
        assertInvalid(nft, port: nftPort, table: "inet ctinv", chain: "in", handle: nftHandle)
        assertInvalid(ipt, port: iptPort, table: "ip filter", chain: "INPUT", handle: iptHandle)
        // The client whose connection died, joined by its retransmitted SYN.
        #expect(nft?.pid("client") == pids[0], "\(String(describing: nft))")
        #expect(ipt?.pid("client") == pids[1], "\(String(describing: ipt))")
        // Only the rule that matched the kernel's state is named (no candidates list of others).
        #expect(nft?.evidence["candidates"] == nil, "\(String(describing: nft))")
        withExtendedLifetime((l1, l2)) {}
    }

    @Test("doctor says how this kernel's conntrack drops are seen")
    func doctorLine() throws {
        let out = try sh([TraceSession.binary, "doctor"])
        let line = try #require(out.split(separator: "\n").first { $0.hasPrefix("    conntrack ") }, "\(out)")
        // nf_conntrack is built into this host's kernel (its BTF in vmlinux).
        #expect(line.contains("ct state from skb->_nfct") && line.contains("nf_conntrack_net.count"), "\(line)")
        #expect(line.contains("conntrack_invalid") && line.contains("conntrack_full"), "\(line)")
    }

    @Test("a full conntrack table drops the SYN itself: packet_dropped/conntrack_full with count and max, no rule")
    func tableFull() throws {
        let (server, client, serverDev) = try pair(subnet: "198.18.61")
        defer { server.remove(); client.remove() }
        let port = randomPort()
        // Conntrack runs in the server's namespace (its rules use it); the
        // invalid rule is there too, and must not be blamed: conntrack drops
        // the SYN in PREROUTING before any filter chain sees it.
        try server.loadNft("""
            table inet f {
              chain in { type filter hook input priority 0; ct state invalid drop; ct state established,related accept; }
            }
            """)
        let n = ConntrackMaxGuard.entries
        let listener = try Peer(runIn: server, ["serve", "0.0.0.0", String(port)], script: Self.script)
        let held = try Peer(runIn: client, ["hold", "198.18.61.1", String(port), String(n)], script: Self.script)
        let count = { Int((try? sh(["ip", "netns", "exec", server.name, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"]))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1 }
        #expect(waitUntil(timeout: 5) { count() == n }, "the server's namespace holds \(count()) conntrack entries, not \(n)")

        let trace = try TraceSession([])
        var c: (pid: Int, errno: Int) = (-1, -1)
        var r: JSONRecord?
        do {
            let guard_ = try ConntrackMaxGuard()
            defer { guard_.restore() }
            c = try Peer.connect(from: client, addr: "198.18.61.1", port: port, timeout: 2)
            r = trace.waitForRecord(timeout: 6) {
                $0.string("reason") == "packet_dropped" && $0.int("netns") == server.inode && $0.int("port") == port
            }
        }
        trace.stop()
        #expect(c.errno == Int(ETIMEDOUT), "errno \(c.errno)")
        let rec = try #require(r, "no packet_dropped record for port \(port)")
        #expect(rec.string("kind") == "drop" && rec.string("cause") == "conntrack_full", "\(rec)")
        #expect(rec.pid("process") == listener.pid, "\(rec)")
        let ev = rec.evidence
        #expect(ev["conntrack_count"] as? Int == n, "\(rec)")
        #expect(ev["conntrack_max"] as? Int == n, "\(rec)")
        #expect(ev["sysctl"] as? String == "net.netfilter.nf_conntrack_max")
        #expect(ev["drop_reason"] as? String == "netfilter_drop", "\(rec)")
        #expect((ev["location"] as? String)?.hasPrefix("nf_hook_slow") == true, "\(rec)")
        #expect(ev["interface"] as? String == serverDev, "\(rec)")
        #expect(ev["chain_hook"] as? String == "prerouting", "\(rec)")
        #expect(ev["ct_state"] as? String == "invalid", "\(rec)")
        #expect(ev["rule"] == nil, "\(rec)")
        let hint = rec.string("hint") ?? ""
        #expect(hint.contains("\(n) entries") && hint.contains("nf_conntrack_max"), "\(rec)")
        #expect(ConntrackMaxGuard.current() != String(n), "nf_conntrack_max was not restored")
        withExtendedLifetime(held) {}
    }
}

/// Lowers the global net.netfilter.nf_conntrack_max to `entries` (read-only
/// in other namespaces: it is the host's) and puts the original back on every
/// path: `restore()` (called by the test's defer), and a detached watchdog
/// that restores it if this process dies first or after `deadline` seconds.
final class ConntrackMaxGuard {
    /// Few enough to hold quickly, more than other suites' namespaces hold at once.
    static let entries = 64
    static let path = "/proc/sys/net/netfilter/nf_conntrack_max"
    static let deadline = 60
    let original: String
    let marker: String
    var restored = false

    static func current() -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    init() throws {
        guard let original = Self.current(), let value = Int(original), value > Self.entries else {
            throw CommandFailure(description: "cannot read \(Self.path) (or it is already at most \(Self.entries))")
        }
        self.original = original
        marker = NSTemporaryDirectory() + "synsight-ctmax-\(getpid())-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: marker, contents: Data(original.utf8))
        // The watchdog: its own session (setsid), so the test runner's end
        // does not take it along; it writes the original back unless the
        // marker is gone (restored), when this process dies, or at the deadline.
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        watchdog.arguments = ["-f", "/bin/sh", "-c", """
            echo $$ > "$3.watching"
            end=$(( $(date +%s) + \(Self.deadline) ))
            while [ -e "$3" ] && kill -0 "$2" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
            if [ -e "$3" ]; then echo "$1" > \(Self.path); rm -f "$3"; fi
            rm -f "$3.watching"
            """, "synsight-ctmax-watchdog", original, String(getpid()), marker]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        // Not waited for: Foundation's waitUntilExit would wait for the
        // detached watchdog itself. Its own sign of life is waited for instead.
        try watchdog.run()
        guard waitUntil(timeout: 5, { FileManager.default.fileExists(atPath: marker + ".watching") }) else {
            try? FileManager.default.removeItem(atPath: marker)
            throw CommandFailure(description: "the nf_conntrack_max watchdog did not start")
        }
        do {
            try String(Self.entries).write(toFile: Self.path, atomically: false, encoding: .utf8)
        } catch {
            restore()
            throw error
        }
    }

    func restore() {
        guard !restored else { return }
        restored = true
        try? original.write(toFile: Self.path, atomically: false, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: marker)
    }

    deinit { restore() }
}
