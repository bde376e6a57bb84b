import CLibBPF
import CSynsightShim
import Glibc
import SynsightBase

/// Overflow armed on anomaly (issue 16's rule: no program per healthy
/// packet). The per-SYN overflow program (ovf_consume_skb, which runs for
/// every packet the host consumes, or fentry/kprobe on tcp_conn_request,
/// once per healthy connection's SYN), the ACK-stage fexit or kretprobes of
/// kernels without the drop reasons, and the accept() exits
/// (BPFProgram.armedWithOverflow) are loaded with the plan but attached
/// only while a listener needs them: a sweep thread runs run_ovf_watch
/// (BPF_PROG_TEST_RUN, bpf/overflow.bpf.h) every `periodNs`, which walks
/// the listener registry, reports the drops no per-SYN record claimed as
/// counted records, and returns how many listeners have a queue full (or
/// one SYN from it) or a drop counter that moved. Any: the programs are
/// attached; none for `quietNs`: detached.
///
/// Its own thread, not the ring-buffer consumer's: the sweep and the
/// attach (a bpf() call that may wait for RCU) must never delay a read.
/// `@unchecked Sendable`: the libbpf program and link are touched on the
/// sweep thread only (and in `stop`, after it is joined); the rest is
/// guarded by `lock`.
final class OverflowArming: @unchecked Sendable {
    /// How often the listeners are looked at. A queue that fills is usually
    /// full for seconds (a stalled server, a flood), so 250 ms arms the
    /// per-SYN program before most of an incident's drops. The sweep walks
    /// every bucket of the registry's hash map (about 0.2 ms with BPF
    /// statistics on, this host): 4 a second is under 0.1% of one CPU, and
    /// nothing per connection.
    static let periodNs: UInt64 = 250_000_000
    /// How long nothing must move before the program is detached: an
    /// incident that pauses for a few seconds (clients backing off: SYN
    /// retransmits at 1, 3, 7 s) keeps its SYNs seen one by one.
    static let defaultQuietNs: UInt64 = 20_000_000_000

    let watch: OpaquePointer
    /// The programs armed together, entry probes before return probes.
    let programs: [(BPFProgram, OpaquePointer)]
    let periodNs: UInt64
    let quietNs: UInt64
    let lock = ConditionLock()
    /// Guarded by `lock`.
    var stopping = false
    var worker: WorkerThread?
    /// Sweep thread only: the links while armed.
    var links: [OpaquePointer] = []
    var armed = false
    var lastAnomaly: UInt64 = 0
    /// Programs whose attach failed (warned once): not retried every period.
    var attachFailed: Set<BPFProgram> = []

    init(watch: OpaquePointer, programs: [(BPFProgram, OpaquePointer)], quietNs: UInt64?) {
        self.watch = watch
        self.programs = programs
        self.periodNs = Self.periodNs
        self.quietNs = quietNs ?? Self.defaultQuietNs
    }

    /// Starts the sweep thread. A thread that cannot start leaves the
    /// program attached for the whole run (the cost of before, not a loss).
    func start() {
        do {
            let w = try WorkerThread(name: "synsight-ovf") { [unowned self] in self.loop() }
            lock.withLock { worker = w }
        } catch {
            Diagnostics.log.warning("\(error): \(names) stay attached for the whole run")
            arm()
        }
    }

    /// Stops and joins the sweep thread, then detaches the program.
    func stop() {
        let w: WorkerThread? = lock.withLock {
            stopping = true
            lock.broadcast()
            return worker
        }
        w?.join()
        disarm()
    }

    func loop() {
        while waitPeriod() {
            sweep(now: bootTimeNow())
        }
    }

    /// Sleeps one period; false once stopping.
    func waitPeriod() -> Bool {
        lock.withLock {
            let deadline = ConditionLock.now() &+ periodNs
            while !stopping && lock.wait(until: deadline) {}
            return !stopping
        }
    }

    /// One sweep: counted records go out through the ring buffer; the
    /// return value (anomalous listeners) arms or, after `quietNs`, disarms.
    func sweep(now: UInt64) {
        var anomalies: UInt32 = 0
        guard syn_prog_test_run_retval(bpf_program__fd(watch), &anomalies) == 0 else { return }
        if anomalies > 0 {
            lastAnomaly = now
            if !armed { arm() }
        } else if armed, now &- lastAnomaly >= quietNs {
            disarm()
            Diagnostics.log.debug("no listener queue full or drop for \(quietNs / 1_000_000_000) s: \(names) detached")
        }
    }

    /// Attaches every armed program (one that fails is warned about once and left out).
    func arm() {
        armed = true
        // The accept() exits are classic tracepoints: libbpf reads their ids
        // from tracefs, which this thread may have to mount privately (TraceFS).
        TraceFS.withAccess { attachAll() }
        Diagnostics.log.debug("a listener's queue is full or its drop counter moved: \(names) attached")
    }

    func attachAll() {
        for (which, p) in programs where !attachFailed.contains(which) {
            guard let l = bpf_program__attach(p) else {
                attachFailed.insert(which)
                let e = ErrnoName.name(errno)
                Diagnostics.log.warning("cannot attach \(which.rawValue): \(e); \(Self.without(which))")
                continue
            }
            links.append(l)
        }
    }

    func disarm() {
        for l in links.reversed() { bpf_link__destroy(l) }  // return probes before their entries
        links.removeAll()
        armed = false
    }

    var names: String { programs.map(\.0.rawValue).joined(separator: ", ") }

    /// What is lost without `p`.
    static func without(_ p: BPFProgram) -> String {
        switch p {
        case .ovfConsumeSkb, .ovfFentryConnRequest, .ovfKprobeConnRequest:
            return "SYN-stage overflows are counted from the listeners' drop counters only"
        case .ovfExitAccept, .ovfExitAccept4, .ovfFxExitAccept4:
            return "accept() failures (EMFILE, ENFILE) are not seen"
        case .ovfFexitConnRequest, .ovfKretprobeConnRequest:
            return "SYNs a listener leaves unanswered past its queue checks (no_route_back, the SYN backlog's reserve) are not seen"
        default:
            return "ACK-stage overflows are counted from the listeners' drop counters only"
        }
    }
}

extension OverflowArming {
    /// The periods as `doctor` and the hook cadence say them.
    static var periodText: String { "\(periodNs / 1_000_000) ms" }
    static var quietText: String { "\(defaultQuietNs / 1_000_000_000) s" }
    /// What arming means, as `doctor` says it (HookCadence.armedOnAnomaly).
    static var armedText: String {
        "armed on anomaly: attached only while a listener's queue is full or its drop counter moves (a sweep every "
            + "\(periodText)), detached after \(quietText) quiet; drops before it is attached are counted from the "
            + "listener's sk_drops (one record per listener and sweep, no client)"
    }
}
