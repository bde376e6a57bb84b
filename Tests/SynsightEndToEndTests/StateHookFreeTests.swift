import Foundation
import Testing

/// Without inet_sock_set_state (issue 16): listener deaths are found when
/// needed or by the 5 s sweep, and healthy connections run no program on
/// their state changes. Real sockets in namespaces the tests create.
@Suite("no state-change hook, end to end", .serialized, .enabled(if: Privileged.enabled))
struct StateHookFreeTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    static func epochNs(_ rfc3339: String) -> Double? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        // Drop the fraction for the formatter, add it back by hand.
        guard let dot = rfc3339.firstIndex(of: "."), let z = rfc3339.lastIndex(of: "Z") else { return nil }
        guard let whole = f.date(from: String(rfc3339[..<dot]) + "Z"),
              let frac = Double("0" + rfc3339[dot..<z]) else { return nil }
        return (whole.timeIntervalSince1970 + frac) * 1e9
    }

    @Test("a listener that closed while nothing asked about its port is known closed before the next refusal (listener_closed, its pid)")
    func sweptClose() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let listener = try Peer(listenIn: ns, addr: "0.0.0.0", port: port, extra: ["--close-after", "0.2"])
        #expect(waitUntil { listener.output.contains("closed") })
        // Longer than the sweep interval: the close must be known before the
        // refusal asks for it.
        Thread.sleep(forTimeInterval: 6.5)
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == ns.inode && $0.int("port") == port
        }, "stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("cause") == "listener_closed", "\(r)")
        #expect(r.pid("process") == listener.pid)
        let closed = try #require((r.evidence["closed_at"] as? String).flatMap(Self.epochNs), "\(r)")
        let refused = try #require(r.string("ts").flatMap(Self.epochNs))
        #expect(refused - closed > 1e9, "closed_at \(String(describing: r.evidence["closed_at"])) is not before the refusal at \(r.string("ts") ?? "")")
    }

    @Test("where doctor names cgroup/connect for the client identity, healthy connections run no inet_sock_set_state program")
    func noStateChangeRuns() throws {
        let doctor = try sh([TraceSession.binary, "doctor"], allowFailure: true)
        let stateless = doctor.contains("local client identity  cgroup/connect{4,6}")
        let ns = try NetNS()
        defer { ns.remove() }
        let trace = try TraceSession(["--bpf-stats"])
        try SelfCostEndToEndTests.healthyConnections(in: ns, port: randomPort(), 100)
        let summary = trace.stop()
        let runs = SelfCostEndToEndTests.summaryRuns(summary)
        if stateless {
            #expect(runs["sock_state"] == nil, "\(summary)")
            #expect((runs["conn_connect4"] ?? 0) >= 100, "\(summary)")
        } else {
            #expect((runs["sock_state"] ?? 0) >= 400, "\(summary)")
        }
    }
}
