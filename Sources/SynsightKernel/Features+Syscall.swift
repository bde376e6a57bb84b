import CSynsightShim
import Glibc
import SynsightCore

/// How bind/listen/connect failures are seen on this kernel (bpf/syscalls.bpf.h).
public struct SyscallProbes: Sendable {
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

    /// The entry group in use: classic if it can attach, else raw.
    public var entry: ProbeResult { classic.isSupported ? classic : raw }
    public var entryName: String {
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

    public static func probe(btf: ProbeResult) -> SyscallProbes {
        func tp(_ name: String, _ what: String) -> ProbeResult {
            KernelFeatures.probeTpBtf(name, btf: btf, missing: what)
        }
        let events = ["sys_enter_bind", "sys_exit_bind", "sys_enter_listen", "sys_exit_listen",
                      "sys_enter_connect", "sys_exit_connect"]
        var classic: ProbeResult = events.allSatisfy(classicEvent)
            ? .supported("classic syscall tracepoints under \(tracefsRoot)")
            : .unsupported("syscall tracepoint ids not readable under \(tracefsRoot) (tracefs not mounted, or no CONFIG_FTRACE_SYSCALLS)")
        // Lets the tests (and a user on a kernel where the classic events
        // misbehave) exercise the raw path where both work.
        if let v = getenv("SYNSIGHT_SYSCALL_ENTRY"), String(cString: v) == "raw" {
            classic = .unsupported("disabled by SYNSIGHT_SYSCALL_ENTRY=raw")
        }
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
        if classic.isSupported {
            landlock = classicEvent("sys_exit_landlock_restrict_self")
                ? .supported("syscalls:sys_exit_landlock_restrict_self + tp_btf/sched_process_fork")
                : .unsupported("no landlock_restrict_self syscall tracepoint (Landlock needs 5.13+)")
        } else {
            landlock = raw.isSupported
                ? .supported("landlock_restrict_self seen in tp_btf/sys_exit + tp_btf/sched_process_fork")
                : raw
        }
        return SyscallProbes(classic: classic, raw: raw, capCapable: cap, selinuxAudited: avc,
                             selinuxState: selinuxState, landlock: landlock,
                             connectExitOnly: KernelFeatures.hasTaskPtRegs)
    }
}

extension KernelFeatures {
    public var syscalls: SyscallProbes { SyscallProbes.probe(btf: btf) }

    /// Optional programs of bpf/syscall*.bpf.h, by program name, with their probe.
    var syscallOptionalPrograms: [String: ProbeResult] {
        let s = syscalls
        let rawEntry: ProbeResult = s.classic.isSupported ? .unsupported("classic syscall tracepoints used instead") : s.raw
        var p: [String: ProbeResult] = [:]
        for name in ["sc_tp_enter_bind", "sc_tp_exit_bind", "sc_tp_enter_listen", "sc_tp_exit_listen",
                     "sc_tp_enter_connect", "sc_tp_exit_connect"] {
            p[name] = s.classic
        }
        if s.connectExitOnly {
            p["sc_tp_enter_connect"] = .unsupported("connect() is traced at exit only (its arguments read with bpf_task_pt_regs)")
        }
        p["sc_tp_exit_landlock"] = s.classic.isSupported ? s.landlock : .unsupported("raw entry in use")
        p["sc_raw_enter"] = rawEntry
        p["sc_raw_exit"] = rawEntry
        p["sc_cap_capable"] = s.capCapable
        p["sc_selinux_audited"] = s.selinuxAudited
        return p
    }
}
