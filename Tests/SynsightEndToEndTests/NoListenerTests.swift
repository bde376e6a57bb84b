import Foundation
import Testing

/// The trace's own options against real no-listener refusals: real sockets
/// in network namespaces created (and always deleted) by each test, traced
/// by the real `synsight trace --json` binary. Each no-listener cause (and
/// the kfree_skb and kprobe hooks) is a kernel-matrix scenario (sc_closed_*,
/// sc_listener_*, sc_bound_other, sc_family, sc_other_netns,
/// sc_predates_no_listener), run on this kernel too.
@Suite("trace options on no-listener refusals, end to end", .serialized, .enabled(if: Privileged.enabled))
struct NoListenerTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// The refusal synsight reports for a SYN to `port` in namespace `ns`.
    func refusal(_ trace: TraceSession, ns: NetNS, port: Int) -> JSONRecord? {
        trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == ns.inode && $0.int("port") == port
        }
    }

    @Test("--port filters in the kernel; the summary counts what was shown")
    func portFilter() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let wanted = randomPort()
        let other = wanted + 1
        let trace = try TraceSession(["--port", String(wanted)])
        _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: other)
        _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: wanted)
        #expect(refusal(trace, ns: ns, port: wanted) != nil)
        usleep(400_000) // past the join window: a record for `other` would be out by now
        let summary = trace.stop()
        #expect(!trace.records.contains { $0.int("port") == other })
        #expect(summary.contains("\(wanted)"))
        #expect(summary.contains("0 events lost"))
    }

    @Test("--count stops the trace by itself")
    func countStops() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession(["--count", "2", "--port", String(port)])
        for _ in 0..<3 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        let exited = waitUntil(timeout: 10) { !trace.process.isRunning }
        #expect(exited)
        if exited {
            #expect(trace.process.terminationStatus == 0)
            #expect(trace.records.filter { $0.string("kind") == "refusal" }.count == 2)
        }
    }
}
