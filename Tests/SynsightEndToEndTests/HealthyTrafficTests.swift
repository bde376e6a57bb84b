import Foundation
import Testing

/// The cost rule of issue 16 for the drops of handshake ACKs and answers
/// (issue 17): healthy connections free skbs with a drop reason too (a
/// closing connection's last segments: TCP_CLOSE, NO_SOCKET, NOT_SPECIFIED,
/// old ACKs), and kfree_skb runs for them; bpf/drops.bpf.h must send none of
/// them to user space. Many HTTP/1.0 connections (both ends close) between
/// two namespaces the test creates, under trace: no drop record of either.
@Suite("healthy traffic sends no drop record, end to end", .serialized, .enabled(if: Privileged.enabled))
struct HealthyTrafficTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Support/healthy.py").path

    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    @Test("300 connections with Connection: close, server and client both closing: no packet_dropped or firewall record")
    func closingConnections() throws {
        let pair = try NetNSPair(subnet: "198.18.49")
        defer { pair.remove() }
        // A firewall that accepts everything (conntrack on): its accept verdicts are no drops.
        try pair.server.loadNft("""
            table inet healthy {
                chain input {
                    type filter hook input priority 0; policy accept;
                    ct state established,related accept
                    tcp flags syn accept
                }
            }
            """)
        let port = randomPort()
        let server = try Peer(runIn: pair.server, ["serve", pair.serverAddr, String(port)], script: Self.script)
        let trace = try TraceSession([])
        let out = try sh(["ip", "netns", "exec", pair.client.name, "/usr/bin/python3", Self.script, "clients",
                          pair.serverAddr, String(port), "300"])
        let ok = out.split(separator: "\n").last.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) }
        #expect(ok == 300, "\(out)")
        // TIME_WAIT, the last ACKs and FINs: give the kernel and the ring buffer time.
        Thread.sleep(forTimeInterval: 2)
        trace.stop()
        let ours = Set([pair.server.inode, pair.client.inode])
        let drops = trace.records.filter { r in
            guard let ns = r.int("netns"), ours.contains(ns) else { return false }
            let reason = r.string("reason") ?? ""
            return reason == "packet_dropped" || reason.hasPrefix("firewall_") || reason == "connect_timeout"
        }
        #expect(drops.isEmpty, "\(drops)")
        #expect(server.process.isRunning)
    }
}
