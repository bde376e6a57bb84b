import Prometheus
import SynsightBase
import SynsightModel

/// Metric names and HELP texts, in one place (the registry requires the
/// same HELP text every time a family is used).
public enum MetricNames {
    static func d(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "synsight", metricName: name, unitName: unit, helpText: help)
    }

    static var refusals: MetricNameDescriptor {
        d("refusals", "total", "Connections refused, dropped or failed, listener overflows, bind failures and denials "
            + "attributed by synsight, by JSON record kind, reason, cause and service port (events folded into summary "
            + "records included) and workload (unit:, container: or pod: of the record's process, else its client; empty "
            + "when none). Ports after the first --metrics-max-ports distinct ones are counted as port=\"other\", "
            + "workloads after the first --metrics-max-workloads as workload=\"other\".")
    }
    static var summarized: MetricNameDescriptor {
        d("summarized_events", "total",
          "Events folded into summary records by storm aggregation (already counted in synsight_refusals_total), by "
            + "the folded events' kind and reason and their workload (as in synsight_refusals_total, under the same "
            + "--metrics-max-workloads bound).")
    }
    static var ringLost: MetricNameDescriptor {
        d("ring_buffer_lost_events", "total", "Events the kernel could not hand to synsight because the BPF ring buffer was full.")
    }
    static var recorderLost: MetricNameDescriptor {
        d("recorder_lost_events", "total", "Events that could not be written to the recording (disk full, directory removed).")
    }
    static var written: MetricNameDescriptor {
        d("records_written", "total", "Records written to the output: JSON Lines to the recording (record) or lines to stdout (trace).")
    }
    static var acceptQueue: MetricNameDescriptor {
        d("listener_accept_queue", "", "Connections waiting in a listener's accept queue (sk_ack_backlog; a SO_REUSEPORT "
            + "group is summed), per network namespace, port, address and workload (unit:, container: or pod: of the "
            + "process holding the socket; empty when none), read at scrape time.")
    }
    static var maxBacklog: MetricNameDescriptor {
        d("listener_max_backlog", "", "A listener's accept-queue limit, min(listen() backlog, net.core.somaxconn) "
            + "(sk_max_ack_backlog; a SO_REUSEPORT group is summed).")
    }
    static var listeners: MetricNameDescriptor {
        d("listeners", "", "Listener series (network namespace, port, address, workload) found at the last scrape, before the "
            + "--metrics-max-listeners bound.")
    }
    static var listenersNotExported: MetricNameDescriptor {
        d("listeners_not_exported", "", "Listener series left out of the queue gauges by the --metrics-max-listeners bound.")
    }
    static var namespacesUnreadable: MetricNameDescriptor {
        d("listener_namespaces_unreadable", "", "Network namespaces whose listeners could not be read at the last scrape.")
    }
    static var programRuns: MetricNameDescriptor {
        d("bpf_program_runs", "total", "Runs of each of synsight's BPF programs (label program: its name in bpf/, hook: "
            + "its attach point), counted by the kernel only while BPF statistics are on (--bpf-stats; "
            + "synsight_bpf_stats_enabled).")
    }
    static var programRunSeconds: MetricNameDescriptor {
        d("bpf_program_run_seconds", "total", "Time spent in each of synsight's BPF programs, counted by the kernel "
            + "only while BPF statistics are on (they add two clock reads to every run).")
    }
    static var bpfStatsEnabled: MetricNameDescriptor {
        d("bpf_stats_enabled", "", "1 while the kernel's BPF statistics are on (--bpf-stats, or the kernel.bpf_stats_enabled "
            + "sysctl), else 0: the program counters do not move.")
    }
    static var consumerCPU: MetricNameDescriptor {
        d("consumer_cpu_seconds", "total", "User and system CPU of the synsight process (the ring-buffer consumer, "
            + "attribution and output; BPF program time is not in it).")
    }
    static var ringFill: MetricNameDescriptor {
        d("ringbuf_fill_ratio", "", "The most the BPF ring buffer held unread since the previous update (about every "
            + "second), as a share of its size, sampled before each read: near 1, events are about to be lost.")
    }
    static var buildInfo: MetricNameDescriptor {
        d("build_info", "", "Always 1; the labels say which synsight version and command runs.")
    }
    static var startTime: MetricNameDescriptor {
        d("start_time", "seconds", "When synsight started, in seconds since the Unix epoch.")
    }
}

/// Bounds the `port` label: the first `limit` distinct ports seen get a
/// label of their own, every later one is counted under port="other", so a
/// scan of 65535 ports cannot create 65535 series (`FirstSeenBound`).
public struct PortLabels: Sendable {
    public enum Slot: Hashable, Sendable {
        case none
        case port(UInt16)
        case other

