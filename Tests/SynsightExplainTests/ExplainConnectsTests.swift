import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightExplain

/// Local connect()s to the port whose SYNs go unanswered (ExplainConnects.swift).
@Suite("explain: local connect()s waiting on unanswered SYNs")
struct ExplainConnectsTests {
    static func connecting(_ ns: UInt32, to addr: IPAddress, sport: UInt16, retrans: UInt8, pid: UInt32 = 0) -> ExplainConnecting {
        ExplainConnecting(netns: ns, local: Endpoint(addr: IPAddress(v4: 10, 0, 0, 2), port: sport),
                          remote: Endpoint(addr: addr, port: 5432), retransmits: retrans, inode: UInt64(sport),
                          processes: pid == 0 ? [] : [ExplainProcess(pid: pid, comm: "app")])
    }

    @Test("one warning per namespace, by destination, with the processes; a socket not yet retransmitted is a handshake in flight")
    func finding() throws {
        typealias F = ExplainFixture
        var input = F.input([], namespaces: [F.namespace()])
        input.port = 5432
        let db = IPAddress(v4: 198, 51, 100, 7), other = IPAddress(v4: 198, 51, 100, 8)
        input.connecting = [
            Self.connecting(input.viewpoint, to: db, sport: 40001, retrans: 2, pid: 300),
            Self.connecting(input.viewpoint, to: db, sport: 40002, retrans: 4, pid: 300),
            Self.connecting(input.viewpoint, to: other, sport: 40003, retrans: 1),
            Self.connecting(input.viewpoint, to: other, sport: 40004, retrans: 0),
        ]
        let r = Explain.analyze(input)
        let f = try #require(r.findings.first { $0.code == "connects_unanswered" }, "\(r.findings.map(\.code))")
        #expect(f.severity == .warning && f.netns == input.viewpoint)
        #expect(f.message.contains("3 connect()s to port 5432"), "\(f.message)")
        #expect(f.message.contains("198.51.100.7:5432 (2 sockets, up to 4 SYN retransmissions, app (pid 300))"), "\(f.message)")
        #expect(f.evidence.first { $0.0 == "connecting" }?.1 == .int(3))
        #expect(f.remediation?.contains("synsight trace --port 5432") == true)
        #expect(r.findings.filter { $0.code == "connects_unanswered" }.count == 1)

        var none = F.input([], namespaces: [F.namespace()])
        none.connecting = [Self.connecting(none.viewpoint, to: db, sport: 40005, retrans: 0)]
        #expect(!Explain.analyze(none).findings.contains { $0.code == "connects_unanswered" })
    }

    @Test("no listener, nothing refused, and this host connected to the port elsewhere: a port it uses, info rather than critical")
    func notServedHere() throws {
        typealias F = ExplainFixture
        var input = F.input([], namespaces: [F.namespace()])
        input.port = 5432
        let db = IPAddress(v4: 198, 51, 100, 7)
        var up = Self.connecting(input.viewpoint, to: db, sport: 40001, retrans: 0, pid: 300)
        up.phase = .established
        input.connecting = [up, Self.connecting(input.viewpoint, to: db, sport: 40002, retrans: 2, pid: 300)]
        let r = Explain.analyze(input)
        let f = try #require(r.findings.first { $0.code == "not_served_here" }, "\(r.findings.map(\.code))")
        #expect(f.severity == .info, "\(f.message)")
        #expect(f.message.contains("nothing listens on port 5432 on this host, which is a client of it: 1 connection established, 1 waiting on unanswered SYNs to 198.51.100.7:5432 (app (pid 300))"), "\(f.message)")
        #expect(!r.findings.contains { $0.code == "not_listening" })
        #expect(r.findings.contains { $0.code == "connects_unanswered" && $0.severity == .warning })
        #expect(r.status == .degraded)  // the waiting connect() is a warning

        var closed = Self.connecting(input.viewpoint, to: db, sport: 40009, retrans: 0)
        closed.phase = .closed
        var healthy = input
        healthy.connecting = [up, closed]
        let h = Explain.analyze(healthy)
        #expect(h.status == .healthy && h.summary.contains("nothing on this host serves port 5432; this host is a client of it"), "\(h.summary)")
        #expect(h.findings.first { $0.code == "not_served_here" }?.message.contains("1 connection established, 1 closed within the last minute to") == true)

        // The same without a trace: a warning (nobody can tell whether clients are refused here).
        input.recent = RecentActivity(status: .unavailable, detail: "no BPF")
        #expect(Explain.analyze(input).findings.first { $0.code == "not_served_here" }?.severity == .warning)

        // A refusal seen by the trace: clients do ask this host for the port; it is not listening (critical).
        var refused = input
        refused.recent = RecentActivity(status: .ran, seconds: 3, records: [F.exitedRecord()])
        let rr = Explain.analyze(refused)
        #expect(rr.findings.contains { $0.code == "not_listening" && $0.severity == .critical })
        #expect(!rr.findings.contains { $0.code == "not_served_here" })

        // A client of a local address (loopback, or its own): not a server elsewhere.
        var local = F.input([], namespaces: [F.namespace()])
        var lo = Self.connecting(local.viewpoint, to: IPAddress(v4: 127, 0, 0, 1), sport: 40003, retrans: 1)
        lo.phase = .established
        local.connecting = [lo, Self.connecting(local.viewpoint, to: IPAddress(v4: 10, 0, 0, 2), sport: 40004, retrans: 3)]
        #expect(Explain.analyze(local).findings.contains { $0.code == "not_listening" && $0.severity == .critical })
    }
}
