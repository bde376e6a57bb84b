import Foundation
import Testing

/// A Docker daemon of the test's own (Debian's docker.io, installed by
/// scripts/install-deps.sh): its own data root, exec root, socket and
/// pidfile and no iptables rules; no bridge, or (`bridge:`) a docker0 in a
/// test range for published ports. `stop()` removes its containers, stops
/// it by its pid, deletes docker0 if it created it, unmounts
/// what it left and removes everything it created on the host (its
/// directories, /etc/docker/key.json, /run/containerd, /opt/containerd, its
/// `docker` cgroups) that did not exist before.
final class DockerDaemon {
    static let dockerd = "/usr/sbin/dockerd"
    static let client = "/usr/bin/docker"
    /// Host paths dockerd and its containerd create outside the roots given to them.
    static let sideEffects = ["/etc/docker", "/run/docker", "/run/containerd", "/opt/containerd"]
        + ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd", "unified", ""]
            .map { "/sys/fs/cgroup/\($0)\($0.isEmpty ? "" : "/")docker" }

    let root: String
    let process = Process()
    let preexisting: Set<String>
    let createdBridge: Bool
    var stopped = false

    var socket: String { root + "/docker.sock" }
    var dataRoot: String { root + "/data" }

    /// `bridge`: docker0's address (e.g. "198.19.250.1/24"); nil: no bridge.
    init(bridge: String? = nil) throws {
        preexisting = Set(Self.sideEffects.filter { FileManager.default.fileExists(atPath: $0) })
        createdBridge = bridge != nil && !FileManager.default.fileExists(atPath: "/sys/class/net/docker0")
        root = tempDir()
        process.executableURL = URL(fileURLWithPath: Self.dockerd)
        process.arguments = ["--data-root", dataRoot, "--exec-root", root + "/exec", "-H", "unix://" + socket,
                             "--pidfile", root + "/docker.pid", bridge.map { "--bip=" + $0 } ?? "--bridge=none",
                             "--iptables=false", "--ip6tables=false",
                             "--ip-forward=false", "--ip-masq=false",
                             "--containerd-namespace", "synsight-e2e", "--containerd-plugins-namespace", "synsight-e2e-plugins"]
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let up = waitUntil(timeout: 60) {
            !process.isRunning || ((try? docker(["version"])) != nil)
        }
        guard up, process.isRunning else {
            stop()
            throw CommandFailure(description: "dockerd did not start (data root \(dataRoot))")
        }
    }

    @discardableResult
    func docker(_ args: [String]) throws -> String {
        try sh([Self.client, "-H", "unix://" + socket] + args)
    }

