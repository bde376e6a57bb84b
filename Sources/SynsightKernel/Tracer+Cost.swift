import CLibBPF
import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Which programs of the embedded object a Tracer loads, and what they cost.
extension Tracer {
    /// The enum case of a libbpf program.
    static func program(_ p: OpaquePointer) -> BPFProgram? {
        BPFProgram(rawValue: String(cString: bpf_program__name(p)))
    }

    /// A loaded program of this tracer's object, nil when the plan left it out.
    func program(_ which: BPFProgram) -> OpaquePointer? {
        objects.program(which)
    }

    /// Programs user space runs itself instead of attaching: the iterator
    /// (seedListeners) and the listener sweep (sweepListeners).
    static func runOnDemand(_ p: OpaquePointer) -> Bool {
        program(p)?.runOnDemand ?? false
    }

    /// The loaded programs that are attached for the run (iterators are
    /// run once at start-up, not attached; the injected-reset baseline
    /// program and the consume_skb overflow program only while armed,
    /// Tracer+ResetTTL.swift and HookArming: 0 runs otherwise).
    var attachedPrograms: [OpaquePointer] {
        objects.loadedPrograms.filter { !Self.runOnDemand($0) }
    }

    /// Run count and run time of every attached program (zero unless the
    /// kernel's BPF statistics are on: BPFStatistics).
    public func programStats() -> [SelfCost.Program] {
        var programs = attachedPrograms
        for sweep in [BPFProgram.runReapListeners, .runOvfWatch, .runTmoWatch] {
            if let p = program(sweep) { programs.append(p) }  // run by a sweep: synsight's cost too
        }
        return programs.map { p in
            var runs: UInt64 = 0, ns: UInt64 = 0
            _ = syn_prog_run_stats(bpf_program__fd(p), &runs, &ns)
            return SelfCost.Program(name: String(cString: bpf_program__name(p)),
                                    hook: String(cString: bpf_program__section_name(p)), runs: runs, runNs: ns)
        }
    }

    /// Notes the ring buffer's unread bytes (called before each read).
    func noteRingFill() {
        let unread = syn_ring_positions_unread(&ringPositions)
        if unread > ringPeak { ringPeak = unread }
        if unread > ringPeakWindow { ringPeakWindow = unread }
    }

    /// The cost so far: programs, this process's CPU, the ring's peak fill
    /// since start (`window`: since the previous windowed sample instead,
    /// for a gauge that can go down again).
    public func costSample(window: Bool = false) -> SelfCost {
        let peak = window ? ringPeakWindow : ringPeak
        if window { ringPeakWindow = 0 }
        return SelfCost(programs: programStats(), bpfStatsEnabled: BPFStatistics.enabled,
                        cpuSeconds: ProcessCPU.seconds(), ringBytes: ringBytes, ringUnreadPeak: peak)
    }
}

/// Without the state-change hook (SYN_CFG_NO_STATE_HOOK), listeners that
/// closed while no refusal or SYN asked about their port are found by a
/// sweep of the kernel's listener registry every few seconds.
extension Tracer {
    static let sweepIntervalNs: UInt64 = 5_000_000_000

    func sweepListenersIfDue() {
        let now = bootTimeNow()
        guard now &- lastSweep >= Self.sweepIntervalNs else { return }
        lastSweep = now
        sweepListeners()
    }

    /// Runs run_reap_listeners once (BPF_PROG_TEST_RUN; its records
    /// arrive through the ring buffer). A bounded kernel walk of the
    /// listener registry, no /proc, no netlink.
    func sweepListeners() {
        guard let prog = program(.runReapListeners) else { return }
        _ = syn_prog_test_run(bpf_program__fd(prog))
    }
}
