import Foundation
import Testing

/// The container image proof: scripts/container-image.sh builds
/// deploy/kubernetes/Dockerfile into the test's own Docker daemon (no
/// registry: a locally made Debian 12 base, this build's synsight), and
/// synsight runs from that image under Docker with what the DaemonSet grants
/// (host PID and network namespaces, SYS_ADMIN, SYS_PTRACE, DAC_READ_SEARCH,
/// NET_ADMIN, no AppArmor profile, /sys/kernel/btf and the identity sources
/// mounted read-only). It must trace a refusal inside another container and
/// one in a test-created namespace, and name them. In the Docker suite: one
/// daemon at a time (they share docker0 and dockerd's host paths).
extension DockerWorkloadTests {
    static let script = RecordSchema.repo + "/scripts/container-image.sh"

    @Test("the image from deploy/kubernetes/Dockerfile, built without a registry, traces and names a container's refusal and a namespace's")
    func containerImage() throws {
        guard DockerDaemon.installed() else { return }
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        let tag = randomTag()
        let image = "synsight-e2e:\(tag)"
        // The base image is made once and cached (.build/container-image); the binary is this build's.
        let built = try sh(["bash", Self.script, "--host", "unix://" + daemon.socket, "--tag", image,
                            "--binary", TraceSession.binary])
        #expect(built.hasSuffix(image + "\n"), "container-image.sh: \(built)")

        // A workload container, listening on `port` only.
        let busybox = try daemon.importBusybox(tag: tag)
        let name = "synsight-e2e-app-\(tag)"
        let port = randomPort()
        let id = try daemon.docker(["run", "-d", "--name", name, "--network", "none", busybox,
                                    "/bin/sh", "-c", "httpd -f -p 127.0.0.1:\(port) & while true; do sleep 1; done"])
            .split(separator: "\n").last.map(String.init) ?? ""
        let (pid1, httpd, netns) = try daemon.httpd(in: name, port: port)
        let ns = try NetNS()
        defer { ns.remove() }

        // synsight from the image, as the DaemonSet runs it (Docker 20.10
        // does not know CAP_BPF and CAP_PERFMON by name: SYS_ADMIN implies both).
        let tracer = "synsight-e2e-tracer-\(tag)"
        let containers = daemon.dataRoot + "/containers"
        try daemon.docker(["run", "-d", "--name", tracer, "--network", "host", "--pid", "host",
                           "--cap-drop", "ALL", "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE",
                           "--cap-add", "DAC_READ_SEARCH", "--cap-add", "NET_ADMIN",
                           "--security-opt", "apparmor=unconfined", "--read-only", "--tmpfs", "/tmp",
                           "-v", "/sys/kernel/btf:/sys/kernel/btf:ro",
                           "-v", "\(containers):\(containers):ro",
                           "-v", "/run/netns:/run/netns:ro,rslave",
                           image, "trace", "--json"])
        let logs = { (stream: String) -> String in
            (try? sh(["/bin/sh", "-c", "'\(DockerDaemon.client)' -H 'unix://\(daemon.socket)' logs '\(tracer)' \(stream)"])) ?? ""
        }
        #expect(waitUntil(timeout: 30) { logs("2>&1 >/dev/null").contains("synsight: tracing") },
                "synsight did not start in its container: \(logs("2>&1"))")
        let records = { () -> [JSONRecord] in
            logs("2>/dev/null").split(separator: "\n").compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                    .map { JSONRecord(raw: $0, line: String(line)) }
            }
        }
        func waitForRecord(_ match: (JSONRecord) -> Bool) -> JSONRecord? {
            var found: JSONRecord?
            _ = waitUntil(timeout: 15) { found = records().first(where: match); return found != nil }
            return found
        }

        // In the workload container: the wrong port.
        let out = try sh(["nsenter", "--net=/proc/\(pid1)/ns/net", "/usr/bin/python3", Peer.script, "connect",
                          "127.0.0.1", String(port + 1), "--timeout", "2"])
        #expect(out.hasSuffix(" \(ECONNREFUSED)\n"), "connect: \(out)")
        let r = waitForRecord { $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == port + 1 }
        #expect(r?.string("cause") == "wrong_port", "record: \(r?.line ?? "none"); all: \(logs("2>&1"))")
        #expect(r?.pid("process") == httpd, "record: \(r?.line ?? "none")")
        let container = r?.object("process")?["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "docker", "record: \(r?.line ?? "none")")
        #expect(container?["id"] as? String == id)
        #expect(container?["name"] as? String == name, "record: \(r?.line ?? "none")")
        #expect(r?.string("netns_name") == "container \(name)")

        // In a namespace the test created: nothing listens.
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port, timeout: 2)
        #expect(c.errno == Int(ECONNREFUSED))
        let n = waitForRecord { $0.string("kind") == "refusal" && $0.int("netns") == ns.inode && $0.int("port") == port }
        #expect(n?.string("reason") == "no_listener", "record: \(n?.line ?? "none"); all: \(logs("2>&1"))")
        #expect(n?.pid("client") == c.pid, "record: \(n?.line ?? "none")")
        #expect(n?.string("netns_name") == ns.name, "record: \(n?.line ?? "none")")

        try daemon.docker(["stop", "-t", "10", tracer])
        #expect(logs("2>&1 >/dev/null").contains("synsight: "), "no summary on stop: \(logs("2>&1"))")
        RecordSchema.check(lines: logs("2>/dev/null"), "synsight trace --json in its container")
    }
}
