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
    public var classic: ProbeResult = .unsupported("not probed")
    /// tp_btf/sys_enter + sys_exit: every syscall, filtered in BPF; no tracefs needed.
    public var raw: ProbeResult = .unsupported("not probed")
    /// tp_btf/selinux_audited (5.10+), and whether SELinux is enforcing at all.
    public var selinuxAudited: ProbeResult = .unsupported("not probed")
    public var selinuxState = ""
    /// Landlock: the landlock_restrict_self exit (classic or raw) + fork inheritance.
    public var landlock: ProbeResult = .unsupported("not probed")
    /// connect() traced at exit only, its arguments read from the saved user
    /// registers (bpf_task_pt_regs, 5.15+): no entry program and no map
    /// update per connect() on the host (bpf/syscalls.bpf.h).
    public var connectExitOnly: Bool = false

    public init() {}

    var allResults: [ProbeResult] { [trampoline, classic, raw, selinuxAudited, landlock] }

    /// The entry group in use: trampolines, else classic, else raw.
    public var entry: ProbeResult { trampoline.isSupported ? trampoline : classic.isSupported ? classic : raw }
    public var entryName: String {
        if trampoline.isSupported { return "fentry+fexit/__sys_{bind,listen} + fexit/__sys_connect" }
        guard classic.isSupported else { return "tp_btf/sys_enter + sys_exit (raw_syscalls)" }
        return connectExitOnly ? "syscalls:sys_{enter,exit}_{bind,listen} + sys_exit_connect"
            : "syscalls:sys_{enter,exit}_{bind,listen,connect}"
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

    /// `forced` (--force-hook syscall=tracepoint or =raw) skips the
    /// preferred groups, so the tests (and a user on a kernel where one
    /// misbehaves) can exercise the others where they all work.
    static func probeTrampolines(forced: HookChoices.SyscallEntry?) -> ProbeResult {
        if let f = forced {
            return .unsupported("disabled by --force-hook syscall=\(f.rawValue)")
        }
        // connect() is traced at exit only; an SELinux denial inside it makes
        // its in-flight entry from the saved user registers.
        guard KernelFeatures.hasTaskPtRegs else { return .unsupported("bpf_task_pt_regs is missing (kernel older than 5.15)") }
        for (fn, exit) in [("__sys_connect", true), ("__sys_bind", false), ("__sys_bind", true),
                           ("__sys_listen", false), ("__sys_listen", true)] {
            let rc = exit ? ProgramProbe.fexit(fn) : ProgramProbe.fentry(fn)
            if rc == 0 { continue }
            return KernelFeatures.trampolineRefusal("\(exit ? "fexit" : "fentry")/\(fn)", rc)
        }
        return .supports("fentry+fexit/__sys_{bind,listen} + fexit/__sys_connect", "BPF trampolines on the syscall functions")
    }

    static func probe(btf: ProbeResult, forced: HookChoices.SyscallEntry?) -> SyscallProbes {
        func tp(_ name: String, _ what: String) -> ProbeResult {
            KernelFeatures.probeTpBtf(name, btf: btf, missing: what)
        }
        let events = ["sys_enter_bind", "sys_exit_bind", "sys_enter_listen", "sys_exit_listen",
                      "sys_enter_connect", "sys_exit_connect"]
        var classic: ProbeResult = events.allSatisfy(classicEvent)
            ? .supports("syscalls:sys_{enter,exit}_{bind,listen,connect}", "classic syscall tracepoints under \(tracefsRoot)")
            : KernelFeatures.lackingPrivileges("tracefs")
                ?? .unsupported("syscall tracepoint ids not readable under \(tracefsRoot) (tracefs not mounted, or no CONFIG_FTRACE_SYSCALLS)")
        // Lets the tests (and a user on a kernel where the classic events
        // misbehave) exercise the raw path where both work.
        if forced == .raw {
            classic = .unsupported("disabled by --force-hook syscall=raw")
        }
        let trampoline: ProbeResult = btf.isSupported ? probeTrampolines(forced: forced) : .unsupported("no kernel BTF")
        var raw = tp("sys_enter", "raw_syscalls tracepoint missing")
        if raw.isSupported { raw = tp("sys_exit", "raw_syscalls tracepoint missing") }
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
            let rc = ProgramProbe.fexit(fn)
            let refusal = KernelFeatures.trampolineRefusal("fexit/\(fn)", rc)
            landlock = rc == 0 ? .supports("fexit/\(fn)", "fexit/\(fn) + tp_btf/sched_process_fork")
                : refusal.isInconclusive ? refusal : .unsupported(refusal.detail + " (Landlock needs 5.13+)")
        } else if classic.isSupported {
            landlock = classicEvent("sys_exit_landlock_restrict_self")
                ? .supports("syscalls:sys_exit_landlock_restrict_self", "syscalls:sys_exit_landlock_restrict_self + tp_btf/sched_process_fork")
                : .unsupported("no landlock_restrict_self syscall tracepoint (Landlock needs 5.13+)")
        } else {
            landlock = raw.isSupported
                ? .supports("tp_btf/sys_exit", "landlock_restrict_self seen in tp_btf/sys_exit + tp_btf/sched_process_fork")
                : raw
        }
        var p = SyscallProbes()
        (p.trampoline, p.classic, p.raw, p.selinuxAudited) = (trampoline, classic, raw, avc)
        (p.selinuxState, p.landlock, p.connectExitOnly) = (selinuxState, landlock, KernelFeatures.hasTaskPtRegs)
        return p
    }
}

extension ReasonArea {
    /// One entry group (trampolines, else classic tracepoints, else raw
    /// syscalls), plus selinux_audited where it loads. CAP_NET_BIND_SERVICE
    /// needs no hook: the failing bind()'s exit reads the caller's
    /// credentials (bind_cap_state in bpf/syscalls.bpf.h).
    static func syscallsPlan(_ f: KernelFeatures) -> AreaPlan {
        let s = f.syscalls
        var programs: Set<BPFProgram>
        if s.trampoline.isSupported {
            programs = [.scFxEnterBind, .scFxExitBind, .scFxEnterListen, .scFxExitListen, .scFxExitConnect]
        } else if s.classic.isSupported {
            programs = [.scTpEnterBind, .scTpExitBind, .scTpEnterListen, .scTpExitListen, .scTpExitConnect]
            // connect() is traced at exit only where its arguments can be
            // read with bpf_task_pt_regs.
            if !s.connectExitOnly { programs.insert(.scTpEnterConnect) }
        } else if s.raw.isSupported {
            programs = [.scRawEnter, .scRawExit]
        } else {
            return .cannotRun(CannotRun(needs: "a bind/listen/connect hook", probe: s.entry))
        }
        if s.selinuxAudited.isSupported { programs.insert(.scSelinuxAudited) }
        return .run(programs)
    }

    /// landlock_restrict_self's exit in the entry group's flavour (the raw
    /// group sees it in sys_exit), and the domain's inheritance on fork.
    static func landlockPlan(_ f: KernelFeatures) -> AreaPlan {
        let s = f.syscalls
        guard s.entry.isSupported, s.landlock.isSupported else {
            return .cannotRun(CannotRun(needs: "landlock_restrict_self's exit", probe: s.entry.isSupported ? s.landlock : s.entry))
        }
        var programs: Set<BPFProgram> = [.scLandlockFork, .onProcessExit]
        if s.trampoline.isSupported {
            programs.insert(.scFxExitLandlock)
        } else if s.classic.isSupported {
            programs.insert(.scTpExitLandlock)
        }
        return .run(programs)
    }
}
