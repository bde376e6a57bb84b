@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// A refused port of the host that a Docker container publishes: stopped
/// (`publisher_stopped`), running on another host address only
/// (`bound_to_other_address`), running with its forwarding gone
/// (`publisher_not_forwarded`). Docker's files parsed, and the records.
@Suite("no_listener: the port a Docker container publishes")
struct DockerPortBindingTests {
    static let config = Array("""
        {"ID":"4f2a9c","Name":"/web","State":{"Running":false,"Paused":false,"Restarting":false,"OOMKilled":true,
         "ExitCode":137,"FinishedAt":"2026-12-06T12:00:00.123456789Z"},
         "NetworkSettings":{"Ports":{}}}
        """.utf8)
    static let hostConfig = Array("""
        {"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}],"53/udp":[{"HostIp":"","HostPort":"5353"}],
         "443/tcp":[{"HostIp":"","HostPort":"8443"}]},"RestartPolicy":{"Name":"no"}}
        """.utf8)

    static let runningConfig = Array(String(decoding: config, as: UTF8.self)
        .replacingOccurrences(of: "\"Running\":false", with: "\"Running\":true").utf8)

    struct Resolver: ProcessResolver {
        var running = false
        /// A rootless dockerd's container, of this user.
        var rootless: RootlessUser?
        func exe(pid: UInt32) -> String? { nil }
        func publishers(port: UInt16, freshSince: UInt64) -> [DockerPortBinding] {
            DockerPortBinding.docker(id: "4f2a9c", configJSON: running ? DockerPortBindingTests.runningConfig : DockerPortBindingTests.config,
                                     hostConfigJSON: DockerPortBindingTests.hostConfig)
                .filter { $0.hostPort == port }.map { var b = $0; b.rootless = rootless; return b }
        }
    }

    static func refused(port: UInt16, netns: UInt32 = hostNS, running: Bool = false, to addr: IPAddress = v4(127, 0, 0, 1)) -> Record? {
        var e = engine(resolver: Resolver(running: running))
        e.hostNetns = hostNS
        return run(&e, [rst(at: 1_000, to: Endpoint(addr: addr, port: port), from: client1, netns: netns)]).first
    }

    /// One record of each cause (SchemaRecordsTests validates them).
    static func records() -> [Record] {
        [refused(port: 8080), refused(port: 8080, running: true, to: v4(192, 0, 2, 10)), refused(port: 8443, running: true)].compactMap { $0 }
    }

    @Test("Docker's files: a container's TCP bindings, running or not, its exit, the addresses each covers")
    func parse() {
        let s = DockerPortBinding.docker(id: "4f2a9c", configJSON: Self.config, hostConfigJSON: Self.hostConfig)
        #expect(s.map(\.published) == ["127.0.0.1:8080", "0.0.0.0:8443"])
        #expect(s.first?.name == "web" && s.first?.containerPort == 80 && s.first?.exitCode == 137 && s.first?.oomKilled == true)
        #expect(s.first?.how == "exited with code 137 at 2026-12-06T12:00:00.123456789Z (OOM-killed)")
        let running = DockerPortBinding.docker(id: "4f2a9c", configJSON: Self.runningConfig, hostConfigJSON: Self.hostConfig)
        #expect(running.count == 2 && running.allSatisfy(\.running) && !s.contains(where: \.running))
        #expect(running[0].covers(v4(127, 0, 0, 1)) && !running[0].covers(v4(127, 0, 0, 2)))
        #expect(running[1].covers(v4(192, 0, 2, 10)) && !running[1].covers(IPAddress(bytes: [0xfd] + Array(repeating: 0, count: 14) + [1])))
        let never = Array("{\"Name\":\"/new\",\"State\":{\"Running\":false,\"FinishedAt\":\"0001-01-01T00:00:00Z\"}}".utf8)
        #expect(DockerPortBinding.docker(id: "x", configJSON: never, hostConfigJSON: Self.hostConfig).first?.how == "created but never started")
    }

    @Test("a refusal of the host's port 8080: publisher_stopped naming the container, its exit and docker start")
    func refusal() throws {
        let r = try #require(Self.refused(port: 8080))
        #expect(r.cause?.rawValue == "publisher_stopped")
        #expect(r.evidence("container")?["name"]?.stringValue == "web")
        #expect(r.evidence("container")?["exit_code"]?.intValue == 137)
        #expect(r.evidence("container")?["published"]?.stringValue == "127.0.0.1:8080")
        let hint = try #require(r.hint)
        #expect(hint.contains("container web publishes it (127.0.0.1:8080 to its port 80) but is not running: exited with code 137"), "\(hint)")
        #expect(hint.contains("docker start web"), "\(hint)")
    }

    @Test("another port, or another namespace's refusal: never_listened as before")
    func notTheContainers() throws {
        #expect(Self.refused(port: 9090)?.cause?.rawValue == "never_listened")
        #expect(Self.refused(port: 8080, netns: 4_026_532_999)?.cause?.rawValue == "never_listened")
    }

