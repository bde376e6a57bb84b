import Prometheus
import SynsightBase
import SynsightModel

/// synsight's own cost as metrics: per-program BPF run counters, the
/// process's CPU, the ring buffer's fill. Owned by the tracing loop, which
/// hands it a SelfCost sample about every second; the counters advance by
/// the difference from the previous sample.
public final class SelfCostMetrics {
    let registry: PrometheusCollectorRegistry
    var programs: [String: (runs: Counter, seconds: Counter)] = [:]
    let statsEnabled: Gauge
    let cpu: Counter
    let ringFill: Gauge
    var previous = SelfCost()

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        statsEnabled = registry.makeGauge(descriptor: MetricNames.bpfStatsEnabled)
        cpu = registry.makeCounter(descriptor: MetricNames.consumerCPU)
        ringFill = registry.makeGauge(descriptor: MetricNames.ringFill)
    }

    /// `sample`: counters since load (programs) and since start (CPU); the
    /// ring's peak since the previous update.
    public func update(_ sample: SelfCost) {
        let d = sample.since(previous)
        previous = sample
        statsEnabled.set(Int64(sample.bpfStatsEnabled ? 1 : 0))
        if d.cpuSeconds > 0 { cpu.increment(by: d.cpuSeconds) }
        ringFill.set(sample.ringFillRatio)
        for p in d.programs {
            let c = programs[p.name] ?? {
                let labels = [("program", p.name), ("hook", p.hook)]
                let pair = (registry.makeCounter(descriptor: MetricNames.programRuns, labels: labels),
                            registry.makeCounter(descriptor: MetricNames.programRunSeconds, labels: labels))
                programs[p.name] = pair
                return pair
            }()
            if p.runs > 0 { c.runs.increment(by: Int64(clamping: p.runs)) }
            if p.runNs > 0 { c.seconds.increment(by: Double(p.runNs) / 1e9) }
        }
    }
}
