import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Classic tracepoints (the syscall ones) are attached through tracefs: libbpf
/// reads each event's id from it. Some hosts (minimal VMs, this project's CI)
/// do not mount it. synsight then mounts it in a mount namespace of its own:
/// the host's mount table never changes, several synsight processes cannot
/// race on a shared mount, and nothing needs undoing at exit. The namespace
/// is a slave of the host's, so mounts made later on the host (network
/// namespaces named in /run/netns) still show up in it.
public enum TraceFS {
    public static let path = "/sys/kernel/tracing"

    /// True when tracefs is reachable at one of the usual places.
    public static var available: Bool {
        access("\(path)/events", F_OK) == 0 || access("/sys/kernel/debug/tracing/events", F_OK) == 0
    }

    /// Makes tracefs reachable for this process; returns nil on success or why not.
    /// Call from the thread that probes and attaches (the mount namespace is per thread).
    @discardableResult
    public static func ensure() -> String? {
        if available { return nil }
        let rc = syn_private_tracefs()
        if rc == 0 && available { return nil }
        return "tracefs is not mounted and could not be mounted privately (\(ErrnoName.name(-rc)))"
    }
}
