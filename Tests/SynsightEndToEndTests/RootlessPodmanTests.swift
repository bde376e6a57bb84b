import Foundation
import Testing

/// Rootless Podman (a user of the test's own, RootlessAccount): its
/// published ports are forwarded by `rootlessport` in the host's namespace,
/// and its containers live in the user's own store, which synsight finds in
/// the user's home. In the Docker suite, which runs one test at a time.
extension DockerWorkloadTests {
    @Test("a rootless Podman container's published port: its forwarder (rootlessport, or slirp4netns as port handler) traced while it forwards, then the container stops: publisher_stopped names the container, its user, and the fix as that user",
          arguments: ["rootlessport", "slirp4netns"])
    func rootlessPublisherStopped(forwarder: String) throws {
        guard Podman.installed() else { return }
        let rl = try RootlessAccount()
        defer { rl.stop() }
        let tag = randomTag()
        // The user's store exists before synsight starts (it looks for rootless stores at start-up).
        let image = try rl.importBusybox(tag: tag)
        let name = "synsight-e2e-rl-\(tag)"
        let published = randomPort()
        let trace = try TraceSession(["--port", String(published)])
        let listening = { ((try? sh(["ss", "-Hltn", "sport = :\(published)"])) ?? "").isEmpty == false }
        // rootlessport is the default port handler of slirp4netns networks (Podman 4's default).
        let network = forwarder == "slirp4netns" ? ["--network", "slirp4netns:port_handler=slirp4netns"] : []
        try rl.run(["--name", name] + network + ["-p", "127.0.0.1:\(published):80", image, "/bin/sh", "-c", "sleep 8; exit 3"])
        #expect(waitUntil(timeout: 3, listening), "\(forwarder) does not listen on \(published)")
        #expect(waitUntil(timeout: 30) {
            (try? rl.podman(["inspect", "-f", "{{.State.Running}}", name]))?.hasPrefix("false") == true && !listening()
        }, "the container did not stop, or its port stayed open")
        let (r, container) = try refusedPublisher(trace, published: published, container: name)
        #expect(container?["runtime"] as? String == "podman", "record: \(r)")
        #expect(container?["rootless_user"] as? String == rl.user, "record: \(r)")
        #expect(r.object("process")?["comm"] as? String == forwarder, "record: \(r)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("user \(rl.user)'s rootless Podman container \(name)"), "\(hint)")
        #expect(hint.contains("its port forwarding (\(forwarder) (pid"), "\(hint)")
        #expect(hint.contains("runuser -u \(rl.user) -- podman start \(name)") && hint.contains("loginctl enable-linger \(rl.user)"), "\(hint)")
    }

    @Test("a rootless Podman container where cgroups are not delegated: a wrong port named by the container from the conmon above it")
    func rootlessPodmanInContainer() throws {
        guard Podman.installed() else { return }
        let rl = try RootlessAccount()
        defer { rl.stop() }
        let tag = randomTag()
        let image = try rl.importBusybox(tag: tag)
        let name = "synsight-e2e-rlw-\(tag)"
        let port = randomPort()
        let trace = try TraceSession([])
        try rl.run(["--name", name, "--network", "none", image, "/bin/sh", "-c", "httpd -f -p 127.0.0.1:\(port) & while true; do sleep 1; done"])
        let pid1 = try #require(Int(try rl.podman(["inspect", "-f", "{{.State.Pid}}", name]).trimmingCharacters(in: .whitespacesAndNewlines)))
        let (httpd, netns) = try ContainerHttpd.find(pid1: pid1, port: port, container: name)
        let listener = try #require(httpd)
        let w = try refusedInContainer(trace, pid1: pid1, netns: netns, port: port + 1)
        trace.stop()
        #expect(w.string("cause") == "wrong_port", "record: \(w)")
        #expect(w.pid("process") == listener)
        let container = w.object("process")?["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "podman" && container?["name"] as? String == name, "record: \(w)")
        #expect(w.string("netns_name") == "container \(name)", "record: \(w)")
    }
}
