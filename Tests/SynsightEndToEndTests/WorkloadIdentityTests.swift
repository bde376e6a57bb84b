import Foundation
import Testing

/// Refusals named in the operator's terms against the real kernel: a
/// listener moved into a cgroup laid out like systemd's, killed with
/// SIGKILL; the refusal must name its unit after it died. The cgroup v2
/// unit and the kubelet pod (from a pod log directory) are kernel-matrix
/// scenarios (sc_identity_unit, sc_identity_pod); here what needs this host:
/// the v1 `name=systemd` hierarchy, the node identity, doctor, explain
/// against live listeners, and a supervisor's restart.
@Suite("workload identity, end to end", .serialized, .enabled(if: Privileged.enabled))
struct WorkloadIdentityEndToEndTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// A listener in `cgroup`, killed `settle` seconds after listen(), then
    /// refused: the record, with the namespace's name and this node's identity.
    /// `launcher`: how synsight is started (TraceSession); `clientCgroup`: where the client runs.
    func killedListenerRefusal(cgroup: CgroupTree, settle: Double, launcher: [String] = [],
                               clientCgroup: CgroupTree? = nil) throws -> (JSONRecord, NetNS, Peer) {
        let ns = try NetNS()
        let port = randomPort()
        let trace = try TraceSession([], launcher: launcher)
        let listener = try Peer(listenIn: ns, addr: "127.0.0.1", port: port, cgroup: cgroup)
        let inCgroup = (try? String(contentsOfFile: "/proc/\(listener.pid)/cgroup", encoding: .utf8)) ?? ""
        #expect(inCgroup.contains(cgroup.path), "the listener was not moved: \(inCgroup)")
        if settle > 0 { Thread.sleep(forTimeInterval: settle) }
        listener.killHard()
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port, cgroupDir: clientCgroup?.leaf)
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

    @Test("killed systemd service (v1 name=systemd hierarchy): the refusal names the unit")
    func killedServiceV1() throws {
        let root = try #require(CgroupTree.systemdV1Root, "no v1 name=systemd hierarchy (not a hybrid host)")
        let (cgroup, unit) = try CgroupTree.service(root: root)
        defer { cgroup.remove() }
        // Only a v1 path (the v2 cgroup is the root): named from
        // /proc/<pid>/cgroup, read when synsight's consumer handles the
        // listen event, so the listener lives a moment (as services do).
        let (r, ns, _) = try killedListenerRefusal(cgroup: cgroup, settle: 0.5)
        defer { ns.remove() }
        #expect(r.object("process")?["unit"] as? String == unit, "record: \(r)")
        #expect(r.object("process")?["cgroup"] as? String == cgroup.path)
    }

    @Test("synsight in a pod's own cgroup namespace (its /sys/fs/cgroup only its sub-tree): it joins the host's, so another pod's killed listener and its client are named with their full cgroup paths, and the client is seen at all")
    func inPodCgroupNamespace() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy")
        // synsight's pod, and the application's (removed first: they share kubepods.slice).
        let own = try CgroupTree.podContainer(root: root, qos: "burstable")
        defer { own.cgroup.remove() }
        let app = try CgroupTree.podContainer(root: root, qos: "besteffort")
        defer { app.cgroup.remove() }
        let launcher = [RecordSchema.repo + "/Tests/SynsightEndToEndTests/Support/in-cgroupns.sh", own.cgroup.leaf, root]
        let (r, ns, _) = try killedListenerRefusal(cgroup: app.cgroup, settle: 0.5, launcher: launcher, clientCgroup: app.cgroup)
        defer { ns.remove() }
        for side in ["process", "client"] {
            let p = r.object(side)
            #expect(p?["cgroup"] as? String == app.cgroup.path, "\(side): record \(r)")
            #expect((p?["pod"] as? [String: Any])?["uid"] as? String == app.podUID, "\(side): record \(r)")
            #expect((p?["container"] as? [String: Any])?["id"] as? String == app.containerID, "\(side): record \(r)")
        }
    }

    @Test("synsight in a pod's own cgroup namespace: doctor says it joined the host's and reads the whole v2 hierarchy through a detached mount")
    func doctorInPodCgroupNamespace() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy")
        let own = try CgroupTree.podContainer(root: root, qos: "burstable")
        defer { own.cgroup.remove() }
        let out = try sh([RecordSchema.repo + "/Tests/SynsightEndToEndTests/Support/in-cgroupns.sh", own.cgroup.leaf, root,
                          TraceSession.binary, "doctor"])
        #expect(out.contains("cgroup namespace         the host's: synsight had its container's own and joined the host's at start-up"), "\(out)")
        #expect(out.contains("a detached mount of synsight's own (only its sub-tree \(own.cgroup.path) is mounted, at \(root))"), "\(out)")
        #expect(out.contains("local client identity  cgroup/connect{4,6} on the root cgroup v2"), "\(out)")
    }

    @Test("a namespace deleted and its inode given to the next one made: the refusal names the namespace it happened in")
    func netnsNameAfterInodeReuse() throws {
        let port = randomPort()
        let trace = try TraceSession(["--port", String(port)])
        // The kernel hands a freed inode number (freed once the namespace is
        // cleaned up, asynchronously) to the next namespace made on the
        // host: namespaces are made until one has it, keeping the others
        // until the end. Another test's namespace may take it first (the
        // suites run in parallel): then the whole sequence is tried again.
        var made: [NetNS] = []
        defer { made.forEach { $0.remove() } }
        var second: NetNS?
        var inode = 0
        for _ in 0..<5 where second == nil {
            let first = try NetNS()
            defer { first.remove() }
            _ = try Peer.connect(from: first, addr: "127.0.0.1", port: port)
            let r1 = trace.waitForRecord { $0.int("netns") == first.inode && $0.int("port") == port }
            #expect(r1?.string("netns_name") == first.name, "\(String(describing: r1))")
            inode = first.inode
            first.remove()
            _ = try waitUntil(timeout: 4) {
                let ns = try NetNS()
                made.append(ns)
                if ns.inode == inode { second = ns }
                return second != nil
            }
        }
        let reused = try #require(second, "in 5 tries no namespace made got the deleted one's inode")
        let c = try Peer.connect(from: reused, addr: "127.0.0.1", port: port)
        let r = try #require(trace.waitForRecord {
            $0.int("netns") == inode && $0.int("port") == port && $0.pid("client") == c.pid
        }, "stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("netns_name") == reused.name, "\(r)")
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
        let (cgroup, unit) = try CgroupTree.service(root: root)
        defer { cgroup.remove() }
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "0.0.0.0", port: port, cgroup: cgroup)
        defer { listener.killHard() }
        let (_, report) = try ExplainTests.Run(["--json", String(port), "--duration", "0"]).finish()
        let mine = report.listeners.first { ($0["netns"] as? Int) == ns.inode }
        let process = (mine?["processes"] as? [[String: Any]])?.first
        #expect(process?["pid"] as? Int == listener.pid, "\(report)")
        #expect(process?["unit"] as? String == unit, "\(report)")
        #expect(process?["cgroup"] as? String == cgroup.path)
        let text = try sh([TraceSession.binary, "explain", String(port), "--duration", "0"], allowFailure: true)
        #expect(text.contains("unit \(unit)"), "\(text)")
    }

    /// The trace's refusal of `port` in `ns`.
    func refusal(_ trace: TraceSession, in ns: NetNS, port: Int, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONRecord {
        try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == ns.inode && $0.int("port") == port
        }, "no refusal; stderr: \(trace.stderr)", sourceLocation: sourceLocation)
    }

    @Test("restarted by its supervisor, not listening yet: cause restarting names the new process, the dead listener stays in the evidence")
    func restartedNotListening() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy mounted")
        let (cgroup, unit) = try CgroupTree.service(root: root)
        defer { cgroup.remove() }
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let first = try Peer(listenIn: ns, addr: "127.0.0.1", port: port, cgroup: cgroup)
        first.killHard()
        // The "supervisor" starts the same program again; it has not listened on the port yet.
        let second = try Peer(listenIn: ns, addr: "127.0.0.1", port: port + 1, cgroup: cgroup)
        defer { second.killHard() }
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try refusal(trace, in: ns, port: port)
        trace.stop()
        #expect(r.string("cause") == "restarting", "record: \(r)")
        #expect(r.pid("process") == second.pid)
        #expect(r.object("process")?["unit"] as? String == unit)
        #expect((r.evidence["previous"] as? [String: Any])?["pid"] as? Int == first.pid)
        #expect(r.evidence["signal_name"] as? String == "SIGKILL")
        #expect((r.string("hint") ?? "").contains("has started in the same unit \(unit)"))
    }

    @Test("restarted by a shell loop where no cgroup groups the service (this host has no systemd): restarting names the new process and the loop that started it")
    func restartedByShellLoop() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The same command line every time: the first run listens at once,
        // the later ones only after 30 s (a slow start).
        let server = """
            import os, socket, sys, time
            marker = sys.argv[2]
            if os.path.exists(marker):
                time.sleep(30)
            open(marker, "w").close()
            s = socket.socket()
            s.bind(("127.0.0.1", int(sys.argv[1])))
            s.listen(16)
            time.sleep(600)
            """
        let trace = try TraceSession([])
        // ip netns exec execs the loop: it keeps this pid.
        let loop = Process()
        loop.executableURL = URL(fileURLWithPath: "/usr/bin/ip")
        loop.arguments = ["netns", "exec", ns.name, "/bin/sh", "-c",
                          "while true; do /usr/bin/python3 -c \"$0\" \"$1\" \"$2\"; done", server, String(port), dir + "/started"]
        try loop.run()
        defer {
            // Stopped first, so that it starts no server between the two kills.
            kill(loop.processIdentifier, SIGSTOP)
            _ = try? sh(["pkill", "-KILL", "-P", String(loop.processIdentifier)], allowFailure: true)
            kill(loop.processIdentifier, SIGKILL)
            kill(loop.processIdentifier, SIGCONT)
            _ = waitUntil(timeout: 5) { !loop.isRunning }
        }
        let children = { ((try? sh(["pgrep", "-P", String(loop.processIdentifier)], allowFailure: true)) ?? "")
            .split(separator: "\n").compactMap { Int($0) } }
        var first: Int?
        #expect(waitUntil(timeout: 10) {
            first = children().first
            return first != nil && !((try? sh(["ip", "netns", "exec", ns.name, "ss", "-Hltn", "sport = :\(port)"])) ?? "").isEmpty
        }, "the loop's server did not listen")
        let old = try #require(first)
        kill(pid_t(old), SIGKILL)
        var second: Int?
        #expect(waitUntil(timeout: 10) { second = children().first { $0 != old }; return second != nil }, "the loop did not start it again")
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try refusal(trace, in: ns, port: port)
        trace.stop()
        #expect(r.string("cause") == "restarting", "record: \(r)")
        #expect(r.pid("process") == second, "record: \(r)")
        #expect((r.evidence["previous"] as? [String: Any])?["pid"] as? Int == old, "record: \(r)")
        let by = r.evidence["restarted_by"] as? [String: Any]
        #expect(by?["pid"] as? Int == Int(loop.processIdentifier) && by?["comm"] as? String == "sh", "record: \(r)")
        #expect((r.string("hint") ?? "").contains("has been started again by sh (pid \(loop.processIdentifier))"), "\(r)")
    }
}
