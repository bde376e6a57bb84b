import Glibc
import Synchronization
import SynsightBase
import SynsightModel
import SynsightNftables
import SynsightAttribution
import SynsightRecording
import SynsightReport
import SynsightExplain
import SynsightKernel
import SynsightMetrics

/// Set by SIGINT/SIGTERM: the trace stops at its next poll.
public let stopRequested = Atomic<Bool>(false)
/// Set by SIGHUP when `reopenOnHUP`: the caller reopens its output files.
public let reopenRequested = Atomic<Bool>(false)

/// Why a trace could not start or go on, as one line for the user.
public struct TraceError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// What `trace` and `record` share: which refusals, for how long.
public struct TraceSettings {
    public init() {}

    public var ports: [UInt16] = []
    /// Ports among `ports` that Docker containers publish, followed into the
    /// containers (followPublishedPorts): the kernel filters for their
    /// container ports too, and a record at a container's end of one is kept.
    public var published: [PublishedPort] = []
    /// The workload sources, when followPublishedPorts probed them (the
    /// tracer's resolver uses them instead of probing again).
    public var workloadSources: WorkloadSources? = nil
    /// Hooks chosen instead of the probed ones (--reset-hook, --force-hook).
    public var hooks = HookChoices()
    /// kubelet's pod log root when not the default (--pod-log-dir).
    public var podLogDir: String? = nil
    /// What the start-up line says the run is for, instead of "tracing
    /// refusals on <ports> ... Ctrl-C to stop" (explain's short trace).
    public var startNote: String? = nil
    public var verbose = false
    public var joinWindowMs = 200
    public var duration: Double? = nil
    public var count: Int? = nil
    /// Storm aggregation (record): at most this many identical records per
    /// second pass individually; the rest become one `summary` record.
    public var aggregate: Int? = nil
    /// SIGHUP asks to reopen output files (record) instead of ending the process.
    public var reopenOnHUP = false
    /// Prometheus counters (--metrics-address), updated with every delivered record.
    public var metrics: EventCounters? = nil
    /// Tests only: every ruleset read takes this much longer (a slow rule source).
    public var rulesetDelayMs = 0
    /// Tests only: quiet time before the per-SYN overflow program is detached (TracerOptions).
    public var overflowQuietNs: UInt64? = nil
    /// synsight's own cost in the metrics (--metrics-address), updated every second.
    public var costMetrics: SelfCostMetrics? = nil
    /// Turn on the kernel's BPF statistics for the run (--bpf-stats).
    public var bpfStats = false
    /// Fold storms in the kernel too, past `aggregate` records per key, CPU
    /// and second (bpf/fold.bpf.h); false: every record crosses the ring
    /// buffer and storms are folded in user space only (--no-kernel-fold).
    public var kernelFold = true
    /// Tests only: the connecting-socket table's sets in use (TracerOptions.connectTableSetsInUse).
    public var connectTableSetsInUse = 0
}

extension TraceSettings {
    /// With --port: the mappings of the running Docker containers that
    /// publish one of `ports` (their configs, read now; while tracing,
    /// PublishedPortFollower reads them again for containers started later).
    /// A refusal behind a published port happens at the container's port, in
    /// the container's namespace, where neither the kernel nor a client
    /// outside the host sees the published one.
    public mutating func followPublishedPorts() {
        guard !ports.isEmpty else { return }
        let sources = WorkloadSources.probe(podLogRoot: podLogDir)
        workloadSources = sources
        published = PublishedPort.publishing(Set(ports), in: sources.dockerPublishedPorts())
    }

    /// The ports the kernel filters for: `ports`, then the container ports
    /// of the published ones (past TracerOptions.maxPorts, the kernel passes
    /// every port and the records are filtered in user space only).
    public var kernelPorts: [UInt16] {
        var out = ports
        for p in published.compactMap(\.targetPort) where !out.contains(p) { out.append(p) }
        return out
    }

    /// The start-up line's "port …" part, and what was followed where.
    var portNote: String {
        guard !ports.isEmpty else { return "all ports" }
        let followed = published.isEmpty ? ""
            : " (published to " + Array(Set(published.map(\.target))).sorted().joined(separator: ", ") + ")"
        return "port " + ports.map(String.init).joined(separator: ", ") + followed
    }
}

/// The tracing loop: load and attach, snapshot listeners, read the ring,
/// attribute, and hand every final record to `emit`. `tick` runs after each
/// poll (about every 50 ms) and returns false to stop. Returns the summary
/// (the caller adds what it could not write), the seconds traced, and
/// synsight's own cost over the run (CPU, ring-buffer fill, BPF statistics).
public enum TraceRunner {
    public static func options(for s: TraceSettings) -> TracerOptions {
        var options = TracerOptions()
        options.ports = s.kernelPorts
        options.hooks = s.hooks
        options.verbose = s.verbose
        options.overflowQuietNs = s.overflowQuietNs
        if s.kernelFold, let n = s.aggregate { options.foldPerWindow = UInt32(clamping: n) }
        options.connectTableSetsInUse = UInt32(clamping: s.connectTableSetsInUse)
        return options
    }