    /// An image with busybox (from Debian's busybox-static) and its applets.
    func importBusybox(tag: String) throws {
        let rootfs = root + "/rootfs"
        try FileManager.default.createDirectory(atPath: rootfs + "/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/bin/busybox")
        for applet in ["sh", "sleep", "httpd"] {
            try FileManager.default.createSymbolicLink(atPath: rootfs + "/bin/" + applet, withDestinationPath: "busybox")
        }
        try sh(["/bin/sh", "-c", "tar -C '\(rootfs)' -c . | '\(Self.client)' -H 'unix://\(socket)' import - '\(tag)'"])
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            if let ids = try? docker(["ps", "-aq"]) {
                for id in ids.split(separator: "\n") { _ = try? docker(["rm", "-f", String(id)]) }
            }
            kill(process.processIdentifier, SIGTERM)
            if !waitUntil(timeout: 30, { !process.isRunning }) {
                kill(process.processIdentifier, SIGKILL)
            }
            process.waitUntilExit()
        }
        // Mounts left under our root (overlay layers, the exec root's netns files), deepest first.
        let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { line -> String? in
                let f = line.split(separator: " ")
                return f.count > 4 && f[4].hasPrefix(root) ? String(f[4]) : nil
            }
        for m in mounts.sorted(by: { $0.count > $1.count }) { umount2(m, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: root)
        if createdBridge { _ = try? sh(["ip", "link", "del", "docker0"], allowFailure: true) }
        for path in Self.sideEffects where !preexisting.contains(path) {
            if path.hasPrefix("/sys/fs/cgroup") { rmdir(path) } else { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    deinit { stop() }
}

/// A real Docker container: its listener killed with SIGKILL, a client in
/// the container's network namespace refused; the refusal must name the
/// container (runtime, id, and the name from Docker's own config file).
@Suite("docker workload identity, end to end", .serialized, .enabled(if: Privileged.enabled))
struct DockerWorkloadTests {
    init() throws {
        try Privileged.check()
    }

    @Test("a Docker container: a wrong port, then its killed listener, named by the container from its config")
    func killedInContainer() throws {
        #expect(FileManager.default.isExecutableFile(atPath: DockerDaemon.dockerd),
                "docker.io is not installed: run scripts/install-deps.sh")
        guard FileManager.default.isExecutableFile(atPath: DockerDaemon.dockerd) else { return }
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try daemon.importBusybox(tag: "synsight-e2e-busybox:\(tag)")
        let name = "synsight-e2e-web-\(tag)"
        let port = randomPort()
        // The trace starts after dockerd (it finds the data root on dockerd's
        // command line) and before the container (its listen() is traced live).
        let trace = try TraceSession([])
        let id = try daemon.docker(["run", "-d", "--name", name, "--network", "none", "synsight-e2e-busybox:\(tag)",
                                    "/bin/sh", "-c", "httpd -f -p 127.0.0.1:\(port) & while true; do sleep 1; done"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let pid1 = try #require(Int(try daemon.docker(["inspect", "-f", "{{.State.Pid}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        var httpd: Int?
        #expect(waitUntil {
            httpd = (try? sh(["ps", "-o", "pid=,comm=", "--ppid", String(pid1)]))?.split(separator: "\n")
                .first { $0.hasSuffix("httpd") }.flatMap { Int($0.split(separator: " ").first ?? "") }
            let listening = (try? sh(["nsenter", "--net=/proc/\(pid1)/ns/net", "ss", "-Hltn", "sport = :\(port)"])) ?? ""
            return httpd != nil && !listening.isEmpty
        }, "httpd did not listen in the container")
        let listener = try #require(httpd)
        let netns = try #require(Int(try sh(["stat", "-L", "-c", "%i", "/proc/\(pid1)/ns/net"])
            .trimmingCharacters(in: .whitespacesAndNewlines)))

        // The wrong port first: nothing on port+1, the container listens on port.
        let wrong = try sh(["nsenter", "--net=/proc/\(pid1)/ns/net", "/usr/bin/python3", Peer.script, "connect",
                            "127.0.0.1", String(port + 1), "--timeout", "2"])
        #expect(wrong.hasSuffix(" \(ECONNREFUSED)\n"), "connect: \(wrong)")
        let w = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == port + 1
        }, "no wrong-port refusal; stderr: \(trace.stderr)")
        #expect(w.string("cause") == "wrong_port", "record: \(w)")
        #expect(w.pid("process") == listener)
        #expect((w.object("process")?["container"] as? [String: Any])?["name"] as? String == name)
        #expect((w.string("hint") ?? "").contains("container \(name)) listens on \(port) only"), "\(w)")

        kill(pid_t(listener), SIGKILL)
        let out = try sh(["nsenter", "--net=/proc/\(pid1)/ns/net", "/usr/bin/python3", Peer.script, "connect",
                          "127.0.0.1", String(port), "--timeout", "2"])
        #expect(out.hasSuffix(" \(ECONNREFUSED)\n"), "connect: \(out)")
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == port
        }, "no refusal; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("cause") == "listener_exited", "record: \(r)")
        #expect(r.pid("process") == listener)
        let container = r.object("process")?["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "docker", "record: \(r)")
        #expect(container?["id"] as? String == id)
        #expect(container?["name"] as? String == name)
        #expect(r.object("process")?["cgroup"] as? String == "/docker/\(id)")
        #expect(r.string("netns_name") == "container \(name)")
        #expect((r.string("hint") ?? "").contains("container \(name)"))
    }

    @Test("a container with a wrong port mapping: wrong_port names what listens in the container; the client is docker-proxy with the published port")
    func wrongPortMapping() throws {
        #expect(FileManager.default.isExecutableFile(atPath: DockerDaemon.dockerd),
                "docker.io is not installed: run scripts/install-deps.sh")
        guard FileManager.default.isExecutableFile(atPath: DockerDaemon.dockerd) else { return }
        let daemon = try DockerDaemon(bridge: "198.19.250.1/24")
        defer { daemon.stop() }
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try daemon.importBusybox(tag: "synsight-e2e-busybox:\(tag)")
        let name = "synsight-e2e-web-\(tag)"
        let published = randomPort()
        // The app listens on 81, the mapping sends the published port to 80.
        try daemon.docker(["run", "-d", "--name", name, "-p", "127.0.0.1:\(published):80", "synsight-e2e-busybox:\(tag)",
                           "/bin/sh", "-c", "httpd -f -p 81 & while true; do sleep 1; done"])
        let pid1 = try #require(Int(try daemon.docker(["inspect", "-f", "{{.State.Pid}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let ip = try daemon.docker(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(waitUntil {
            !((try? sh(["nsenter", "--net=/proc/\(pid1)/ns/net", "ss", "-Hltn", "sport = :81"])) ?? "").isEmpty
        }, "httpd did not listen on 81 in the container")
        let httpd = try sh(["ps", "-o", "pid=,comm=", "--ppid", String(pid1)]).split(separator: "\n")
            .first { $0.hasSuffix("httpd") }.flatMap { Int($0.split(separator: " ").first ?? "") }
        let netns = try #require(Int(try sh(["stat", "-L", "-c", "%i", "/proc/\(pid1)/ns/net"])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        // explain names the container's listener and its namespace.
        let (_, report) = try ExplainTests.Run(["--json", "81", "--duration", "0"]).finish()
        let listener = report.listeners.first { ($0["netns"] as? Int) == netns }
        let owner = (listener?["processes"] as? [[String: Any]])?.first
        #expect((owner?["container"] as? [String: Any])?["name"] as? String == name, "\(report)")
        #expect(report.namespaces.first { ($0["netns"] as? Int) == netns }?["name"] as? String == "container \(name)")

        let trace = try TraceSession([])
        // A client on the host uses the published address; docker-proxy accepts and connects to the container.
        // Like curl: it sends a request and waits for the answer. The proxy
        // closes with the request unread, so the client gets a reset; when
        // the proxy closes before the request arrives (a loaded machine), it
        // is a plain FIN: try again, up to three connections.
        var reset: JSONRecord?
        for _ in 0..<3 where reset == nil {
            _ = try sh(["/usr/bin/python3", "-c", """
                import socket
                s = socket.create_connection(("127.0.0.1", \(published)), 2)
                s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
                s.settimeout(2)
                try:
                    s.recv(1)
                except OSError:
                    pass
                """])
            reset = trace.waitForRecord(timeout: 3) {
                $0.string("reason") == "reset_by_peer" && ($0.object("remote")?["port"] as? Int) == published
            }
        }
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == 80
        }, "no refusal in the container; stderr: \(trace.stderr)")
        trace.stop()
        // The host client's reset names what happened behind the published port.
        let behind = reset?.evidence["behind_proxy"] as? [String: Any]
        #expect(behind?["cause"] as? String == "wrong_port", "reset record: \(reset?.line ?? "none"); all: \(trace.stdout)")
        #expect(behind?["netns_name"] as? String == "container \(name)")
        #expect((reset?.string("hint") ?? "").contains("docker-proxy accepted the connection on the published port 127.0.0.1:\(published)"))
        #expect(r.string("cause") == "wrong_port", "record: \(r)")
        #expect(r.pid("process") == httpd)
        #expect((r.object("process")?["container"] as? [String: Any])?["name"] as? String == name)
        #expect(r.object("client")?["comm"] as? String == "docker-proxy")
        let proxy = r.evidence["proxy"] as? [String: Any]
        #expect(proxy?["published"] as? String == "127.0.0.1:\(published)", "record: \(r)")
        #expect(proxy?["target"] as? String == "\(ip):80")
        #expect(r.string("netns_name") == "container \(name)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("container \(name)) listens on 81 only"), "\(hint)")
        #expect(hint.contains("published port 127.0.0.1:\(published)"), "\(hint)")
    }
}
