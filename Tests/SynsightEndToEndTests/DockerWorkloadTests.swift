import Foundation
import Testing

/// A Docker daemon of the test's own (Debian's docker.io, installed by
/// scripts/install-deps.sh): its own data root, exec root, socket and
/// pidfile; no bridge, or (`bridge:`) a docker0 in a test range for
/// published ports; no iptables rules, or (`iptables: true`) the DNAT,
/// filter and masquerade rules Docker manages itself (with or without
/// docker-proxy, `userlandProxy`), but never IP forwarding for the host.
/// `stop()` removes its containers, stops it by its pid, deletes docker0 and
/// the veths on it if it created it, unmounts what it left, removes Docker's
/// chains and rules (`DockerFirewall`), writes back the sysctls it changed
/// and removes everything it created on the host (its directories,
/// /etc/docker/key.json, /run/containerd, /opt/containerd, its `docker`
/// cgroups) that did not exist before.
final class DockerDaemon {
    static let dockerd = "/usr/sbin/dockerd"
    static let client = "/usr/bin/docker"
    /// Host paths dockerd, its containerd and its BuildKit create outside the roots given to them.
    static let sideEffects = ["/etc/docker", "/run/docker", "/run/containerd", "/opt/containerd"]
        + ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd", "unified", ""]
            .map { "/sys/fs/cgroup/\($0)\($0.isEmpty ? "" : "/")docker" }
            .flatMap { [$0 + "/buildkit", $0] }  // BuildKit's (image builds), before its parent

    let root: String
    let process = Process()
    let preexisting: Set<String>
    let createdBridge: Bool
    /// The host before dockerd started, when it manages iptables rules.
    let hostBefore: HostNetworkState?
    var stopped = false

    var socket: String { root + "/docker.sock" }
    var dataRoot: String { root + "/data" }

