import Foundation
import Testing

/// A real Docker container: its listener killed with SIGKILL, a client in
/// the container's network namespace refused; the refusal must name the
/// container (runtime, id, and the name from Docker's own config file).
@Suite("docker workload identity, end to end", .serialized, .enabled(if: Privileged.enabled))
struct DockerWorkloadTests {
    init() throws {
        try Privileged.check()
    }

    /// Like curl on the host: connect to the published port on 127.0.0.1,
    /// send a request and wait for the answer (docker-proxy accepts, then
    /// connects to the container).
    func requestPublished(_ published: Int) throws {
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
    }

    /// A client in the namespace of a container's first process (`pid1`)
    /// refused at 127.0.0.1:`port`, and the trace's refusal of it there.
    func refusedInContainer(_ trace: TraceSession, pid1: Int, netns: Int, port: Int,
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONRecord {
        let out = try sh(["nsenter", "--net=/proc/\(pid1)/ns/net", "/usr/bin/python3", Peer.script, "connect",
                          "127.0.0.1", String(port), "--timeout", "2"])
        #expect(out.hasSuffix(" \(ECONNREFUSED)\n"), "connect: \(out)", sourceLocation: sourceLocation)
        return try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == port
        }, "no refusal; stderr: \(trace.stderr)", sourceLocation: sourceLocation)
    }

    @Test("a Docker container: a wrong port, then its killed listener, named by the container from its config")
    func killedInContainer() throws {
        guard DockerDaemon.installed() else { return }
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        let tag = randomTag()
        let image = try daemon.importBusybox(tag: tag)
        let name = "synsight-e2e-web-\(tag)"
        let port = randomPort()
        // The trace starts after dockerd (it finds the data root on dockerd's
        // command line) and before the container (its listen() is traced live).
        let trace = try TraceSession([])
        let id = try daemon.docker(["run", "-d", "--name", name, "--network", "none", image,
                                    "/bin/sh", "-c", "httpd -f -p 127.0.0.1:\(port) & while true; do sleep 1; done"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let (pid1, httpd, netns) = try daemon.httpd(in: name, port: port)
        let listener = try #require(httpd)

        // The wrong port first: nothing on port+1, the container listens on port.
        let w = try refusedInContainer(trace, pid1: pid1, netns: netns, port: port + 1)
        #expect(w.string("cause") == "wrong_port", "record: \(w)")
        #expect(w.pid("process") == listener)
        #expect((w.object("process")?["container"] as? [String: Any])?["name"] as? String == name)
        #expect((w.string("hint") ?? "").contains("container \(name)) listens on \(port) only"), "\(w)")

        kill(pid_t(listener), SIGKILL)
        let r = try refusedInContainer(trace, pid1: pid1, netns: netns, port: port)
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
        guard DockerDaemon.installed() else { return }
        let daemon = try DockerDaemon(bridge: "198.19.250.1/24")
        defer { daemon.stop() }
        let tag = randomTag()
        let image = try daemon.importBusybox(tag: tag)
        let name = "synsight-e2e-web-\(tag)"
        let published = randomPort()
        // The app listens on 81, the mapping sends the published port to 80.
        try daemon.docker(["run", "-d", "--name", name, "-p", "127.0.0.1:\(published):80", image,
                           "/bin/sh", "-c", "httpd -f -p 81 & while true; do sleep 1; done"])
        let (_, httpd, netns) = try daemon.httpd(in: name, port: 81)
        let ip = try daemon.docker(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // explain names the container's listener and its namespace.
        let (_, report) = try ExplainTests.Run(["--json", "81", "--duration", "0"]).finish()
        let listener = report.listeners.first { ($0["netns"] as? Int) == netns }
        let owner = (listener?["processes"] as? [[String: Any]])?.first
        #expect((owner?["container"] as? [String: Any])?["name"] as? String == name, "\(report)")
        #expect(report.namespaces.first { ($0["netns"] as? Int) == netns }?["name"] as? String == "container \(name)")
        // explain of the published port follows it to the container's port 80, where nothing listens.
        let (_, pub) = try ExplainTests.Run(["--json", String(published), "--duration", "0"]).finish()
        let wrong = pub.finding("wrong_port") { ($0["netns"] as? Int) == netns }
        #expect(wrong?["severity"] as? String == "critical" && pub.status == "broken", "\(pub)")
        #expect((wrong?["message"] as? String)?.contains("nothing listens on port 80; httpd (pid \(httpd ?? -1), container \(name)) listens on 81 only") == true, "\(pub)")
        // Published on 127.0.0.1 only: docker-proxy's loopback listener is fixed by the container's -p.
        let loopbackProxy = pub.finding("loopback_only")
        #expect((loopbackProxy?["remediation"] as? String)?.contains("docker run -p \(published):<container port>") == true, "\(pub)")
        #expect((loopbackProxy?["remediation"] as? String)?.contains("container \(name); it is published on 127.0.0.1 only") == true, "\(pub)")

        // Only the published port: synsight follows it to the container's
        // port 80 (the container's config), where the refusal happens.
        let trace = try TraceSession(["--port", String(published)])
        #expect(trace.stderr.contains("port \(published) (published to \(ip):80)"), "\(trace.stderr)")
        // A client on the host uses the published address; docker-proxy accepts and connects to the container.
        // Like curl: it sends a request and waits for the answer. The proxy
        // closes with the request unread, so the client gets a reset; when
        // the proxy closes before the request arrives (a loaded machine), it
        // is a plain FIN: try again, up to three connections.
        var reset: JSONRecord?
        for _ in 0..<3 where reset == nil {
            try requestPublished(published)
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
        #expect(reset?.string("hint")?.contains("docker-proxy accepted the connection on the published port 127.0.0.1:\(published)") == true)
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

    @Test("an app bound to 127.0.0.1 inside its container, reached through a published port: bound_to_other_address, with a fix for containers")
    func loopbackInContainer() throws {
        guard DockerDaemon.installed() else { return }
        let daemon = try DockerDaemon(bridge: "198.19.249.1/24")
        defer { daemon.stop() }
        let tag = randomTag()
        let image = try daemon.importBusybox(tag: tag)
        let name = "synsight-e2e-local-\(tag)"
        let published = randomPort()
        // The classic: the app listens on the container's loopback only (a
        // development server's default), so the published port reaches nothing.
        try daemon.docker(["run", "-d", "--name", name, "-p", "127.0.0.1:\(published):80", image,
                           "/bin/sh", "-c", "httpd -f -p 127.0.0.1:80 & while true; do sleep 1; done"])
        let (_, httpd, netns) = try daemon.httpd(in: name, port: 80)
        let ip = try daemon.docker(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // explain says the same: loopback only, listen on 0.0.0.0 inside the container.
        let (_, report) = try ExplainTests.Run(["--json", "80", "--duration", "0"]).finish()
        let loopback = report.finding("loopback_only") { ($0["netns"] as? Int) == netns }
        #expect((loopback?["remediation"] as? String)?.contains("listen on 0.0.0.0:80 inside the container") == true, "\(report)")
        // Asked about the published port, explain follows it into the container:
        // docker-proxy listening on the host is no sign of health.
        let (_, pub) = try ExplainTests.Run(["--json", String(published), "--duration", "0"]).finish()
        let behind = pub.finding("bound_to_other_address") { ($0["netns"] as? Int) == netns }
        #expect(behind?["severity"] as? String == "critical" && pub.status == "broken", "\(pub)")
        #expect((behind?["message"] as? String)?.contains("to \(ip):80, in ") == true, "\(pub)")
        #expect((behind?["message"] as? String)?.contains("(pid \(httpd ?? -1), container \(name)) listens on 127.0.0.1:80 only") == true, "\(pub)")
        #expect((behind?["remediation"] as? String)?.contains("listen on 0.0.0.0:80 inside the container") == true, "\(pub)")
        let trace = try TraceSession([])
        for _ in 0..<3 {
            try requestPublished(published)
            if trace.waitForRecord(timeout: 3, { $0.int("netns") == netns && $0.int("port") == 80 }) != nil { break }
        }
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == 80
        }, "no refusal in the container; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("cause") == "bound_to_other_address", "record: \(r)")
        #expect(r.pid("process") == httpd)
        #expect((r.object("process")?["container"] as? [String: Any])?["name"] as? String == name)
        #expect(r.object("local")?["addr"] as? String == ip)
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("listens on 127.0.0.1:80 only"), "\(hint)")
        #expect(hint.contains("listen on 0.0.0.0:80 inside the container"), "\(hint)")
        #expect(!hint.contains("connect to the address it listens on"), "a host cannot reach a container's loopback: \(hint)")
    }

    /// A client on the host refused at the published port of `container`,
    /// which exited with status 3: the trace's record (trace stopped), a
    /// publisher_stopped naming the container, and its `evidence.container`.
    func refusedPublisher(_ trace: TraceSession, published: Int, container name: String,
                          sourceLocation: SourceLocation = #_sourceLocation) throws -> (JSONRecord, [String: Any]?) {
        let out = try sh(["/usr/bin/python3", Peer.script, "connect", "127.0.0.1", String(published), "--timeout", "3"])
        #expect(out.split(separator: "\n").last?.split(separator: " ").last == Substring(String(ECONNREFUSED)), "\(out)",
                sourceLocation: sourceLocation)
        let r = try #require(trace.waitForRecord { $0.string("kind") == "refusal" && $0.int("port") == published },
                             "no refusal of the published port; stderr: \(trace.stderr)", sourceLocation: sourceLocation)
        trace.stop()
        #expect(r.string("cause") == "publisher_stopped", "record: \(r)", sourceLocation: sourceLocation)
        let container = r.object("evidence")?["container"] as? [String: Any]
        #expect(container?["name"] as? String == name, "record: \(r)", sourceLocation: sourceLocation)
        #expect(container?["exit_code"] as? Int == 3, sourceLocation: sourceLocation)
        return (r, container)
    }

    @Test("a stopped container's published port: the host refuses it, publisher_stopped names the container and its exit (traced from before it started: its docker-proxy's exit is not the cause)",
          arguments: [false, true])
    func stoppedPublisher(traceFirst: Bool) throws {
        guard DockerDaemon.installed() else { return }
        let daemon = try DockerDaemon(bridge: "198.19.247.1/24")
        defer { daemon.stop() }
        let tag = randomTag()
        let image = try daemon.importBusybox(tag: tag)
        let name = "synsight-e2e-stopped-\(tag)"
        let published = randomPort()
        // Traced from the start, synsight sees docker-proxy listen on the port and exit with the container.
        let early = traceFirst ? try TraceSession(["--port", String(published)]) : nil
        // A service that dies with status 3 a moment after it starts.
        try daemon.docker(["run", "-d", "--name", name, "-p", "127.0.0.1:\(published):80", image, "/bin/sh", "-c", "sleep 1; exit 3"])
        #expect(waitUntil(timeout: 20) {
            (try? daemon.docker(["inspect", "-f", "{{.State.Running}}", name]))?.hasPrefix("false") == true
        })
        let trace = try early ?? TraceSession(["--port", String(published)])
        let (r, container) = try refusedPublisher(trace, published: published, container: name)
        #expect(container?["published"] as? String == "127.0.0.1:\(published)")
        #expect(container?["container_port"] as? Int == 80)
        #expect((r.string("hint") ?? "").contains("docker start \(name)"), "\(r.string("hint") ?? "")")
        if traceFirst {
            #expect(r.object("process")?["comm"] as? String == "docker-proxy", "record: \(r)")
            #expect((r.string("hint") ?? "").contains("its port forwarding (docker-proxy (pid"), "\(r.string("hint") ?? "")")
        }
        // explain says the same from Docker's files alone.
        let (_, report) = try ExplainTests.Run(["--json", String(published), "--duration", "0"]).finish()
        let f = report.finding("publisher_stopped")
        #expect(f?["severity"] as? String == "critical", "\(report)")
        #expect((report.evidence(f)["container"] as? [String: Any])?["name"] as? String == name, "\(report)")
    }

    /// A listener that never accepts (backlog 1) and a child that burns CPU:
    /// at a CPU limit, the cgroup is throttled every period. Static, for a
    /// busybox image; built with the clang that builds synsight's BPF.
    static func stallAndSpin(in dir: String) throws -> String {
        let src = dir + "/stall-spin.c", bin = dir + "/stall-spin"
        try """
            #include <netinet/in.h>
            #include <stdlib.h>
            #include <sys/socket.h>
            #include <unistd.h>
            int main(int argc, char **argv) {
                int s = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
                if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) return 1;
                if (fork() == 0) for (;;) ;
                for (;;) pause();
            }
            """.write(toFile: src, atomically: true, encoding: .utf8)
        let clang = ["/opt/swift/usr/bin/clang", "/usr/bin/clang", "/usr/bin/cc"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "cc"
        try sh([clang, "-static", "-O2", "-o", bin, src])
        return bin
    }

    @Test("a container at its CPU limit (docker run --cpus): its overflow is listener_throttled, with the limit, its cgroup and docker update")
    func throttledContainer() throws {
        guard DockerDaemon.installed() else { return }
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        let tag = randomTag()
        let build = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-stall-\(tag)").path
        try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: build) }
        let image = try daemon.importBusybox(tag: tag, binaries: ["stall-spin": try Self.stallAndSpin(in: build)])
        let name = "synsight-e2e-throttled-\(tag)"
        let port = randomPort()
        let trace = try TraceSession(["--port", String(port)])
        let id = try daemon.docker(["run", "-d", "--name", name, "--network", "none", "--cpus", "0.1", image,
                                    "/bin/stall-spin", String(port)]).trimmingCharacters(in: .whitespacesAndNewlines)
        let pid1 = try #require(Int(try daemon.docker(["inspect", "-f", "{{.State.Pid}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let ns = try NetNS(attachTo: pid1)
        defer { ns.remove() }
        #expect(waitUntil(timeout: 10) {
            ((try? sh(["ip", "netns", "exec", ns.name, "ss", "-Hltn", "sport = :\(port)"])) ?? "").contains("LISTEN")
        }, "the container does not listen on \(port)")
        // Two connections fill the queue (backlog 1 holds 2); the third SYN is dropped.
        let holders = try (0..<2).map { _ in
            try Peer(runIn: ns, ["hold", "127.0.0.1", String(port), "--seconds", "20"], readyPrefix: "connected")
        }
        _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port, timeout: 1.5)
        let r = try #require(trace.waitForRecord { $0.string("reason") == "accept_queue_full" && $0.int("port") == port },
                             "no overflow record; stderr: \(trace.stderr)")
        trace.stop()
        _ = holders
        #expect(r.string("cause") == "listener_throttled", "record: \(r)")
        #expect(r.pid("process") == pid1)
        #expect((r.object("process")?["container"] as? [String: Any])?["name"] as? String == name, "record: \(r)")
        let t = try #require(r.evidence["cpu_throttle"] as? [String: Any], "record: \(r)")
        // Docker's cgroupfs driver on this hybrid host puts the limit in v1's cpu hierarchy; a v2 host in cpu.max.
        #expect((t["cgroup"] as? String)?.hasSuffix(id) == true, "record: \(r)")
        #expect(t["quota_us"] as? Int == 10_000 && t["period_us"] as? Int == 100_000, "record: \(r)")
        #expect(t["throttling"] as? Bool == true && (t["throttled_periods"] as? Int ?? 0) > 0, "record: \(r)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("0.1 CPU (10 ms per 100 ms period)") && hint.contains("docker update --cpus <more> \(name)"), "\(hint)")
    }

    /// A running container published on 127.0.0.1 only: a SYN to
    /// 127.0.0.2:H is refused beside docker-proxy's listener on 127.0.0.1:H
    /// (or, without docker-proxy, beside the listener dockerd keeps to hold
    /// the port). With docker-proxy killed before synsight started (nothing
    /// saw it exit), 127.0.0.1:H itself is refused: not forwarded.
    @Test("a running container published on 127.0.0.1 only: another address is bound_to_other_address naming it; its docker-proxy gone, publisher_not_forwarded",
          arguments: [true, false])
    func publishedOnLoopbackOnly(userlandProxy: Bool) throws {
        guard DockerDaemon.installed() else { return }
        let daemon = try DockerDaemon(bridge: "198.19.246.1/24", userlandProxy: userlandProxy)
        defer { daemon.stop() }
        let tag = randomTag()
        let image = try daemon.importBusybox(tag: tag)
        let name = "synsight-e2e-pub-\(tag)"
        let published = randomPort()
        try daemon.docker(["run", "-d", "--name", name, "-p", "127.0.0.1:\(published):80", image,
                           "/bin/sh", "-c", "httpd -f -p 80 & while true; do sleep 1; done"])
        _ = try daemon.httpd(in: name, port: 80)
        func refusedAt(_ addr: String, _ trace: TraceSession) throws -> JSONRecord {
            let out = try sh(["/usr/bin/python3", Peer.script, "connect", addr, String(published), "--timeout", "3"])
            #expect(out.split(separator: "\n").last?.split(separator: " ").last == Substring(String(ECONNREFUSED)), "\(addr): \(out)")
            return try #require(trace.waitForRecord {
                $0.string("kind") == "refusal" && $0.int("port") == published && ($0.object("local")?["addr"] as? String) == addr
            }, "no refusal at \(addr); stderr: \(trace.stderr)")
        }
        let trace = try TraceSession(["--port", String(published)])
        let other = try refusedAt("127.0.0.2", trace)
        trace.stop()
        #expect(other.string("cause") == "bound_to_other_address", "record: \(other)")
        #expect((other.evidence["container"] as? [String: Any])?["name"] as? String == name, "record: \(other)")
        let hint = other.string("hint") ?? ""
        #expect(hint.contains("container \(name) publishes port \(published) on 127.0.0.1 only"), "\(hint)")
        #expect(hint.contains("-p 127.0.0.2:\(published):<container port>"), "\(hint)")
        #expect(other.object("process")?["comm"] as? String == (userlandProxy ? "docker-proxy" : "dockerd"), "record: \(other)")
        guard userlandProxy else { return }

        let proxy = try sh(["pgrep", "-f", "docker-proxy .*-host-port \(published) "]).trimmingCharacters(in: .whitespacesAndNewlines)
        try sh(["kill", "-KILL", proxy])
        #expect(waitUntil(timeout: 5) { ((try? sh(["ss", "-Hltn", "sport = :\(published)"])) ?? "x").isEmpty })
        let after = try TraceSession(["--port", String(published)])
        let gone = try refusedAt("127.0.0.1", after)
        after.stop()
        #expect(gone.string("cause") == "publisher_not_forwarded", "record: \(gone)")
        #expect((gone.evidence["container"] as? [String: Any])?["published"] as? String == "127.0.0.1:\(published)")
        #expect((gone.string("hint") ?? "").contains("Docker's forwarding of it is gone"), "\(gone)")
    }

    @Test("a container started after the trace publishes the named port: followed to its container port, in the kernel's filter and the records'")
    func publishedAfterStart() throws {
        guard DockerDaemon.installed() else { return }
        let daemon = try DockerDaemon(bridge: "198.19.250.1/24")
        defer { daemon.stop() }
        let tag = randomTag()
        let image = try daemon.importBusybox(tag: tag)
        let name = "synsight-e2e-late-\(tag)"
        let published = randomPort()
        // The trace first: nothing publishes the port yet, so the kernel
        // filters for it alone and a refusal at the container's port 80
        // would not even cross the ring buffer.
        let trace = try TraceSession(["--port", String(published)])
        #expect(trace.stderr.contains("tracing refusals on port \(published) (hook"), "\(trace.stderr)")
        // The app listens on 81, the mapping sends the published port to 80.
        try daemon.docker(["run", "-d", "--name", name, "-p", "127.0.0.1:\(published):80", image,
                           "/bin/sh", "-c", "httpd -f -p 81 & while true; do sleep 1; done"])
        let (_, httpd, netns) = try daemon.httpd(in: name, port: 81)
        let ip = try daemon.docker(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let note = "port \(published) is now published to \(ip):80: followed there"
        #expect(waitUntil(timeout: 10) { trace.stderr.contains(note) }, "\(trace.stderr)")
        // docker-proxy accepts the host client and connects to the container's port 80: refused there.
        _ = try sh(["/usr/bin/python3", "-c", """
            import socket
            s = socket.create_connection(("127.0.0.1", \(published)), 2)
            s.settimeout(2)
            try:
                s.recv(1)
            except OSError:
                pass
            """])
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == 80
        }, "no refusal in the container; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("cause") == "wrong_port", "record: \(r)")
        #expect(r.pid("process") == httpd)
        #expect((r.object("process")?["container"] as? [String: Any])?["name"] as? String == name)
        #expect(r.object("client")?["comm"] as? String == "docker-proxy")
        #expect((r.evidence["proxy"] as? [String: Any])?["target"] as? String == "\(ip):80", "record: \(r)")
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
        guard DockerDaemon.installed() else { return }
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

        let tag = randomTag()
        let image = try daemon.importBusybox(tag: tag)
        let name = "synsight-e2e-dnat-\(tag)"
        let published = randomPort(), loopback = published + 1
        let publish = ["-p", "\(Self.hostFront):\(published):80"] + (userlandProxy ? [] : ["-p", "127.0.0.1:\(loopback):80"])
        let id = try daemon.docker(["run", "-d", "--name", name] + publish + [image,
                                    "/bin/sh", "-c", "httpd -f -p 81 & while true; do sleep 1; done"])
            .split(separator: "\n").last.map(String.init) ?? ""  // after dockerd's warning (no IP forwarding)
        let (_, httpd, netns) = try daemon.httpd(in: name, port: 81)
        // Docker wrote the DNAT rule for the published port itself.
        let nat = try sh(["iptables", "-w", "-t", "nat", "-S", "DOCKER"])
        #expect(nat.contains("-d \(Self.hostFront)/32") && nat.contains("--dport \(published) -j DNAT"), "nat DOCKER: \(nat)")

        // Only the published ports: the refusal happens at the container's
        // port 80, which the kernel's filter follows from the container's config.
        let trace = try TraceSession(["--port", String(published)] + (userlandProxy ? [] : ["--port", String(loopback)]))
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
