import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// How bind/listen/connect failures are seen on this kernel (bpf/syscalls.bpf.h).
public struct SyscallProbes: Sendable {
    /// fentry+fexit on __sys_bind and __sys_listen, fexit on __sys_connect:
    /// BPF trampolines on the syscalls' own functions. Preferred: no syscall
    /// tracepoint is attached, so the syscalls of the host stay on their fast
    /// path (a syscall tracepoint puts every syscall of every task on the
    /// slow path, TIF_SYSCALL_TRACEPOINT).
    public var trampoline: ProbeResult = .unsupported("not probed")
    /// syscalls:sys_{enter,exit}_{bind,listen,connect}: classic tracepoints,
    /// filtered by the kernel; attaching needs tracefs mounted.
    public var classic: ProbeResult
    /// tp_btf/sys_enter + sys_exit: every syscall, filtered in BPF; no tracefs needed.
    public var raw: ProbeResult
    /// tp_btf/cap_capable (6.14+): tells the privileged-port EACCES apart.
    public var capCapable: ProbeResult
    /// tp_btf/selinux_audited (5.10+), and whether SELinux is enforcing at all.
    public var selinuxAudited: ProbeResult
    public var selinuxState: String
    /// Landlock: the landlock_restrict_self exit (classic or raw) + fork inheritance.
    public var landlock: ProbeResult
    /// connect() traced at exit only, its arguments read from the saved user
    /// registers (bpf_task_pt_regs, 5.15+): no entry program and no map
    /// update per connect() on the host (bpf/syscalls.bpf.h).
    public var connectExitOnly: Bool = false

    /// The entry group in use: trampolines, else classic, else raw.
    public var entry: ProbeResult { trampoline.isSupported ? trampoline : classic.isSupported ? classic : raw }
    public var entryName: String {
        if trampoline.isSupported { return "fentry+fexit/__sys_{bind,listen} + fexit/__sys_connect" }
        guard classic.isSupported else { return "tp_btf/sys_enter + sys_exit (raw_syscalls)" }
        return connectExitOnly ? "syscalls:sys_{enter,exit}_{bind,listen} + sys_exit_connect"
            : "syscalls:sys_{enter,exit}_{bind,listen,connect}"
    }

    public var hookSet: SyscallHookSet {
        SyscallHookSet(capability: capCapable.isSupported, selinux: selinuxAudited.isSupported)
    }

    /// libbpf 1.1 reads tracepoint ids from /sys/kernel/debug/tracing when it
    /// exists, else from /sys/kernel/tracing (tracefs must be mounted there).
    static var tracefsRoot: String {
        access("/sys/kernel/debug/tracing", F_OK) == 0 ? "/sys/kernel/debug/tracing" : "/sys/kernel/tracing"
    }

    static func classicEvent(_ name: String) -> Bool {
        access("\(tracefsRoot)/events/syscalls/\(name)/id", R_OK) == 0
    }

    /// The kernel function of a syscall (the architecture's wrapper).
    static func syscallFunction(_ name: String) -> String {
        #if arch(arm64)
        return "__arm64_sys_\(name)"
        #else
        return "__x64_sys_\(name)"
        #endif
    }

    /// SYNSIGHT_SYSCALL_ENTRY=classic or =raw: skip the preferred groups, so
    /// the tests (and a user on a kernel where one misbehaves) can exercise
    /// the others where they all work.
    static var forcedEntry: String? { getenv("SYNSIGHT_SYSCALL_ENTRY").map { String(cString: $0) } }

    static func probeTrampolines() -> ProbeResult {
        if let f = forcedEntry, f == "classic" || f == "raw" {
            return .unsupported("disabled by SYNSIGHT_SYSCALL_ENTRY=\(f)")
        }
        // connect() is traced at exit only; an SELinux denial inside it makes
        // its in-flight entry from the saved user registers.
        guard KernelFeatures.hasTaskPtRegs else { return .unsupported("bpf_task_pt_regs is missing (kernel older than 5.15)") }
        for (fn, exit) in [("__sys_connect", true), ("__sys_bind", false), ("__sys_bind", true),
                           ("__sys_listen", false), ("__sys_listen", true)] {
            let rc = exit ? syn_probe_fexit(fn) : syn_probe_fentry(fn)
            if rc == 0 { continue }
            return KernelFeatures.trampolineRefusal("\(exit ? "fexit" : "fentry")/\(fn)", rc)
        }
        return .supported("BPF trampolines on the syscall functions")
    }

