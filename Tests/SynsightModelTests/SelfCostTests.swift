import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel

@Suite("synsight's own cost: numbers and the summary text")
struct SelfCostTests {
    let cost = SelfCost(
        programs: [SelfCost.Program(name: "sock_state", hook: "tp_btf/inet_sock_set_state", runs: 40_000, runNs: 5_000_000),
                   SelfCost.Program(name: "ovf_consume_skb", hook: "tp_btf/consume_skb", runs: 12_000, runNs: 3_000_000),
                   SelfCost.Program(name: "fw_icmp_send", hook: "tp_btf/icmp_send", runs: 0, runNs: 0)],
        bpfStatsEnabled: true, cpuSeconds: 1.234, ringBytes: 8 << 20, ringUnreadPeak: 3 << 20)

    @Test("grouped thousands, fixed decimals, seconds with a unit, bytes")
    func numbers() {
        #expect(SelfCostFormat.grouped(0) == "0")
        #expect(SelfCostFormat.grouped(999) == "999")
        #expect(SelfCostFormat.grouped(1000) == "1,000")
        #expect(SelfCostFormat.grouped(1_234_567) == "1,234,567")
        #expect(SelfCostFormat.fixed(0.0456, 2) == "0.05")
        #expect(SelfCostFormat.fixed(12.0, 1) == "12.0")
        #expect(SelfCostFormat.fixed(-1.26, 1) == "-1.3")
        #expect(SelfCostFormat.fixed(3.7, 0) == "4")
        #expect(SelfCostFormat.seconds(2.5) == "2.50 s")
        #expect(SelfCostFormat.seconds(0.0123) == "12.3 ms")
        #expect(SelfCostFormat.seconds(0.0000042) == "4.2 µs")
        #expect(SelfCostFormat.bytes(512) == "512 B")
        #expect(SelfCostFormat.bytes(3 << 20) == "3.0 MB")
        #expect(SelfCostFormat.percent(0.375) == "37.5%")
    }

    @Test("the ring's fill is the peak share of its size, capped at 1; no ring reads as 0")
    func ringFill() {
        #expect(cost.ringFillRatio == 0.375)
        var c = cost
        c.ringUnreadPeak = 9 << 20
        #expect(c.ringFillRatio == 1)
        #expect(SelfCost().ringFillRatio == 0)
    }

    @Test("since: per program by name, a program missing before counts from zero, counters never go negative")
    func since() {
        let before = SelfCost(programs: [SelfCost.Program(name: "sock_state", hook: "h", runs: 10_000, runNs: 1_000_000),
                                         SelfCost.Program(name: "gone", hook: "h", runs: 5, runNs: 5)],
                              bpfStatsEnabled: true, cpuSeconds: 0.234)
        let d = cost.since(before)
        #expect(d.programs.map(\.runs) == [30_000, 12_000, 0])
        #expect(d.programs.map(\.runNs) == [4_000_000, 3_000_000, 0])
        #expect(abs(d.cpuSeconds - 1.0) < 1e-9)
        #expect(d.totalRuns == 42_000)
        #expect(before.since(cost).programs.first?.runs == 0)
    }

    @Test("summary with BPF statistics: CPU, ring fill, totals, programs costliest first, idle ones counted")
    func renderWithStats() {
        let text = SelfCostFormat.render(cost, durationSeconds: 10)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == "synsight's own cost: 1.23 s of CPU (user+system), ring buffer at most 37.5% full (3.0 MB of 8.0 MB)")
        #expect(lines[1] == "  BPF programs: 52,000 runs, 8.0 ms (kernel BPF statistics, which add a little to every run)")
        #expect(lines[2].hasPrefix("  PROGRAM"))
        #expect(lines[3].split(separator: " ", omittingEmptySubsequences: true)
                == ["sock_state", "tp_btf/inet_sock_set_state", "40,000", "4,000", "125", "5.0"])
        #expect(lines[4].split(separator: " ", omittingEmptySubsequences: true)
                == ["ovf_consume_skb", "tp_btf/consume_skb", "12,000", "1,200", "250", "3.0"])
        #expect(lines[5] == "  1 other program attached that did not run")
        #expect(lines.count == 6)
    }

    @Test("summary without BPF statistics says they are off and how to turn them on, and prints no zero table")
    func renderWithoutStats() {
        var c = cost
        c.bpfStatsEnabled = false
        let lines = SelfCostFormat.render(c, durationSeconds: 10).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[1].contains("not measured"))
        #expect(lines[1].contains("--bpf-stats"))
    }
}
