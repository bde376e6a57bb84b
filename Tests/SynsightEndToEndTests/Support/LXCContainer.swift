import Foundation
import Testing

/// A real LXC application container (Debian's `lxc`, installed by
/// scripts/install-deps.sh without its lxc-net bridge service): `lxc-execute`
/// with a container path in a test directory, the host's root file system,
/// and a network namespace of its own with only loopback (`lxc.net.0.type =
/// empty`; lxc-execute leaves it down: the command brings it up). Its processes are in LXC's payload cgroup `lxc.payload.<name>`,
/// as LXD's and Incus's are. `stop()` kills it and removes what LXC leaves
/// on the host: its `lxc.pivot` cgroups and `/run/lxc`, when they were not
/// there before.
final class LXCContainer {
    static let execute = "/usr/bin/lxc-execute"
    static let sideEffects = ["/run/lxc"]
        + ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "net_cls", "net_prio", "perf_event",
           "pids", "systemd", "unified", "hugetlb", "rdma", "misc"]
            .map { "/sys/fs/cgroup/\($0)/lxc.pivot" }

    let name: String
    let root = tempDir()
    let process = Process()
    let preexisting: Set<String>
    var stopped = false

    /// Runs `command` (by /bin/sh) in container `name`.
    init(name: String, command: String) throws {
        self.name = name
        preexisting = Set(Self.sideEffects.filter { FileManager.default.fileExists(atPath: $0) })
        try """
            lxc.uts.name = \(name)
            lxc.net.0.type = empty
            lxc.rootfs.path = dir:/
            lxc.mount.auto = proc:rw sys:ro
            lxc.apparmor.profile = unconfined
            """.write(toFile: root + "/config", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: Self.execute)
        process.arguments = ["-n", name, "-P", root, "-f", root + "/config", "--", "/bin/sh", "-c", command]
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// Whether lxc is installed; a failed expectation when it is not.
    static func installed(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let ok = FileManager.default.isExecutableFile(atPath: execute)
        #expect(ok, "lxc is not installed: run scripts/install-deps.sh", sourceLocation: sourceLocation)
        return ok
    }

    /// The processes of its payload cgroup (cgroup v2), by name.
    func processes() -> [(pid: Int, comm: String)] {
        let procs = (try? String(contentsOfFile: "/sys/fs/cgroup/unified/lxc.payload.\(name)/cgroup.procs", encoding: .utf8))
            ?? (try? String(contentsOfFile: "/sys/fs/cgroup/lxc.payload.\(name)/cgroup.procs", encoding: .utf8)) ?? ""
        return procs.split(separator: "\n").compactMap { Int($0) }.map { pid in
            (pid, ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        // The container's processes first: lxc-execute then exits by itself and removes its cgroups.
        for p in processes() { kill(pid_t(p.pid), SIGKILL) }
        if !waitUntil(timeout: 10, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        // Its own cgroups (the name is the test's), had lxc-execute been killed before removing them.
        for dir in ["/sys/fs/cgroup/unified"] + Self.sideEffects.map({ ($0 as NSString).deletingLastPathComponent }) {
            for kind in ["payload", "monitor"] { rmdir("\(dir)/lxc.\(kind).\(name)") }
        }
        for path in Self.sideEffects where !preexisting.contains(path) {
            if path.hasPrefix("/sys/fs/cgroup") { rmdir(path) } else { try? FileManager.default.removeItem(atPath: path) }
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    deinit { stop() }
}