    /// `prepared`: a Tracer the caller already loaded (explain does, to report
    /// a load failure as "trace unavailable" instead of an error); it must
    /// have been created with `options(for: s)`.
    public static func run(_ s: TraceSettings, tracer prepared: Tracer? = nil,
                    emit output: @escaping (Record) -> Void,
                    tick: () -> Bool) throws -> (summary: TraceSummary, seconds: Double, cost: String) {
        // Before loading: the programs' counters then cover the whole run.
        let statistics: BPFStatistics?
        do {
            statistics = s.bpfStats ? try BPFStatistics.enable() : nil
        } catch {
            throw TraceError(error.description)
        }
        defer { withExtendedLifetime(statistics) {} }
        let tracer: Tracer
        if let prepared {
            tracer = prepared
        } else {
            do {
                tracer = try Tracer(options: options(for: s))
            } catch {
                throw TraceError(error.description)
            }
        }

        // Attach first, then snapshot: a listener born in between is in both
        // (the engine deduplicates), and none is missed.
        let taken = ListenerSnapshot.take()
        // Workload identity (cgroup, unit, container, pod) of the listeners
        // alive now; the sources are found here, before the ring is read.
        let workloads = WorkloadResolver(sources: s.workloadSources ?? .probe(podLogRoot: s.podLogDir))
        let node = NodeIdentityReader.read()
        let seeding = tracer.seedListeners(netnsPids: taken.namespaces)
        if s.verbose && !seeding.failed.isEmpty {
            Output.stderr("synsight: could not enter network namespaces \(seeding.failed.sorted()): overflows of their "
                          + "pre-existing listeners are not seen, nor the devices they are bound to\n")
        }
        // Socket inodes are unique across namespaces (one sockfs); apply checks the netns too.
        let seeds = Dictionary(seeding.seeds.map { ($0.socketInode, $0) }, uniquingKeysWith: { a, _ in a })
        let resolver = ProcfsResolver(workloads: workloads)
        let snapshot = taken.listeners.map { l in
            var l = l
            l.workload = workloads.identity(pid: l.pid)
            l.launch = resolver.launch(pid: l.pid)
            if let seed = seeds[l.socketInode] { l.apply(seed) }
            return l
        }
        tracer.watchExits(of: Array(Set(snapshot.map(\.pid))))
        var engine = AttributionEngine(clock: currentClockMapping(),
                                       joinWindowNs: UInt64(s.joinWindowMs) * 1_000_000, resolver: resolver)
        engine.seed(snapshot)
        engine.syscalls = SyscallState(holders: ProcfsPortHolders())
        let rules = NftRuleSource(delayMs: s.rulesetDelayMs)
        defer { rules.reader.stop() }
        engine.firewall.rules = rules
        engine.firewall.conntrack = ConntrackLimitReader()
        engine.hostNetns = rules.reader.ownNetns
        // Reason names now (one enum of the BTF libbpf already parsed); kallsyms on the first drop.
        // tc/tcx/cgroup programs at a BPF drop's attach points, synsight's own excluded.
        // rp_filter and no-route drops: their namespace's sysctls and route
        // lookup, read by the route reader thread as soon as they are decoded.
        let reasons = tracer.features.dropReasons
        let routes = RouteReader(reasons: reasons)
        defer { routes.stop() }
        engine.drops = DropState(reasons: reasons, symbols: KernelSymbolTable(),
                                 programs: BPFProgramReader(own: tracer.programIDs()), routes: routes)
        engine.clientErrorHook = tracer.noStateHook ? .errorReport : .stateChange

        // A parent may have spawned us with these signals blocked (some
        // process launchers do): Ctrl-C and `kill` must always stop a trace.
        var handled = sigset_t()
        sigemptyset(&handled)
        sigaddset(&handled, SIGINT)
        sigaddset(&handled, SIGTERM)
        if s.reopenOnHUP { sigaddset(&handled, SIGHUP) }
        pthread_sigmask(SIG_UNBLOCK, &handled, nil)
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        if s.reopenOnHUP { signal(SIGHUP) { _ in reopenRequested.store(true, ordering: .relaxed) } }
        signal(SIGPIPE, SIG_IGN)

        if let filter = tracer.portFilter, filter.kernelPorts == nil {
            Output.stderr(PortFilter.fullNote + "\n")
        }
        // Sockets, not holders: a listener shared by forked workers counts once.
        let owned = Set(snapshot.map(\.socketInode))
        let known = "hook \(tracer.resetHook.name), " + Self.listenersKnown(
            owned: owned.count, ownerless: Set(seeds.keys).subtracting(owned).count)
        Output.stderr(s.startNote.map { "synsight: \($0) (\(known))\n" }
            ?? "synsight: tracing refusals on \(s.portNote) (\(known)). Ctrl-C to stop.\n")

        let started = bootTimeNow()
        let deadline = s.duration.map { started + UInt64($0 * 1e9) }
        // The ring-buffer thread (this one) only decodes and hands off; the
        // pipeline thread attributes, enriches (which may wait on a ruleset
        // read or a /proc walk) and writes. The caller's closures run there
        // only, and this thread waits for it before returning.
        let queue = HandoffQueue<PipelineItem>(capacity: Self.queueCapacity)
        let summary = try withoutActuallyEscaping(tick) { tick in
            let stage = PipelineStage(settings: s, engine: engine, workloads: workloads, node: node,
                                      kernelFold: tracer.kernelFold(), portFilter: tracer.portFilter,
                                      output: output, tick: tick)
            let pipeline: WorkerThread
            do {
                pipeline = try WorkerThread(name: "synsight-pipe") { stage.run(queue) }
            } catch {
                throw TraceError("cannot start the pipeline thread: \(error)")
            }
            do {
                defer {
                    queue.close()
                    pipeline.join()
                }
                try readRing(tracer, into: queue, rules: rules, routes: routes, stage: stage, deadline: deadline, costMetrics: s.costMetrics)
            }
            // Read only once the pipeline thread has drained the queue and
            // ended: before, it is still counting (and writing) records.
            return stage.summary
        }
        let elapsed = Double(bootTimeNow() - started) / 1e9
        let cost = tracer.costSample()
        s.costMetrics?.update(tracer.costSample(window: true))
        return (summary, elapsed, SelfCostFormat.render(cost, durationSeconds: elapsed))
    }

