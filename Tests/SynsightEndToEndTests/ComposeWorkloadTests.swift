import Foundation
import Testing

/// A real Compose project (Debian's docker-compose, installed by
/// scripts/install-deps.sh) on the test's own dockerd: what synsight says of
/// its containers is in the project's terms, read from the labels Compose
/// puts on them. In the Docker suite, which runs one test at a time.
extension DockerWorkloadTests {
    static let compose = "/usr/bin/docker-compose"

    @Test("a Compose project: a service's killed listener names the compose service; a service still starting is starting, with depends_on in the fix; another service's stopped published port is publisher_stopped with its compose file and docker compose up")
    func composeProject() throws {
        guard DockerDaemon.installed() else { return }
        #expect(FileManager.default.isExecutableFile(atPath: Self.compose), "docker-compose is not installed: run scripts/install-deps.sh")
        let daemon = try DockerDaemon(bridge: "198.19.239.1/24")
        defer { daemon.stop() }
        let tag = randomTag()
        let image = try daemon.importBusybox(tag: tag)
        let project = "synsight-e2e-\(tag)"
        let (port, published) = (randomPort(), randomPort())
        // The services run on the test's docker0 (network_mode), so Compose creates no network of its own.
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/compose.yaml"
        try """
            version: "3"
            services:
              api:
                image: \(image)
                network_mode: none
                command: ["/bin/sh", "-c", "httpd -f -p 127.0.0.1:\(port) & while true; do sleep 1; done"]
              db:
                image: \(image)
                network_mode: none
                command: ["/bin/sh", "-c", "sleep 60; httpd -f -p 127.0.0.1:\(port)"]
              web:
                image: \(image)
                network_mode: bridge
                ports: ["127.0.0.1:\(published):80"]
                command: ["/bin/sh", "-c", "sleep 1; exit 3"]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let trace = try TraceSession([])
        _ = try sh([Self.compose, "-H", "unix://" + daemon.socket, "-p", project, "-f", file, "up", "-d"])
        let api = "\(project)_api_1", web = "\(project)_web_1"
        let (pid1, httpd, netns) = try daemon.httpd(in: api, port: port)
        let listener = try #require(httpd)
        #expect(waitUntil(timeout: 20) {
            (try? daemon.docker(["inspect", "-f", "{{.State.Running}}", web]))?.hasPrefix("false") == true
        })

        // The api service's listener killed, a client in its namespace refused.
        kill(pid_t(listener), SIGKILL)
        let r = try refusedInContainer(trace, pid1: pid1, netns: netns, port: port)
        #expect(r.string("cause") == "listener_exited", "record: \(r)")
        let container = r.object("process")?["container"] as? [String: Any]
        #expect(container?["name"] as? String == api, "record: \(r)")
        let service = container?["service"] as? [String: Any]
        #expect(service?["orchestrator"] as? String == "compose", "record: \(r)")
        #expect(service?["project"] as? String == project)
        #expect(service?["name"] as? String == "api")
        #expect(service?["config_files"] as? [String] == [file])
        #expect(service?["working_dir"] as? String == dir)
        #expect((r.string("hint") ?? "").contains("compose service \(project)/api container \(api)"), "\(r.string("hint") ?? "")")

        // The db service is still starting (it listens after 60 s): a client in its namespace now.
        let db = "\(project)_db_1"
        let dbPid = try #require(Int(try daemon.docker(["inspect", "-f", "{{.State.Pid}}", db])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let dbNetns = try #require(Int(try sh(["stat", "-L", "-c", "%i", "/proc/\(dbPid)/ns/net"])
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let early = try refusedInContainer(trace, pid1: dbPid, netns: dbNetns, port: port)
        #expect(early.string("cause") == "starting", "record: \(early)")
        #expect(early.pid("process") == dbPid, "record: \(early)")
        #expect(((early.object("process")?["container"] as? [String: Any])?["service"] as? [String: Any])?["name"] as? String == "db")
        let startup = try #require(early.object("evidence")?["startup_ms"] as? Int, "record: \(early)")
        #expect(startup >= 0 && startup < 60_000, "record: \(early)")
        #expect(early.object("evidence")?["started_at"] is String)
        #expect((early.string("hint") ?? "").contains("depends_on: {db: {condition: service_healthy}}"), "\(early.string("hint") ?? "")")

        // The web service exited: its published port refused on the host.
        let (s, publisher) = try refusedPublisher(trace, published: published, container: web)
        #expect((publisher?["service"] as? [String: Any])?["name"] as? String == "web", "record: \(s)")
        let hint = s.string("hint") ?? ""
        #expect(hint.contains("container \(web) (compose service \(project)/web)"), "\(hint)")
        #expect(hint.contains("docker compose -p \(project) -f \(file) up -d web"), "\(hint)")
        #expect(!hint.contains("docker start"), "\(hint)")

        // explain says the same from Docker's files alone.
        let (_, report) = try ExplainTests.Run(["--json", String(published), "--duration", "0"]).finish()
        let f = report.finding("publisher_stopped")
        let named = report.evidence(f)["container"] as? [String: Any]
        #expect((named?["service"] as? [String: Any])?["project"] as? String == project, "\(report)")
        #expect((f?["remediation"] as? String)?.contains("up -d web") == true, "\(report)")
    }
}
