import CLibBPF
import CSynsightABI
import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

extension KernelFeatures {
    /// bpf_task_pt_regs (5.15+, tracepoint and tracing programs alike): an
    /// exit program reads the syscall's arguments from the saved user
    /// registers, so it needs no entry program (accept(), connect()).
    static let hasTaskPtRegs: Bool =
        libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_task_pt_regs, nil) == 1

    /// Optional programs of the overflow area, by program name, with their
    /// probe (its kfree_skb and tcp_send_reset handlers run in the
    /// shared-hook programs: Tracer.sharedHookPrograms).
    /// accept()/accept4() failing with EMFILE/ENFILE: fexit/__sys_accept4 where
    /// the syscall group uses BPF trampolines (then no syscall tracepoint is
    /// attached at all), else the classic exits, which read the listener's fd
    /// from the saved user registers.
    public var acceptExit: (fexit: ProbeResult, tracepoints: ProbeResult) {
        var fexit: ProbeResult = .unsupported("BPF trampolines not in use for syscalls")
        if syscalls.trampoline.isSupported {
            let rc = syn_probe_fexit("__sys_accept4")
            fexit = rc == 0 ? .supported("fexit/__sys_accept4")
                : Self.trampolineRefusal("fexit/__sys_accept4", rc)
        }
        if fexit.isSupported { return (fexit, .unsupported("fexit/__sys_accept4 is used")) }
        var tps = Self.syscallTracepoints(["sys_exit_accept4", "sys_exit_accept"])
        if tps.isSupported, !Self.hasTaskPtRegs {
            tps = .unsupported("bpf_task_pt_regs is missing (kernel older than 5.15)")
        }
        return (fexit, tps)
    }

    var overflowOptionalPrograms: [String: ProbeResult] {
        let (acceptFexit, accept) = acceptExit
        // Per SYN: fentry, else kprobe, on tcp_conn_request (runs only for SYNs
        // to listeners); else consume_skb (runs for every consumed packet).
        let fentry = overflowConnRequestFentry
        let kprobe: ProbeResult = fentry.isSupported ? .unsupported("fentry/tcp_conn_request is used") : overflowConnRequestKprobe
        let consume: ProbeResult = fentry.isSupported || kprobe.isSupported
            ? .unsupported("tcp_conn_request is hooked directly") : overflowConsumeSkb
        // ACK stage, where no tracepoint reports it: fexit, else kretprobe,
        // on tcp_v{4,6}_syn_recv_sock.
        let synRecv = overflowSynRecv
        let synRecvFexit: ProbeResult = synRecv.isSupported && synRecv.detail.hasPrefix("fexit") ? synRecv : .unsupported(synRecv.detail)
        let synRecvKprobe: ProbeResult = synRecv.isSupported && synRecv.detail.hasPrefix("kretprobe") ? synRecv : .unsupported(synRecv.detail)
        return [
            "ovf_fentry_conn_request": fentry,
            "ovf_kprobe_conn_request": kprobe,
            "ovf_consume_skb": consume,
            "ovf_fexit_syn_recv_v4": synRecvFexit, "ovf_fexit_syn_recv_v6": synRecvFexit,
            "ovf_kprobe_syn_recv_v4": synRecvKprobe, "ovf_kretprobe_syn_recv_v4": synRecvKprobe,
            "ovf_kprobe_syn_recv_v6": synRecvKprobe, "ovf_kretprobe_syn_recv_v6": synRecvKprobe,
            "iter_listeners": iterTCP,
            "ovf_exit_accept4": accept, "ovf_exit_accept": accept,
            "ovf_fx_exit_accept4": acceptFexit,
        ]
    }

    /// SYNSIGHT_OVERFLOW_HOOK=kprobe skips the fentry/fexit overflow programs
    /// (as --reset-hook does for no-listener resets), so the kprobe ones can be
    /// exercised where both work (the kernel matrix does).
    static var overflowKprobeForced: Bool {
        getenv("SYNSIGHT_OVERFLOW_HOOK").map { String(cString: $0) == "kprobe" } ?? false
    }

    public var overflowConnRequestFentry: ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        if Self.overflowKprobeForced { return .unsupported("disabled by SYNSIGHT_OVERFLOW_HOOK=kprobe") }
        let rc = syn_probe_fentry("tcp_conn_request")
        return rc == 0 ? .supported("fentry/tcp_conn_request: queue state as each SYN arrives")
            : Self.trampolineRefusal("fentry/tcp_conn_request", rc)
    }

    public var overflowConnRequestKprobe: ProbeResult {
        KernelFeatures.kprobeTarget("tcp_conn_request", purpose: "queue state as each SYN arrives")
    }

    /// The ACK-stage overflow hook where no tracepoint reports it (before
    /// 6.15 for drops, 6.10 for abort_on_overflow RSTs).
    public var overflowSynRecv: ProbeResult {
        if overflowAckDrop.isSupported && overflowAckReset.isSupported {
            return .unsupported("ACK-stage overflows are traced (kfree_skb and tcp_send_reset reasons)")
        }
        if btf.isSupported && !Self.overflowKprobeForced {
            let rc = syn_probe_fexit("tcp_v4_syn_recv_sock")
            if rc == 0 { return .supported("fexit/tcp_v{4,6}_syn_recv_sock: no child socket with the accept queue full") }
        }
        let k4 = KernelFeatures.kprobeTarget("tcp_v4_syn_recv_sock", purpose: "")
        let k6 = KernelFeatures.kprobeTarget("tcp_v6_syn_recv_sock", purpose: "")
        if k4.isSupported && k6.isSupported {
            return .supported("kretprobe/tcp_v{4,6}_syn_recv_sock: no child socket with the accept queue full")
        }
        return .unsupported("no fexit (BPF trampolines refused or no BTF) and \(k4.isSupported ? k6.detail : k4.detail)")
    }

    /// The syn_config flags for the ACK-stage programs.
    public var synRecvFlags: UInt32 {
        guard overflowSynRecv.isSupported else { return 0 }
        return (overflowAckDrop.isSupported ? 0 : UInt32(SYN_CFG_ACK_DROP_SYN_RECV.rawValue))
            | (overflowAckReset.isSupported ? 0 : UInt32(SYN_CFG_ACK_RESET_SYN_RECV.rawValue))
    }

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
    /// symbol is in /proc/kallsyms (not inlined away on this build).
    static func kprobeTarget(_ function: String, purpose: String) -> ProbeResult {
        guard syn_kprobes_available() else { return .unsupported("kernel built without CONFIG_KPROBES") }
        guard KernelSymbols.lookup(function) != nil else {
            // Without privileges /proc/kallsyms shows no addresses.
            return lackingPrivileges("/proc/kallsyms")
                ?? .unsupported("\(function) is not in /proc/kallsyms (inlined, or kptr_restrict)")
        }
        return .supported(purpose.isEmpty ? "kprobe/\(function)" : "kprobe/\(function): \(purpose)")
    }

    /// The per-SYN overflow method this kernel gets, in order of preference.
    public var overflowPerSYN: ProbeResult {
        let p = overflowOptionalPrograms
        for name in ["ovf_fentry_conn_request", "ovf_kprobe_conn_request", "ovf_consume_skb"] {
            if let r = p[name], r.isSupported { return r }
        }
        return overflowConsumeSkb
    }

    /// Per-SYN overflow detection: consume_skb must carry its call site
    /// (6.12+) and tcp_rcv_state_process's address range must be readable.
    public var overflowConsumeSkb: ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        let n = syn_btf_tp_nargs("consume_skb")
        guard n >= 2 else {
            return .unsupported("consume_skb has no call-site argument before 6.12: use fentry/tcp_conn_request where allowed")
        }
        guard KernelSymbols.range(of: "tcp_rcv_state_process") != nil else {
            return Self.lackingPrivileges("/proc/kallsyms")
                ?? .unsupported("tcp_rcv_state_process not found in /proc/kallsyms (kptr_restrict?)")
        }
        return .supported("consume_skb in tcp_rcv_state_process + listener sk_drops, per SYN")
    }

    public var overflowAckDrop: ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        return syn_btf_enum_has("skb_drop_reason", "SKB_DROP_REASON_TCP_LISTEN_OVERFLOW") == 1 && syn_btf_tp_nargs("kfree_skb") >= 4
            ? .supported("kfree_skb TCP_LISTEN_OVERFLOW with rx_sk (6.15+)")
            : .unsupported("no TCP_LISTEN_OVERFLOW drop reason before 6.15 (ACK-stage drops are NOT_SPECIFIED)")
    }

    public var overflowAckReset: ProbeResult {
        tcpSendResetNoSocket.isSupported && syn_btf_enum_has("sk_rst_reason", "SK_RST_REASON_INVALID_SYN") == 1
            ? .supported("tcp_send_reset from the listener, reason INVALID_SYN (6.10+)")
            : .unsupported("tcp_send_reset has no reset reason before 6.10")
    }

    public var iterTCP: ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        return syn_btf_has("struct", "bpf_iter__tcp") == 1
            ? .supported("iter/tcp, run in each network namespace")
            : .unsupported("no iter/tcp before 5.9")
    }

    /// Classic syscall tracepoints, checked where libbpf will look for them
    /// (SyscallProbes.classicEvent).
    public static func syscallTracepoints(_ names: [String]) -> ProbeResult {
        names.allSatisfy(SyscallProbes.classicEvent)
            ? .supported("syscall tracepoints \(names.joined(separator: ", "))")
            : lackingPrivileges("tracefs")
                ?? .unsupported("syscall tracepoints missing (CONFIG_FTRACE_SYSCALLS, or tracefs not mounted)")
    }
}

