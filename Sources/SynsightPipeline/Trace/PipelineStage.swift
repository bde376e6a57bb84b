import Synchronization
import SynsightBase
import SynsightModel
import SynsightNftables
import SynsightAttribution
import SynsightRecording
import SynsightReport
import SynsightExplain
import SynsightKernel

/// What the ring-buffer thread hands to the pipeline thread, in order.
enum PipelineItem: Sendable {
    case event(KernelEvent)
    /// A record that could not be decoded (counted; the text with --verbose).
    case undecodable(String)
    /// A poll ended at this boot time: join windows that passed expire.
    case tick(UInt64)
    /// The ring buffer's lost-record counter (a running total).
    case lost(UInt64)
}

/// The pipeline thread's half of a trace: attribution, storm folding,
/// filtering, the summary, and the caller's output. Everything here runs on
/// that one thread (enrichment such as a ruleset lookup may wait there, with
/// its own deadline, without holding up the ring buffer).
///
/// `@unchecked Sendable`: it is handed to the pipeline thread once, and the
/// starting thread reads it again (the summary) only after joining it.
final class PipelineStage: @unchecked Sendable {
    let settings: TraceSettings
    var engine: AttributionEngine
    /// Workload names for every process object, and the node, on every record.
    let workloads: WorkloadResolver
    let node: NodeIdentity
    /// The outside client of a published port behind docker-proxy.
    var proxyJoin = ProxyJoin()
    var aggregator: StormAggregator?
    /// The kernel's folded storms (PipelineStage+KernelFold.swift), the
    /// latest individual record of each key, and when they were last read.
    let kernelFold: KernelFold?
    var foldSamples: [FoldSampleKey: Record] = [:]
    var lastFoldRead: UInt64 = 0
    let portFilter: Set<UInt16>
    /// Container ends of published ports the filter names (TraceSettings.published,
    /// then as `follower` finds them).
    var publishedTargets: Set<String>
    /// --port followed into containers started later (PipelineStage+Published.swift).
    let follower: PublishedPortFollower?
    /// The kernel's --port filter, grown with the follower's container ports.
    let kernelPortFilter: PortFilter?
    let output: (Record) -> Void
    let tick: () -> Bool
    let verbose: Bool
    var summary = TraceSummary()
    var emitted = 0
    var lostSeen: UInt64 = 0
    var queueDropsSeen: UInt64 = 0
    /// The stage wants the trace to end (--count reached, the reader is gone).
    let stopWanted = Atomic<Bool>(false)

    init(settings: TraceSettings, engine: AttributionEngine, workloads: WorkloadResolver, node: NodeIdentity,
         kernelFold: KernelFold? = nil, portFilter: PortFilter? = nil,
         output: @escaping (Record) -> Void, tick: @escaping () -> Bool) {
        self.settings = settings
        self.kernelFold = kernelFold
        self.engine = engine
        self.workloads = workloads
        self.node = node
        self.aggregator = settings.aggregate.map { StormAggregator(perKeyPerWindow: $0) }
        // The kernel filters what it can (no-listener RSTs); every other
        // record is filtered here by its port.
        self.portFilter = Set(settings.ports)
        self.publishedTargets = Set(settings.published.map(\.target))
        self.follower = PublishedPortFollower(ports: settings.ports, published: settings.published,
                                              sources: settings.workloadSources)
        self.kernelPortFilter = portFilter
        self.output = output
        self.tick = tick
        self.verbose = settings.verbose
    }

    /// Runs until the queue is closed and drained, then emits what is left.
    func run(_ queue: HandoffQueue<PipelineItem>) {
        while true {
            let items = queue.takeAll()
            if items.isEmpty { break }
            for item in items { handle(item) }
            reportQueueDrops(queue.dropped)
        }
        emit(engine.finish())
        readKernelFolds(now: bootTimeNow(), force: true)
        if let a = aggregator?.finish() { for r in a { deliver(r) } }
        if !tick() { stopWanted.store(true, ordering: .relaxed) }
    }

    func handle(_ item: PipelineItem) {
        switch item {
        case .event(let event):
            emit(engine.ingest(event))
        case .undecodable(let why):
            summary.addUndecodable()
            if verbose { Output.stderr("synsight: skipped a record: \(why)\n") }
        case .tick(let now):
            emit(engine.expire(now: now))
            readKernelFolds(now: now)
            followPublishedPorts(now: now)
            if let a = aggregator?.expire(nowEpochNs: engine.clock.epoch(now)) { for r in a { deliver(r) } }
            if !tick() { stopWanted.store(true, ordering: .relaxed) }
        case .lost(let total):
            guard total > lostSeen else { return }
            emitLost(total - lostSeen, where: "ring buffer full",
                     hint: "the consumer fell behind: filter with --port, or enlarge the ring buffer")
            lostSeen = total
        }
    }

    /// Events the ring-buffer thread could not hand over (the pipeline was
    /// far behind): counted like the ring buffer's own losses.
    func reportQueueDrops(_ total: UInt64) {
        guard total > queueDropsSeen else { return }
        emitLost(total - queueDropsSeen, where: "pipeline queue full",
                 hint: "enrichment fell behind (slow ruleset or /proc reads): filter with --port")
        queueDropsSeen = total
    }

    func emitLost(_ count: UInt64, where place: String, hint: String) {
        emit([Record(ts: engine.clock.epoch(bootTimeNow()), kind: .lost,
                     evidence: [EvidenceKey.lostWhere(.string(place))], hint: hint, count: count)])
    }

    func emit(_ records: [Record]) {
        for r in records {
            if !r.matches(ports: portFilter, publishedTargets: publishedTargets) { continue }
            noteFoldSample(r)
            if aggregator != nil {
                for a in aggregator!.add(r) { deliver(a) }
            } else {
                deliver(r)
            }
        }
    }

    func deliver(_ r: Record) {
        if let limit = settings.count, r.kind != .lost, emitted >= limit { return }
        var r = r
        r.node = node
        workloads.enrich(&r)
        proxyJoin.annotate(&r)
        summary.add(r)
        settings.metrics?.observe(r)
        // --count counts events: a folded storm counts all it folds.
        if r.kind != .lost { emitted += r.kind == .summary ? Int(clamping: r.count ?? 1) : 1 }
        output(r)
        if let limit = settings.count, emitted >= limit { stopWanted.store(true, ordering: .relaxed) }
    }
}