    public static func probe(btf: ProbeResult) -> SyscallProbes {
        func tp(_ name: String, _ what: String) -> ProbeResult {
            KernelFeatures.probeTpBtf(name, btf: btf, missing: what)
        }
        let events = ["sys_enter_bind", "sys_exit_bind", "sys_enter_listen", "sys_exit_listen",
                      "sys_enter_connect", "sys_exit_connect"]
        var classic: ProbeResult = events.allSatisfy(classicEvent)
            ? .supported("classic syscall tracepoints under \(tracefsRoot)")
            : KernelFeatures.lackingPrivileges("tracefs")
                ?? .unsupported("syscall tracepoint ids not readable under \(tracefsRoot) (tracefs not mounted, or no CONFIG_FTRACE_SYSCALLS)")
        // Lets the tests (and a user on a kernel where the classic events
        // misbehave) exercise the raw path where both work.
        if forcedEntry == "raw" {
            classic = .unsupported("disabled by SYNSIGHT_SYSCALL_ENTRY=raw")
        }
        let trampoline: ProbeResult = btf.isSupported ? probeTrampolines() : .unsupported("no kernel BTF")
        var raw = tp("sys_enter", "raw_syscalls tracepoint missing")
        if raw.isSupported { raw = tp("sys_exit", "raw_syscalls tracepoint missing") }
        let cap = tp("cap_capable", "tracepoint added in 6.14; privileged ports are inferred from ip_unprivileged_port_start")
        let avc = tp("selinux_audited", "needs 5.10+ with CONFIG_SECURITY_SELINUX")
        let selinuxState: String
        if let s = ProcFS.read("/sys/fs/selinux/enforce")?.first {
            selinuxState = s == "1" ? "SELinux enforcing" : "SELinux permissive"
        } else {
            selinuxState = "SELinux not active"
        }
        let landlock: ProbeResult
        if trampoline.isSupported {
            let fn = syscallFunction("landlock_restrict_self")
            let rc = syn_probe_fexit(fn)
            let refusal = KernelFeatures.trampolineRefusal("fexit/\(fn)", rc)
            landlock = rc == 0 ? .supported("fexit/\(fn) + tp_btf/sched_process_fork")
                : refusal.isInconclusive ? refusal : .unsupported(refusal.detail + " (Landlock needs 5.13+)")
        } else if classic.isSupported {
            landlock = classicEvent("sys_exit_landlock_restrict_self")
                ? .supported("syscalls:sys_exit_landlock_restrict_self + tp_btf/sched_process_fork")
                : .unsupported("no landlock_restrict_self syscall tracepoint (Landlock needs 5.13+)")
        } else {
            landlock = raw.isSupported
                ? .supported("landlock_restrict_self seen in tp_btf/sys_exit + tp_btf/sched_process_fork")
                : raw
        }
        return SyscallProbes(trampoline: trampoline, classic: classic, raw: raw, capCapable: cap, selinuxAudited: avc,
                             selinuxState: selinuxState, landlock: landlock,
                             connectExitOnly: KernelFeatures.hasTaskPtRegs)
    }
}

extension KernelFeatures {
    /// Optional programs of bpf/syscall*.bpf.h, by program name, with their probe.
    var syscallOptionalPrograms: [String: ProbeResult] {
        let s = syscalls
        let fx = s.trampoline
        let classic: ProbeResult = fx.isSupported ? .unsupported("BPF trampolines used instead") : s.classic
        let rawEntry: ProbeResult = fx.isSupported || s.classic.isSupported
            ? .unsupported("\(fx.isSupported ? "BPF trampolines" : "classic syscall tracepoints") used instead") : s.raw
        var p: [String: ProbeResult] = [:]
        for name in ["sc_tp_enter_bind", "sc_tp_exit_bind", "sc_tp_enter_listen", "sc_tp_exit_listen",
                     "sc_tp_enter_connect", "sc_tp_exit_connect"] {
            p[name] = classic
        }
        if s.connectExitOnly, classic.isSupported {
            p["sc_tp_enter_connect"] = .unsupported("connect() is traced at exit only (its arguments read with bpf_task_pt_regs)")
        }
        for name in ["sc_fx_enter_bind", "sc_fx_exit_bind", "sc_fx_enter_listen", "sc_fx_exit_listen", "sc_fx_exit_connect"] {
            p[name] = fx
        }
        p["sc_fx_exit_landlock"] = fx.isSupported ? s.landlock : .unsupported("BPF trampolines not in use")
        p["sc_tp_exit_landlock"] = classic.isSupported ? s.landlock : .unsupported("classic syscall tracepoints not in use")
        p["sc_raw_enter"] = rawEntry
        p["sc_raw_exit"] = rawEntry
        p["sc_cap_capable"] = s.capCapable
        p["sc_selinux_audited"] = s.selinuxAudited
        return p
    }
}
