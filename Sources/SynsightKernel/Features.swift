import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// What this kernel lets synsight see, probed by loading and by reading BTF,
/// never by comparing version numbers. Probed once per run (`probe`): every
/// result is stored, so reading one again loads no program and reads no
/// file. ProbePlan turns it into the programs to load.
public struct KernelFeatures: Sendable {
    /// The hooks the caller chose instead of the probes (test switches).
    public var choices = HookChoices()
    public var release = ""
    public var btf: ProbeResult = .unsupported("not probed")
    public var privileges: ProbeResult = .unsupported("not probed")
    /// tp_btf/tcp_send_reset firing for sk==NULL with reason NO_SOCKET (6.10+).
    public var tcpSendResetNoSocket: ProbeResult = .unsupported("not probed")
    /// tp_btf/kfree_skb with SKB_DROP_REASON_NO_SOCKET (5.17+).
    public var kfreeSkbNoSocket: ProbeResult = .unsupported("not probed")
    /// fentry on tcp_v4_send_reset (BPF trampolines allowed).
    public var fentrySendReset: ProbeResult = .unsupported("not probed")
    /// kprobes (CONFIG_KPROBES) and the symbol to probe.
    public var kprobeSendReset: ProbeResult = .unsupported("not probed")
    public var inetSockSetState: ProbeResult = .unsupported("not probed")
    public var schedProcessExit: ProbeResult = .unsupported("not probed")
    /// tp_btf/tcp_destroy_sock (every kernel with tp_btf has it): a connect() its application gives up
    /// on, armed while a SYN is unanswered (bpf/timeouts.bpf.h).
    public var tcpDestroySock: ProbeResult = .unsupported("not probed")
    /// How bind/listen/connect failures are seen.
    public var syscalls = SyscallProbes()
    /// Firewall drops, ICMP rejects, retransmitted SYNs, soft errors.
    public var firewall = FirewallProbes()
    /// Listen-queue overflow and accept() failures.
    public var overflow = OverflowProbes()
    /// Injected resets: the refusing RST's TTL (Features+ResetTTL.swift).
    public var resetTTL = ResetTTLProbes()
    /// Connections without the state-change hook (Features+Connect.swift).
    public var connectWithoutStateHook: ProbeResult = .unsupported("not probed")
    /// The kernel's drop-reason names (enum skb_drop_reason and subsystems), read with the probes.
    public var dropReasons = DropReasonNames()
    /// The probed symbols' addresses, read in the background (PendingSymbols).
    var symbols = PendingSymbols(known: [:])
    /// [start, end) of tcp_rcv_state_process (the consume_skb call-site
    /// filter); waits for /proc/kallsyms.
    public var tcpRcvStateProcess: KernelSymbols.Range? { symbols.wait()["tcp_rcv_state_process"] }

    public init() {}

    /// Runs every probe once. `choices` sets preferred hooks aside.
    public static func probe(_ choices: HookChoices = HookChoices()) -> KernelFeatures {
        let tracefs = TraceFS.enter()
        defer { tracefs.leave() }
        var f = KernelFeatures()
        f.choices = choices
        var u = utsname()
        uname(&u)
        f.release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let btfPath = "/sys/kernel/btf/vmlinux"
        f.btf = access(btfPath, R_OK) == 0
            ? .supports(btfPath)
            : .unsupported("\(btfPath) is missing: the kernel was built without CONFIG_DEBUG_INFO_BTF")
        f.privileges = Privileges.current
        // One pass over /proc/kallsyms for every symbol a probe needs, on a
        // thread of its own (PendingSymbols): only the kprobe probes wait for it.
        let symbols = PendingSymbols(KernelSymbols.probed)
        f.symbols = symbols
        f.probeResets(symbols)
        f.inetSockSetState = probeTpBtf("inet_sock_set_state", btf: f.btf, missing: "4.16+")
        f.schedProcessExit = probeTpBtf("sched_process_exit", btf: f.btf, missing: "")
        f.tcpDestroySock = probeTpBtf("tcp_destroy_sock", btf: f.btf, missing: "")
        f.syscalls = SyscallProbes.probe(btf: f.btf, forced: choices.syscallEntry)
        f.firewall = FirewallProbes.probe(btf: f.btf)
        f.overflow = OverflowProbes.probe(f, symbols: symbols)
        f.resetTTL = ResetTTLProbes.probe(f, symbols: symbols)
        f.connectWithoutStateHook = f.probeConnectWithoutStateHook()
        f.dropReasons = KernelDropReasons.read()
        // Nothing after the probes reads the kernel's BTF through the shim:
        // free it before the programs load (each libbpf object parses its
        // own), or it stays in RSS for the whole run.
        syn_release_vmlinux_btf()
        return f
    }

