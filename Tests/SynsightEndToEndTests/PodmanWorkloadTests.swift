import Foundation
import Testing

/// A real Podman container (rootful, its store in a temporary directory:
/// nothing the default store or a storage.conf could name): a refusal in its
/// network namespace must name the container by the name it was run with,
/// found on its conmon's command line, with runtime podman.
@Suite("podman workload identity, end to end", .serialized, .enabled(if: Privileged.enabled))
struct PodmanWorkloadTests {
    init() throws {
        try Privileged.check()
    }

    @Test("a Podman container: a wrong port names the container (runtime podman, its name from conmon), and explain names it too")
    func wrongPortInPodmanContainer() throws {
        guard Podman.installed() else { return }
        let podman = try Podman()
        defer { podman.stop() }
        let tag = randomTag()
        let image = try podman.importBusybox(tag: tag)
        let name = "synsight-e2e-pm-\(tag)"
        let port = randomPort()
        let trace = try TraceSession([])
        let id = try podman.run(name: name, image: image, command: "httpd -f -p 127.0.0.1:\(port) & while true; do sleep 1; done")
        let pid1 = try #require(Int(try podman.podman(["inspect", "-f", "{{.State.Pid}}", name])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let (httpd, netns) = try ContainerHttpd.find(pid1: pid1, port: port, container: name)
        let listener = try #require(httpd)

        let out = try sh(["nsenter", "--net=/proc/\(pid1)/ns/net", "/usr/bin/python3", Peer.script, "connect",
                          "127.0.0.1", String(port + 1), "--timeout", "2"])
        #expect(out.hasSuffix(" \(ECONNREFUSED)\n"), "connect: \(out)")
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == port + 1
        }, "no refusal; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("cause") == "wrong_port", "record: \(r)")
        #expect(r.pid("process") == listener)
        let container = r.object("process")?["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "podman", "record: \(r)")
        #expect(container?["id"] as? String == id)
        #expect(container?["name"] as? String == name)
        #expect(r.string("netns_name") == "container \(name)")
        #expect((r.string("hint") ?? "").contains("container \(name)) listens on \(port) only"), "\(r)")

        let (_, report) = try ExplainTests.Run(["--json", String(port), "--duration", "0"]).finish()
        let l = report.listeners.first { ($0["netns"] as? Int) == netns }
        let owner = (l?["processes"] as? [[String: Any]])?.first
        #expect((owner?["container"] as? [String: Any])?["name"] as? String == name, "\(report)")
    }
}
