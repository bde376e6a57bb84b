@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// A refused host port that a Podman container publishes: libpod's state
/// database scanned for the container's configuration and last stop, and the
/// records: its port reservation (podman, then conmon) gone, or held on
/// another address. The end-to-end Podman tests (PodmanWorkloadTests.swift) read a real one.
@Suite("no_listener: the port a Podman container publishes")
struct PodmanPortBindingTests {
    static let id = String(repeating: "ab", count: 32)
    static let removed = String(repeating: "cd", count: 32)

    static func config(_ id: String, name: String) -> String {
        #"{"spec":{"ociVersion":"1.0.2","process":{"args":["/bin/sh","-c","echo {\"x\": 1}"]}},"id":"\#(id)","name":"\#(name)","#
            + #""newPortMappings":[{"host_ip":"127.0.0.1","container_port":80,"host_port":18080,"range":1,"protocol":"tcp"},"#
            + #"{"host_ip":"","container_port":9000,"host_port":19000,"range":3,"protocol":"tcp"},"#
            + #"{"host_ip":"","container_port":53,"host_port":5353,"range":1,"protocol":"udp"}]}"#
    }

    static func state(_ id: String, finished: String, exit: Int) -> String {
        #"{"state":6,"configPath":"/var/lib/containers/storage/overlay-containers/\#(id)/userdata/config.json","#
            + #""startedTime":"2026-12-06T10:00:00Z","finishedTime":"\#(finished)","exitCode":\#(exit),"exited":true}"#
    }

