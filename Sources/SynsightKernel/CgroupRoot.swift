import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// The root of the cgroup v2 hierarchy, where synsight's cgroup/connect
/// programs attach so that every connect() on the host runs them (issue 16).
/// Found in /proc/self/mountinfo (hybrid hosts mount it at
/// /sys/fs/cgroup/unified); where none is mounted, mounted privately
/// (syn_private_cgroup2_root): the host's mounts never change.
public enum CgroupRoot {
    /// The mount point of a cgroup2 filesystem whose root is the hierarchy's root.
    static func mountPoint() -> String? {
        MountInfo.current().first { $0.fsType == "cgroup2" && $0.root == "/" }?.point
    }

    /// The path of cgroup v2 `id` relative to the hierarchy mounted at
    /// `mount` ("/" for its root), through an fd of that mount
    /// (open_by_handle_at): a cgroup named after its processes exited, while
    /// it exists. nil when it is gone or outside the mount.
    static func path(id: UInt64, mountFD: Int32, mount: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = syn_cgroup_path(mountFD, id, &buf, buf.count)
        guard n > 0 else { return nil }
        let full = String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if full == mount { return "/" }
        return full.hasPrefix(mount + "/") ? String(full.dropFirst(mount.count)) : nil
    }

    /// An fd of the root cgroup, or why there is none.
    public static func open() -> Result<Int32, KernelError> {
        if let path = mountPoint() {
            let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { return .success(fd) }
        }
        let fd = syn_private_cgroup2_root()
        if fd >= 0 { return .success(fd) }
        return .failure(KernelError.sys("opening the root cgroup v2 (none mounted, and mounting one privately failed)", code: fd))
    }

    /// Is there a cgroup v2 root to attach to (mounted, or mountable privately)?
    public static var available: ProbeResult {
        if let path = mountPoint() { return .supports("cgroup/connect{4,6}", "cgroup v2 at \(path)") }
        // Mounting privately is the only way to know that it works.
        let fd = syn_private_cgroup2_root()
        if fd >= 0 {
            close(fd)
            return .supports("cgroup/connect{4,6}", "no cgroup v2 mounted: one is mounted privately")
        }
        return .unsupported("no cgroup v2 mounted, and mounting one privately failed (\(ErrnoName.name(-fd)))")
    }
}
