import Foundation
import Testing

/// `--bpf-stats` against the real kernel: healthy loopback connections in a
/// test namespace while `trace` runs; the summary and the metrics endpoint
/// must show the programs that had to run for them, with run counts at least
/// what those connections take (the counts are host-wide, so other traffic
/// can only add to them).
@Suite("self-overhead, end to end", .serialized, .enabled(if: Privileged.enabled))
struct SelfCostEndToEndTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    static let connections = 200

    /// `n` connections to a listener on 127.0.0.1 inside `ns`, each accepted,
    /// written to, read and closed by both ends (one python process).
    static func healthyConnections(in ns: NetNS, port: Int, _ n: Int) throws {
        let out = try sh(["ip", "netns", "exec", ns.name, "/usr/bin/python3", "-c", """
            import socket, sys, threading
            port, n = int(sys.argv[1]), int(sys.argv[2])
            srv = socket.socket()
            srv.bind(("127.0.0.1", port))
            srv.listen(64)
            def serve():
                for _ in range(n):
                    c, _ = srv.accept()
                    c.recv(1)
                    c.sendall(b"y")
                    c.close()
            t = threading.Thread(target=serve)
            t.start()
            for _ in range(n):
                c = socket.create_connection(("127.0.0.1", port))
                c.sendall(b"x")
                c.recv(1)
                c.close()
            t.join()
            print("done", n)
            """, String(port), String(n)])
        try #require(out.contains("done \(n)"), "healthy connections: \(out)")
    }

    /// The runs of each program in the summary's table (`PROGRAM HOOK RUNS ...` lines).
    static func summaryRuns(_ stderr: String) -> [String: Int] {
        var runs: [String: Int] = [:]
        for line in stderr.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count == 6, f[1].contains("/"), let n = Int(f[2].replacingOccurrences(of: ",", with: "")) else { continue }
            runs[String(f[0])] = n
        }
        return runs
    }

    /// Which program takes the connect() caller in this run, from the
    /// metrics' program list (every attached program has a series).
    static func identityProgram(_ metricsPort: Int) throws -> (name: String, hook: String, perConnection: Int) {
        var body = ""
        _ = waitUntil(timeout: 5) {
            body = (try? MetricsTests.http(port: metricsPort).body) ?? ""
            return body.contains("synsight_bpf_program_runs_total{")
        }
        if body.contains("program=\"conn_connect4\"") { return ("conn_connect4", "cgroup/connect4", 1) }
        try #require(body.contains("program=\"sock_state\""), "neither conn_connect4 nor sock_state attached: \(body)")
        return ("sock_state", "tp_btf/inet_sock_set_state", 4)
    }

    /// The per-SYN overflow program in the metrics' program list: fentry or
    /// kprobe on tcp_conn_request, else consume_skb.
    static func perSYNOverflowProgram(_ body: String) -> String? {
        ["ovf_fentry_conn_request", "ovf_kprobe_conn_request", "ovf_consume_skb"].first { body.contains("program=\"\($0)\"") }
    }

    @Test("--bpf-stats: healthy connections show in each program's run count, in the summary and in the metrics; the sysctl is never written")
    func runCountsFromRealConnections() throws {
        let sysctlBefore = try String(contentsOfFile: "/proc/sys/kernel/bpf_stats_enabled", encoding: .utf8)
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let metricsPort = MetricsTests.freePort()
        let trace = try TraceSession(["--bpf-stats", "--metrics-address", "127.0.0.1:\(metricsPort)"])
        // While held, BPF_ENABLE_STATS does not show in (nor change) the sysctl.
        #expect(try String(contentsOfFile: "/proc/sys/kernel/bpf_stats_enabled", encoding: .utf8) == sysctlBefore)

        let n = Self.connections
        try Self.healthyConnections(in: ns, port: port, n)

        // The connect() caller comes from cgroup/connect4 (once per connect())
        // where the state-change hook is not needed, else from
        // inet_sock_set_state (several state changes per connection).
        let identity = try Self.identityProgram(metricsPort)
        // The metrics are updated about every second.
        var body = ""
        let updated = waitUntil(timeout: 10) {
            body = (try? MetricsTests.http(port: metricsPort).body) ?? ""
            return (MetricsTests.sum(body, "synsight_bpf_program_runs_total", ["program": identity.name]) ?? 0)
                >= Double(identity.perConnection * n)
        }
        #expect(updated, "\(identity.name) runs: \(String(describing: MetricsTests.sum(body, "synsight_bpf_program_runs_total", ["program": identity.name])))")
        #expect(MetricsTests.sum(body, "synsight_bpf_stats_enabled", [:]) == 1)
        #expect(MetricsTests.sum(body, "synsight_bpf_program_runs_total",
                                 ["program": identity.name, "hook": identity.hook]) ?? 0 >= Double(identity.perConnection * n))
        #expect(MetricsTests.sum(body, "synsight_bpf_program_run_seconds_total", ["program": identity.name]) ?? 0 > 0)
        // The per-SYN overflow program is listed; whichever hook it is, it is
        // attached only on anomaly (OverflowArmingTests counts its 0 runs).
        let perSYN = Self.perSYNOverflowProgram(body)
        #expect(perSYN != nil, "no per-SYN overflow program in the metrics: \(body)")
        // Whichever hook serves connect() and accept() exits on this kernel.
        let connectRuns = body.split(separator: "\n").filter { $0.hasPrefix("synsight_bpf_program_runs_total{program=\"sc_") && $0.contains("exit_connect") }
        #expect(!connectRuns.isEmpty && connectRuns.allSatisfy { (Double($0.split(separator: " ").last ?? "") ?? 0) >= Double(n) },
                "\(connectRuns)")
        // The accept() exits are listed, armed with the per-SYN program
        // (OverflowArmingTests counts their 0 runs).
        let acceptRuns = body.split(separator: "\n").filter { $0.hasPrefix("synsight_bpf_program_runs_total{program=\"ovf_") && $0.contains("accept4") }
        #expect(!acceptRuns.isEmpty, "no accept() exit program in the metrics: \(body)")
        #expect(MetricsTests.sum(body, "synsight_consumer_cpu_seconds_total", [:]) ?? 0 > 0)
        let fill = MetricsTests.sum(body, "synsight_ringbuf_fill_ratio", [:])
        #expect(fill != nil && fill! >= 0 && fill! <= 1)
        let lint = try MetricsTests.promtool(body)
        #expect(lint.status == 0 && lint.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "promtool: \(lint.output)")

        let summary = trace.stop()
        #expect(summary.contains("synsight's own cost: "), "\(summary)")
        let runs = Self.summaryRuns(summary)
        #expect((runs[identity.name] ?? 0) >= identity.perConnection * n, "\(summary)")
        #expect(try String(contentsOfFile: "/proc/sys/kernel/bpf_stats_enabled", encoding: .utf8) == sysctlBefore)
    }

    @Test("without --bpf-stats the summary says the run times were not measured, and the metrics say the statistics are off")
    func withoutStatistics() throws {
        let hostStats = try String(contentsOfFile: "/proc/sys/kernel/bpf_stats_enabled", encoding: .utf8).hasPrefix("1")
        let metricsPort = MetricsTests.freePort()
        let trace = try TraceSession(["--metrics-address", "127.0.0.1:\(metricsPort)"])
        let body = try MetricsTests.http(port: metricsPort).body
        #expect(MetricsTests.sum(body, "synsight_bpf_stats_enabled", [:]) == (hostStats ? 1 : 0))
        #expect(MetricsTests.sum(body, "synsight_consumer_cpu_seconds_total", [:]) != nil)
        let summary = trace.stop()
        #expect(summary.contains("synsight's own cost: "), "\(summary)")
        if !hostStats { #expect(summary.contains("not measured"), "\(summary)") }
    }
}
