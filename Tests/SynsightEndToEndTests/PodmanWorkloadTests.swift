import Foundation
import Testing

/// Real Podman containers (rootful, their store in a temporary directory:
/// nothing the default store names). In the Docker suite, which runs one
/// test at a time: Podman's cleanup removes the cgroups and caches it made,
/// and its network's test compares the host's bridges, iptables chains and
/// ip_forward before and after, state dockerd changes too.
extension DockerWorkloadTests {
    /// A refusal in a container's network namespace must name the container
    /// by the name it was run with, found on its conmon's command line, with runtime podman.
    @Test("a Podman container: a wrong port names the container (runtime podman, its name from conmon, its Compose service from libpod's database), and explain names it too")
    func wrongPortInPodmanContainer() throws {
        guard Podman.installed() else { return }
        let podman = try Podman()
        defer { podman.stop() }
        let tag = randomTag()
        let image = try podman.importBusybox(tag: tag)
        let name = "synsight-e2e-pm-\(tag)"
        let port = randomPort()
        let trace = try TraceSession([], environment: ["CONTAINERS_STORAGE_CONF": try podman.storageConf()])
        // Labelled as podman-compose labels its containers.
        let labels = ["io.podman.compose.project": "blog", "com.docker.compose.project": "blog", "com.docker.compose.service": "web",
                      "com.docker.compose.project.working_dir": "/srv/blog", "com.docker.compose.project.config_files": "podman-compose.yml"]
        let id = try podman.run(name: name, image: image, command: "httpd -f -p 127.0.0.1:\(port) & while true; do sleep 1; done",
                                labels: labels)
        let pid1 = try #require(Int(try podman.podman(["inspect", "-f", "{{.State.Pid}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let (httpd, netns) = try ContainerHttpd.find(pid1: pid1, port: port, container: name)
        let listener = try #require(httpd)

        let r = try refusedInContainer(trace, pid1: pid1, netns: netns, port: port + 1)
        trace.stop()
        #expect(r.string("cause") == "wrong_port", "record: \(r)")
        #expect(r.pid("process") == listener)
        let container = r.object("process")?["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "podman", "record: \(r)")
        #expect(container?["id"] as? String == id)
        #expect(container?["name"] as? String == name)
        let service = container?["service"] as? [String: Any]
        #expect(service?["project"] as? String == "blog" && service?["name"] as? String == "web", "record: \(r)")
        #expect(service?["config_files"] as? [String] == ["/srv/blog/podman-compose.yml"], "record: \(r)")
        #expect(r.string("netns_name") == "container \(name)")
        #expect((r.string("hint") ?? "").contains("container \(name)) listens on \(port) only"), "\(r)")

        let (_, report) = try ExplainTests.Run(["--json", String(port), "--duration", "0"]).finish()
        let l = report.listeners.first { ($0["netns"] as? Int) == netns }
        let owner = (l?["processes"] as? [[String: Any]])?.first
        #expect((owner?["container"] as? [String: Any])?["name"] as? String == name, "\(report)")
    }

    @Test("a Podman container's published port (CNI portmap): the host's loopback client joined across DNAT and masquerade, another address bound_to_other_address, then stopped: publisher_stopped naming it from libpod's database")
    func publishedPort() throws {
        guard Podman.installed() else { return }
        let podman = try Podman(network: true)
        defer { podman.stop() }
        let tag = randomTag()
        let image = try podman.importBusybox(tag: tag)
        let name = "synsight-e2e-pmp-\(tag)"
        let port = randomPort()
        // Started first: it sees podman make the port reservation, then conmon hold it.
        let trace = try TraceSession([], environment: ["CONTAINERS_STORAGE_CONF": try podman.storageConf()])
        // httpd on 8000 in the container, published as container port 80: a wrong port mapping.
        let id = try podman.run(name: name, image: image, command: "httpd -f -p 8000 & while true; do sleep 1; done",
                                publish: ["127.0.0.1:\(port):80"])
        let pid1 = try #require(Int(try podman.podman(["inspect", "-f", "{{.State.Pid}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let (httpd, netns) = try ContainerHttpd.find(pid1: pid1, port: 8000, container: name)
        _ = try #require(httpd)

        func connect(_ addr: String) throws -> (pid: Int, errno: Int) {
            let out = try sh(["/usr/bin/python3", Peer.script, "connect", addr, String(port), "--timeout", "2"])
            let f = out.split(separator: "\n").last?.split(separator: " ").compactMap { Int($0) } ?? []
            return f.count == 2 ? (f[0], f[1]) : (0, 0)
        }
        // 1. The host's own client at 127.0.0.1: DNATed to the container's port 80, masqueraded to the bridge's address.
        let local = try connect("127.0.0.1")
        #expect(local.errno == Int(ECONNREFUSED))
        let wrong = try #require(trace.waitForRecord { $0.int("netns") == netns && $0.int("port") == 80 }, "\(trace.stdout)")
        #expect(wrong.string("cause") == "wrong_port", "\(wrong)")
        #expect((wrong.object("process")?["container"] as? [String: Any])?["name"] as? String == name, "\(wrong)")
        #expect(wrong.pid("client") == local.pid, "\(wrong)")
        #expect(wrong.object("original_destination")?["port"] as? Int == port, "\(wrong)")
        #expect((wrong.evidence["translated_source"] as? [String: Any])?["addr"] as? String == "198.19.241.1", "\(wrong)")
        // 2. Another address of the host (the bridge's): published on 127.0.0.1 only.
        let other = try connect("198.19.241.1")
        #expect(other.errno == Int(ECONNREFUSED))
        let elsewhere = try #require(trace.waitForRecord { $0.int("port") == port && $0.string("cause") == "bound_to_other_address" },
                                     "\(trace.stdout)")
        let held = elsewhere.evidence["container"] as? [String: Any]
        #expect(held?["runtime"] as? String == "podman" && held?["name"] as? String == name && held?["id"] as? String == id, "\(elsewhere)")
        #expect((elsewhere.string("hint") ?? "").contains("podman run -p \(port):<container port>"), "\(elsewhere)")
        // explain of the published port follows it into the container (conmon's reservation on the host is no sign of health).
        let (_, running) = try ExplainTests.Run(["--json", String(port), "--duration", "0"],
                                                environment: ["CONTAINERS_STORAGE_CONF": try podman.storageConf()]).finish()
        let behind = running.finding("wrong_port") { ($0["netns"] as? Int) == netns }
        #expect(behind?["severity"] as? String == "critical" && running.status == "broken", "\(running)")
        #expect((behind?["message"] as? String)?.contains("to port 80, in ") == true, "\(running)")
        #expect((behind?["message"] as? String)?.contains("nothing listens on port 80; httpd (pid \(httpd ?? -1), container \(name)) listens on 8000 only") == true,
                "\(running)")
        // 3. Stopped: its reservation gone, the host refuses the port itself.
        try podman.lifecycle("stop", name)
        let after = try connect("127.0.0.1")
        #expect(after.errno == Int(ECONNREFUSED))
        let stopped = try #require(trace.waitForRecord { $0.int("port") == port && $0.string("cause") == "publisher_stopped" },
                                   "\(trace.stdout)")
        trace.stop()
        let c = stopped.evidence["container"] as? [String: Any]
        #expect(c?["runtime"] as? String == "podman" && c?["name"] as? String == name && c?["id"] as? String == id, "\(stopped)")
        #expect(c?["published"] as? String == "127.0.0.1:\(port)" && c?["container_port"] as? Int == 80, "\(stopped)")
        #expect(c?["exit_code"] as? Int == 137, "\(stopped)")
        #expect(stopped.pid("client") == after.pid)
        #expect((stopped.string("hint") ?? "").contains("podman start \(name)"), "\(stopped)")
        // One record per connection: no client-side "nothing on this host explains it".
        #expect(!trace.records.contains { $0.string("cause") == "connection_refused" }, "\(trace.stdout)")
        // explain names the stopped container too.
        let (_, report) = try ExplainTests.Run(["--json", String(port), "--duration", "0"],
                                               environment: ["CONTAINERS_STORAGE_CONF": try podman.storageConf()]).finish()
        let finding = report.finding("publisher_stopped")
        #expect((finding?["message"] as? String)?.contains("Podman container \(name) publishes port \(port)") == true, "\(report.findings)")
        #expect((finding?["remediation"] as? String)?.contains("podman start \(name)") == true, "\(report.findings)")
    }
}
