import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// The outcome of one feature probe (after cilium/ebpf's three outcomes).
public enum ProbeResult: Sendable, Equatable {
    case supported(String)
    case unsupported(String)
    /// The probe could not run: it needs privileges this process lacks
    /// (EPERM/EACCES without root or CAP_BPF, kallsyms or tracefs hidden).
    /// It says nothing about the kernel.
    case inconclusive(String)

    public var isSupported: Bool { if case .supported = self { return true } else { return false } }
    public var isInconclusive: Bool { if case .inconclusive = self { return true } else { return false } }
    public var detail: String {
        switch self {
        case .supported(let s), .unsupported(let s), .inconclusive(let s): return s
        }
    }
}

/// What this kernel lets synsight see, probed by loading and by reading BTF,
/// never by comparing version numbers.
public struct KernelFeatures: Sendable {
    public var release: String
    public var btf: ProbeResult
    public var privileges: ProbeResult
    /// tp_btf/tcp_send_reset firing for sk==NULL with reason NO_SOCKET (6.10+).
    public var tcpSendResetNoSocket: ProbeResult
    /// tp_btf/kfree_skb with SKB_DROP_REASON_NO_SOCKET (5.17+).
    public var kfreeSkbNoSocket: ProbeResult
    /// fentry on tcp_v4_send_reset (BPF trampolines allowed).
    public var fentrySendReset: ProbeResult
    /// kprobes (CONFIG_KPROBES) and the symbol to probe.
    public var kprobeSendReset: ProbeResult
    public var inetSockSetState: ProbeResult
    public var schedProcessExit: ProbeResult
    /// How bind/listen/connect failures are seen (probed once: each probe
    /// loads a program, and start-up reads this several times).
    public var syscalls: SyscallProbes

    public static func probe() -> KernelFeatures {
        TraceFS.ensure()
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let btfPath = "/sys/kernel/btf/vmlinux"
        let btf: ProbeResult = access(btfPath, R_OK) == 0
            ? .supported(btfPath)
            : .unsupported("\(btfPath) is missing: the kernel was built without CONFIG_DEBUG_INFO_BTF")
        let privileges = Privileges.current

        func tp(_ name: String, needs: String) -> ProbeResult { probeTpBtf(name, btf: btf, missing: needs) }

        var sendReset = tp("tcp_send_reset", needs: "")
        if sendReset.isSupported {
            if syn_btf_enum_has("sk_rst_reason", "SK_RST_REASON_NO_SOCKET") != 1 {
                sendReset = .unsupported("tcp_send_reset has no reset reason and skips sk==NULL resets before 6.10 (commit 19822a980e19)")
            } else {
                sendReset = .supported("tcp_send_reset fires for sk==NULL with reason NO_SOCKET (6.10+)")
            }
        }
        var kfree = tp("kfree_skb", needs: "")
        if kfree.isSupported {
            kfree = syn_btf_enum_has("skb_drop_reason", "SKB_DROP_REASON_NO_SOCKET") == 1
                ? .supported("kfree_skb carries drop reason NO_SOCKET (5.17+)")
                : .unsupported("kfree_skb has no drop reasons before 5.17 (commit c504e5c2f964)")
        }
        var fentry: ProbeResult = .unsupported("no kernel BTF")
        if btf.isSupported {
            let rc = syn_probe_fentry("tcp_v4_send_reset")
            fentry = rc == 0 ? .supported("fentry/tcp_v4_send_reset loads")
                : trampolineRefusal("fentry/tcp_v4_send_reset", rc)
        }
        var kprobe = kprobeTarget("tcp_v4_send_reset", purpose: "")
        if kprobe.isSupported { kprobe = kprobeTarget("tcp_v6_send_reset", purpose: "") }
        if kprobe.isSupported { kprobe = .supported("kprobe PMU present, tcp_v{4,6}_send_reset in kallsyms") }

        return KernelFeatures(
            release: release, btf: btf, privileges: privileges,
            tcpSendResetNoSocket: sendReset, kfreeSkbNoSocket: kfree,
            fentrySendReset: fentry, kprobeSendReset: kprobe,
            inetSockSetState: tp("inet_sock_set_state", needs: "4.16+"),
            schedProcessExit: tp("sched_process_exit", needs: ""),
            syscalls: SyscallProbes.probe(btf: btf))
    }

    /// Can a tp_btf program attach to raw tracepoint `name`? `missing` says
    /// what it takes when the tracepoint is not in this kernel.
    static func probeTpBtf(_ name: String, btf: ProbeResult, missing: String) -> ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        let rc = syn_probe_tp_btf(name)
        if rc == 0 { return .supported("tp_btf/\(name) loads") }
        return failedProbe("tp_btf/\(name)", rc, "tp_btf/\(name): \(ErrnoName.name(-rc))"
            + (rc == -ENOENT ? " (tracepoint not in this kernel" + (missing.isEmpty ? ")" : "; \(missing))") : ""))
    }

    /// A probe that failed with `rc` (a negative errno). Without privileges,
    /// EPERM and EACCES mean "not allowed to ask", not "the kernel lacks
    /// it": inconclusive. Otherwise `unsupported` says why.
    static func failedProbe(_ what: String, _ rc: Int32, _ unsupported: @autoclosure () -> String) -> ProbeResult {
        if rc == -EPERM || rc == -EACCES, let lacking = lackingPrivileges(what) { return lacking }
        return .unsupported(unsupported())
    }

    /// Inconclusive when this process lacks the privileges probing needs
    /// (what it could not read or load is `what`); nil when it has them.
    static func lackingPrivileges(_ what: String) -> ProbeResult? {
        Privileges.current.isSupported ? nil : .inconclusive("\(what): not probed, needs root (or CAP_BPF and CAP_PERFMON)")
    }

    /// BPF programs (by function name in bpf/) that load only where their
    /// probe succeeded; every other non-`rst_` program always loads. Areas
    /// add their optional programs here.
    public var optionalPrograms: [String: ProbeResult] {
        var p: [String: ProbeResult] = [:]
        p.merge(syscallOptionalPrograms) { a, _ in a }
        p.merge(firewallOptionalPrograms) { a, _ in a }
        p.merge(overflowOptionalPrograms) { a, _ in a }
        p.merge(connectOptionalPrograms) { a, _ in a }
        return p
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

    public func chooseResetHook(forced: ResetHook? = nil) -> Result<ResetHook, KernelError> {
        if let forced {
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
}

/// Root, or the capabilities loading tracing programs needs.
public enum Privileges {
    /// This process's privileges, checked once.
    public static let current = check()

    static let capBPF = 39
    static let capPerfmon = 38
    static let capSysAdmin = 21

    public static func check() -> ProbeResult {
        if geteuid() == 0 { return .supported("running as root") }
        guard let caps = effectiveCapabilities() else {
            return .unsupported("cannot read /proc/self/status")
        }
        let has = { (bit: Int) in caps & (1 << UInt64(bit)) != 0 }
        if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
            return .supported("CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)")
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