        public var label: String {
            switch self {
            case .none: return "none"
            case .port(let p): return String(p)
            case .other: return "other"
            }
        }
    }

    var bound: FirstSeenBound<UInt16>

    public init(limit: Int) {
        bound = FirstSeenBound(limit: limit)
    }

    public var limit: Int { bound.limit }
    public var assigned: Set<UInt16> { bound.assigned }

    public mutating func slot(_ port: UInt16?) -> Slot {
        guard let port else { return .none }
        return bound.admit(port) ? .port(port) : .other
    }
}

/// Counter updates from the records a trace delivers. Owned by the tracing
/// loop (not shared between threads): per record it costs one dictionary
/// lookup and one atomic add; the registry (locked) is only touched when a
/// new label set appears. The HTTP thread reads the same counters through
/// the registry.
public final class EventCounters {
    struct Key: Hashable {
        var kind: RecordKind
        var reason: Reason?
        var cause: RecordCause?
        var port: PortLabels.Slot
        var workload: WorkloadLabels.Slot
    }

    struct SummaryKey: Hashable {
        var kind: RecordKind
        var reason: Reason?
        var workload: WorkloadLabels.Slot
    }

    let registry: PrometheusCollectorRegistry
    public private(set) var ports: PortLabels
    public private(set) var workloads: WorkloadLabels
    var refusals: [Key: Counter] = [:]
    var summarized: [SummaryKey: Counter] = [:]
    let ringLost: Counter
    let recorderLost: Counter?
    let written: Counter
    var recorderWrittenSeen: UInt64 = 0
    var recorderLostSeen: UInt64 = 0
    /// trace: every delivered record is a line written to stdout. record:
    /// the recorder says what it wrote (`recorderTotals`).
    public let deliveredIsWritten: Bool

    public init(registry: PrometheusCollectorRegistry, maxPorts: Int, maxWorkloads: Int, recording: Bool) {
        self.registry = registry
        ports = PortLabels(limit: maxPorts)
        workloads = WorkloadLabels(limit: maxWorkloads)
        ringLost = registry.makeCounter(descriptor: MetricNames.ringLost)
        recorderLost = recording
            ? registry.makeCounter(descriptor: MetricNames.recorderLost) : nil
        written = registry.makeCounter(descriptor: MetricNames.written)
        deliveredIsWritten = !recording
    }

    /// One record as delivered to the output (after storm aggregation).
    public func observe(_ r: Record) {
        if deliveredIsWritten { written.increment() }
        switch r.kind {
        case .lost:
            // The recorder's own lost records carry where = "recorder: ...";
            // they are counted from its totals (`recorderTotals`).
            let whereText = r.evidence(.lostWhere)?.stringValue ?? ""
            if !whereText.hasPrefix("recorder") { ringLost.increment(by: Int64(clamping: r.count ?? 0)) }
        case .summary:
            let n = Int64(clamping: r.count ?? 0)
            let name = r.evidence(.summarizedKind)?.stringValue ?? ""
            let kind = RecordKind(rawValue: name) ?? .summary
            let workload = workloads.slot(r)
            counter(kind: kind, r, workload: workload).increment(by: n)
            let sk = SummaryKey(kind: kind, reason: r.reason, workload: workload)
            let c = summarized[sk] ?? {
                let c = registry.makeCounter(descriptor: MetricNames.summarized,
                                             labels: [("kind", kind.rawValue), ("reason", r.reason?.rawValue ?? "none"),
                                                      ("workload", workload.label)])
                summarized[sk] = c
                return c
            }()
            c.increment(by: n)
        default:
            counter(kind: r.kind, r, workload: workloads.slot(r)).increment()
        }
    }

    func counter(kind: RecordKind, _ r: Record, workload: WorkloadLabels.Slot) -> Counter {
        let key = Key(kind: kind, reason: r.reason, cause: r.cause, port: ports.slot(r.port), workload: workload)
        if let c = refusals[key] { return c }
        let c = registry.makeCounter(descriptor: MetricNames.refusals,
                                     labels: [("kind", kind.rawValue), ("reason", r.reason?.rawValue ?? "none"),
                                              ("cause", r.cause?.rawValue ?? "none"), ("port", key.port.label),
                                              ("workload", key.workload.label)])
        refusals[key] = c
        return c
    }

    /// The recorder's running totals (lines written, lines lost to write
    /// failures); the counters advance by the difference.
    public func recorderTotals(written w: UInt64, lost: UInt64) {
        if w > recorderWrittenSeen {
            written.increment(by: Int64(clamping: w - recorderWrittenSeen))
            recorderWrittenSeen = w
        }
        if lost > recorderLostSeen {
            recorderLost?.increment(by: Int64(clamping: lost - recorderLostSeen))
            recorderLostSeen = lost
        }
    }
}
