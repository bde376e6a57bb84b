import CSynsightShim
import Glibc
import Synchronization

/// BPFStatistics values alive in this process.
private let heldStatistics = Atomic<Int>(0)

/// The kernel's BPF statistics (run_cnt, run_time_ns of every program),
/// turned on for as long as this value lives by BPF_ENABLE_STATS: an fd, not
/// the kernel.bpf_stats_enabled sysctl, so nothing on the host is left
/// changed when synsight exits, however it exits. The kernel then adds two
/// clock reads to every BPF program run on the host (synsight's and any
/// other's) while it is held: opt-in (`--bpf-stats`).
public final class BPFStatistics {
    let fd: Int32

    init(fd: Int32) {
        self.fd = fd
        heldStatistics.add(1, ordering: .relaxed)
    }

    public static func enable() throws(KernelError) -> BPFStatistics {
        let fd = syn_enable_bpf_stats()
        guard fd >= 0 else {
            throw KernelError.sys("turning on BPF statistics (--bpf-stats)", code: fd,
                                  fix: abs(fd) == EPERM ? "BPF_ENABLE_STATS needs CAP_SYS_ADMIN: run as root, or drop --bpf-stats"
                                      : "this kernel may lack BPF_ENABLE_STATS (5.8+): drop --bpf-stats")
        }
        return BPFStatistics(fd: fd)
    }

    deinit {
        close(fd)
        heldStatistics.subtract(1, ordering: .relaxed)
    }

    /// Are the kernel's BPF statistics on now: held by this process, or by
    /// the kernel.bpf_stats_enabled sysctl (only read, never written; it
    /// shows its own value, not other processes' BPF_ENABLE_STATS fds, which
    /// are then missed and the counts shown as not measured).
    public static var enabled: Bool {
        heldStatistics.load(ordering: .relaxed) > 0
            || ProcFS.read("/proc/sys/kernel/bpf_stats_enabled")?.first == "1"
    }
}

/// The CPU this process has used (all its threads), for SelfCost.
public enum ProcessCPU {
    public static func seconds() -> Double {
        var u = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &u) == 0 else { return 0 }
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6
            + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }
}
