import ArgumentParser
import Glibc
import Synchronization
import SynsightCore
import SynsightKernel

let stopRequested = Atomic<Bool>(false)

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trace refused TCP connections live (needs root).",
        discussion: """
            Prints one line per refused connection: the port, the reason and its cause, \
            the connecting process when it is on this host, the process the refusal is \
            attributed to, and a hint. Ctrl-C (or the end of --duration / --count) prints \
            a summary to stderr.

            Examples:
              sudo synsight trace
              sudo synsight trace --port 8080 --port 8443
              sudo synsight trace --json --duration 60 > refusals.jsonl
            """
    )

    @Flag(help: "Print JSON Lines (schema v1) instead of text.")
    var json = false

    @Option(help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Option(help: ArgumentHelp("Stop after this many refusals.", valueName: "n"))
    var count: Int?

    @Option(name: .customLong("port"),
            help: ArgumentHelp("Only report refusals on this local port (repeatable, at most 16).", valueName: "port"))
    var ports: [Int] = []

    @Option(help: ArgumentHelp(
        "Use this hook for no-listener resets instead of the probed one: tcp_send_reset, fentry, kprobe, kfree_skb.",
        valueName: "hook"))
    var resetHook: String?

    @Option(help: ArgumentHelp("How long a refusal waits for the local client's side before it is printed without it.",
                               valueName: "ms"))
    var joinWindowMs: Int = 200

    @Flag(help: "Show libbpf's log (verifier output on load failures).")
    var verbose = false

    static let maxDuration: Double = 366 * 86400

    static func parseHook(_ s: String) -> ResetHook? {
        switch s {
        case "tcp_send_reset", "tp_btf/tcp_send_reset": return .tcpSendReset
        case "kfree_skb", "tp_btf/kfree_skb": return .kfreeSkb
        case "fentry": return .fentry
        case "kprobe": return .kprobe
        default: return nil
        }
    }

    func validate() throws {
        if let duration, !(duration > 0 && duration <= Self.maxDuration) {
            throw ValidationError("--duration must be a positive number of seconds up to \(Int(Self.maxDuration)) (one year), got \(duration)")
        }
        if let count, count <= 0 {
            throw ValidationError("--count must be a positive number, got \(count)")
        }
        for p in ports where !(1...65535).contains(p) {
            throw ValidationError("--port must be between 1 and 65535, got \(p)")
        }
        if Set(ports).count > 16 {
            throw ValidationError("at most 16 different --port values are supported, got \(Set(ports).count)")
        }
        if let resetHook, Self.parseHook(resetHook) == nil {
            throw ValidationError("--reset-hook must be one of tcp_send_reset, fentry, kprobe, kfree_skb; got '\(resetHook)'")
        }
        if !(0...10_000).contains(joinWindowMs) {
            throw ValidationError("--join-window-ms must be between 0 and 10000, got \(joinWindowMs)")
        }
    }

    func run() throws {
        var options = TracerOptions()
        options.ports = Array(Set(ports.map { UInt16($0) })).sorted()
        options.resetHook = resetHook.flatMap(Self.parseHook)
        options.verbose = verbose

        let tracer: Tracer
        do {
            tracer = try Tracer(options: options)
        } catch {
            throw fail(error.description)
        }

        // Attach first, then snapshot: a listener born in between is in both
        // (the engine deduplicates), and none is missed.
        let snapshot = ListenerSnapshot.take()
        tracer.watchExits(of: Array(Set(snapshot.map(\.pid))))
        let unseeded = tracer.seedListeners(netnsPids: ListenerSnapshot.namespaces())
        if verbose && !unseeded.isEmpty {
            Output.stderr("synsight: could not enter network namespaces \(unseeded): overflows of their pre-existing listeners are not seen\n")
        }
        let resolver = ProcfsResolver()
        var engine = AttributionEngine(clock: currentClockMapping(),
                                       joinWindowNs: UInt64(joinWindowMs) * 1_000_000, resolver: resolver)
        engine.seed(snapshot)
        engine.syscalls = SyscallState(holders: ProcfsPortHolders(), hooks: tracer.features.syscalls.hookSet)
        engine.firewall.rules = NftRuleSource()

        // A parent may have spawned us with these signals blocked (some
        // process launchers do): Ctrl-C and `kill` must always stop a trace.
        var handled = sigset_t()
        sigemptyset(&handled)
        sigaddset(&handled, SIGINT)
        sigaddset(&handled, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &handled, nil)
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGPIPE, SIG_IGN)

        let portNote = options.ports.isEmpty ? "all ports" : "port " + options.ports.map(String.init).joined(separator: ", ")
        Output.stderr("synsight: tracing refusals on \(portNote) (hook \(tracer.resetHook.name), "
            + "\(snapshot.count) listener\(snapshot.count == 1 ? "" : "s") known). Ctrl-C to stop.\n")

        let started = bootTimeNow()
        let deadline = duration.map { started + UInt64($0 * 1e9) }
        var summary = TraceSummary()
        var out: [UInt8] = []
        out.reserveCapacity(1 << 16)
        var emitted = 0
        var lostSeen: UInt64 = 0
        var readerGone = false
        let json = self.json
        let limit = count

        // The kernel filters what it can (no-listener RSTs); every other
        // record is filtered here by its port.
        let portFilter = Set(options.ports)
        func emit(_ records: [Record]) {
            for r in records {
                if !portFilter.isEmpty, r.kind != .lost, !portFilter.contains(r.port ?? 0) { continue }
                if let limit, r.kind != .lost, emitted >= limit { return }
                summary.add(r)
                if r.kind != .lost { emitted += 1 }
                if json {
                    JSONLines.append(r, to: &out)
                } else {
                    out.append(contentsOf: TextFormat.line(r).utf8)
                    out.append(0x0A)
                }
            }
        }
        func flush() {
            guard !out.isEmpty else { return }
            if !Output.write(fd: STDOUT_FILENO, out) { readerGone = true }
            out.removeAll(keepingCapacity: true)
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
                        if verbose { Output.stderr("synsight: skipped a record: \(error)\n") }
                    }
                },
                onTick: {
                    let now = bootTimeNow()
                    emit(engine.expire(now: now))
                    if now - lastLostCheck >= 1_000_000_000 {
                        checkLost(now: now)
                        lastLostCheck = now
                    }
                    flush()
                },
                shouldStop: {
                    if stopRequested.load(ordering: .relaxed) || readerGone { return true }
                    if let limit, emitted >= limit { return true }
                    if let deadline, bootTimeNow() >= deadline { return true }
                    return false
                })
        } catch {
            flush()
            throw fail(error.description)
        }
        emit(engine.finish())
        checkLost(now: bootTimeNow())
        flush()
        let elapsed = Double(bootTimeNow() - started) / 1e9
        Output.stderr(summary.render(durationSeconds: elapsed) + "\n")
    }
}