/// Addresses of kernel functions, from /proc/kallsyms (root sees real ones).
enum KernelSymbols {
    /// [start, end) of a text symbol: end is the lowest symbol address above start.
    package static func range(of name: String) -> (UInt64, UInt64)? {
        if name == "tcp_rcv_state_process" { return tcpRcvStateProcess }
        return lookup(name)
    }

    static let tcpRcvStateProcess: (UInt64, UInt64)? = lookup("tcp_rcv_state_process")

    /// One pass over the raw bytes of /proc/kallsyms (120k+ lines): split
    /// into Swift Strings it took most of synsight's start-up (about 2 s of
    /// 3.6 s on a 2-vCPU VM, docs/benchmarks.md); as bytes it is a few ms
    /// on top of the kernel's own time to generate the file.
    static func lookup(_ name: String) -> (UInt64, UInt64)? {
        guard let bytes = ProcFS.readBytes("/proc/kallsyms", limit: 64 << 20) else { return nil }
        return lookup(Array(name.utf8), in: bytes)
    }

    /// Lines are `<hex address> <type> <name>[\t[module]]`.
    static func lookup(_ name: [UInt8], in text: [UInt8]) -> (UInt64, UInt64)? {
        var addrs: [UInt64] = []
        addrs.reserveCapacity(text.count / 40)
        var start: UInt64?
        text.withUnsafeBufferPointer { buf in
            let n = buf.count
            var i = 0
            while i < n {
                // Address.
                var addr: UInt64 = 0
                var digits = 0
                while i < n {
                    let c = buf[i]
                    let v: UInt8
                    switch c {
                    case 0x30...0x39: v = c - 0x30
                    case 0x61...0x66: v = c - 0x61 + 10
                    case 0x41...0x46: v = c - 0x41 + 10
                    default: v = 0xFF
                    }
                    if v == 0xFF { break }
                    addr = addr << 4 | UInt64(v)
                    digits += 1
                    i += 1
                }
                // " <type> "
                let nameStart = i + 3
                var j = nameStart
                while j < n, buf[j] != 0x0A, buf[j] != 0x09, buf[j] != 0x20 { j += 1 }
                if digits > 0, addr != 0, nameStart <= j, i < n, buf[i] == 0x20 {
                    addrs.append(addr)
                    if start == nil, j - nameStart == name.count,
                       name.withUnsafeBufferPointer({ memcmp($0.baseAddress!, buf.baseAddress! + nameStart, name.count) == 0 }) {
                        start = addr
                    }
                }
                while j < n, buf[j] != 0x0A { j += 1 }
                i = j + 1
            }
        }
        guard let s = start else { return nil }
        var end = UInt64.max
        for a in addrs where a > s && a < end { end = a }
        return end == UInt64.max ? nil : (s, end)
    }
}
