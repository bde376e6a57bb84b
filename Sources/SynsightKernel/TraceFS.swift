import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Classic tracepoints (the syscall ones) are attached through tracefs: libbpf
/// reads each event's id from it. Some hosts (minimal VMs, this project's CI)
/// do not mount it. synsight then mounts it in a mount namespace of its own,
/// for the calling thread and only while it probes and attaches: the host's
/// mount table never changes, several synsight processes cannot race on a
/// shared mount, and the thread goes back to the process's namespace after
/// (a thread left there would make every later mount, such as `ip netns add`
/// run from that thread, invisible to the rest of the process). Attached
/// tracepoints do not need tracefs any more.
public enum TraceFS {
    public static let path = "/sys/kernel/tracing"

    /// True when tracefs is reachable at one of the usual places.
    public static var available: Bool {
        access("\(path)/events", F_OK) == 0 || access("/sys/kernel/debug/tracing/events", F_OK) == 0
    }

    /// tracefs made reachable for the calling thread until `leave()`.
    public struct Scope {
        /// The saved mount namespace and working directory; -1: nothing to undo.
        private let savedNS: Int32
        private let savedCwd: Int32
        /// nil, or why tracefs is not reachable.
        public let failure: String?

        fileprivate init(savedNS: Int32, savedCwd: Int32, failure: String?) {
            self.savedNS = savedNS
            self.savedCwd = savedCwd
            self.failure = failure
        }

        /// Puts the thread back in the process's mount namespace (and
        /// working directory); the private namespace and its mount go away.
        public func leave() {
            guard savedNS >= 0 else { return }
            let rc = syn_leave_private_tracefs(savedNS, savedCwd)
            if rc != 0 {
                Diagnostics.log.warning("leaving the private tracefs mount namespace failed (\(ErrnoName.name(-rc)))")
            }
        }
    }

    /// Makes tracefs reachable for the calling thread (the mount namespace is
    /// per thread: probe and attach on this thread, then `leave()`).
    public static func enter() -> Scope {
        if available { return Scope(savedNS: -1, savedCwd: -1, failure: nil) }
        var ns: Int32 = -1, cwd: Int32 = -1
        let rc = syn_private_tracefs(&ns, &cwd)
        if rc == 0 && available { return Scope(savedNS: ns, savedCwd: cwd, failure: nil) }
        let why = "tracefs is not mounted and could not be mounted privately (\(rc == 0 ? "not reachable after mounting" : ErrnoName.name(-rc)))"
        return Scope(savedNS: ns, savedCwd: cwd, failure: why)
    }

    /// Runs `body` with tracefs reachable for the calling thread.
    public static func withAccess<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let scope = enter()
        defer { scope.leave() }
        return try body()
    }
}