    @Test("running, published on 127.0.0.1 only, the SYN to another address: bound_to_other_address naming the container and its -p")
    func publishedElsewhere() throws {
        let r = try #require(Self.refused(port: 8080, running: true, to: v4(192, 0, 2, 10)))
        #expect(r.cause?.rawValue == "bound_to_other_address")
        #expect(r.evidence("container")?["running"] == .bool(true) && r.evidence("container")?["name"]?.stringValue == "web")
        let hint = try #require(r.hint)
        #expect(hint.contains("container web publishes port 8080 on 127.0.0.1 only (to its port 80), but the SYN was sent to 192.0.2.10:8080"), "\(hint)")
        #expect(hint.contains("docker run -p 8080:<container port>") && hint.contains("-p 192.0.2.10:8080:<container port>"), "\(hint)")
    }

    @Test("running, published on every address, and still refused: publisher_not_forwarded (Docker's rules gone)")
    func notForwarded() throws {
        let r = try #require(Self.refused(port: 8443, running: true))
        #expect(r.cause?.rawValue == "publisher_not_forwarded")
        let hint = try #require(r.hint)
        #expect(hint.contains("container web is running and publishes 0.0.0.0:8443 (to its port 443), but nothing on the host takes the port"), "\(hint)")
        #expect(hint.contains("iptables -t nat -S DOCKER | grep 8443"), "\(hint)")
        // A namespace other than the host's: Docker publishes on the host only.
        #expect(Self.refused(port: 8443, netns: hostNS + 1, running: true)?.cause?.rawValue == "never_listened")
    }

    @Test("traced from before the stop: docker-proxy's listener gone with the container is publisher_stopped, not docker-proxy's exit")
    func forwarderGone() throws {
        var e = engine(resolver: Resolver())
        e.hostNetns = hostNS
        let at = Endpoint(addr: v4(127, 0, 0, 1), port: 8080)
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: at, pid: 990, comm: "docker-proxy", inode: 41)),
            .listenClose(listenerChange(at: 200, on: at, pid: 0, comm: "", inode: 41)),
            exitEvent(at: 210, pid: 990, comm: "docker-proxy", code: 0),
            rst(at: 300, to: at, from: client1),
        ]))
        #expect(r.cause?.rawValue == "publisher_stopped" && r.process?.pid == 990)
        let hint = try #require(r.hint)
        #expect(hint.contains("container web publishes it (127.0.0.1:8080 to its port 80), and its port forwarding (docker-proxy (pid 990)) is gone: "
                              + "exited with code 137"), "\(hint)")
        #expect(hint.contains("docker start web"), "\(hint)")
    }

    @Test("rootless Docker: rootlesskit's listener (or slirp4netns's, its other port driver) gone with the container is publisher_stopped naming the user, the fix as that user through its daemon's socket",
          arguments: ["rootlesskit", "slirp4netns"])
    func rootlessForwarderGone(comm: String) throws {
        let alice = RootlessUser(name: "alice", uid: 1000, home: "/home/alice")
        var e = engine(resolver: Resolver(rootless: alice))
        e.hostNetns = hostNS
        let at = Endpoint(addr: v4(127, 0, 0, 1), port: 8080)
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: at, pid: 4997, comm: comm, inode: 41)),
            .listenClose(listenerChange(at: 200, on: at, pid: 0, comm: "", inode: 41)),
            rst(at: 300, to: at, from: client1),
        ]))
        #expect(r.cause?.rawValue == "publisher_stopped" && r.process?.pid == 4997)
        let hint = try #require(r.hint)
        #expect(hint.contains("user alice's rootless Docker container web publishes it (127.0.0.1:8080 to its port 80), and its port "
                              + "forwarding (\(comm) (pid 4997)) is gone"), "\(hint)")
        #expect(hint.contains("runuser -u alice -- docker -H unix:///run/user/1000/docker.sock start web"), "\(hint)")
        #expect(hint.contains("runuser -u alice -- docker -H unix:///run/user/1000/docker.sock logs web"), "\(hint)")
        #expect(hint.contains("loginctl enable-linger alice") && hint.contains("systemctl --user start docker"), "\(hint)")
        #expect(r.evidence.first { $0.0 == "container" }?.1["rootless_user"]?.stringValue == "alice")
    }

    @Test("a rootless dockerd's data root: XDG_DATA_HOME's, else its home's; a rootful dockerd's is not rootless")
    func rootlessDataRoot() {
        let env = RootlessUser.environment("HOME=/home/alice\0ROOTLESSKIT_STATE_DIR=/tmp/rootlesskit1\0PATH=/usr/bin:/bin\0")
        #expect(env["PATH"] == "/usr/bin:/bin")
        #expect(RootlessUser.dockerDataRoot(environment: env) == "/home/alice/.local/share/docker")
        var xdg = env
        xdg["XDG_DATA_HOME"] = "/data/alice"
        #expect(RootlessUser.dockerDataRoot(environment: xdg) == "/data/alice/docker")
        #expect(RootlessUser.dockerDataRoot(environment: ["HOME": "/root"]) == nil)
        #expect(RootlessUser.dockerDataRoot(environment: ["ROOTLESSKIT_STATE_DIR": "/tmp/r", "HOME": "/"]) == nil)
        let alice = RootlessUser(name: "alice", uid: 1000, home: "/home/alice")
        #expect(alice.dockerDataRoot == "/home/alice/.local/share/docker" && alice.dockerSocket == "/run/user/1000/docker.sock")
        var b = DockerPortBinding(id: "4f2a9c", name: "web", hostIP: "127.0.0.1", hostPort: 8080, containerPort: 80)
        #expect(b.phrase == "container web")
        b.rootless = alice
        #expect(b.phrase == "user alice's rootless Docker container web")
    }
}
