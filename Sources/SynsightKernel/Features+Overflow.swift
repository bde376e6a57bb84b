import CLibBPF
import CSynsightABI
import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// What bpf/overflow.bpf.h needs: listen-queue overflow (SYN and ACK
/// stage) and accept() failing with EMFILE/ENFILE. Probed once.
public struct OverflowProbes: Sendable {
    /// Per SYN: fentry, else kprobe, on tcp_conn_request (runs only for
    /// SYNs to listeners); else consume_skb (runs for every consumed packet).
    public var connRequestFentry: ProbeResult = .unsupported("not probed")
    public var connRequestKprobe: ProbeResult = .unsupported("not probed")
    /// consume_skb with its call site (6.12+) inside tcp_rcv_state_process.
    public var consumeSkb: ProbeResult = .unsupported("not probed")
    /// kfree_skb TCP_LISTEN_OVERFLOW with rx_sk (6.15+).
    public var ackDrop: ProbeResult = .unsupported("not probed")
    /// tcp_send_reset from the listener, reason INVALID_SYN (6.10+).
    public var ackReset: ProbeResult = .unsupported("not probed")
    /// The ACK-stage hook where no tracepoint reports it: fexit, else
    /// kretprobe, on tcp_v{4,6}_syn_recv_sock (`synRecvHook` says which).
    public var synRecv: ProbeResult = .unsupported("not probed")
    public var synRecvHook: ReturnHook?
    /// The per-SYN hook's exit beside it, fexit (beside the fentry) or
    /// kretprobe (beside the kprobe) on tcp_conn_request: a SYN left
    /// unanswered (no route back, the SYN backlog's reserve), which the
    /// entry, running before the decision, cannot see.
    public var connRequestExit: ProbeResult = .unsupported("not probed")
    /// iter/tcp: listeners that predate synsight.
    public var iterTCP: ProbeResult = .unsupported("not probed")
    /// accept()/accept4() failing with EMFILE/ENFILE: fexit/__sys_accept4
    /// where the syscall group uses BPF trampolines, else the classic exits
    /// (the listener's fd read from the saved user registers).
    public var acceptFexit: ProbeResult = .unsupported("not probed")
    public var acceptTracepoints: ProbeResult = .unsupported("not probed")

    /// How a function's return is hooked: fexit, else a kretprobe.
    public enum ReturnHook: Sendable, Equatable { case fexit, kretprobe }

    public init() {}

    var allResults: [ProbeResult] {
        [connRequestFentry, connRequestKprobe, consumeSkb, ackDrop, ackReset, synRecv, connRequestExit, iterTCP, acceptFexit, acceptTracepoints]
    }

    /// The per-SYN method in use, in order of preference (fentry, kprobe, consume_skb).
    public var perSYN: ProbeResult {
        [connRequestFentry, connRequestKprobe, consumeSkb].first(where: \.isSupported) ?? consumeSkb
    }

    /// A SYN a listener drops with neither queue full (no_route_back, the
    /// SYN backlog's reserve): consume_skb runs after tcp_conn_request
    /// decided; fentry and kprobes see the queues as the SYN arrives, before
    /// the drop, so their exit beside them sees it.
    public var unanswered: ProbeResult {
        let per = perSYN
        guard per.isSupported else { return per }
        if per == consumeSkb { return per }
        if connRequestExit.isSupported { return connRequestExit }
        return .unsupported("the per-SYN hook \(per.hook?.name ?? "in use") runs before tcp_conn_request decides, and "
            + "its exit does not load (\(connRequestExit.detail))")
    }

    /// The accept() exit in use (fexit, else the classic tracepoints).
    public var accept: ProbeResult { acceptFexit.isSupported ? acceptFexit : acceptTracepoints }

    /// The syn_config flags for the ACK-stage programs.
    public var synRecvFlags: UInt32 {
        guard synRecv.isSupported else { return 0 }
        return (ackDrop.isSupported ? 0 : UInt32(SYN_CFG_ACK_DROP_SYN_RECV.rawValue))
            | (ackReset.isSupported ? 0 : UInt32(SYN_CFG_ACK_RESET_SYN_RECV.rawValue))
    }

