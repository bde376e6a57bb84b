import Foundation
import Testing

/// Enrichment off the ring-buffer thread, against the real kernel: firewall
/// drops in many namespaces at once (each with its own ruleset), a
/// deliberately slow rule source, and a namespace deleted right after its
/// drop. Rules only inside namespaces the tests create and delete.
@Suite("enrichment: rulesets off the ring-buffer thread, end to end", .serialized, .enabled(if: Privileged.enabled))
struct EnrichmentTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// An output-chain reject of `port` in `ns`, tagged with `comment`: a
    /// local client's SYN is refused inside its own namespace.
    func rejectOutput(_ ns: NetNS, port: Int, comment: String) throws {
        let ruleset = """
            table inet synsight_e2e {
              chain output { type filter hook output priority 0; policy accept;
                tcp dport \(port) reject with tcp reset comment "\(comment)"
              }
            }
            """
        try ns.loadNft(ruleset)
    }

    /// Runs `perNamespace` refused connects in every namespace, all at once;
    /// returns how many were refused (ECONNREFUSED) in each.
    func stormAll(_ spaces: [NetNS], port: Int, perNamespace: Int) -> [Int] {
        final class Counts: @unchecked Sendable {  // guarded by `lock`
            let lock = NSLock()
            var refused: [Int: Int] = [:]
        }
        let counts = Counts()
        nonisolated(unsafe) let spaces = spaces
        DispatchQueue.concurrentPerform(iterations: spaces.count) { i in
            let out: String
            do {
                out = try sh(["ip", "netns", "exec", spaces[i].name, "python3", Peer.script,
                              "storm", "127.0.0.1", String(port), String(perNamespace)])
            } catch {
                out = "\(error)"
            }
            // The answer is the line "<pid> <refused> <other>"; stderr shares
            // the pipe, so a warning may surround it.
            let answer = out.split(separator: "\n").reversed().map { $0.split(separator: " ") }
                .first { $0.count == 3 && $0.allSatisfy { Int($0) != nil } }
            if answer == nil { Issue.record("storm in \(spaces[i].name): \(out)") }
            counts.lock.lock()
            counts.refused[i] = answer.map { Int($0[1])! } ?? -1
            counts.lock.unlock()
        }
        return (0..<spaces.count).map { counts.refused[$0] ?? -1 }
    }

    func firewallRecords(_ trace: TraceSession, port: Int) -> [JSONRecord] {
        trace.records.filter { $0.string("reason") == "firewall_reject" && $0.int("port") == port }
    }

    /// 20 namespaces x 25 refused connects: every drop is one record, named
    /// by its own namespace's rule, with its client, and nothing is lost.
    func storm(rulesetDelayMs: Int) throws {
        let port = randomPort()
        let (count, perNamespace) = (20, 25)
        var spaces: [NetNS] = []
        defer { spaces.forEach { $0.remove() } }
        for i in 0..<count {
            let ns = try NetNS()
            spaces.append(ns)
            try rejectOutput(ns, port: port, comment: "storm-\(i)")
        }
        var args = ["--port", String(port)]
        if rulesetDelayMs > 0 { args += ["--test-ruleset-delay-ms", String(rulesetDelayMs)] }
        let trace = try TraceSession(args)
        let refused = stormAll(spaces, port: port, perNamespace: perNamespace)
        #expect(refused == Array(repeating: perNamespace, count: count), "connects refused per namespace: \(refused)")
        let all = count * perNamespace
        _ = waitUntil(timeout: 30) { firewallRecords(trace, port: port).count >= all }
        trace.stop()

        let records = firewallRecords(trace, port: port)
        let drops = records.reduce(0) { $0 + (($1.evidence["drops"] as? Int) ?? 1) }
        let others = trace.records.filter { $0.int("port") == port && $0.string("reason") != "firewall_reject" }
        // If this fails again (seen twice under load, never reproduced): which
        // namespaces lost records, and synsight's own account (lost events,
        // pipeline and ruleset-read counts) in its stderr summary.
        let counts = spaces.map { ns in records.filter { $0.int("netns") == ns.inode }.count }
        let summary = String(trace.stderr.suffix(2000))
        #expect(records.count == all, "\(records.count) records, \(drops) drops of \(all); other records on the port: \(others); per namespace: \(counts); stderr: \(summary)")
        #expect(!trace.records.contains { $0.string("kind") == "lost" }, "\(trace.stderr)")
        for (i, ns) in spaces.enumerated() {
            let mine = records.filter { $0.int("netns") == ns.inode }
            #expect(mine.count == perNamespace, "namespace \(i): \(mine.count) records")
            for r in mine {
                #expect((r.evidence["rule"] as? String)?.contains("comment \"storm-\(i)\"") == true, "\(r)")
                #expect(r.evidence["table"] as? String == "inet synsight_e2e", "\(r)")
                #expect((r.evidence["rule_method"] as? String)?.hasPrefix("ruleset_match") == true, "\(r)")
                #expect(r.pid("client") != nil, "\(r)")
            }
        }
    }

    @Test("a firewall-drop storm across 20 namespaces: every drop named by its namespace's rule, none lost")
    func stormAcrossNamespaces() throws {
        try storm(rulesetDelayMs: 0)
    }

    @Test("the same storm with a slow rule source (100 ms per ruleset read): still every rule named, none lost")
    func stormWithSlowRuleSource() throws {
        try storm(rulesetDelayMs: 100)
    }

    @Test("a drop in a namespace deleted within 50 ms of the drop is still named by its rule")
    func namespaceDeletedRightAfterTheDrop() throws {
        let port = randomPort()
        let ns = try NetNS()
        defer { ns.remove() }
        try rejectOutput(ns, port: port, comment: "gone-soon")
        let trace = try TraceSession(["--port", String(port)])
                // 20 ms: well inside the 50 ms this must survive (the pin itself
        // takes 2-5 ms here, under load; the old nsenter lookup, done when
        // the record was decided, lost the rule).
        let (refusedErrno, deletedAt) = try Self.connectThenDelete(ns, port: port, afterMs: 20)
        #expect(refusedErrno == Int32(ECONNREFUSED))
        #expect(access("/run/netns/\(ns.name)", F_OK) != 0, "the namespace still exists")
        let r = trace.waitForRecord { $0.string("reason") == "firewall_reject" && $0.int("port") == port }
        trace.stop()
        guard let r else {
            Issue.record("no firewall record; stderr: \(trace.stderr)")
            return
        }
        #expect(r.int("netns") == ns.inode)
        #expect((r.evidence["rule"] as? String)?.contains("comment \"gone-soon\"") == true, "\(r)")
        #expect((r.evidence["rule_method"] as? String)?.hasPrefix("ruleset_match") == true, "\(r)")
        // The drop's own time (the record's ts) to the end of the deletion.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let ts = (r.string("ts")).flatMap { s -> Date? in
            // Foundation parses at most milliseconds: cut the nanoseconds.
            guard let dot = s.firstIndex(of: ".") else { return formatter.date(from: s) }
            return formatter.date(from: String(s[..<dot]) + "." + s[s.index(after: dot)...].prefix(3) + "Z")
        }
        if let ts {
            let gap = deletedAt - ts.timeIntervalSince1970
            #expect(gap >= 0 && gap < 0.05, "the namespace was deleted \(Int(gap * 1000)) ms after the drop")
        } else {
            Issue.record("could not read the record's time: \(r.string("ts") ?? "-")")
        }
    }

    /// From a thread of this process: enter `ns`, connect to `port` on
    /// loopback (refused by the namespace's rule), close the socket, come back
    /// and delete the namespace as `ip netns del` does (detach and remove its
    /// /run/netns mount), so the deletion follows the drop by about a
    /// millisecond whatever the machine's load. Returns the connect's errno
    /// and the wall-clock time after the deletion.
    static func connectThenDelete(_ ns: NetNS, port: Int, afterMs: Int) throws -> (Int32, Double) {
        let (err, at) = try NamespaceVisit.run(in: ns, deleting: ns, afterMs: afterMs) { () -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            let e = rc == 0 ? 0 : errno
            close(fd)
            return e
        }
        return (err, at)
    }
}