    /// BoltDB-like bytes: page headers and keys around the JSON values, an
    /// older state copy left in a free page, a removed container's config.
    static var database: [UInt8] {
        var b: [UInt8] = [0x00, 0x10, 0xED, 0xDA, 0x0C, 0x02, 0, 0] + Array("ctr".utf8) + [0x01, 0x00]
        b += Array(config(id, name: "web").utf8) + [0x00, 0x04, 0x00]
        b += Array(state(id, finished: "2026-12-06T11:00:00.5Z", exit: 0).utf8) + [0xFF, 0x00]
        b += Array(state(id, finished: "2026-12-06T12:30:00.25Z", exit: 137).utf8) + [0x02]
        b += Array(config(removed, name: "gone").utf8)
        // A value cut by a page boundary: not one object, skipped.
        b += Array(#"{"spec":{"id":"#.utf8) + [0x00, 0x01, 0x02] + Array("\"}".utf8)
        return b
    }

    static let live = [id: "web"]

    @Test("libpod's database: TCP bindings of live containers (ranges expanded), the latest stop of the state copies")
    func parse() {
        let b = PodmanPortBindings.parse(state: Self.database, live: Self.live)
        #expect(b.map(\.published) == ["127.0.0.1:18080", "0.0.0.0:19000", "0.0.0.0:19001", "0.0.0.0:19002"])
        #expect(b.allSatisfy { $0.runtime == .podman && $0.id == Self.id && $0.name == "web" && !$0.running })
        #expect(b[2].containerPort == 9001)
        #expect(b[0].exitCode == 137 && b[0].finishedAt == "2026-12-06T12:30:00.25Z")
        #expect(b[0].how == "exited with code 137 at 2026-12-06T12:30:00.25Z")
        #expect(b[0].json["runtime"]?.stringValue == "podman")
        // Podman 3's CNI-style portMappings.
        let old = Array(#"{"spec":{},"id":"\#(Self.id)","name":"web","portMappings":[{"hostIP":"","hostPort":8080,"containerPort":80,"protocol":"tcp"}]}"#.utf8)
        #expect(PodmanPortBindings.parse(state: old, live: Self.live).map(\.published) == ["0.0.0.0:8080"])
        #expect(PodmanPortBindings.parse(state: Self.database, live: [:]).isEmpty)
        #expect(b[0].service == nil)
        // podman-compose's labels, in the container's config.
        let composed: String = #"{"spec":{},"id":"\#(Self.id)","name":"blog_web_1","labels":{"io.podman.compose.project":"blog","#
            + #""com.docker.compose.service":"web","com.docker.compose.project.working_dir":"/srv/blog","#
            + #""com.docker.compose.project.config_files":"podman-compose.yml"},"#
            + #""newPortMappings":[{"host_ip":"","container_port":80,"host_port":8080,"range":1,"protocol":"tcp"}]}"#
        let c = PodmanPortBindings.parse(state: Array(composed.utf8), live: Self.live).first
        #expect(c?.service?.label == "blog/web" && c?.service?.configFiles == ["/srv/blog/podman-compose.yml"])
        #expect(c?.phrase == "Podman container blog_web_1 (compose service blog/web)")
        // Every live container's service, with ports or without; from Podman 5's rows too.
        #expect(PodmanPortBindings.read(state: Array(composed.utf8), live: Self.live).services[Self.id]?.label == "blog/web")
        #expect(PodmanPortBindings.read(state: Self.database, live: Self.live).services.isEmpty)
        #expect(PodmanPortBindings.read(rows: [(Array(composed.utf8), nil)]).services[Self.id]?.name == "web")
    }

    @Test("rootless Podman: the users' stores from /etc/passwd (not root's, not a home of /), the container named with its user, the fix as that user")
    func rootless() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
            + "alice:x:1000:1000:Alice:/home/alice/:/bin/bash\nsys:x:3:3::/:/usr/sbin/nologin\nbroken line\n"
        let users = RootlessUser.users(passwd: passwd)
        #expect(users.map(\.podmanStore) == ["/nonexistent/.local/share/containers/storage", "/home/alice/.local/share/containers/storage"])
        #expect(users.map(\.name) == ["nobody", "alice"] && users.map(\.uid) == [65534, 1000])
        var b = DockerPortBinding(id: Self.id, name: "web", hostIP: "127.0.0.1", hostPort: 18080, containerPort: 80)
        b.runtime = .podman
        b.rootless = users.last
        #expect(b.phrase == "user alice's rootless Podman container web")
        #expect(b.json["rootless_user"]?.stringValue == "alice")
        var f = Advice.Facts(port: 18080)
        f.publisher(b)
        let fix = Advice.for(reason: .noListener, cause: .noListener(.publisherStopped), facts: f).fix
        #expect(fix.contains("runuser -u alice -- podman start web") && fix.contains("loginctl enable-linger alice"), "\(fix)")
        #expect(fix.contains("runuser -u alice -- podman logs web"), "\(fix)")
    }

    struct Resolver: ProcessResolver {
        func exe(pid: UInt32) -> String? { nil }
        func publishers(port: UInt16, freshSince: UInt64) -> [DockerPortBinding] {
            PodmanPortBindings.parse(state: PodmanPortBindingTests.database, live: PodmanPortBindingTests.live).filter { $0.hostPort == port }
        }
    }

    static let published = Endpoint(addr: v4(127, 0, 0, 1), port: 18080)

    /// The records of `events` on the host's namespace, with libpod's bindings above.
    static func refusals(_ events: [KernelEvent]) -> [Record] {
        var e = engine(resolver: Resolver())
        e.hostNetns = hostNS
        return run(&e, events)
    }

    @Test("its reservation (podman's listener, handed to conmon) found closed: publisher_stopped naming the Podman container and podman start")
    func stopped() throws {
        let r = try single(Self.refusals([
            .listen(listenerChange(at: 100, on: Self.published, pid: 880, comm: "podman", inode: 31)),
            .listenClose(listenerChange(at: 200, on: Self.published, pid: 0, comm: "", inode: 31)),
            rst(at: 300, to: Self.published, from: client1),
        ]))
        #expect(r.cause?.rawValue == "publisher_stopped")
        #expect(r.evidence("container")?["runtime"]?.stringValue == "podman" && r.evidence("container")?["name"]?.stringValue == "web")
        let hint = try #require(r.hint)
        #expect(hint.contains("Podman container web publishes it (127.0.0.1:18080 to its port 80), and its port reservation (podman (pid 880)) is gone: exited with code 137"), "\(hint)")
        #expect(hint.contains("podman start web") && !hint.contains("docker"), "\(hint)")
        // Never seen listening (synsight started after the stop): the same cause from the database.
        let r2 = try single(Self.refusals([rst(at: 300, to: Self.published, from: client1)]))
        #expect(r2.cause?.rawValue == "publisher_stopped" && (r2.hint ?? "").contains("Podman container web publishes it"), "\(r2.hint ?? "")")
    }

    @Test("a rootless forwarder that exited with its container (Podman 5's pasta, pasta.avx2, slirp4netns as port handler): publisher_stopped, not its exit",
          arguments: ["pasta", "pasta.avx2", "slirp4netns", "rootlessport"])
    func rootlessForwarderExited(comm: String) throws {
        let r = try single(Self.refusals([
            .listen(listenerChange(at: 100, on: Self.published, pid: 882, comm: comm, inode: 33)),
            .listenClose(listenerChange(at: 200, on: Self.published, pid: 0, comm: "", inode: 33)),
            exitEvent(at: 210, pid: 882, comm: comm, code: 0),
            rst(at: 300, to: Self.published, from: client1),
        ]))
        #expect(r.cause?.rawValue == "publisher_stopped" && r.process?.pid == 882, "\(r.hint ?? "")")
        #expect((r.hint ?? "").contains("Podman container web publishes it"), "\(r.hint ?? "")")
    }

    @Test("conmon holding 127.0.0.1:18080, the SYN to another address: bound_to_other_address naming the container and podman run -p")
    func heldElsewhere() throws {
        let r = try single(Self.refusals([
            .listen(listenerChange(at: 100, on: Self.published, pid: 881, comm: "conmon", inode: 32)),
            rst(at: 300, to: Endpoint(addr: v4(192, 0, 2, 10), port: 18080), from: client1),
        ]))
        #expect(r.cause?.rawValue == "bound_to_other_address")
        #expect(r.evidence("container")?["runtime"]?.stringValue == "podman")
        let hint = try #require(r.hint)
        #expect(hint.contains("container web publishes port 18080 on 127.0.0.1 only (conmon listens there, to its port 80)"), "\(hint)")
        #expect(hint.contains("podman run -p 18080:<container port>"), "\(hint)")
    }

    /// One record of each Podman case (SchemaRecordsTests validates them).
    static func records() -> [Record] {
        refusals([
            .listen(listenerChange(at: 100, on: published, pid: 881, comm: "conmon", inode: 32)),
            rst(at: 300, to: Endpoint(addr: v4(192, 0, 2, 10), port: 18080), from: client1),
            .listenClose(listenerChange(at: 400, on: published, pid: 0, comm: "", inode: 32)),
            rst(at: 500, to: published, from: client1),
        ])
    }
}