    static func probe(_ f: KernelFeatures, symbols: PendingSymbols) -> OverflowProbes {
        var p = OverflowProbes()
        let btf = f.btf.isSupported
        let kprobeForced = f.choices.overflow == .kprobe
        let disabled = ProbeResult.unsupported("disabled by --force-hook overflow=kprobe")
        if !btf {
            p.connRequestFentry = .unsupported("no kernel BTF")
        } else if kprobeForced {
            p.connRequestFentry = disabled
        } else {
            let rc = ProgramProbe.fentry("tcp_conn_request")
            p.connRequestFentry = rc == 0 ? .supports("fentry/tcp_conn_request", "fentry/tcp_conn_request: queue state as each SYN arrives")
                : KernelFeatures.trampolineRefusal("fentry/tcp_conn_request", rc)
        }
        p.connRequestKprobe = p.connRequestFentry.isSupported ? .unsupported("fentry/tcp_conn_request is used")
            : KernelFeatures.kprobeTarget("tcp_conn_request", symbols, purpose: "queue state as each SYN arrives")
        p.consumeSkb = p.connRequestFentry.isSupported || p.connRequestKprobe.isSupported
            ? .unsupported("tcp_conn_request is hooked directly") : probeConsumeSkb(btf: f.btf)
        p.ackDrop = btf && syn_btf_enum_has("skb_drop_reason", "SKB_DROP_REASON_TCP_LISTEN_OVERFLOW") == 1 && syn_btf_tp_nargs("kfree_skb") >= 4
            ? .supports("tp_btf/kfree_skb", "kfree_skb TCP_LISTEN_OVERFLOW with rx_sk (6.15+)")
            : .unsupported(btf ? "no TCP_LISTEN_OVERFLOW drop reason before 6.15 (ACK-stage drops are NOT_SPECIFIED)" : "no kernel BTF")
        p.ackReset = f.tcpSendResetNoSocket.isSupported && syn_btf_enum_has("sk_rst_reason", "SK_RST_REASON_INVALID_SYN") == 1
            ? .supports("tp_btf/tcp_send_reset", "tcp_send_reset from the listener, reason INVALID_SYN (6.10+)")
            : .unsupported("tcp_send_reset has no reset reason before 6.10")
        (p.synRecv, p.synRecvHook) = probeSynRecv(p, btf: btf, kprobeForced: kprobeForced, symbols: symbols)
        p.connRequestExit = probeConnRequestExit(p)
        p.iterTCP = !btf ? .unsupported("no kernel BTF")
            : syn_btf_has("struct", "bpf_iter__tcp") == 1 ? .supports("iter/tcp", "iter/tcp, run in each network namespace")
            : .unsupported("no iter/tcp before 5.9")
        (p.acceptFexit, p.acceptTracepoints) = probeAccept(f.syscalls)
        return p
    }

    /// The ACK-stage overflow hook where no tracepoint reports it (before
    /// 6.15 for drops, 6.10 for abort_on_overflow RSTs).
    static func probeSynRecv(_ p: OverflowProbes, btf: Bool, kprobeForced: Bool,
                             symbols: PendingSymbols) -> (ProbeResult, ReturnHook?) {
        if p.ackDrop.isSupported && p.ackReset.isSupported {
            return (.unsupported("ACK-stage overflows are traced (kfree_skb and tcp_send_reset reasons)"), nil)
        }
        if btf && !kprobeForced && ProgramProbe.fexit("tcp_v4_syn_recv_sock") == 0 {
            return (.supports("fexit/tcp_v{4,6}_syn_recv_sock",
                              "fexit/tcp_v{4,6}_syn_recv_sock: no child socket with the accept queue full"), .fexit)
        }
        let k4 = KernelFeatures.kprobeTarget("tcp_v4_syn_recv_sock", symbols, purpose: "")
        let k6 = KernelFeatures.kprobeTarget("tcp_v6_syn_recv_sock", symbols, purpose: "")
        if k4.isSupported && k6.isSupported {
            return (.supports("kretprobe/tcp_v{4,6}_syn_recv_sock",
                              "kretprobe/tcp_v{4,6}_syn_recv_sock: no child socket with the accept queue full"), .kretprobe)
        }
        return (.unsupported("no fexit (BPF trampolines refused or no BTF) and \(k4.isSupported ? k6.detail : k4.detail)"), nil)
    }

