import CLibBPF
import CSynsightShim
import SynsightCore

/// Which programs of the embedded object a Tracer loads, and what they cost.
extension Tracer {
    /// Marks the programs to load: exactly one no-listener RST group (`rst_`),
    /// optional programs only where their probe succeeded, everything else
    /// always. Between open and load.
    static func selectPrograms(_ obj: OpaquePointer, features: KernelFeatures, hook: ResetHook) {
        let resetPrograms: Set<String> = {
            switch hook {
            case .tcpSendReset: return ["rst_tp_send_reset"]
            case .kfreeSkb: return ["rst_kfree_skb"]
            case .fentry: return ["rst_fentry_v4", "rst_fentry_v6"]
            case .kprobe: return ["rst_kprobe_v4", "rst_kprobe_v6"]
            }
        }()
        let optional = features.optionalPrograms
        var prog = bpf_object__next_program(obj, nil)
        while let p = prog {
            let name = String(cString: bpf_program__name(p))
            let load: Bool
            if name.hasPrefix("rst_") {
                load = resetPrograms.contains(name)
            } else if let probe = optional[name] {
                load = probe.isSupported
            } else {
                load = true
            }
            bpf_program__set_autoload(p, load)
            prog = bpf_object__next_program(obj, p)
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

    /// The loaded programs that are attached for the run (iterators are
    /// run once at start-up, not attached).
    static func attachedPrograms(_ obj: OpaquePointer) -> [OpaquePointer] {
        var out: [OpaquePointer] = []
        var prog = bpf_object__next_program(obj, nil)
        while let p = prog {
            if bpf_program__autoload(p), !String(cString: bpf_program__name(p)).hasPrefix("iter_") {
                out.append(p)
            }
            prog = bpf_object__next_program(obj, p)
        }
        return out
    }

    /// Run count and run time of every attached program (zero unless the
    /// kernel's BPF statistics are on: BPFStatistics).
    public func programStats() -> [SelfCost.Program] {
        Self.attachedPrograms(object).map { p in
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
