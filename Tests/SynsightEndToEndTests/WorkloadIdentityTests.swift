import Foundation
import Testing

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

/// Refusals named in the operator's terms against the real kernel: a
/// listener moved into cgroups laid out like systemd's and kubelet's, killed
/// with SIGKILL; the refusal must name its unit, or its pod (from a
/// kubelet-style pod log directory the test creates), after it died.
@Suite("workload identity, end to end", .serialized, .enabled(if: Privileged.enabled))
struct WorkloadIdentityEndToEndTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// `settle`: how long the listener lives after listen(). 0 kills it at
    /// once, possibly before synsight's consumer has read its /proc entries:
    /// its cgroup v2 id from the kernel event must still name its cgroup.
    func killedListenerRefusal(cgroup: CgroupTree, settle: Double = 0,
                               traceArgs: [String] = []) throws -> (JSONRecord, NetNS, Peer) {
        let ns = try NetNS()
        let port = randomPort()
        let trace = try TraceSession(traceArgs)
        let listener = try Peer(runIn: ns, ["listen", "127.0.0.1", String(port), "--await-cgroup", cgroup.path],
                                readyPrefix: "waiting")
        try String(listener.pid).write(toFile: cgroup.leaf + "/cgroup.procs", atomically: false, encoding: .utf8)
        #expect(waitUntil { listener.output.contains("ready") }, "peer output: \(listener.output)")
        let inCgroup = (try? String(contentsOfFile: "/proc/\(listener.pid)/cgroup", encoding: .utf8)) ?? ""
        #expect(inCgroup.contains(cgroup.path), "the listener was not moved: \(inCgroup)")
        if settle > 0 { Thread.sleep(forTimeInterval: settle) }
        listener.killHard()
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == ns.inode && $0.int("port") == port
        }
        trace.stop()
        guard let r else {
            ns.remove()
            throw CommandFailure(description: "no refusal reported; stderr: \(trace.stderr)")
        }
        #expect(r.string("cause") == "listener_exited", "record: \(r)")
        #expect(r.pid("process") == listener.pid)
        #expect(r.pid("client") == c.pid)
        #expect(r.string("netns_name") == ns.name)
        let node = r.object("node")
        let machineID = (try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let bootID = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(node?["machine_id"] as? String == machineID)
        #expect(node?["boot_id"] as? String == bootID)
        #expect(node?["hostname"] as? String == ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init)
                    || node?["hostname"] as? String == ProcessInfo.processInfo.hostName)
        return (r, ns, listener)
    }

    @Test("killed systemd service (cgroup v2, escaped unit name): the refusal names the unit")
    func killedServiceV2() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy mounted")
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let cgroup = try CgroupTree(root: root, components: ["system.slice", "synsight\\x2de2e-\(tag).service"])
        defer { cgroup.remove() }
        let (r, ns, _) = try killedListenerRefusal(cgroup: cgroup)
        defer { ns.remove() }
        let process = r.object("process")
        #expect(process?["unit"] as? String == "synsight-e2e-\(tag).service", "record: \(r)")
        #expect(process?["cgroup"] as? String == "/system.slice/synsight\\x2de2e-\(tag).service")
        #expect(process?["container"] == nil && process?["pod"] == nil)
    }

    @Test("killed systemd service (v1 name=systemd hierarchy): the refusal names the unit")
    func killedServiceV1() throws {
        let root = try #require(CgroupTree.systemdV1Root, "no v1 name=systemd hierarchy (not a hybrid host)")
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let cgroup = try CgroupTree(root: root, components: ["system.slice", "synsight-e2e-\(tag).service"])
        defer { cgroup.remove() }
        // Only a v1 path (the v2 cgroup is the root): named from
        // /proc/<pid>/cgroup, read when synsight's consumer handles the
        // listen event, so the listener lives a moment (as services do).
        let (r, ns, _) = try killedListenerRefusal(cgroup: cgroup, settle: 0.5)
        defer { ns.remove() }
        #expect(r.object("process")?["unit"] as? String == "synsight-e2e-\(tag).service", "record: \(r)")
        #expect(r.object("process")?["cgroup"] as? String == "/system.slice/synsight-e2e-\(tag).service")
    }

    @Test("killed pod container (kubelet systemd driver, containerd): the refusal names the pod from its log directory")
    func killedPodContainer() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy mounted")
        let uid = UUID().uuidString.lowercased()
        let containerID = (0..<64).map { _ in String("0123456789abcdef".randomElement()!) }.joined()
        let podSlice = "kubepods-besteffort-pod\(uid.replacingOccurrences(of: "-", with: "_")).slice"
        let cgroup = try CgroupTree(root: root, components: [
            "kubepods.slice", "kubepods-besteffort.slice", podSlice, "cri-containerd-\(containerID).scope",
        ])
        defer { cgroup.remove() }
        let logs = tempDir()
        defer { try? FileManager.default.removeItem(atPath: logs) }
        let podName = "api-\(String(uid.prefix(4)))"
        try FileManager.default.createDirectory(atPath: "\(logs)/pods/shop_\(podName)_\(uid)/api",
                                                withIntermediateDirectories: true)
        let (r, ns, _) = try killedListenerRefusal(cgroup: cgroup, traceArgs: ["--pod-log-dir", "\(logs)/pods"])
        defer { ns.remove() }
        let process = try #require(r.object("process"))
        let pod = process["pod"] as? [String: Any]
        #expect(pod?["namespace"] as? String == "shop", "record: \(r)")
        #expect(pod?["name"] as? String == podName)
        #expect(pod?["uid"] as? String == uid)
        #expect(pod?["container"] as? String == "api")
        #expect(pod?["qos"] as? String == "besteffort")
        let container = process["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "containerd")
        #expect(container?["id"] as? String == containerID)
        #expect(process["unit"] == nil)
        #expect((r.string("hint") ?? "").contains("pod shop/\(podName)"), "hint: \(r.string("hint") ?? "")")
    }

    @Test("doctor names this host's identity sources: cgroup layout, pod log root, /run/netns, node")
    func doctorSources() throws {
        let logs = tempDir()
        defer { try? FileManager.default.removeItem(atPath: logs) }
        try FileManager.default.createDirectory(atPath: logs + "/pods", withIntermediateDirectories: true)
        let out = try sh([TraceSession.binary, "doctor", "--pod-log-dir", "\(logs)/pods"])
        let cgroups = try #require(out.split(separator: "\n").first { $0.contains("  cgroups ") }, "\(out)")
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") {
            #expect(cgroups.contains("cgroup v2"), "\(cgroups)")
        } else if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/cgroup.controllers") {
            #expect(cgroups.contains("hybrid"), "\(cgroups)")
        } else {
            #expect(cgroups.contains("cgroup v1"), "\(cgroups)")
        }
        #expect(out.contains("kubelet pod log directories in \(logs)/pods"), "\(out)")
        let bootID = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(out.contains("boot-id \(bootID)"))
        let missing = try sh([TraceSession.binary, "doctor", "--pod-log-dir", "\(logs)/absent"])
        #expect(missing.contains("\(logs)/absent absent (no kubelet)"), "\(missing)")
    }

    @Test("explain: the listener's process carries its unit (JSON) and the text names it")
    func explainNamesTheUnit() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy mounted")
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let cgroup = try CgroupTree(root: root, components: ["system.slice", "synsight-e2e-\(tag).service"])
        defer { cgroup.remove() }
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(runIn: ns, ["listen", "0.0.0.0", String(port), "--await-cgroup", cgroup.path],
                                readyPrefix: "waiting")
        defer { listener.killHard() }
        try String(listener.pid).write(toFile: cgroup.leaf + "/cgroup.procs", atomically: false, encoding: .utf8)
        #expect(waitUntil { listener.output.contains("ready") }, "peer output: \(listener.output)")
        let (_, report) = try ExplainTests.Run(["--json", String(port), "--duration", "0"]).finish()
        let mine = report.listeners.first { ($0["netns"] as? Int) == ns.inode }
        let process = (mine?["processes"] as? [[String: Any]])?.first
        #expect(process?["pid"] as? Int == listener.pid, "\(report)")
        #expect(process?["unit"] as? String == "synsight-e2e-\(tag).service", "\(report)")
        #expect(process?["cgroup"] as? String == cgroup.path)
        let text = try sh([TraceSession.binary, "explain", String(port), "--duration", "0"], allowFailure: true)
        #expect(text.contains("unit synsight-e2e-\(tag).service"), "\(text)")
    }

    @Test("restarted by its supervisor, not listening yet: cause restarting names the new process, the dead listener stays in the evidence")
    func restartedNotListening() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy mounted")
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let cgroup = try CgroupTree(root: root, components: ["system.slice", "synsight-e2e-\(tag).service"])
        defer { cgroup.remove() }
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        func start(_ listenPort: Int) throws -> Peer {
            let p = try Peer(runIn: ns, ["listen", "127.0.0.1", String(listenPort), "--await-cgroup", cgroup.path],
                             readyPrefix: "waiting")
            try String(p.pid).write(toFile: cgroup.leaf + "/cgroup.procs", atomically: false, encoding: .utf8)
            #expect(waitUntil { p.output.contains("ready") }, "peer output: \(p.output)")
            return p
        }
        let first = try start(port)
        first.killHard()
        // The "supervisor" starts the same program again; it has not listened on the port yet.
        let second = try start(port + 1)
        defer { second.killHard() }
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == ns.inode && $0.int("port") == port
        }, "no refusal; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("cause") == "restarting", "record: \(r)")
        #expect(r.pid("process") == second.pid)
        #expect(r.object("process")?["unit"] as? String == "synsight-e2e-\(tag).service")
        #expect((r.evidence["previous"] as? [String: Any])?["pid"] as? Int == first.pid)
        #expect(r.evidence["signal_name"] as? String == "SIGKILL")
        #expect((r.string("hint") ?? "").contains("has started in the same unit synsight-e2e-\(tag).service"))
    }
}