    /// `bridge`: docker0's address (e.g. "198.19.250.1/24"); nil: no bridge.
    /// `iptables`: Docker writes its own rules (published ports by DNAT,
    /// masquerade); `userlandProxy`: docker-proxy serves published ports for
    /// the host's own (loopback) clients, else DNAT does.
    init(bridge: String? = nil, iptables: Bool = false, userlandProxy: Bool = true) throws {
        preexisting = Set(Self.sideEffects.filter { FileManager.default.fileExists(atPath: $0) })
        createdBridge = bridge != nil && !FileManager.default.fileExists(atPath: "/sys/class/net/docker0")
        hostBefore = iptables ? HostNetworkState.capture() : nil
        root = tempDir()
        process.executableURL = URL(fileURLWithPath: Self.dockerd)
        process.arguments = ["--data-root", dataRoot, "--exec-root", root + "/exec", "-H", "unix://" + socket,
                             "--pidfile", root + "/docker.pid", bridge.map { "--bip=" + $0 } ?? "--bridge=none",
                             "--iptables=\(iptables)", "--ip6tables=false",
                             "--ip-forward=false", "--ip-masq=\(iptables)", "--userland-proxy=\(userlandProxy)",
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
        if createdBridge {
            // Veths of containers dockerd did not remove (it was killed).
            let ports = ((try? sh(["ip", "-o", "link", "show", "master", "docker0"], allowFailure: true)) ?? "")
                .split(separator: "\n").compactMap { $0.split(separator: ":").dropFirst().first?.split(separator: "@").first }
            for port in ports { _ = try? sh(["ip", "link", "del", port.trimmingCharacters(in: .whitespaces)], allowFailure: true) }
            _ = try? sh(["ip", "link", "del", "docker0"], allowFailure: true)
        }
        if let hostBefore {
            DockerFirewall.remove(bridge: "docker0", tablesBefore: hostBefore.nftTables)
            hostBefore.restoreSysctls()
        }
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

    /// Docker's own iptables rules (`--iptables=true`): a client in a test
    /// namespace, on a veth to the host, connects to a port the container
    /// publishes on the host's side of that veth; Docker's DNAT rule (nat
    /// DOCKER chain) sends the SYN to the container's port 80, where the app
    /// listens on 81 only. With docker-proxy on or off: a client arriving over
    /// an interface takes the DNAT path either way. Without docker-proxy, a
    /// host client on loopback is DNATed too (nat OUTPUT) and masqueraded.
    /// The host's rules, nft ruleset, links and sysctls must be unchanged
    /// afterwards.
    @Test("Docker's own DNAT rules: a published port reached from another namespace over a veth, original destination and client named; the host unchanged after",
          arguments: [false, true])
    func dockerOwnDNAT(userlandProxy: Bool) throws {
        #expect(FileManager.default.isExecutableFile(atPath: DockerDaemon.dockerd),
                "docker.io is not installed: run scripts/install-deps.sh")
        guard FileManager.default.isExecutableFile(atPath: DockerDaemon.dockerd) else { return }
        let before = HostNetworkState.capture()
        try publishedThroughDockerDNAT(userlandProxy: userlandProxy)
        let changes = HostNetworkState.capture().changes(since: before)
        #expect(changes.isEmpty, "the host was left changed:\n\(changes.joined(separator: "\n"))")
    }

    static let (hostFront, clientAddr) = ("198.19.251.1", "198.19.251.2")

    func publishedThroughDockerDNAT(userlandProxy: Bool) throws {
        let daemon = try DockerDaemon(bridge: "198.19.252.1/24", iptables: true, userlandProxy: userlandProxy)
        defer { daemon.stop() }
        let client = try NetNS()
        defer { client.remove() }
        // host (198.19.251.1) --veth-- client namespace (198.19.251.2); the
        // host forwards only what arrives on this veth and on docker0 (both
        // removed afterwards), not on its other interfaces.
        let hostSide = "sdk\(getpid() % 100000)x\(client.number)"
        try sh(["ip", "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", client.name])
        defer { _ = try? sh(["ip", "link", "del", hostSide], allowFailure: true) }
        try sh(["ip", "addr", "add", "\(Self.hostFront)/24", "dev", hostSide])
        try sh(["ip", "link", "set", hostSide, "up"])
        try sh(["ip", "-n", client.name, "addr", "add", "\(Self.clientAddr)/24", "dev", "eth0"])
        try sh(["ip", "-n", client.name, "link", "set", "eth0", "up"])
        try sh(["ip", "-n", client.name, "route", "add", "default", "via", Self.hostFront])
        for dev in [hostSide, "docker0"] { try sh(["sysctl", "-qw", "net.ipv4.conf.\(dev).forwarding=1"]) }

        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try daemon.importBusybox(tag: "synsight-e2e-busybox:\(tag)")
        let name = "synsight-e2e-dnat-\(tag)"
        let published = randomPort(), loopback = published + 1
        let publish = ["-p", "\(Self.hostFront):\(published):80"] + (userlandProxy ? [] : ["-p", "127.0.0.1:\(loopback):80"])
        let id = try daemon.docker(["run", "-d", "--name", name] + publish + ["synsight-e2e-busybox:\(tag)",
                                    "/bin/sh", "-c", "httpd -f -p 81 & while true; do sleep 1; done"])
            .split(separator: "\n").last.map(String.init) ?? ""  // after dockerd's warning (no IP forwarding)
        let pid1 = try #require(Int(try daemon.docker(["inspect", "-f", "{{.State.Pid}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(waitUntil {
            !((try? sh(["nsenter", "--net=/proc/\(pid1)/ns/net", "ss", "-Hltn", "sport = :81"])) ?? "").isEmpty
        }, "httpd did not listen on 81 in the container")
        let httpd = try sh(["ps", "-o", "pid=,comm=", "--ppid", String(pid1)]).split(separator: "\n")
            .first { $0.hasSuffix("httpd") }.flatMap { Int($0.split(separator: " ").first ?? "") }
        let netns = try #require(Int(try sh(["stat", "-L", "-c", "%i", "/proc/\(pid1)/ns/net"])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        // Docker wrote the DNAT rule for the published port itself.
        let nat = try sh(["iptables", "-w", "-t", "nat", "-S", "DOCKER"])
        #expect(nat.contains("-d \(Self.hostFront)/32") && nat.contains("--dport \(published) -j DNAT"), "nat DOCKER: \(nat)")

        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: Self.hostFront, port: published)
        #expect(c.errno == Int(ECONNREFUSED), "connect through Docker's DNAT: errno \(c.errno)")
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == 80
                && ($0.object("remote")?["addr"] as? String) == Self.clientAddr
        }, "no refusal in the container; stderr: \(trace.stderr); records: \(trace.stdout)")
        #expect(r.string("cause") == "wrong_port", "record: \(r)")
        #expect(r.pid("process") == httpd, "record: \(r)")
        let container = r.object("process")?["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "docker", "record: \(r)")
        #expect(container?["id"] as? String == id)
        #expect(container?["name"] as? String == name)
        #expect(r.string("netns_name") == "container \(name)")
        #expect(r.object("original_destination")?["addr"] as? String == Self.hostFront, "record: \(r)")
        #expect(r.object("original_destination")?["port"] as? Int == published, "record: \(r)")
        #expect(r.evidence["nat"] as? String == "dnat", "record: \(r)")
        #expect(r.pid("client") == c.pid, "record: \(r)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("container \(name)) listens on 81 only"), "\(hint)")
        #expect(hint.contains("the client connected to \(Self.hostFront):\(published)"), "\(hint)")

        if !userlandProxy {
            // No docker-proxy: the host's own loopback client is DNATed
            // (nat OUTPUT) and masqueraded to docker0's address.
            let out = try sh(["/usr/bin/python3", Peer.script, "connect", "127.0.0.1", String(loopback), "--timeout", "2"])
            #expect(out.hasSuffix(" \(ECONNREFUSED)\n"), "loopback connect through Docker's DNAT: \(out)")
            let l = trace.waitForRecord {
                $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == 80
                    && ($0.object("remote")?["addr"] as? String) == "198.19.252.1"
            }
            #expect(l?.string("cause") == "wrong_port", "loopback refusal: \(l?.line ?? "none"); records: \(trace.stdout)")
            #expect((l?.object("process")?["container"] as? [String: Any])?["name"] as? String == name)
        }
        trace.stop()
    }
}
