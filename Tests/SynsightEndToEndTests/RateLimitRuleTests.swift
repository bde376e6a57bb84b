import Foundation
import Testing

/// Rules that refuse a client only past a limit, in a server namespace the
/// test creates, reached over a veth from a client namespace: the client
/// opens connections up to the limit (held open), and the next one is
/// refused. The record must say `rate_limited` with the limit as the rule
/// writes it (for iptables-nft, from iptables-save: nft prints `xt match
/// connlimit` without its options) and a fix that exempts the client,
/// not one that deletes the rule; a client under the limit connects.
@Suite("firewall rules that refuse past a limit (connlimit, recent, nft ct count), end to end", .serialized, .enabled(if: Privileged.enabled))
struct RateLimitRuleTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// `limit` held connections from the client (each under the limit:
    /// they connect), then one more, refused (or dropped): its record.
    static func overTheLimit(_ pair: NetNSPair, port: Int, held limit: Int, errno: Int32 = ECONNREFUSED) throws -> (JSONRecord, Int) {
        let listener = try Peer(listenIn: pair.server, addr: "0.0.0.0", port: port)
        let trace = try TraceSession(["--port", String(port)])
        let held = try (0..<limit).map { _ in
            try Peer(runIn: pair.client, ["hold", pair.serverAddr, String(port), "--seconds", "20"], readyPrefix: "connected")
        }
        let c = try Peer.connect(from: pair.client, addr: pair.serverAddr, port: port, timeout: 2)
        #expect(c.errno == Int(errno), "the connection past the limit: errno \(c.errno)")
        let r = try #require(trace.waitForRecord(timeout: 8) {
            ($0.string("reason") ?? "").hasPrefix("firewall_") && $0.int("port") == port && $0.pid("client") == c.pid
        }, "no firewall record; records: \(trace.stdout)")
        trace.stop()
        #expect(r.string("cause") == "rate_limited", "record: \(r)")
        #expect(r.int("netns") == pair.server.inode && r.pid("process") == listener.pid, "record: \(r)")
        #expect(r.object("remote")?["addr"] as? String == pair.clientAddr, "record: \(r)")
        for h in held { h.killHard() }
        return (r, c.pid)
    }

    @Test("iptables-nft connlimit REJECT: rate_limited, the match's options from iptables-save, the iptables rule, a fix that exempts the client")
    func connlimit() throws {
        let pair = try NetNSPair(subnet: "198.18.13")
        defer { pair.remove() }
        let port = randomPort()
        try sh(["ip", "netns", "exec", pair.server.name, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", String(port),
                "-m", "connlimit", "--connlimit-above", "2", "-j", "REJECT", "--reject-with", "tcp-reset"])
        let (r, _) = try Self.overTheLimit(pair, port: port, held: 2)
        #expect(r.string("reason") == "firewall_reject" && r.string("kind") == "refusal", "record: \(r)")
        #expect(r.evidence["rate_limit"] as? String == "-m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr", "record: \(r)")
        #expect(r.evidence["rate_limit_per"] as? String == "source address", "record: \(r)")
        // libnftables prints the xt match as is, or through libxtables'
        // translation of it (iptables-translate's form): both were seen here.
        let rule = r.evidence["rule"] as? String
        #expect(rule == "tcp dport \(port) xt match connlimit reject with tcp reset"
                    || rule == "tcp dport \(port) add @connlimit0 { ip saddr ct count over 2 } reject with tcp reset", "record: \(r)")
        #expect(r.evidence["iptables_rule"] as? String
                    == "-A INPUT -p tcp -m tcp --dport \(port) -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset",
                "record: \(r)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("past its limit (-m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr, counted per source address), and \(pair.clientAddr) went over it"), "\(hint)")
        #expect(hint.contains("iptables -I INPUT -s \(pair.clientAddr) -p tcp --dport \(port) -j ACCEPT") && !hint.contains("delete it"), "\(hint)")
    }

    @Test("an SSH-style recent --hitcount DROP: rate_limited, the client times out, the hit count named")
    func recentHitcount() throws {
        let pair = try NetNSPair(subnet: "198.18.14")
        defer { pair.remove() }
        let port = randomPort()
        let base = ["ip", "netns", "exec", pair.server.name, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", String(port),
                    "-m", "conntrack", "--ctstate", "NEW", "-m", "recent"]
        try sh(base + ["--set", "--name", "ssh"])
        try sh(base + ["--update", "--seconds", "60", "--hitcount", "3", "--name", "ssh", "-j", "DROP"])
        let (r, _) = try Self.overTheLimit(pair, port: port, held: 2, errno: ETIMEDOUT)
        #expect(r.string("reason") == "firewall_drop", "record: \(r)")
        #expect((r.evidence["rate_limit"] as? String)?.hasPrefix("-m recent --update --seconds 60 --hitcount 3 --name ssh") == true, "record: \(r)")
        #expect((r.string("hint") ?? "").contains("(the client times out)"), "record: \(r)")
    }

    @Test("an nft meter with ct count over: rate_limited, counted per ip saddr, the nft fix inserts an accept rule for the client")
    func nftMeterCount() throws {
        let pair = try NetNSPair(subnet: "198.18.15")
        defer { pair.remove() }
        let port = randomPort()
        try pair.server.loadNft("""
            table inet synsight_e2e {
              chain in { type filter hook input priority 0; policy accept;
                tcp dport \(port) ct state new meter perclient { ip saddr ct count over 1 } reject with tcp reset
              }
            }
            """)
        let (r, _) = try Self.overTheLimit(pair, port: port, held: 1)
        #expect(r.evidence["rate_limit"] as? String == "ct count over 1" && r.evidence["rate_limit_per"] as? String == "ip saddr", "record: \(r)")
        #expect(r.evidence["iptables_rule"] == nil && r.evidence["table"] as? String == "inet synsight_e2e", "record: \(r)")
        #expect((r.string("hint") ?? "").contains("nft insert rule inet synsight_e2e in ip saddr \(pair.clientAddr) tcp dport \(port) accept"), "record: \(r)")
    }
}
