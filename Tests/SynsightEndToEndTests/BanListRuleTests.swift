import Foundation
import Testing

/// Bans of intrusion-prevention tools, as they write them, in a server
/// namespace the test creates: fail2ban's iptables action (a chain
/// `f2b-<jail>` with a REJECT per banned address), its nftables action (a
/// set `addr-set-<jail>` whose elements time out, in table `f2b-table`) and
/// sshguard's nftables backend (set `attackers`, a drop). The banned
/// client's record must say `address_banned`, the tool and its jail or set,
/// and a fix that lifts the ban the tool's way; the set's elements decide
/// (a client whose address is not in the set connects).
@Suite("bans of fail2ban and sshguard, end to end", .serialized, .enabled(if: Privileged.enabled))
struct BanListRuleTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// The client connects to `port` of the server namespace, whose ban
    /// refuses (or drops) it: its firewall record, and the listener (kept
    /// while the caller holds it).
    static func banned(_ pair: NetNSPair, port: Int, errno: Int32 = ECONNREFUSED) throws -> (JSONRecord, Peer) {
        let listener = try Peer(listenIn: pair.server, addr: "0.0.0.0", port: port)
        let trace = try TraceSession(["--port", String(port)])
        let c = try Peer.connect(from: pair.client, addr: pair.serverAddr, port: port, timeout: 2)
        #expect(c.errno == Int(errno), "errno \(c.errno)")
        let r = try #require(trace.waitForRecord(timeout: 8) {
            ($0.string("reason") ?? "").hasPrefix("firewall_") && $0.int("port") == port && $0.pid("client") == c.pid
        }, "no firewall record; records: \(trace.stdout)")
        trace.stop()
        #expect(r.string("cause") == "address_banned" && r.pid("process") == listener.pid, "record: \(r)")
        #expect(r.object("remote")?["addr"] as? String == pair.clientAddr, "record: \(r)")
        return (r, listener)
    }

    @Test("fail2ban's iptables action: chain f2b-sshd, a REJECT for the client; the jail and fail2ban-client unbanip")
    func fail2banIptables() throws {
        let pair = try NetNSPair(subnet: "198.18.16")
        defer { pair.remove() }
        let port = randomPort()
        let ipt = ["ip", "netns", "exec", pair.server.name, "iptables"]
        try sh(ipt + ["-N", "f2b-sshd"])
        try sh(ipt + ["-A", "f2b-sshd", "-s", "192.0.2.7/32", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"])
        try sh(ipt + ["-A", "f2b-sshd", "-s", "\(pair.clientAddr)/32", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"])
        try sh(ipt + ["-A", "f2b-sshd", "-j", "RETURN"])
        try sh(ipt + ["-I", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", String(port), "-j", "f2b-sshd"])
        let (r, _) = try Self.banned(pair, port: port)
        #expect(r.evidence["banned_by"] as? String == "fail2ban" && r.evidence["ban_list"] as? String == "sshd", "record: \(r)")
        #expect(r.evidence["rule_owner"] as? String == "fail2ban" && r.evidence["chain"] as? String == "f2b-sshd", "record: \(r)")
        let hint = r.string("hint") ?? ""
        #expect(hint.hasPrefix("fail2ban's jail sshd banned \(pair.clientAddr): rule \"-A f2b-sshd -s \(pair.clientAddr)/32 -j REJECT"), "\(hint)")
        #expect(hint.contains("fail2ban-client set sshd unbanip \(pair.clientAddr)") && hint.contains("ignoreip"), "\(hint)")
    }

    @Test("fail2ban's nftables action: the set's elements (one with a timeout) decide between its rule and a later one")
    func fail2banNftSet() throws {
        let pair = try NetNSPair(subnet: "198.18.17")
        defer { pair.remove() }
        let port = randomPort()
        // The host's own reject of the port comes after fail2ban's chain: named only for a client not in the set.
        try pair.server.loadNft("""
            table inet f2b-table {
              set addr-set-nginx-limit { type ipv4_addr; flags timeout; elements = { 192.0.2.9, \(pair.clientAddr) timeout 10m } }
              chain f2b-chain { type filter hook input priority filter - 1; policy accept;
                tcp dport { \(port) } ip saddr @addr-set-nginx-limit reject with icmp port-unreachable
              }
            }
            table inet host {
              chain in { type filter hook input priority filter; policy accept;
                tcp dport \(port) reject with tcp reset
              }
            }
            """)
        let (r, listener) = try Self.banned(pair, port: port)
        #expect(r.evidence["banned_by"] as? String == "fail2ban" && r.evidence["ban_list"] as? String == "nginx-limit", "record: \(r)")
        #expect(r.evidence["table"] as? String == "inet f2b-table" && r.evidence["rule_method"] as? String == "ruleset_match", "record: \(r)")
        #expect((r.string("hint") ?? "").contains("fail2ban-client set nginx-limit unbanip \(pair.clientAddr)"), "record: \(r)")
        // Lifted from the set: the host's rule refuses the same client, and is the one named.
        try sh(["ip", "netns", "exec", pair.server.name, "nft", "delete element inet f2b-table addr-set-nginx-limit { \(pair.clientAddr) }"])
        let trace = try TraceSession(["--port", String(port)])
        let again = try Peer.connect(from: pair.client, addr: pair.serverAddr, port: port, timeout: 2)
        let host = try #require(trace.waitForRecord(timeout: 8) { $0.string("reason") == "firewall_reject" && $0.pid("client") == again.pid },
                                "no record after the ban was lifted: \(trace.stdout)")
        trace.stop()
        #expect(host.evidence["table"] as? String == "inet host" && host.string("cause") == nil, "record: \(host)")
        listener.killHard()
    }

    @Test("sshguard's nftables backend: set attackers, a drop; the client times out; the set and nft delete element")
    func sshguardNft() throws {
        let pair = try NetNSPair(subnet: "198.18.18")
        defer { pair.remove() }
        let port = randomPort()
        try pair.server.loadNft("""
            table ip sshguard {
              set attackers { type ipv4_addr; flags interval; elements = { \(pair.clientAddr)/32 } }
              chain blacklist { type filter hook input priority filter - 10; policy accept;
                ip saddr @attackers drop
              }
            }
            """)
        let (r, _) = try Self.banned(pair, port: port, errno: ETIMEDOUT)
        #expect(r.string("reason") == "firewall_drop" && r.evidence["banned_by"] as? String == "sshguard", "record: \(r)")
        #expect(r.evidence["ban_list"] as? String == "attackers" && r.evidence["rule_owner"] as? String == "sshguard", "record: \(r)")
        #expect((r.string("hint") ?? "").contains("nft delete element ip sshguard attackers { \(pair.clientAddr) }"), "record: \(r)")
    }
}
