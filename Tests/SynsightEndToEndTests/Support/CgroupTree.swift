import Foundation

/// A cgroup directory chain created for one test under a real hierarchy
/// (v2 at /sys/fs/cgroup/unified on a hybrid host or /sys/fs/cgroup on a v2
/// one; v1 `name=systemd` at /sys/fs/cgroup/systemd), laid out as systemd or
/// kubelet lay theirs out. `remove()` moves any process left back to the
/// root and removes only the directories it created, deepest first.
final class CgroupTree {
    let root: String
    let leaf: String
    /// The path as /proc/<pid>/cgroup shows it ("/system.slice/x.service").
    let path: String
    var created: [String] = []

    static var v2Root: String? {
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") { return "/sys/fs/cgroup" }
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/cgroup.controllers") { return "/sys/fs/cgroup/unified" }
        return nil
    }

    static var systemdV1Root: String? {
        let r = "/sys/fs/cgroup/systemd"
        return FileManager.default.fileExists(atPath: r + "/cgroup.procs") ? r : nil
    }

    /// `system.slice/synsight-e2e-<random>.service` under `root`; `unit` is its unit name.
    static func service(root: String) throws -> (cgroup: CgroupTree, unit: String) {
        let unit = "synsight-e2e-\(randomTag()).service"
        return (try CgroupTree(root: root, components: ["system.slice", unit]), unit)
    }

    /// One container of a pod as kubelet (systemd driver) and containerd lay
    /// it out under `root`: kubepods.slice/kubepods-<qos>.slice/
    /// kubepods-<qos>-pod<uid with _>.slice/cri-containerd-<id>.scope.
    static func podContainer(root: String, qos: String) throws -> (cgroup: CgroupTree, podUID: String, containerID: String) {
        let uid = UUID().uuidString.lowercased()
        let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
        let pod = "kubepods-\(qos)-pod\(uid.replacingOccurrences(of: "-", with: "_")).slice"
        let tree = try CgroupTree(root: root, components: ["kubepods.slice", "kubepods-\(qos).slice", pod, "cri-containerd-\(id).scope"])
        return (tree, uid, id)
    }

    init(root: String, components: [String]) throws {
        self.root = root
        path = "/" + components.joined(separator: "/")
        leaf = root + path
        var dir = root
        for c in components {
            dir += "/" + c
            if !FileManager.default.fileExists(atPath: dir) {
                guard mkdir(dir, 0o755) == 0 else {
                    let e = errno
                    remove()
                    throw CommandFailure(description: "cannot create cgroup \(dir): \(String(cString: strerror(e)))")
                }
                created.append(dir)
            }
        }
    }

    func remove() {
        for dir in created.reversed() {
            let procs = (try? String(contentsOfFile: dir + "/cgroup.procs", encoding: .utf8)) ?? ""
            for pid in procs.split(separator: "\n") {
                try? String(pid).write(toFile: root + "/cgroup.procs", atomically: false, encoding: .utf8)
            }
            _ = waitUntil(timeout: 5) { rmdir(dir) == 0 || errno == ENOENT }
        }
        created.removeAll()
    }

    deinit { remove() }
}

extension Peer {
    /// `peer.py listen ADDR PORT` moved into `cgroup` before it listens (it
    /// waits for that), so its socket is made there; ready once listening.
    convenience init(listenIn ns: NetNS, addr: String, port: Int, cgroup: CgroupTree) throws {
        try self.init(runIn: ns, ["listen", addr, String(port), "--await-cgroup", cgroup.path], readyPrefix: "waiting")
        try String(pid).write(toFile: cgroup.leaf + "/cgroup.procs", atomically: false, encoding: .utf8)
        guard waitUntil({ output.contains("ready") }) else {
            throw CommandFailure(description: "the listener did not start in \(cgroup.path): \(output)")
        }
    }
}