    /// The four no-listener RST hooks.
    mutating func probeResets(_ symbols: PendingSymbols) {
        tcpSendResetNoSocket = Self.probeTpBtf("tcp_send_reset", btf: btf, missing: "")
        if tcpSendResetNoSocket.isSupported {
            tcpSendResetNoSocket = syn_btf_enum_has("sk_rst_reason", "SK_RST_REASON_NO_SOCKET") == 1
                ? .supports("tp_btf/tcp_send_reset", "tcp_send_reset fires for sk==NULL with reason NO_SOCKET (6.10+)")
                : .unsupported("tcp_send_reset has no reset reason and skips sk==NULL resets before 6.10 (commit 19822a980e19)")
        }
        kfreeSkbNoSocket = Self.probeTpBtf("kfree_skb", btf: btf, missing: "")
        if kfreeSkbNoSocket.isSupported {
            kfreeSkbNoSocket = syn_btf_enum_has("skb_drop_reason", "SKB_DROP_REASON_NO_SOCKET") == 1
                ? .supports("tp_btf/kfree_skb", "kfree_skb carries drop reason NO_SOCKET (5.17+)")
                : .unsupported("kfree_skb has no drop reasons before 5.17 (commit c504e5c2f964)")
        }
        fentrySendReset = .unsupported("no kernel BTF")
        if btf.isSupported {
            let rc = ProgramProbe.fentry("tcp_v4_send_reset")
            fentrySendReset = rc == 0 ? .supports("fentry/tcp_v{4,6}_send_reset", "fentry/tcp_v4_send_reset loads")
                : Self.trampolineRefusal("fentry/tcp_v4_send_reset", rc)
        }
        kprobeSendReset = Self.kprobeTarget("tcp_v4_send_reset", symbols, purpose: "")
        if kprobeSendReset.isSupported { kprobeSendReset = Self.kprobeTarget("tcp_v6_send_reset", symbols, purpose: "") }
        if kprobeSendReset.isSupported {
            kprobeSendReset = .supports("kprobe/tcp_v{4,6}_send_reset", "kprobe PMU present, tcp_v{4,6}_send_reset in kallsyms")
        }
    }

