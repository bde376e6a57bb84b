import SynsightModel
import Testing
@testable import SynsightMetrics

@Suite("metrics: synsight's own cost")
struct SelfCostMetricsTests {
    static func sample(_ runs: UInt64, _ ns: UInt64, cpu: Double, peak: UInt64, stats: Bool = true) -> SelfCost {
        SelfCost(programs: [SelfCost.Program(name: "sock_state", hook: "tp_btf/inet_sock_set_state", runs: runs, runNs: ns),
                            SelfCost.Program(name: "fw_icmp_send", hook: "tp_btf/icmp_send", runs: 0, runNs: 0)],
                 bpfStatsEnabled: stats, cpuSeconds: cpu, ringBytes: 1 << 20, ringUnreadPeak: peak)
    }

    @Test("program counters advance by what ran between samples; CPU is a counter, the ring's fill a gauge that can fall")
    func countersAndGauges() {
        let exporter = MetricsExporter(settings: .init(), sampler: emptySampler())
        let m = exporter.makeSelfCostMetrics()
        m.update(Self.sample(100, 25_000, cpu: 0.5, peak: 1 << 19))
        var e = Exposition(exporter.render())
        let sock = ["program": "sock_state", "hook": "tp_btf/inet_sock_set_state"]
        #expect(e.sum("synsight_bpf_program_runs_total", sock) == 100)
        #expect(e.sum("synsight_bpf_program_run_seconds_total", sock) == 25e-6)
        #expect(e.sum("synsight_bpf_program_runs_total", ["program": "fw_icmp_send"]) == 0)
        #expect(e.sum("synsight_consumer_cpu_seconds_total") == 0.5)
        #expect(e.sum("synsight_ringbuf_fill_ratio") == 0.5)
        #expect(e.sum("synsight_bpf_stats_enabled") == 1)
        #expect(e.type["synsight_bpf_program_runs_total"] == "counter")
        #expect(e.type["synsight_ringbuf_fill_ratio"] == "gauge")

        m.update(Self.sample(250, 40_000, cpu: 0.75, peak: 0, stats: false))
        e = Exposition(exporter.render())
        #expect(e.sum("synsight_bpf_program_runs_total", sock) == 250)
        #expect(e.sum("synsight_bpf_program_run_seconds_total", sock) == 40e-6)
        #expect(e.sum("synsight_consumer_cpu_seconds_total") == 0.75)
        #expect(e.sum("synsight_ringbuf_fill_ratio") == 0)
        #expect(e.sum("synsight_bpf_stats_enabled") == 0)
    }
}
