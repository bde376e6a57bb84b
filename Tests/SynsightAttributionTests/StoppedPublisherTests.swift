@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// A refused port of the host that a stopped Docker container publishes
/// (`no_listener/publisher_stopped`): Docker's files parsed, and the record.
@Suite("no_listener: the port of a stopped container")
struct StoppedPublisherTests {
    static let config = Array("""
        {"ID":"4f2a9c","Name":"/web","State":{"Running":false,"Paused":false,"Restarting":false,"OOMKilled":true,
         "ExitCode":137,"FinishedAt":"2026-12-06T12:00:00.123456789Z"},
         "NetworkSettings":{"Ports":{}}}
        """.utf8)
    static let hostConfig = Array("""
        {"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}],"53/udp":[{"HostIp":"","HostPort":"5353"}],
         "443/tcp":[{"HostIp":"","HostPort":"8443"}]},"RestartPolicy":{"Name":"no"}}
        """.utf8)

    struct Resolver: ProcessResolver {
        func exe(pid: UInt32) -> String? { nil }
        func stoppedPublisher(port: UInt16) -> StoppedPublisher? {
            StoppedPublisher.docker(id: "4f2a9c", configJSON: StoppedPublisherTests.config,
                                    hostConfigJSON: StoppedPublisherTests.hostConfig).first { $0.hostPort == port }
        }
    }

    static func refused(port: UInt16, netns: UInt32 = hostNS) -> Record? {
        var e = engine(resolver: Resolver())
        e.hostNetns = hostNS
        return run(&e, [rst(at: 1_000, to: Endpoint(addr: v4(127, 0, 0, 1), port: port), from: client1, netns: netns)]).first
    }

    /// One record of the cause (SchemaRecordsTests validates it).
    static func records() -> [Record] { refused(port: 8080).map { [$0] } ?? [] }

    @Test("Docker's files: a stopped container's TCP bindings, its exit; none for a running one")
    func parse() {
        let s = StoppedPublisher.docker(id: "4f2a9c", configJSON: Self.config, hostConfigJSON: Self.hostConfig)
        #expect(s.map(\.published) == ["127.0.0.1:8080", "0.0.0.0:8443"])
        #expect(s.first?.name == "web" && s.first?.containerPort == 80 && s.first?.exitCode == 137 && s.first?.oomKilled == true)
        #expect(s.first?.how == "exited with code 137 at 2026-12-06T12:00:00.123456789Z (OOM-killed)")
        let running = Array(String(decoding: Self.config, as: UTF8.self).replacingOccurrences(of: "\"Running\":false", with: "\"Running\":true").utf8)
        #expect(StoppedPublisher.docker(id: "4f2a9c", configJSON: running, hostConfigJSON: Self.hostConfig).isEmpty)
        let never = Array("{\"Name\":\"/new\",\"State\":{\"Running\":false,\"FinishedAt\":\"0001-01-01T00:00:00Z\"}}".utf8)
        #expect(StoppedPublisher.docker(id: "x", configJSON: never, hostConfigJSON: Self.hostConfig).first?.how == "created but never started")
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
}