    /// Can a tp_btf program attach to raw tracepoint `name`? `missing` says
    /// what it takes when the tracepoint is not in this kernel.
    static func probeTpBtf(_ name: String, btf: ProbeResult, missing: String) -> ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        let rc = ProgramProbe.tpBtf(name)
        if rc == 0 { return .supports("tp_btf/\(name)", "tp_btf/\(name) loads") }
        return failedProbe("tp_btf/\(name)", rc, "tp_btf/\(name): \(ErrnoName.name(-rc))"
            + (rc == -ENOENT ? " (tracepoint not in this kernel" + (missing.isEmpty ? ")" : "; \(missing))") : ""))
    }

    /// A probe that failed with `rc` (a negative errno). Without privileges,
    /// EPERM and EACCES mean "not allowed to ask", not "the kernel lacks
    /// it": inconclusive. Otherwise `unsupported` says why.
    static func failedProbe(_ what: String, _ rc: Int32, _ unsupported: @autoclosure () -> String) -> ProbeResult {
        if rc == -EPERM || rc == -EACCES, let lacking = lackingPrivileges(what, errno: -rc) { return lacking }
        return .unsupported(unsupported())
    }

    /// Inconclusive when this process lacks the privileges probing needs
    /// (what it could not read or load is `what`); nil when it has them.
    static func lackingPrivileges(_ what: String, errno: Int32 = EPERM) -> ProbeResult? {
        Privileges.current.isSupported ? nil : .notProbed(what, errno: errno)
    }

    public func result(for hook: ResetHook) -> ProbeResult {
        switch hook {
        case .tcpSendReset: return tcpSendResetNoSocket
        case .fentry: return fentrySendReset
        case .kprobe: return kprobeSendReset
        case .kfreeSkb: return kfreeSkbNoSocket
        }
    }

    /// Preference order for the no-listener RST: the dedicated tracepoint,
    /// then the function that sends the RST (called only for RSTs: cheap),
    /// then the generic drop tracepoint (fires for every dropped packet).
    public static let resetPreference: [ResetHook] = [.tcpSendReset, .fentry, .kprobe, .kfreeSkb]

    /// The no-listener RST hook: the chosen one (`choices.reset`), else the
    /// first supported in order of preference.
    public func chooseResetHook() -> Result<ResetHook, KernelError> {
        if let forced = choices.reset {
            let r = result(for: forced)
            if r.isSupported { return .success(forced) }
            return .failure(KernelError(what: "hook \(forced.name) was requested", why: r.detail,
                                        fix: "run `synsight doctor` to see the hooks this kernel supports"))
        }
        for hook in Self.resetPreference where result(for: hook).isSupported { return .success(hook) }
        if Self.resetPreference.contains(where: { result(for: $0).isInconclusive }) {
            return .failure(KernelError(
                what: "cannot tell which hook sees no-listener resets",
                why: "probing the kernel needs root (or CAP_BPF and CAP_PERFMON): \(privileges.detail)",
                fix: "run it with sudo"))
        }
        return .failure(KernelError(
            what: "no hook can see no-listener resets on kernel \(release)",
            why: Self.resetPreference.map { "\($0.name): \(result(for: $0).detail)" }.joined(separator: "; "),
            fix: "synsight needs Linux 5.17+ with BTF, or fentry/kprobes"))
    }

    /// Every probe result, for what `doctor` could not probe without privileges.
    public var allResults: [ProbeResult] {
        [btf, privileges, tcpSendResetNoSocket, fentrySendReset, kprobeSendReset, kfreeSkbNoSocket,
         inetSockSetState, schedProcessExit, tcpDestroySock, connectWithoutStateHook]
            + syscalls.allResults + firewall.allResults + overflow.allResults + resetTTL.allResults
    }
}

/// Root, or the capabilities loading tracing programs needs.
public enum Privileges {
    /// This process's privileges, checked once.
    public static let current = check()

    static let capBPF = 39
    static let capPerfmon = 38
    static let capSysAdmin = 21

    public static func check() -> ProbeResult {
        if geteuid() == 0 { return .supports("root", "running as root") }
        guard let caps = effectiveCapabilities() else {
            return .unsupported("cannot read /proc/self/status")
        }
        let has = { (bit: Int) in caps & (1 << UInt64(bit)) != 0 }
        if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
            return .supports("capabilities", "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)")
        }
        return .unsupported("not root and missing CAP_BPF/CAP_PERFMON")
    }

    static func effectiveCapabilities() -> UInt64? {
        guard let text = ProcFS.read("/proc/self/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("CapEff:") {
            return UInt64(line.dropFirst(7).trimmingCharacters(in: " \t"), radix: 16)
        }
        return nil
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = self
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
