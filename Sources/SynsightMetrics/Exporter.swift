import Glibc
import Prometheus
import Synchronization
import SynsightBase
import SynsightModel

/// One series of the listener gauges: the sockets listening on one address
/// and port in one network namespace (a SO_REUSEPORT group is one series),
/// held by one workload (`WorkloadLabels.value`, "" when none is known). The
/// workload adds no series of its own: a listener has one holder, and the
/// series are bounded by --metrics-max-listeners.
public struct ListenerSeries: Hashable, Sendable, Comparable {
    public var netns: UInt32
    public var port: UInt16
    public var address: String
    public var workload = ""

    public static func < (a: ListenerSeries, b: ListenerSeries) -> Bool {
        (a.port, a.netns, a.address, a.workload) < (b.port, b.netns, b.address, b.workload)
    }
}

public struct ListenerSelection: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var series: ListenerSeries
        public var acceptQueue: UInt64
        public var maxBacklog: UInt64
    }

    /// Exported series, in order (port, netns, address).
    public var entries: [Entry]
    /// All series found (after the port filter), before the bound.
    public var total: Int

    /// Groups sockets into series, keeps the `ports` (all when empty), and
    /// bounds the result to `limit` series: the lowest ports first, so the
    /// choice is stable from one scrape to the next.
    public static func select(_ sockets: [ListenerQueue], ports: Set<UInt16>, limit: Int) -> ListenerSelection {
        var sums: [ListenerSeries: (UInt64, UInt64)] = [:]
        for s in sockets where ports.isEmpty || ports.contains(s.local.port) {
            let key = ListenerSeries(netns: s.netns, port: s.local.port, address: s.local.addr.description,
                                     workload: s.workload.flatMap(WorkloadLabels.value) ?? "")
            let old = sums[key] ?? (0, 0)
            sums[key] = (old.0 + UInt64(s.acceptQueue), old.1 + UInt64(s.maxBacklog))
        }
        let kept = sums.keys.sorted().prefix(max(0, limit))
        return ListenerSelection(entries: kept.map { Entry(series: $0, acceptQueue: sums[$0]!.0, maxBacklog: sums[$0]!.1) },
                                 total: sums.count)
    }
}

/// The metrics a scrape shows: the registry the tracing loop's counters
/// live in, plus gauges refreshed at scrape time (listener queues). Shared
/// between the tracing thread (which only touches counters, through
/// `EventCounters`) and the HTTP thread (which calls `render`).
public final class MetricsExporter: Sendable {
    public struct Settings: Sendable {
        public var maxPorts = 100
        /// Distinct workloads with a `workload` label of their own (`WorkloadLabels`).
        public var maxWorkloads = 100
        public var maxListeners = 100
        /// Only these ports' listeners (the command's --port filter; empty: all).
        public var ports: Set<UInt16> = []
        public var version = "unknown"
        public var command = "trace"
        /// Listener samples are reused for this long (a burst of scrapes
        /// must not rescan every namespace each time).
        public var sampleTTLNs: UInt64 = 500_000_000

        public init() {}
    }

    public typealias Sampler = @Sendable () -> (listeners: [ListenerQueue], unreadable: Int)

    public let registry = PrometheusCollectorRegistry()
    public let settings: Settings
    let sampler: Sampler
    let listenerState: Mutex<ListenerGauges>

    public init(settings: Settings, sampler: @escaping Sampler) {
        self.settings = settings
        self.sampler = sampler
        listenerState = Mutex(ListenerGauges(registry: registry))
        registry.makeGauge(descriptor: MetricNames.buildInfo,
                           labels: [("version", settings.version), ("command", settings.command)]).set(Int64(1))
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        registry.makeGauge(descriptor: MetricNames.startTime)
            .set(Double(now.tv_sec) + Double(now.tv_nsec) / 1e9)
    }

    /// Counters for the tracing loop (one per process).
    public func makeEventCounters(recording: Bool) -> EventCounters {
        EventCounters(registry: registry, maxPorts: settings.maxPorts, maxWorkloads: settings.maxWorkloads,
                      recording: recording)
    }

    /// synsight's own cost (one per process, fed by the tracing loop).
    public func makeSelfCostMetrics() -> SelfCostMetrics {
        SelfCostMetrics(registry: registry)
    }

    /// Refreshes the scrape-time gauges and returns the exposition text.
    public func render() -> [UInt8] {
        refreshListeners(now: Self.monotonicNs())
        return registry.emitToBuffer()
    }

    public func refreshListeners(now: UInt64) {
        listenerState.withLock { state in
            if let last = state.lastSample, now &- last < settings.sampleTTLNs { return }
            let s = sampler()
            state.update(ListenerSelection.select(s.listeners, ports: settings.ports, limit: settings.maxListeners),
                         unreadable: s.unreadable)
            state.lastSample = now
        }
    }

    static func monotonicNs() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}

/// The listener gauges: series that disappear (a listener closed) are
/// unregistered, so a scrape shows only listeners that exist now.
struct ListenerGauges {
    let registry: PrometheusCollectorRegistry
    var gauges: [ListenerSeries: (queue: Gauge, backlog: Gauge)] = [:]
    let total: Gauge
    let notExported: Gauge
    let unreadable: Gauge
    var lastSample: UInt64?

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        total = registry.makeGauge(descriptor: MetricNames.listeners)
        notExported = registry.makeGauge(descriptor: MetricNames.listenersNotExported)
        unreadable = registry.makeGauge(descriptor: MetricNames.namespacesUnreadable)
    }

    mutating func update(_ sel: ListenerSelection, unreadable n: Int) {
        var seen: Set<ListenerSeries> = []
        for e in sel.entries {
            seen.insert(e.series)
            let g = gauges[e.series] ?? {
                let labels = [("netns", String(e.series.netns)), ("port", String(e.series.port)),
                              ("address", e.series.address), ("workload", e.series.workload)]
                let pair = (registry.makeGauge(descriptor: MetricNames.acceptQueue, labels: labels),
                            registry.makeGauge(descriptor: MetricNames.maxBacklog, labels: labels))
                gauges[e.series] = pair
                return pair
            }()
            g.queue.set(Int64(clamping: e.acceptQueue))
            g.backlog.set(Int64(clamping: e.maxBacklog))
        }
        for (k, g) in gauges where !seen.contains(k) {
            registry.unregisterGauge(g.queue)
            registry.unregisterGauge(g.backlog)
            gauges[k] = nil
        }
        total.set(Int64(sel.total))
        notExported.set(Int64(sel.total - sel.entries.count))
        unreadable.set(Int64(n))
    }
}
