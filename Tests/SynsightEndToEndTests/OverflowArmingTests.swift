import Foundation
import Testing

/// The overflow programs armed on anomaly (issue 16), against the real
/// kernel with its BPF statistics: healthy connections run the per-SYN
/// program (consume_skb on this repository's 6.18 host; fentry or kprobe on
/// tcp_conn_request where they load, as in the kernel matrix's guests) and
/// the accept() exits 0 times; a full accept queue attaches them (the first
/// dropped SYN may only be counted from the listener's sk_drops, the
/// retransmitted one is seen with its client); once the queue is gone and a
/// shortened quiet period passed, healthy connections run them 0 times again.
/// Run counts are host-wide:
/// another process's overflow on the host arms the program too, so each
/// healthy window is tried a few times.
@Suite("SYN-stage overflow armed on anomaly, end to end", .serialized, .enabled(if: Privileged.enabled))
struct OverflowArmingTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// The per-SYN overflow programs, whichever this kernel's plan has.
    static let perSYN = ["ovf_consume_skb", "ovf_fentry_conn_request", "ovf_kprobe_conn_request"]

    /// A program's run count from the metrics (nil: no such series, the program is not in the plan).
    static func runs(_ metricsPort: Int, _ program: String) throws -> Int? {
        let body = try MetricsTests.http(port: metricsPort).body
        let prefix = "synsight_bpf_program_runs_total{program=\"\(program)\","
        guard let line = body.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }),
              let value = line.split(separator: " ").last else { return nil }
        return Int(Double(value) ?? -1)
    }

    /// The metrics are updated about every second: a value read after that.
    static func settledRuns(_ metricsPort: Int) throws -> Int {
        Thread.sleep(forTimeInterval: 1.3)
        let counts = try perSYN.compactMap { try Self.runs(metricsPort, $0) }
        return try #require(counts.first, "no per-SYN overflow program in the metrics")
    }

    /// The programs armed with the per-SYN program: the ACK-stage ones of
    /// kernels without the drop reasons and the accept() exits (each runs
    /// once per accepted connection otherwise).
    static let armed = perSYN + [
        "ovf_fexit_syn_recv_v4", "ovf_fexit_syn_recv_v6", "ovf_kprobe_syn_recv_v4", "ovf_kretprobe_syn_recv_v4",
        "ovf_kprobe_syn_recv_v6", "ovf_kretprobe_syn_recv_v6", "ovf_exit_accept4", "ovf_exit_accept", "ovf_fx_exit_accept4",
    ]

    /// Their summed run count (programs not in the plan count 0).
    static func armedRuns(_ metricsPort: Int) throws -> Int {
        Thread.sleep(forTimeInterval: 1.3)
        return try armed.reduce(0) { $0 + (try runs(metricsPort, $1) ?? 0) }
    }

    /// Healthy connections (each accepted by its server) ran the armed
    /// programs 0 times in one of `attempts` windows.
    static func healthyWindowWithoutRuns(_ ns: NetNS, _ metricsPort: Int, attempts: Int = 4) throws -> [Int] {
        var deltas: [Int] = []
        for _ in 0..<attempts {
            let before = try armedRuns(metricsPort)
            try SelfCostEndToEndTests.healthyConnections(in: ns, port: randomPort(), 100)
            let after = try armedRuns(metricsPort)
            deltas.append(after - before)
            if after == before { break }
        }
        return deltas
    }

    @Test("healthy connections: 0 runs of the per-SYN overflow program and the accept() exits; a full accept queue attaches them (counted drops, then SYNs with their client); quiet: detached again")
    func armsAndDisarms() throws {
        let doctor = try sh([TraceSession.binary, "doctor"])
        let ns = try NetNS()
        defer { ns.remove() }
        let metricsPort = MetricsTests.freePort()
        let trace = try TraceSession(["--bpf-stats", "--metrics-address", "127.0.0.1:\(metricsPort)",
                                      "--test-overflow-quiet-ms", "1500"])
        _ = waitUntil(timeout: 5) { (try? MetricsTests.http(port: metricsPort).body.contains("synsight_bpf_program_runs_total{")) == true }
        let line = doctor.split(separator: "\n").first { $0.hasPrefix("  accept_queue_full ") } ?? ""
        #expect(line.contains("armed on anomaly"), "\(doctor)")

        // 1. Healthy connections: the program is not attached.
        let healthy = try Self.healthyWindowWithoutRuns(ns, metricsPort)
        #expect(healthy.last == 0, "an armed overflow program ran for healthy connections in every window: \(healthy)")

        // 2. A stalled server (backlog 1), its queue filled, and a third connect.
        let port = randomPort()
        let before = try Self.settledRuns(metricsPort)
        var server: Peer? = try Peer(runIn: ns, ["stall", "127.0.0.1", String(port), "--backlog", "1"])
        var holders: [Peer] = try (0..<2).map { _ in
            try Peer(runIn: ns, ["hold", "127.0.0.1", String(port), "--seconds", "30"], readyPrefix: "connected")
        }
        let third = try Peer.connect(from: ns, addr: "127.0.0.1", port: port, timeout: 1.5)
        #expect(third.errno != 0)
        let mine = { (r: JSONRecord) in r.int("netns") == ns.inode && r.int("port") == port && r.string("reason") == "accept_queue_full" }
        let counted = { (r: JSONRecord) in (r.evidence["method"] as? String)?.hasPrefix("counter") == true }
        let seen = try #require(trace.waitForRecord { mine($0) && !counted($0) }, "stdout: \(trace.stdout)")
        #expect(seen.pid("client") == third.pid && seen.pid("process") == server?.pid, "\(seen)")
        #expect(seen.evidence["counted_drops"] == nil, "\(seen)")
        for r in trace.records where mine(r) && counted(r) {
            #expect(((r.evidence["counted_drops"] as? Int) ?? 0) >= 1 && r.object("client") == nil && r.object("remote") == nil, "\(r)")
            #expect(r.pid("process") == server?.pid, "\(r)")
        }
        let armed = try Self.settledRuns(metricsPort)
        #expect(armed > before, "the per-SYN overflow program did not run during the overflow: \(before) -> \(armed)")

        // 3. The queue is gone; after the quiet period the program is detached.
        holders.forEach { $0.killHard() }
        server?.killHard()
        holders = []
        server = nil
        Thread.sleep(forTimeInterval: 2.0)
        let quiet = try Self.healthyWindowWithoutRuns(ns, metricsPort)
        #expect(quiet.last == 0, "an armed overflow program still ran for healthy connections after the quiet period: \(quiet)")
        trace.stop()
    }
}
