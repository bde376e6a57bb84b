import Glibc
import Synchronization
import SynsightCore
import SynsightKernel
import SynsightMetrics

let stopRequested = Atomic<Bool>(false)
let reopenRequested = Atomic<Bool>(false)

/// What `trace` and `record` share: which refusals, for how long.
struct TraceSettings {
    var ports: [UInt16] = []
    var resetHook: ResetHook? = nil
    var verbose = false
    var joinWindowMs = 200
    var duration: Double? = nil
    var count: Int? = nil
    /// Storm aggregation (record): at most this many identical records per
    /// second pass individually; the rest become one `summary` record.
    var aggregate: Int? = nil
    /// SIGHUP asks to reopen output files (record) instead of ending the process.
    var reopenOnHUP = false
    /// Prometheus counters (--metrics-address), updated with every delivered record.
    var metrics: EventCounters? = nil
}

/// The tracing loop: load and attach, snapshot listeners, read the ring,
/// attribute, and hand every final record to `emit`. `tick` runs after each
/// poll (about every 50 ms) and returns false to stop. Returns the summary text.
enum TraceRunner {
    static func options(for s: TraceSettings) -> TracerOptions {
        var options = TracerOptions()
        options.ports = s.ports
        options.resetHook = s.resetHook
        options.verbose = s.verbose
        return options
    }

    /// `prepared`: a Tracer the caller already loaded (explain does, to report
    /// a load failure as "trace unavailable" instead of an error); it must
    /// have been created with `options(for: s)`.
    static func run(_ s: TraceSettings, tracer prepared: Tracer? = nil,
                    emit output: @escaping (Record) -> Void, tick: () -> Bool) throws -> String {
        let tracer: Tracer
        if let prepared {
            tracer = prepared
        } else {
            do {
                tracer = try Tracer(options: options(for: s))
            } catch {
                throw fail(error.description)
            }
        }

        // Attach first, then snapshot: a listener born in between is in both
        // (the engine deduplicates), and none is missed.
        let taken = ListenerSnapshot.take()
        // Workload identity (cgroup, unit, container, pod) of the listeners
        // alive now; the sources are found here, before the ring is read.
        let workloads = WorkloadResolver(sources: .probe())
        let node = NodeIdentityReader.read()
        let snapshot = taken.listeners.map { l in
            var l = l
            l.workload = workloads.identity(pid: l.pid)
            return l
        }
        tracer.watchExits(of: Array(Set(snapshot.map(\.pid))))
        let unseeded = tracer.seedListeners(netnsPids: taken.namespaces)
        if s.verbose && !unseeded.isEmpty {
            Output.stderr("synsight: could not enter network namespaces \(unseeded): overflows of their pre-existing listeners are not seen\n")
        }
        let resolver = ProcfsResolver(workloads: workloads)
        var engine = AttributionEngine(clock: currentClockMapping(),
                                       joinWindowNs: UInt64(s.joinWindowMs) * 1_000_000, resolver: resolver)
        engine.seed(snapshot)
        engine.syscalls = SyscallState(holders: ProcfsPortHolders(), hooks: tracer.features.syscalls.hookSet)
        engine.firewall.rules = NftRuleSource()

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

        let portNote = s.ports.isEmpty ? "all ports" : "port " + s.ports.map(String.init).joined(separator: ", ")
        Output.stderr("synsight: tracing refusals on \(portNote) (hook \(tracer.resetHook.name), "
            + "\(snapshot.count) listener\(snapshot.count == 1 ? "" : "s") known). Ctrl-C to stop.\n")

        let started = bootTimeNow()
        let deadline = s.duration.map { started + UInt64($0 * 1e9) }
        var summary = TraceSummary()
        var emitted = 0
        var lostSeen: UInt64 = 0
        var keepGoing = true
        let limit = s.count
        var aggregator = s.aggregate.map { StormAggregator(perKeyPerWindow: $0) }
        var proxyJoin = ProxyJoin()

        // The kernel filters what it can (no-listener RSTs); every other
        // record is filtered here by its port.
        let portFilter = Set(s.ports)
        func deliver(_ r: Record) {
            if let limit, r.kind != .lost, emitted >= limit { return }
            var r = r
            r.node = node
            workloads.enrich(&r)
            proxyJoin.annotate(&r)
            summary.add(r)
            s.metrics?.observe(r)
            if r.kind != .lost { emitted += 1 }
            output(r)
        }
        func emit(_ records: [Record]) {
            for r in records {
                if !portFilter.isEmpty, r.kind != .lost, !portFilter.contains(r.port ?? 0) { continue }
                if aggregator != nil {
                    for a in aggregator!.add(r) { deliver(a) }
                } else {
                    deliver(r)
                }
            }
        }
        func checkLost(now: UInt64) {
            let lost = tracer.lostEvents()
            if lost > lostSeen {
                emit([Record(ts: engine.clock.epoch(now), kind: .lost,
                             evidence: [("where", .string("ring buffer full"))],
                             hint: "the consumer fell behind: filter with --port, or enlarge the ring buffer",
                             count: lost - lostSeen)])
                lostSeen = lost
            }
        }

        var lastLostCheck = started
        do {
            try tracer.run(
                onRecord: { raw in
                    do {
                        let event = try EventDecoder.decode(raw)
                        emit(engine.ingest(event))
                    } catch {
                        summary.addUndecodable()
                        if s.verbose { Output.stderr("synsight: skipped a record: \(error)\n") }
                    }
                },
                onTick: {
                    let now = bootTimeNow()
                    emit(engine.expire(now: now))
                    if let a = aggregator?.expire(nowEpochNs: engine.clock.epoch(now)) { for r in a { deliver(r) } }
                    if now - lastLostCheck >= 1_000_000_000 {
                        checkLost(now: now)
                        lastLostCheck = now
                    }
                    keepGoing = tick()
                },
                shouldStop: {
                    if stopRequested.load(ordering: .relaxed) || !keepGoing { return true }
                    if let limit, emitted >= limit { return true }
                    if let deadline, bootTimeNow() >= deadline { return true }
                    return false
                })
        } catch {
            _ = tick()
            throw fail(error.description)
        }
        emit(engine.finish())
        if let a = aggregator?.finish() { for r in a { deliver(r) } }
        checkLost(now: bootTimeNow())
        _ = tick()
        let elapsed = Double(bootTimeNow() - started) / 1e9
        return summary.render(durationSeconds: elapsed)
    }
}
