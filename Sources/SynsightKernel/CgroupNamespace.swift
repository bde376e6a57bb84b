import CSynsightShim
import SynsightBase

/// synsight's cgroup namespace against the host's (the kernel threads', else PID 1's).
///
/// In a container with a cgroup namespace of its own (Kubernetes pods on
/// cgroup v2 nodes, `docker run --cgroupns private`), every cgroup path the
/// kernel shows synsight is relative to its container: another pod's process
/// reads "/../../kubepods-besteffort.slice/…" in /proc/<pid>/cgroup, the
/// container's /sys/fs/cgroup is its own sub-tree, and cgroup programs
/// attached at "the root" run only for the container's own sockets. So at
/// start-up, before any thread exists (a namespace joined is the calling
/// thread's, inherited by the threads it starts), synsight joins the host's
/// cgroup namespace (`hostReference`): with the host's PID namespace and CAP_SYS_ADMIN, what
/// the DaemonSet grants. The whole hierarchy is then reached through a
/// detached mount of its own (CgroupRoot).
public enum CgroupNamespace {
    public enum State: Sendable, Equatable {
        /// synsight shares the host's cgroup namespace.
        case host
        /// It had one of its own and joined the host's.
        case joined
        /// It has one of its own and could not join the host's: why.
        case own(String)
        /// The host's namespace could not be read (not root): assumed to be it.
        case unknown(String)

        /// Cgroup paths and the root cgroup are the host's.
        public var isHost: Bool {
            switch self {
            case .host, .joined, .unknown: return true
            case .own: return false
            }
        }

        /// One line for doctor.
        public var detail: String {
            switch self {
            case .host: return "the host's"
            case .joined: return "the host's: synsight had its container's own and joined the host's at start-up"
            case .own(let why):
                return "its container's own, and the host's could not be joined (\(why)): other workloads' cgroup paths are"
                    + " relative to synsight's container, and connect() callers are found with the state-change hook;"
                    + " run with the host's PID namespace and CAP_SYS_ADMIN"
            case .unknown(let why): return "not compared with the host's (\(why)): assumed to be it"
            }
        }
    }

    /// Decided once, on first use: `Synsight.main` uses it before any thread exists.
    public static let state: State = joinHost()

    /// The host's namespace: kthreadd's (PID 2 in the host's PID namespace:
    /// the kernel's threads are in the initial one, and unlike PID 1 it is
    /// never made undumpable), else PID 1's.
    static func hostReference() -> String? {
        let kthreadd = ProcFS.read("/proc/2/stat", limit: 512).map { $0.hasPrefix("2 (kthreadd) S 0 ") || $0.hasPrefix("2 (kthreadd) I 0 ") }
        for path in (kthreadd == true ? ["/proc/2/ns/cgroup"] : []) + ["/proc/1/ns/cgroup"] where ProcFS.nsInode(path) != nil {
            return path
        }
        return nil
    }

    static func joinHost() -> State {
        guard let own = ProcFS.nsInode("/proc/self/ns/cgroup") else { return .unknown("/proc/self/ns/cgroup unreadable") }
        guard let reference = hostReference(), let host = ProcFS.nsInode(reference) else {
            return .unknown("neither kthreadd's nor PID 1's namespace is readable")
        }
        if own == host { return .host }
        let rc = syn_join_cgroupns(reference)
        guard rc == 0 else { return .own("setns to \(reference): \(ErrnoName.name(-rc))") }
        return ProcFS.nsInode("/proc/thread-self/ns/cgroup") == host ? .joined : .own("setns to \(reference) did not take")
    }
}
