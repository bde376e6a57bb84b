import CLibBPF
import CSynsightABI
import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Which programs of the embedded object a Tracer loads, and what they cost.
extension Tracer {
    /// Marks the programs to load: the no-listener RST programs of the chosen
    /// hook (`rst_`; on a shared tracepoint, a cfg flag instead:
    /// resetHookFlags), a shared-hook program where one of its areas needs it,
    /// optional programs only where their probe succeeded, everything else
    /// always. Between open and load.
    static func selectPrograms(_ obj: OpaquePointer, features: KernelFeatures, hook: ResetHook) {
        let resetPrograms: Set<String> = {
            switch hook {
            case .tcpSendReset, .kfreeSkb: return []
            case .fentry: return ["rst_fentry_v4", "rst_fentry_v6"]
            case .kprobe: return ["rst_kprobe_v4", "rst_kprobe_v6"]
            }
        }()
        let shared = sharedHookPrograms(features: features, hook: hook)
        let optional = features.optionalPrograms
        var prog = bpf_object__next_program(obj, nil)
        while let p = prog {
            let name = String(cString: bpf_program__name(p))
            let load: Bool
            if name.hasPrefix("rst_") {
                load = resetPrograms.contains(name)
            } else if let wanted = shared[name] {
                load = wanted
            } else if let probe = optional[name] {
                load = probe.isSupported
            } else {
                load = true
            }
            bpf_program__set_autoload(p, load)
            prog = bpf_object__next_program(obj, p)
        }
    }

    /// The programs on a hook several areas share (bpf/refusals.bpf.c has one
    /// program per hook), loaded where any of those areas needs the hook. The
    /// handler of an area that does not is switched off inside the program
    /// (a cfg flag, or a CO-RE test of the reason it handles).
    static func sharedHookPrograms(features: KernelFeatures, hook: ResetHook) -> [String: Bool] {
        [
            // No-listener RST (kfree_skb fallback), NETFILTER_DROP and other
            // handshake drops, the ACK-stage overflow (6.15+).
            "on_kfree_skb": hook == .kfreeSkb || features.firewallDropProbe.isSupported
                || features.overflowAckDrop.isSupported,
            // No-listener RST (6.10+), the listener's abort_on_overflow RST.
            "on_tcp_send_reset": hook == .tcpSendReset || features.overflowAckReset.isSupported,
            // The firewall's ICMP soft error; connection errors without the
            // state-change hook (which needs this tracepoint).
            "on_sk_error_report": features.firewallSoftErrorProbe.isSupported,
            // Listener exits (required) and Landlock marks.
            "on_process_exit": true,
        ]
    }

    /// The syn_config flag that routes a shared tracepoint's no-socket RST to
    /// the no-listener handler: set for the chosen reset hook only.
    static func resetHookFlags(_ hook: ResetHook) -> UInt32 {
        switch hook {
        case .kfreeSkb: return UInt32(SYN_CFG_RST_KFREE_SKB.rawValue)
        case .tcpSendReset: return UInt32(SYN_CFG_RST_SEND_RESET.rawValue)
        case .fentry, .kprobe: return 0
        }
    }

    /// The programs `trace` would attach on this kernel (name, hook), without
    /// loading anything: for `doctor`. Empty when the object cannot be opened
    /// or no no-listener hook is usable.
    public static func plannedPrograms(features: KernelFeatures) -> [(name: String, hook: String)] {
        guard case .success(let hook) = features.chooseResetHook(),
              let bytes = base64Decode(BPFObject_refusals.base64) else { return [] }
        let obj: OpaquePointer? = bytes.withUnsafeBytes { raw in
            syn_open_object(raw.baseAddress, raw.count, "synsight")
        }
        guard let obj else { return [] }
        defer { bpf_object__close(obj) }
        selectPrograms(obj, features: features, hook: hook)
        return attachedPrograms(obj).map { (String(cString: bpf_program__name($0)), String(cString: bpf_program__section_name($0))) }
    }

    /// Programs user space runs itself instead of attaching: iterators
    /// (seedListeners) and `run_` programs (sweepListeners).
    static func runOnDemand(_ name: String) -> Bool {
        name.hasPrefix("iter_") || name.hasPrefix("run_")
    }

    /// The loaded programs that are attached for the run (iterators are
    /// run once at start-up, not attached).
    static func attachedPrograms(_ obj: OpaquePointer) -> [OpaquePointer] {
        var out: [OpaquePointer] = []
        var prog = bpf_object__next_program(obj, nil)
        while let p = prog {
            if bpf_program__autoload(p), !runOnDemand(String(cString: bpf_program__name(p))) {
                out.append(p)
            }
            prog = bpf_object__next_program(obj, p)
        }
        return out
    }

    /// Run count and run time of every attached program (zero unless the
    /// kernel's BPF statistics are on: BPFStatistics).
    public func programStats() -> [SelfCost.Program] {
        var programs = Self.attachedPrograms(object)
        if let reap = bpf_object__find_program_by_name(object, "run_reap_listeners"), bpf_program__autoload(reap) {
            programs.append(reap)  // run by the sweep: synsight's cost too
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
        guard let prog = bpf_object__find_program_by_name(object, "run_reap_listeners"),
              bpf_program__autoload(prog) else { return }
        _ = syn_prog_test_run(bpf_program__fd(prog))
    }
}
