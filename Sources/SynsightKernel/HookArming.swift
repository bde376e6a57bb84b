import CLibBPF
import CSynsightABI
import CSynsightShim
import Glibc
import SynsightBase

/// Programs armed on anomaly (issue 16's rule: no program per healthy
/// packet): loaded with the plan but attached only while a watch program
/// says they are needed. A sweep thread runs the watch (a `run_` program,
/// BPF_PROG_TEST_RUN) every `purpose.periodNs`; a non-zero return arms
/// them, zero for `quietNs` disarms. Two purposes (ArmingPurpose):
/// - the overflow programs (BPFProgram.armedWithOverflow: the per-SYN
///   program, which runs for every packet the host consumes or every SYN
///   to a listener, the ACK-stage fexit or kretprobes of kernels without
///   the drop reasons, and the accept() exits) while a listener's queue is
///   full or its drop counter moves (run_ovf_watch, bpf/overflow.bpf.h,
///   which also reports the drops no per-SYN record claimed);
/// - tcp_destroy_sock, which runs for every TCP socket destroyed on the
///   host, while a connecting socket's SYN goes unanswered
///   (run_tmo_watch, bpf/timeouts.bpf.h): it sees the connect() an
///   application gives up on.
///
/// Its own thread, not the ring-buffer consumer's: the sweep and the
/// attach (a bpf() call that may wait for RCU) must never delay a read.
/// `@unchecked Sendable`: the libbpf program and link are touched on the
/// sweep thread only (and in `stop`, after it is joined); the rest is
/// guarded by `lock`.
final class HookArming: @unchecked Sendable {
    let purpose: ArmingPurpose
    let watch: OpaquePointer
    /// The programs armed together, entry probes before return probes.
    let programs: [(BPFProgram, OpaquePointer)]
    let quietNs: UInt64
    /// The abandoned connects' `tmo_gate` array map (enum
    /// syn_tmo_gate_entry): while disarmed, the watch runs only when a
    /// socket was added since a walk found none; after a walk that found
    /// none, the count read before it is written as `quiet_at` (the error
    /// report then skips its lookup too). nil: the watch runs every period.
    let gateFD: Int32?
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

    init(_ purpose: ArmingPurpose, watch: OpaquePointer, programs: [(BPFProgram, OpaquePointer)], quietNs: UInt64?,
         gateFD: Int32? = nil) {
        self.purpose = purpose
        self.watch = watch
        self.programs = programs
        self.quietNs = quietNs ?? purpose.defaultQuietNs
        self.gateFD = gateFD
    }

    /// Starts the sweep thread. A thread that cannot start leaves the
    /// programs attached for the whole run (the cost of before, not a loss).
    func start() {
        do {
            let w = try WorkerThread(name: purpose.threadName) { [unowned self] in self.loop() }
            lock.withLock { worker = w }
        } catch {
            Diagnostics.log.warning("\(error): \(names) stay attached for the whole run")
            arm()
        }
    }

    /// Stops and joins the sweep thread, then detaches the programs.
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
            let deadline = ConditionLock.now() &+ purpose.periodNs
            while !stopping && lock.wait(until: deadline) {}
            return !stopping
        }
    }

    /// One sweep: the watch's return value (what needs the programs) arms
    /// or, after `quietNs`, disarms.
    func sweep(now: UInt64) {
        let gate = gateValue()
        if !armed, let gate, gate.added == gate.quietAt { return }  // nothing added since a walk found none
        var anomalies: UInt32 = 0
        guard syn_prog_test_run_retval(bpf_program__fd(watch), &anomalies) == 0 else { return }
        // Read before the walk: a socket added during it moves the count past this.
        if anomalies == 0, let gate, let fd = gateFD { Self.write(fd, SYN_TMO_GATE_QUIET_AT, gate.added) }
        if anomalies > 0 {
            lastAnomaly = now
            if !armed { arm() }
        } else if armed, now &- lastAnomaly >= quietNs {
            disarm()
            Diagnostics.log.debug("\(purpose.quietLog) for \(quietNs / 1_000_000) ms: \(names) detached")
        }
    }

    /// The gate (nil without one, or unreadable: the watch then runs).
    func gateValue() -> (added: UInt64, quietAt: UInt64)? {
        guard let fd = gateFD else { return nil }
        var a = UInt32(SYN_TMO_GATE_ADDED.rawValue), q = UInt32(SYN_TMO_GATE_QUIET_AT.rawValue)
        var added: UInt64 = 0, quiet: UInt64 = 0
        guard bpf_map_lookup_elem(fd, &a, &added) == 0, bpf_map_lookup_elem(fd, &q, &quiet) == 0 else { return nil }
        return (added, quiet)
    }

    static func write(_ fd: Int32, _ entry: syn_tmo_gate_entry, _ value: UInt64) {
        var key = UInt32(entry.rawValue), v = value
        _ = bpf_map_update_elem(fd, &key, &v, UInt64(BPF_ANY))
    }

    /// Attaches every armed program (one that fails is warned about once and left out).
    func arm() {
        armed = true
        // The accept() exits are classic tracepoints: libbpf reads their ids
        // from tracefs, which this thread may have to mount privately (TraceFS).
        TraceFS.withAccess { attachAll() }
        Diagnostics.log.debug("\(purpose.armLog): \(names) attached")
    }

    func attachAll() {
        for (which, p) in programs where !attachFailed.contains(which) {
            guard let l = bpf_program__attach(p) else {
                attachFailed.insert(which)
                let e = ErrnoName.name(errno)
                Diagnostics.log.warning("cannot attach \(which.rawValue): \(e); \(ArmingPurpose.without(which))")
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
}
