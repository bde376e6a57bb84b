import Glibc

/// The outcome of one feature probe (after cilium/ebpf's three outcomes):
/// the hook that serves it, why the kernel lacks it, or the errno that kept
/// the probe from asking. Callers switch on the case; `detail` is for people.
public enum ProbeResult: Sendable, Equatable {
    case supported(ProbeHook)
    case unsupported(String)
    /// The probe could not run: it needs privileges this process lacks
    /// (EPERM/EACCES without root or CAP_BPF, kallsyms or tracefs hidden).
    /// It says nothing about the kernel.
    case inconclusive(ProbeInconclusive)

    /// Supported, served by `hook` (an attach point such as
    /// "fexit/tcp_v4_syn_recv_sock", or what was found).
    public static func supports(_ hook: String, _ detail: String? = nil) -> ProbeResult {
        .supported(ProbeHook(name: hook, detail: detail ?? hook))
    }

    /// Not probed for lack of privileges: `what` could not be loaded or read.
    public static func notProbed(_ what: String, errno: Int32 = EPERM) -> ProbeResult {
        .inconclusive(ProbeInconclusive(what: what, errno: errno))
    }

    public var isSupported: Bool { if case .supported = self { return true } else { return false } }
    public var isInconclusive: Bool { if case .inconclusive = self { return true } else { return false } }
    /// The hook that serves it, when supported.
    public var hook: ProbeHook? { if case .supported(let h) = self { return h } else { return nil } }

    /// One line for people (doctor, errors); never parsed.
    public var detail: String {
        switch self {
        case .supported(let h): return h.detail
        case .unsupported(let why): return why
        case .inconclusive(let i): return "\(i.what): not probed, needs root (or CAP_BPF and CAP_PERFMON)"
        }
    }
}

/// What serves a supported feature.
public struct ProbeHook: Sendable, Equatable {
    /// The attach point or resource ("tp_btf/kfree_skb", "kprobe/tcp_conn_request", "/sys/kernel/btf/vmlinux").
    public var name: String
    /// What it gives, for `doctor`.
    public var detail: String
}

/// A probe that could not ask: what it needed and the errno it got.
public struct ProbeInconclusive: Sendable, Equatable {
    /// What could not be loaded or read ("tp_btf/kfree_skb", "/proc/kallsyms", "tracefs").
    public var what: String
    public var errno: Int32
}
