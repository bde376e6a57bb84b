import Foundation
import Testing

/// Rootful Podman with everything of its own under a temporary directory
/// (`--root`, `--runroot`, `--tmpdir`; vfs storage, the cgroupfs manager,
/// file events: no systemd here) and containers without a network (no
/// bridge, no firewall rules). What Podman leaves on the host anyway is
/// removed in `stop()`: its cgroups (`libpod_parent` in every hierarchy)
/// and its blob cache in /var/lib/containers when that did not exist.
final class Podman {
    static let binary = "/usr/bin/podman"
    static let varLib = "/var/lib/containers"
    let root: String
    let hadVarLib: Bool
    let cgroupsBefore: Set<String>
    private var stopped = false

    init() throws {
        root = tempDir()
        hadVarLib = FileManager.default.fileExists(atPath: Self.varLib)
        cgroupsBefore = Self.libpodCgroups()
    }

    deinit { stop() }

    /// Whether podman is installed; a failed expectation when it is not.
    static func installed(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let ok = FileManager.default.isExecutableFile(atPath: binary)
        #expect(ok, "podman is not installed: run scripts/install-deps.sh", sourceLocation: sourceLocation)
        return ok
    }

    @discardableResult
    func podman(_ args: [String]) throws -> String {
        try sh([Self.binary, "--root", root + "/root", "--runroot", root + "/run", "--tmpdir", root + "/tmp",
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"] + args)
    }

    /// busybox and its applets as `synsight-e2e-busybox:<tag>`; returns that name.
    func importBusybox(tag: String) throws -> String {
        let image = "synsight-e2e-busybox:\(tag)"
        let rootfs = try ContainerHttpd.busyboxRootfs(in: root)
        try sh(["/bin/sh", "-c", "tar -C '\(rootfs)' -c . | '\(Self.binary)' --root '\(root)/root' --runroot '\(root)/run' "
                + "--tmpdir '\(root)/tmp' --storage-driver vfs --cgroup-manager cgroupfs --events-backend file import - '\(image)'"])
        return image
    }

    /// `podman run -d` without a network; returns the container's id. The
    /// rlimits are set low: Podman's defaults are above this sandbox's hard
    /// limits (no CAP_SYS_RESOURCE). The conmon it leaves running inherits
    /// every descriptor podman had, and Foundation's Process waits for all
    /// of its own to close: podman runs from Python with only 0-2 open, its
    /// output in a file.
    func run(name: String, image: String, command: String) throws -> String {
        let args = [Self.binary, "--root", root + "/root", "--runroot", root + "/run", "--tmpdir", root + "/tmp",
                    "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                    "run", "-d", "--name", name, "--network", "none", "--ulimit", "nofile=1024:1024",
                    "--ulimit", "nproc=4096:4096", image, "/bin/sh", "-c", command]
        let script = """
            import subprocess, sys
            with open(sys.argv[1], "w") as log:
                rc = subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True).returncode
            sys.stderr.write(open(sys.argv[1]).read() if rc else "")
            sys.exit(rc)
            """
        try sh(["/usr/bin/python3", "-c", script, root + "/run.log"] + args)
        return try podman(["inspect", "-f", "{{.Id}}", name]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? podman(["rm", "-af", "-t", "0"])
        let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { line -> String? in
                let f = line.split(separator: " ")
                return f.count > 4 && f[4].hasPrefix(root) ? String(f[4]) : nil
            }
        for m in mounts.sorted(by: { $0.count > $1.count }) { _ = umount2(m, Int32(MNT_DETACH)) }
        // conmon leaves its cgroup only when it exits, a moment after the
        // container is removed: retry until each directory made here is gone.
        _ = waitUntil(timeout: 15) {
            let left = Self.libpodCgroups().subtracting(cgroupsBefore)
            for dir in left.sorted(by: { $0.count > $1.count }) { rmdir(dir) }
            return Self.libpodCgroups().subtracting(cgroupsBefore).isEmpty
        }
        let left = Self.libpodCgroups().subtracting(cgroupsBefore)
        #expect(left.isEmpty, "Podman's cgroups could not be removed: \(left.sorted())")
        if !hadVarLib { try? FileManager.default.removeItem(atPath: Self.varLib) }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Every cgroup directory Podman's cgroupfs manager makes (`libpod_parent` and below), in every hierarchy.
    static func libpodCgroups() -> Set<String> {
        var out = Set<String>()
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for h in hierarchies {
            let top = "/sys/fs/cgroup/\(h)/libpod_parent"
            guard FileManager.default.fileExists(atPath: top) else { continue }
            out.insert(top)
            for sub in FileManager.default.enumerator(atPath: top)?.compactMap({ $0 as? String }) ?? [] {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: top + "/" + sub, isDirectory: &isDir), isDir.boolValue {
                    out.insert(top + "/" + sub)
                }
            }
        }
        return out
    }
}