    /// Only beside the fentry or kprobe on tcp_conn_request, as its own
    /// kind (consume_skb sees the drop itself).
    static func probeConnRequestExit(_ p: OverflowProbes) -> ProbeResult {
        let purpose = "a SYN tcp_conn_request dropped past its queue checks (no route back, the SYN backlog's reserve)"
        if p.connRequestFentry.isSupported {
            let rc = ProgramProbe.fexit("tcp_conn_request")
            return rc == 0 ? .supports("fexit/tcp_conn_request", "fexit/tcp_conn_request: \(purpose)")
                : KernelFeatures.trampolineRefusal("fexit/tcp_conn_request", rc)
        }
        if p.connRequestKprobe.isSupported {
            // The kprobe's symbol is the kretprobe's.
            return .supports("kretprobe/tcp_conn_request", "kretprobe/tcp_conn_request: \(purpose)")
        }
        return .unsupported("used only beside fentry or kprobe on tcp_conn_request")
    }

    /// Per-SYN overflow detection: consume_skb must carry its call site
    /// (6.12+) and tcp_rcv_state_process's address range must be readable.
    /// Decided without waiting for /proc/kallsyms (PendingSymbols): the
    /// function is in the kernel's BTF (so not inlined: it is exported) and
    /// kallsyms shows addresses. The Tracer reads its range after loading and
    /// says so if it is missing after all.
    static func probeConsumeSkb(btf: ProbeResult) -> ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        guard syn_btf_tp_nargs("consume_skb") >= 2 else {
            return .unsupported("consume_skb has no call-site argument before 6.12: use fentry/tcp_conn_request where allowed")
        }
        guard syn_btf_has("func", "tcp_rcv_state_process") == 1 else {
            return .unsupported("tcp_rcv_state_process is not in the kernel's BTF")
        }
        guard KernelSymbolTable.addressesVisible() else {
            return KernelFeatures.lackingPrivileges("/proc/kallsyms", errno: EACCES)
                ?? .unsupported("/proc/kallsyms shows no addresses (kptr_restrict)")
        }
        return .supports("tp_btf/consume_skb", "tp_btf/consume_skb in tcp_rcv_state_process + listener sk_drops")
    }

    static func probeAccept(_ syscalls: SyscallProbes) -> (fexit: ProbeResult, tracepoints: ProbeResult) {
        var fexit: ProbeResult = .unsupported("BPF trampolines not in use for syscalls")
        if syscalls.trampoline.isSupported {
            let rc = ProgramProbe.fexit("__sys_accept4")
            fexit = rc == 0 ? .supports("fexit/__sys_accept4") : KernelFeatures.trampolineRefusal("fexit/__sys_accept4", rc)
        }
        if fexit.isSupported { return (fexit, .unsupported("fexit/__sys_accept4 is used")) }
        var tps = KernelFeatures.syscallTracepoints(["sys_exit_accept4", "sys_exit_accept"])
        if tps.isSupported, !KernelFeatures.hasTaskPtRegs {
            tps = .unsupported("bpf_task_pt_regs is missing (kernel older than 5.15)")
        }
        return (fexit, tps)
    }
}

