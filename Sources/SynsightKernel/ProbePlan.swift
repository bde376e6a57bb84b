import CSynsightABI
import SynsightModel

/// A program of the embedded BPF object, named by the enum bpf-embed
/// generates from the object's symbol table (never by a string).
public typealias BPFProgram = BPFObject_refusals.Program

/// What each reason area needs from the kernel, decided once per run from
/// the probes (KernelFeatures): the programs to load, or the typed reason an
/// area cannot run (after retis's `can_run`). The tracer loads exactly the
/// programs of the areas that run (every other program has autoload off)
/// and `doctor` prints the same plan.
public struct ProbePlan: Sendable {
    public let features: KernelFeatures
    /// One entry per area, in ReasonArea order.
    public let areas: [(area: ReasonArea, plan: AreaPlan)]
    /// The no-listener RST hook, when that area runs.
    public let resetHook: ResetHook?

    public init(_ features: KernelFeatures) {
        self.features = features
        var hook: ResetHook?
        if case .success(let h) = features.chooseResetHook() { hook = h }
        resetHook = hook
        areas = ReasonArea.allCases.map { ($0, $0.plan(features)) }
    }

    /// Probes this kernel (once) and plans from the result.
    public static func probe(_ choices: HookChoices = HookChoices()) -> ProbePlan {
        ProbePlan(KernelFeatures.probe(choices))
    }

    public func plan(for area: ReasonArea) -> AreaPlan {
        areas.first { $0.area == area }!.plan
    }

    /// Every program some area selected: what the tracer loads.
    public var programs: Set<BPFProgram> {
        var all = Set<BPFProgram>()
        for (_, p) in areas { if case .run(let programs) = p { all.formUnion(programs) } }
        return all
    }

    /// The selected programs in the object's order.
    public var orderedPrograms: [BPFProgram] {
        let selected = programs
        return BPFProgram.allCases.filter(selected.contains)
    }

    /// inet_sock_set_state is not attached (SYN_CFG_NO_STATE_HOOK): connect()
    /// callers from cgroup/connect{4,6}, errors from inet_sk_error_report.
    public var noStateHook: Bool { features.connectWithoutStateHook.isSupported }

    /// The overflow programs are attached on anomaly (OverflowArming): the
    /// plan has the sweep that arms them (BPFProgram.armedWithOverflow).
    public var armsOverflow: Bool { programs.contains(.runOvfWatch) }

    /// The syn_config flags that tell the loaded programs how they are used.
    public var configFlags: UInt32 {
        features.overflow.synRecvFlags
            | (features.syscalls.connectExitOnly ? UInt32(SYN_CFG_CONNECT_EXIT_ONLY.rawValue) : 0)
            | (noStateHook ? UInt32(SYN_CFG_NO_STATE_HOOK.rawValue) : 0)
            | Self.resetHookFlags(resetHook)
    }

    /// The flag that routes a shared tracepoint's no-socket RST to the
    /// no-listener handler (bpf/refusals.bpf.c has one program per hook:
    /// on_kfree_skb and on_tcp_send_reset also serve other areas, and run the
    /// no-listener handler only where that hook was chosen for it).
    static func resetHookFlags(_ hook: ResetHook?) -> UInt32 {
        switch hook {
        case .kfreeSkb: return UInt32(SYN_CFG_RST_KFREE_SKB.rawValue)
        case .tcpSendReset: return UInt32(SYN_CFG_RST_SEND_RESET.rawValue)
        case .fentry, .kprobe, nil: return 0
        }
    }

    /// Throws when tracing cannot start: no privileges or BTF, or a
    /// required area (no-listener resets, the connection registry) cannot run.
    public func requireTraceable() throws(KernelError) {
        let f = features
        guard f.privileges.isSupported else {
            throw KernelError(what: "cannot load BPF programs", why: f.privileges.detail,
                              fix: "run with sudo, or grant CAP_BPF and CAP_PERFMON")
        }
        guard f.btf.isSupported else {
            throw KernelError(what: "cannot trace", why: f.btf.detail, fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y")
        }
        for area in ReasonArea.allCases where area.required {
            if case .cannotRun(let why) = plan(for: area) { throw why.error }
        }
    }
}

/// A reason area's plan: the programs it needs, or why it cannot run.
public enum AreaPlan: Sendable {
    case run(Set<BPFProgram>)
    case cannotRun(CannotRun)

    public var programs: Set<BPFProgram> { if case .run(let p) = self { return p } else { return [] } }
    public var runs: Bool { if case .run = self { return true } else { return false } }
}

/// Why an area cannot run: what it needs and the probe that said no
/// (unsupported, or inconclusive without privileges).
public struct CannotRun: Sendable {
    /// What the area needs ("tp_btf/kfree_skb with NETFILTER_DROP").
    public var needs: String
    /// The probe that said no (never `.supported`).
    public var probe: ProbeResult
    /// The full error, where the area built one (the no-listener hook choice).
    var kernelError: KernelError?

    public init(needs: String, probe: ProbeResult) {
        self.needs = needs
        self.probe = probe
    }

    public var error: KernelError {
        kernelError ?? KernelError(what: "required hook \(needs) is unavailable", why: probe.detail,
                                   fix: "run `synsight doctor` for details")
    }
}
