import Foundation
import Testing

/// A real LXC container (lxc-execute): its processes are named by the
/// container, from LXC's payload cgroup, as LXD's and Incus's are.
extension WorkloadIdentityEndToEndTests {
    @Test("an LXC container: a client refused while it starts is starting; its killed listener is listener_exited naming container (runtime lxc) and the fix is LXC's")
    func lxcContainer() throws {
        guard LXCContainer.installed() else { return }
        let name = "synsight-e2e-lxc-\(randomTag())"
        let port = randomPort()
        // busybox as "httpd", so its process is named so; it listens after 2 s.
        let bin = tempDir()
        defer { try? FileManager.default.removeItem(atPath: bin) }
        try FileManager.default.createSymbolicLink(atPath: bin + "/httpd", withDestinationPath: "/bin/busybox")
        let trace = try TraceSession([])
        let lxc = try LXCContainer(name: name, command: "ip link set lo up; sleep 2; \(bin)/httpd -f -p 127.0.0.1:\(port) & while true; do sleep 1; done")
        defer { lxc.stop() }
        var first: Int?
        #expect(waitUntil(timeout: 10) {
            first = lxc.processes().first { $0.comm == "sh" }?.pid
            return first != nil
        }, "no shell in container \(name)")
        let sh1 = try #require(first)
        let netns = try #require(Int(try sh(["stat", "-L", "-c", "%i", "/proc/\(sh1)/ns/net"]).trimmingCharacters(in: .whitespacesAndNewlines)))

        // Before it listens: starting, naming the container's first process.
        let early = try sh(["nsenter", "--net=/proc/\(sh1)/ns/net", "/usr/bin/python3", Peer.script, "connect",
                            "127.0.0.1", String(port), "--timeout", "2"])
        #expect(early.hasSuffix(" \(ECONNREFUSED)\n"), "connect: \(early)")
        let s = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == port
        }, "no refusal while starting; stderr: \(trace.stderr)")
        #expect(s.string("cause") == "starting", "record: \(s)")
        let starting = s.object("process")?["container"] as? [String: Any]
        #expect(starting?["runtime"] as? String == "lxc" && starting?["name"] as? String == name, "record: \(s)")

        var httpd: Int?
        #expect(waitUntil(timeout: 10) {
            httpd = lxc.processes().first { $0.comm == "httpd" }?.pid
            let listening = (try? sh(["nsenter", "--net=/proc/\(sh1)/ns/net", "ss", "-Hltn", "sport = :\(port)"])) ?? ""
            return httpd != nil && !listening.isEmpty
        }, "httpd did not listen in container \(name)")
        let listener = try #require(httpd)
        kill(pid_t(listener), SIGKILL)
        let out = try sh(["nsenter", "--net=/proc/\(sh1)/ns/net", "/usr/bin/python3", Peer.script, "connect",
                          "127.0.0.1", String(port), "--timeout", "2"])
        #expect(out.hasSuffix(" \(ECONNREFUSED)\n"), "connect: \(out)")
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == netns && $0.int("port") == port && $0.string("ts") != s.string("ts")
        }, "no refusal; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("cause") == "listener_exited", "record: \(r)")
        #expect(r.pid("process") == listener)
        let container = r.object("process")?["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "lxc", "record: \(r)")
        #expect(container?["id"] as? String == name && container?["name"] as? String == name)
        #expect(r.object("process")?["cgroup"] as? String == "/lxc.payload.\(name)")
        #expect(r.string("netns_name") == "container \(name)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("lxc-attach -n \(name) --") && !hint.contains("docker"), "\(hint)")
    }
}
