import Foundation
import Testing

/// Rootless Docker (a user of the test's own running `dockerd-rootless.sh`,
/// RootlessAccount): its published ports are forwarded by `rootlesskit` in
/// the host's namespace, and its containers' configurations are in the
/// user's home, which synsight finds when the user's first dockerd made it
/// while synsight ran, and at start-up once the daemon is gone too (the
/// user logged out) from /etc/passwd. In the Docker suite, which runs one
/// test at a time.
extension DockerWorkloadTests {
    @Test("a rootless Docker container's published port: rootlesskit traced while it forwards, the container stops: publisher_stopped names the container (its data root new since start-up), its user and the fix as that user; and again after its daemon left")
    func rootlessDockerPublisherStopped() throws {
        guard DockerDaemon.installed(), RootlessAccount.rootlessDockerInstalled() else { return }
        let rl = try RootlessAccount()
        defer { rl.stop() }
        let published = randomPort()
        // Started before the user's first rootless dockerd: its data root
        // appears while synsight runs, and is found when a refusal needs it.
        let trace = try TraceSession(["--port", String(published)])
        try rl.startDockerd()
        let tag = randomTag()
        let image = try rl.importBusyboxToDocker(tag: tag)
        let name = "synsight-e2e-rld-\(tag)"
        let listening = { ((try? sh(["ss", "-Hltnp", "sport = :\(published)"])) ?? "") }
        try rl.docker(["run", "-d", "--name", name, "-p", "127.0.0.1:\(published):80", image, "/bin/sh", "-c", "sleep 6; exit 3"])
        #expect(waitUntil(timeout: 5) { listening().contains("rootlesskit") }, "rootlesskit does not listen on \(published): \(listening())")
        #expect(waitUntil(timeout: 30) {
            (try? rl.docker(["inspect", "-f", "{{.State.Running}}", name]))?.hasPrefix("false") == true && listening().isEmpty
        }, "the container did not stop, or its port stayed open")
        let (r, container) = try refusedPublisher(trace, published: published, container: name)
        #expect(container?["runtime"] as? String == "docker", "record: \(r)")
        #expect(container?["rootless_user"] as? String == rl.user, "record: \(r)")
        #expect(r.object("process")?["comm"] as? String == "rootlesskit", "record: \(r)")
        let hint = r.string("hint") ?? ""
        let cli = "runuser -u \(rl.user) -- docker -H unix://\(rl.dockerSocket)"
        #expect(hint.contains("user \(rl.user)'s rootless Docker container \(name)"), "\(hint)")
        #expect(hint.contains("its port forwarding (rootlesskit (pid"), "\(hint)")
        #expect(hint.contains("\(cli) start \(name)") && hint.contains("loginctl enable-linger \(rl.user)"), "\(hint)")

        // The user logs out: its dockerd, rootlesskit and the rest leave.
        // A synsight started now finds the data root in the user's home.
        _ = try sh(["pkill", "-TERM", "-u", rl.user], allowFailure: true)
        #expect(waitUntil(timeout: 20) { ((try? sh(["pgrep", "-u", rl.user], allowFailure: true)) ?? "").isEmpty },
                "the user's rootless Docker processes did not exit")
        let later = try TraceSession(["--port", String(published)])
        let (again, stopped) = try refusedPublisher(later, published: published, container: name)
        #expect(stopped?["rootless_user"] as? String == rl.user, "record: \(again)")
        #expect(again.object("process") == nil, "record: \(again)")
        #expect(again.string("hint")?.contains("\(cli) start \(name)") == true, "\(again)")

        // explain says the same from the user's data root alone.
        let (_, report) = try ExplainTests.Run(["--json", String(published), "--duration", "0"]).finish()
        let f = report.finding("publisher_stopped")
        #expect((report.evidence(f)["container"] as? [String: Any])?["rootless_user"] as? String == rl.user, "\(report)")
        #expect((f?["remediation"] as? String)?.contains("\(cli) start \(name)") == true, "\(report)")
    }

    @Test("a rootless Docker container where cgroups are not delegated (its processes in the root cgroup): a wrong port, then its killed listener, named by the container from the containerd shim above it")
    func rootlessDockerInContainer() throws {
        guard DockerDaemon.installed(), RootlessAccount.rootlessDockerInstalled() else { return }
        let rl = try RootlessAccount()
        defer { rl.stop() }
        try rl.startDockerd()
        let tag = randomTag()
        let image = try rl.importBusyboxToDocker(tag: tag)
        let name = "synsight-e2e-rldw-\(tag)"
        let port = randomPort()
        let trace = try TraceSession([])
        let id = try rl.docker(["run", "-d", "--name", name, "--network", "none", image,
                                "/bin/sh", "-c", "httpd -f -p 127.0.0.1:\(port) & while true; do sleep 1; done"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let pid1 = try #require(Int(try rl.docker(["inspect", "-f", "{{.State.Pid}}", name]).trimmingCharacters(in: .whitespacesAndNewlines)))
        let (httpd, netns) = try ContainerHttpd.find(pid1: pid1, port: port, container: name)
        let listener = try #require(httpd)
        // What this host gives a rootless container: no cgroup of its own.
        let cgroup = try String(contentsOfFile: "/proc/\(listener)/cgroup", encoding: .utf8)
        #expect(!cgroup.contains(id), "the container has a cgroup of its own here: \(cgroup)")

        let w = try refusedInContainer(trace, pid1: pid1, netns: netns, port: port + 1)
        #expect(w.string("cause") == "wrong_port", "record: \(w)")
        #expect(w.pid("process") == listener)
        #expect((w.object("process")?["container"] as? [String: Any])?["name"] as? String == name, "record: \(w)")

        kill(pid_t(listener), SIGKILL)
        let r = try refusedInContainer(trace, pid1: pid1, netns: netns, port: port)
        trace.stop()
        #expect(r.string("cause") == "listener_exited", "record: \(r)")
        let container = r.object("process")?["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "docker" && container?["id"] as? String == id && container?["name"] as? String == name,
                "record: \(r)")
        #expect(r.string("netns_name") == "container \(name)", "record: \(r)")
        #expect((r.string("hint") ?? "").contains("container \(name)"), "\(r)")
    }
}