extension KernelFeatures {
    /// bpf_task_pt_regs (5.15+, tracepoint and tracing programs alike): an
    /// exit program reads the syscall's arguments from the saved user
    /// registers, so it needs no entry program (accept(), connect()).
    static let hasTaskPtRegs: Bool =
        libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_task_pt_regs, nil) == 1

    /// Why a BPF trampoline (`what`: "fentry/fn" or "fexit/fn") did not load,
    /// from its probe's negative errno: one wording for every probe, so
    /// `doctor` says it the same way for each hook. EPERM means refused by
    /// the kernel only when synsight had the privileges to ask.
    static func trampolineRefusal(_ what: String, _ rc: Int32) -> ProbeResult {
        failedProbe(what, rc, {
            switch rc {
            case -EPERM: return "BPF trampolines refused (EPERM): lockdown or a restricted hypervisor"
            case -ENOENT: return "\(what): not in the kernel's BTF (inlined or renamed)"
            default: return "\(what): \(ErrnoName.name(-rc))"
            }
        }())
    }

    /// A function kprobes can attach to: the kprobe PMU exists and the
    /// symbol is in /proc/kallsyms (`symbols`, read once; not inlined away on this build).
    static func kprobeTarget(_ function: String, _ symbols: PendingSymbols, purpose: String) -> ProbeResult {
        guard syn_kprobes_available() else { return .unsupported("kernel built without CONFIG_KPROBES") }
        guard symbols.has(function) else {
            // Without privileges /proc/kallsyms shows no addresses.
            return lackingPrivileges("/proc/kallsyms", errno: EACCES)
                ?? .unsupported("\(function) is not in /proc/kallsyms (inlined, or kptr_restrict)")
        }
        return .supports("kprobe/\(function)", purpose.isEmpty ? "kprobe/\(function)" : "kprobe/\(function): \(purpose)")
    }

    /// Classic syscall tracepoints, checked where libbpf will look for them
    /// (SyscallProbes.classicEvent).
    public static func syscallTracepoints(_ names: [String]) -> ProbeResult {
        names.allSatisfy(SyscallProbes.classicEvent)
            ? .supports(names.map { "syscalls:\($0)" }.joined(separator: ", "), "syscall tracepoints \(names.joined(separator: ", "))")
            : lackingPrivileges("tracefs")
                ?? .unsupported("syscall tracepoints missing (CONFIG_FTRACE_SYSCALLS, or tracefs not mounted)")
    }
}

extension ReasonArea {
    /// Per SYN: fentry, else kprobe on tcp_conn_request, else consume_skb,
    /// each attached on anomaly by OverflowArming, which runs the watch.
    /// ACK stage: the kfree_skb and tcp_send_reset reasons, else fexit or
    /// kretprobe on tcp_v{4,6}_syn_recv_sock (armed with the per-SYN
    /// program). iter/tcp for older listeners.
    static func overflowPlan(_ f: KernelFeatures) -> AreaPlan {
        let p = f.overflow
        var programs: Set<BPFProgram> = []
        if p.connRequestFentry.isSupported {
            programs.formUnion([.ovfFentryConnRequest, .runOvfWatch])
            if p.connRequestExit.isSupported { programs.insert(.ovfFexitConnRequest) }
        } else if p.connRequestKprobe.isSupported {
            programs.formUnion([.ovfKprobeConnRequest, .runOvfWatch])
            if p.connRequestExit.isSupported { programs.insert(.ovfKretprobeConnRequest) }
        } else if p.consumeSkb.isSupported {
            programs.formUnion([.ovfConsumeSkb, .runOvfWatch])
        }
        if p.ackDrop.isSupported { programs.insert(.onKfreeSkb) }
        if p.ackReset.isSupported { programs.insert(.onTcpSendReset) }
        switch p.synRecvHook {
        case .fexit: programs.formUnion([.ovfFexitSynRecvV4, .ovfFexitSynRecvV6])
        case .kretprobe:
            programs.formUnion([.ovfKprobeSynRecvV4, .ovfKretprobeSynRecvV4, .ovfKprobeSynRecvV6, .ovfKretprobeSynRecvV6])
        case nil: break
        }
        guard !programs.isEmpty else {
            return .cannotRun(CannotRun(needs: "a per-SYN or ACK-stage overflow hook", probe: p.perSYN))
        }
        if p.iterTCP.isSupported { programs.insert(.iterListeners) }
        return .run(programs)
    }

    /// accept() exits: fexit/__sys_accept4, else the classic tracepoints.
    static func fdExhaustedPlan(_ f: KernelFeatures) -> AreaPlan {
        let p = f.overflow
        if p.acceptFexit.isSupported { return .run([.ovfFxExitAccept4]) }
        if p.acceptTracepoints.isSupported { return .run([.ovfExitAccept4, .ovfExitAccept]) }
        return .cannotRun(CannotRun(needs: "an accept() exit hook", probe: p.accept))
    }
}
