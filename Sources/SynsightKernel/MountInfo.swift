import SynsightBase

/// One line of /proc/<pid>/mountinfo, as far as synsight reads it: the
/// cgroup hierarchies' mounts (CgroupRoot, CPUThrottleReader).
struct MountInfo: Hashable {
    /// The mounted sub-tree of the filesystem ("/" for all of it).
    var root: String
    var point: String
    var fsType: String
    /// The filesystem's own options (for cgroup v1, its controllers: "rw,cpu").
    var superOptions: [Substring]

    /// Every mount of `text` (/proc/self/mountinfo).
    static func parse(_ text: String) -> [MountInfo] {
        text.split(separator: "\n").compactMap { line in
            // id parent major:minor root mountpoint options... - fstype source superopts
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { return nil }
            let f = halves[0].split(separator: " "), tail = halves[1].split(separator: " ")
            guard f.count >= 5, tail.count >= 3 else { return nil }
            return MountInfo(root: String(f[3]), point: String(f[4]), fsType: String(tail[0]),
                             superOptions: tail[2].split(separator: ","))
        }
    }

    /// synsight's own mounts.
    static func current() -> [MountInfo] { ProcFS.read("/proc/self/mountinfo").map(parse) ?? [] }
}
