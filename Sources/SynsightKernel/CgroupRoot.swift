import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// The whole cgroup v2 hierarchy, as synsight reaches it: where its
/// cgroup/connect programs attach (the root: every connect() on the host
/// runs them, issue 16), where a cgroup id is named, and where limits and
/// members are read. A cgroup2 mount of the whole hierarchy from
/// /proc/self/mountinfo (hybrid hosts mount it at /sys/fs/cgroup/unified);
/// where there is none (nothing mounted, or only synsight's container's own
/// sub-tree), a detached mount of its own (syn_cgroup2_detached_root): the
/// host's mounts never change.
public enum CgroupRoot {
    public struct Hierarchy: Sendable {
        /// Opens the root: the mount point, or /proc/self/fd/N of a detached mount.
        public let path: String
        /// The root, open for the process's life (a detached mount lives by it).
        let fd: Int32
        /// Where it comes from, for doctor.
        public let source: String
    }

    /// Found once, on first use.
    public static let v2: Result<Hierarchy, KernelError> = find()

    /// The path that opens the root, when there is a hierarchy.
    public static var path: String? { try? v2.get().path }

    static func find() -> Result<Hierarchy, KernelError> {
        let mounts = MountInfo.current().filter { $0.fsType == "cgroup2" }
        if let whole = mounts.first(where: { $0.root == "/" }) {
            let fd = Glibc.open(whole.point, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 {
                return .success(Hierarchy(path: whole.point, fd: fd, source: "mounted at \(whole.point)"))
            }
        }
        let fd = syn_cgroup2_detached_root()
        guard fd >= 0 else {
            return .failure(KernelError.sys("opening the root cgroup v2 (no cgroup2 mount of the whole hierarchy, and a detached mount failed)", code: fd))
        }
        let why = mounts.first.map { "only its sub-tree \($0.root) is mounted, at \($0.point)" } ?? "none is mounted"
        return .success(Hierarchy(path: "/proc/self/fd/\(fd)", fd: fd, source: "a detached mount of synsight's own (\(why))"))
    }

    /// The path of cgroup v2 `id` relative to the hierarchy's root ("/" for
    /// the root): a cgroup named after its processes exited, while it exists
    /// (open_by_handle_at). nil when it is gone or there is no hierarchy.
    public static func path(id: UInt64) -> String? {
        guard let h = try? v2.get() else { return nil }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = syn_cgroup_path(h.fd, id, &buf, buf.count)
        guard n > 0 else { return nil }
        return String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A new fd of the root cgroup (the caller closes it), or why there is none.
    public static func open() -> Result<Int32, KernelError> {
        v2.flatMap { h in
            let fd = Glibc.open(h.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            return fd >= 0 ? .success(fd) : .failure(KernelError.sys("opening the root cgroup v2 (\(h.path))", code: -errno))
        }
    }

    /// Is there a root to attach to, and is it the host's?
    public static var available: ProbeResult {
        guard CgroupNamespace.state.isHost else {
            return .unsupported("synsight's cgroup namespace is " + CgroupNamespace.state.detail)
        }
        switch v2 {
        case .success(let h): return .supports("cgroup/connect{4,6}", "cgroup v2 root, \(h.source)")
        case .failure(let e): return .unsupported(e.description)
        }
    }
}
