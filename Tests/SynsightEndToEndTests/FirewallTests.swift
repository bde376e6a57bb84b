import Foundation
import Testing

/// Firewall REJECT and DROP against the real kernel: rules only inside the
/// namespaces each test creates (and always deletes), a veth pair between a
/// client and a server namespace, traced by the real `synsight trace --json`.
/// Cases of one test run concurrently (the DROP cases wait for the client's
/// 2 s connect timeout), so the suite stays short.
@Suite("firewall reject and drop, end to end", .serialized, .enabled(if: Privileged.enabled))
struct FirewallTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    static let v4Server = "198.18.7.1", v4Client = "198.18.7.2"
    static let v6Server = "fd00:5e::1", v6Client = "fd00:5e::2"

    /// Server and client namespaces joined by a veth pair with IPv4 and IPv6.
    struct Pair {
        let server: NetNS
        let client: NetNS

        init() throws {
            server = try NetNS()
            client = try NetNS()
            let a = "fws\(server.number)", b = "fwc\(server.number)"
            try sh(["ip", "link", "add", a, "netns", server.name, "type", "veth", "peer", "name", b, "netns", client.name])
            try sh(["ip", "-n", server.name, "addr", "add", "\(FirewallTests.v4Server)/24", "dev", a])
            try sh(["ip", "-n", client.name, "addr", "add", "\(FirewallTests.v4Client)/24", "dev", b])
            try sh(["ip", "-n", server.name, "addr", "add", "\(FirewallTests.v6Server)/64", "dev", a, "nodad"])
            try sh(["ip", "-n", client.name, "addr", "add", "\(FirewallTests.v6Client)/64", "dev", b, "nodad"])
            try sh(["ip", "-n", server.name, "link", "set", a, "up"])
            try sh(["ip", "-n", client.name, "link", "set", b, "up"])
            // Both ends up (carrier) and no tentative IPv6 address, or the first connects fail.
            let ready = waitUntil(timeout: 5) {
                [(server.name, a), (client.name, b)].allSatisfy { ns, dev in
                    let link = (try? sh(["ip", "-n", ns, "link", "show", "dev", dev])) ?? ""
                    let v6 = (try? sh(["ip", "-n", ns, "-6", "addr", "show", "dev", dev])) ?? ""
                    let global = v6.split(separator: "\n").first { $0.contains("inet6 fd00:5e") } ?? "tentative"
                    return link.contains("state UP") && !global.contains("tentative")
                }
            }
            if !ready { throw CommandFailure(description: "veth \(a)/\(b) did not come up") }
        }

        func remove() {
            server.remove()
            client.remove()
        }
    }

    /// The handle nft gave the rule whose text contains `match`.
    func handle(_ ns: NetNS, _ match: String) throws -> Int? {
        let text = try sh(["ip", "netns", "exec", ns.name, "nft", "-a", "list", "ruleset"])
        for line in text.split(separator: "\n") where line.contains(match) {
            if let r = line.range(of: "# handle ") { return Int(line[r.upperBound...].trimmingCharacters(in: .whitespaces)) }
        }
        return nil
    }

    /// Runs the connects concurrently; returns (pid, errno) per connect, in order.
    func connectAll(_ jobs: [(NetNS, String, Int)], timeout: Double = 2) -> [(pid: Int, errno: Int)] {
        final class Results: @unchecked Sendable {  // guarded by `lock`
            let lock = NSLock()
            var values: [Int: (pid: Int, errno: Int)] = [:]
        }
        let results = Results()
        nonisolated(unsafe) let jobs = jobs
        DispatchQueue.concurrentPerform(iterations: jobs.count) { i in
            let (ns, addr, port) = jobs[i]
            let r: (pid: Int, errno: Int)
            do {
                r = try Peer.connect(from: ns, addr: addr, port: port, timeout: timeout)
            } catch {
                // Say why (the expectation on errno then fails with -1).
                Issue.record("connect to \(addr) port \(port) from \(ns.name) failed to run: \(error)")
                r = (pid: -1, errno: -1)
            }
            results.lock.lock()
            results.values[i] = r
            results.lock.unlock()
        }
        return (0..<jobs.count).map { results.values[$0] ?? (-1, -1) }
    }

    func record(_ trace: TraceSession, netns: NetNS, port: Int, timeout: Double = 8) -> JSONRecord? {
        trace.waitForRecord(timeout: timeout) {
            ($0.string("reason") ?? "").hasPrefix("firewall_") && $0.int("netns") == netns.inode && $0.int("port") == port
        }
    }

    func assertRecord(_ r: JSONRecord?, reject: Bool, port: Int, family: String = "ipv4", clientPid: Int,
                      table: String, chain: String, handle: Int?, ruleContains: String,
                      hook: String, rejectWith: String? = nil, method: String? = nil,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        guard let r else {
            Issue.record("no firewall record for port \(port)", sourceLocation: sourceLocation)
            return
        }
        #expect(r.int("v") == 1, sourceLocation: sourceLocation)
        #expect(r.string("kind") == (reject ? "refusal" : "drop"), "\(r)", sourceLocation: sourceLocation)
        #expect(r.string("reason") == (reject ? "firewall_reject" : "firewall_drop"), "\(r)", sourceLocation: sourceLocation)
        #expect(r.int("port") == port, sourceLocation: sourceLocation)
        #expect(r.string("family") == family, sourceLocation: sourceLocation)
        #expect((r.object("local")?["port"] as? Int) == port, sourceLocation: sourceLocation)
        #expect(r.pid("client") == clientPid, "\(r)", sourceLocation: sourceLocation)
        let ev = r.evidence
        #expect(ev["table"] as? String == table, "\(r)", sourceLocation: sourceLocation)
        #expect(ev["chain"] as? String == chain, "\(r)", sourceLocation: sourceLocation)
        if let handle { #expect(ev["handle"] as? Int == handle, "\(r)", sourceLocation: sourceLocation) }
        #expect((ev["rule"] as? String)?.contains(ruleContains) == true, "\(r)", sourceLocation: sourceLocation)
        #expect(ev["rule_method"] as? String != nil, sourceLocation: sourceLocation)
        #expect(ev["chain_hook"] as? String == hook, "\(r)", sourceLocation: sourceLocation)
        if let rejectWith { #expect(ev["reject_with"] as? String == rejectWith, "\(r)", sourceLocation: sourceLocation) }
        if let method { #expect(ev["method"] as? String == method, "\(r)", sourceLocation: sourceLocation) }
        #expect((r.string("hint") ?? "").contains(String(port)), sourceLocation: sourceLocation)
    }

    @Test("nft INPUT, IPv4: reject with tcp reset, reject (ICMP port-unreachable), drop")
    func nftInputIPv4() throws {
        let pair = try Pair()
        defer { pair.remove() }
        let base = randomPort()
        let (pReset, pIcmp, pDrop) = (base, base + 1, base + 2)
        try pair.server.loadNft("""
            table inet filter {
              chain input { type filter hook input priority 0; policy accept;
                tcp dport \(pReset) counter reject with tcp reset comment "synsight-e2e"
                tcp dport \(pIcmp) reject
                tcp dport \(pDrop) drop
              }
            }
            """)
        let hReset = try handle(pair.server, "tcp dport \(pReset) ")
        let hIcmp = try handle(pair.server, "tcp dport \(pIcmp) ")
        let hDrop = try handle(pair.server, "tcp dport \(pDrop) ")
        let trace = try TraceSession([])
        let c = connectAll([(pair.client, Self.v4Server, pReset), (pair.client, Self.v4Server, pIcmp),
                            (pair.client, Self.v4Server, pDrop)])
        #expect(c[0].errno == Int(ECONNREFUSED))
        #expect(c[1].errno == Int(ECONNREFUSED))
        #expect(c[2].errno == Int(ETIMEDOUT))
        let rReset = record(trace, netns: pair.server, port: pReset)
        let rIcmp = record(trace, netns: pair.server, port: pIcmp)
        let rDrop = record(trace, netns: pair.server, port: pDrop)
        trace.stop()
        if trace.records.contains(where: {
            [pair.server.inode, pair.client.inode].contains($0.int("netns") ?? -1)
                && ($0.evidence["rule_method"] as? String) == "ruleset_unavailable" }) {
            Issue.record("rule lookup failed; trace stderr: \(trace.stderr)")
        }

        assertRecord(rReset, reject: true, port: pReset, clientPid: c[0].pid, table: "inet filter", chain: "input",
                     handle: hReset, ruleContains: "reject with tcp reset comment \"synsight-e2e\"", hook: "input",
                     rejectWith: "tcp-reset", method: "client_errno")
        assertRecord(rIcmp, reject: true, port: pIcmp, clientPid: c[1].pid, table: "inet filter", chain: "input",
                     handle: hIcmp, ruleContains: "tcp dport \(pIcmp) reject", hook: "input",
                     rejectWith: "icmp port-unreachable", method: "icmp_send")
        assertRecord(rDrop, reject: false, port: pDrop, clientPid: c[2].pid, table: "inet filter", chain: "input",
                     handle: hDrop, ruleContains: "tcp dport \(pDrop) drop", hook: "input", method: "retransmission")
        #expect((rDrop?.object("remote")?["addr"] as? String) == Self.v4Client)
        // One record per connection attempt, not one per retransmitted SYN.
        #expect(trace.records.filter { $0.int("port") == pDrop && $0.int("netns") == pair.server.inode }.count == 1)
    }

    @Test("nft INPUT, IPv6: reject with tcp reset, drop")
    func nftInputIPv6() throws {
        let pair = try Pair()
        defer { pair.remove() }
        let base = randomPort()
        let (pReset, pDrop) = (base, base + 1)
        try pair.server.loadNft("""
            table ip6 filter6 {
              chain input { type filter hook input priority 0; policy accept;
                ip6 saddr \(Self.v6Client) tcp dport \(pReset) reject with tcp reset
                tcp dport \(pDrop) drop
              }
            }
            """)
        let hReset = try handle(pair.server, "tcp dport \(pReset) ")
        let hDrop = try handle(pair.server, "tcp dport \(pDrop) ")
        let trace = try TraceSession([])
        let c = connectAll([(pair.client, Self.v6Server, pReset), (pair.client, Self.v6Server, pDrop)])
        #expect(c[0].errno == Int(ECONNREFUSED))
        #expect(c[1].errno == Int(ETIMEDOUT))
        let rReset = record(trace, netns: pair.server, port: pReset)
        let rDrop = record(trace, netns: pair.server, port: pDrop)
        trace.stop()
        if trace.records.contains(where: {
            [pair.server.inode, pair.client.inode].contains($0.int("netns") ?? -1)
                && ($0.evidence["rule_method"] as? String) == "ruleset_unavailable" }) {
            Issue.record("rule lookup failed; trace stderr: \(trace.stderr)")
        }
        assertRecord(rReset, reject: true, port: pReset, family: "ipv6", clientPid: c[0].pid, table: "ip6 filter6",
                     chain: "input", handle: hReset, ruleContains: "reject with tcp reset", hook: "input",
                     method: "client_errno")
        assertRecord(rDrop, reject: false, port: pDrop, family: "ipv6", clientPid: c[1].pid, table: "ip6 filter6",
                     chain: "input", handle: hDrop, ruleContains: "tcp dport \(pDrop) drop", hook: "input")
        #expect((rReset?.object("remote")?["addr"] as? String) == Self.v6Client)
    }

    @Test("nft OUTPUT: reject and drop of the client's own SYN, pid from process context")
    func nftOutput() throws {
        let pair = try Pair()
        defer { pair.remove() }
        let base = randomPort()
        let (pReject, pDrop) = (base, base + 1)
        try pair.client.loadNft("""
            table inet out {
              chain output { type filter hook output priority 0; policy accept;
                tcp dport \(pReject) reject with tcp reset
                tcp dport \(pDrop) drop
              }
            }
            """)
        let hReject = try handle(pair.client, "tcp dport \(pReject) ")
        let hDrop = try handle(pair.client, "tcp dport \(pDrop) ")
        let trace = try TraceSession([])
        let c = connectAll([(pair.client, Self.v4Server, pReject), (pair.client, Self.v4Server, pDrop)])
        #expect(c[0].errno == Int(ECONNREFUSED))
        #expect(c[1].errno == Int(ETIMEDOUT))
        // OUTPUT drops happen in the client's namespace.
        let rReject = record(trace, netns: pair.client, port: pReject)
        let rDrop = record(trace, netns: pair.client, port: pDrop)
        trace.stop()
        if trace.records.contains(where: {
            [pair.server.inode, pair.client.inode].contains($0.int("netns") ?? -1)
                && ($0.evidence["rule_method"] as? String) == "ruleset_unavailable" }) {
            Issue.record("rule lookup failed; trace stderr: \(trace.stderr)")
        }
        assertRecord(rReject, reject: true, port: pReject, clientPid: c[0].pid, table: "inet out", chain: "output",
                     handle: hReject, ruleContains: "reject with tcp reset", hook: "output")
        assertRecord(rDrop, reject: false, port: pDrop, clientPid: c[1].pid, table: "inet out", chain: "output",
                     handle: hDrop, ruleContains: "tcp dport \(pDrop) drop", hook: "output")
        #expect(rDrop?.evidence["client_context"] as? String == "process")
        #expect(rReject?.evidence["local_socket"] as? Bool == true)
    }

    @Test("iptables (nft backend) INPUT: REJECT --reject-with tcp-reset, DROP")
    func iptablesInput() throws {
        let pair = try Pair()
        defer { pair.remove() }
        let base = randomPort()
        let (pReject, pDrop) = (base, base + 1)
        try sh(["ip", "netns", "exec", pair.server.name, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", String(pReject),
                "-j", "REJECT", "--reject-with", "tcp-reset"])
        try sh(["ip", "netns", "exec", pair.server.name, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", String(pDrop),
                "-j", "DROP"])
        let trace = try TraceSession([])
        let c = connectAll([(pair.client, Self.v4Server, pReject), (pair.client, Self.v4Server, pDrop)])
        #expect(c[0].errno == Int(ECONNREFUSED))
        #expect(c[1].errno == Int(ETIMEDOUT))
        let rReject = record(trace, netns: pair.server, port: pReject)
        let rDrop = record(trace, netns: pair.server, port: pDrop)
        trace.stop()
        if trace.records.contains(where: {
            [pair.server.inode, pair.client.inode].contains($0.int("netns") ?? -1)
                && ($0.evidence["rule_method"] as? String) == "ruleset_unavailable" }) {
            Issue.record("rule lookup failed; trace stderr: \(trace.stderr)")
        }
        assertRecord(rReject, reject: true, port: pReject, clientPid: c[0].pid, table: "ip filter", chain: "INPUT",
                     handle: nil, ruleContains: "tcp dport \(pReject)", hook: "input", rejectWith: "tcp-reset")
        assertRecord(rDrop, reject: false, port: pDrop, clientPid: c[1].pid, table: "ip filter", chain: "INPUT",
                     handle: nil, ruleContains: "tcp dport \(pDrop)", hook: "input")
        #expect((rReject?.string("hint") ?? "").contains("iptables"))
    }
}
