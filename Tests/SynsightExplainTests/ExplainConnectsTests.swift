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
}