    /// The start-up line's count of listeners: those a process holds (the
    /// /proc walk) and those only the kernel's iterator found (held by a
    /// process in another PID namespace, or no process any more), which the
    /// kernel side tracks all the same.
    static func listenersKnown(owned: Int, ownerless: Int) -> String {
        let total = owned + ownerless
        let count = "\(total) listener\(total == 1 ? "" : "s") known"
        return ownerless == 0 ? count : count + ", \(ownerless) with no process visible"
    }

    /// At most this many decoded events wait for the pipeline (beyond it a
    /// batch is dropped and counted: the ring-buffer thread never blocks).
    static let queueCapacity = 65_536
    /// Events handed over at once (at the latest after each poll).
    static let batchSize = 4096

    /// The ring-buffer thread: decode, pin what may vanish, hand off.
    static func readRing(_ tracer: Tracer, into queue: HandoffQueue<PipelineItem>, rules: NftRuleSource,
                         routes: RouteReader, stage: PipelineStage, deadline: UInt64?, costMetrics: SelfCostMetrics?) throws {
        var batch: [PipelineItem] = []
        var lastLostCheck = bootTimeNow()
        costMetrics?.update(tracer.costSample(window: true))
        do {
            try tracer.run(
                onRecord: { raw in
                    do {
                        let event = try EventDecoder.decode(raw)
                        // A drop's namespace may be deleted before the record
                        // is decided: pin it now (the reader opens it at once).
                        if case .firewallDrop(let d) = event { rules.pin(netns: d.netns) }
                        // rp_filter / no-route drops: their route lookup starts now.
                        if case .packetDrop(let d) = event { routes.pin(d) }
                        // connect() without a route: the same, for its destination;
                        // bind() EADDRNOTAVAIL: its namespace's addresses (IPv6 DAD ends within a second).
                        if case .socketCall(let s) = event { routes.pin(call: s) }
                        // A SYN a listener left unanswered: the route back to its client.
                        if case .listenOverflow(let o) = event { routes.pin(overflow: o) }
                        batch.append(.event(event))
                    } catch {
                        batch.append(.undecodable("\(error)"))
                    }
                    // A storm drained in one poll is handed over in pieces,
                    // so the pipeline starts on it at once.
                    if batch.count >= Self.batchSize {
                        queue.push(batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                },
                onTick: {
                    let now = bootTimeNow()
                    queue.push(batch)
                    batch.removeAll(keepingCapacity: true)
                    var control: [PipelineItem] = [.tick(now)]
                    if now - lastLostCheck >= 1_000_000_000 {
                        control.append(.lost(tracer.lostEvents()))
                        costMetrics?.update(tracer.costSample(window: true))
                        lastLostCheck = now
                    }
                    queue.push(control, droppable: false)
                },
                shouldStop: {
                    if stopRequested.load(ordering: .relaxed) || stage.stopWanted.load(ordering: .relaxed) { return true }
                    if let deadline, bootTimeNow() >= deadline { return true }
                    return false
                })
        } catch {
            throw TraceError(error.description)
        }
        queue.push(batch)
        queue.push([.lost(tracer.lostEvents())], droppable: false)
    }
}
