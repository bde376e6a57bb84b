import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightExplain

/// A running container's published port whose end nothing serves (ExplainPublished.swift).
@Suite("explain: published ports followed into their container")
struct ExplainPublishedTests {
    typealias F = ExplainFixture
    static let container: UInt32 = 4_026_532_999
    static let target = Endpoint(addr: IPAddress(v4: 172, 17, 0, 2), port: 80)

    static func listener(_ addr: IPAddress, _ port: UInt16, family: AddressFamily = .ipv4, v6only: Bool? = nil) -> ExplainListener {
        ExplainListener(netns: container, family: family, local: Endpoint(addr: addr, port: port), ipv6Only: v6only,
                        inode: UInt64(port), processes: [F.proc(300, comm: "node")])
    }

    /// docker-proxy on the host's 0.0.0.0:8080, and the container's listeners.
    static func input(_ listeners: [ExplainListener], netns: UInt32? = container) -> ExplainInput {
        var input = F.input([F.listener(processes: [F.proc(200, comm: "docker-proxy")])],
                            namespaces: [F.namespace(), F.namespace(container, name: "container web")])
        input.published = [ExplainPublished(published: "0.0.0.0:8080", target: target, netns: netns, listeners: listeners)]
        return input
    }

    @Test("the app on the container's loopback: bound_to_other_address (critical) with the container fix, though docker-proxy listens")
    func loopback() throws {
        let r = Explain.analyze(Self.input([Self.listener(IPAddress(v4: 127, 0, 0, 1), 80)]))
        let f = try #require(r.findings.first { $0.code == "bound_to_other_address" }, "\(r.findings.map(\.code))")
        #expect(f.severity == .critical && f.netns == Self.container && r.status == .broken)
        #expect(f.message.contains("port 8080 is published on 0.0.0.0:8080 to 172.17.0.2:80, in network namespace 4026532999 (container web), where"), "\(f.message)")
        #expect(f.message.contains("node (pid 300) listens on 127.0.0.1:80 only"), "\(f.message)")
        #expect(f.remediation?.contains("listen on 0.0.0.0:80 inside the container") == true, "\(f.remediation ?? "")")
        #expect(f.evidence.first { $0.0 == "target" }?.1 == .string("172.17.0.2:80"))
    }

    @Test("the app on another port: wrong_port naming its ports; nothing at all: not_listening")
    func wrongPort() throws {
        let r = Explain.analyze(Self.input([Self.listener(.any4, 3000), Self.listener(.any4, 9229)]))
        let f = try #require(r.findings.first { $0.code == "wrong_port" }, "\(r.findings.map(\.code))")
        #expect(f.severity == .critical)
        #expect(f.message.contains("nothing listens on port 80; node (pid 300) listens on 3000, 9229 only"), "\(f.message)")
        let none = Explain.analyze(Self.input([]))
        #expect(none.findings.contains { $0.code == "not_listening" && $0.netns == Self.container && $0.message.contains("nothing listens at all") })
    }

    @Test("docker-proxy on 127.0.0.1 only for a running container: loopback_only's fix is the container's -p, not a bind setting")
    func publishedOnLoopback() throws {
        var input = F.input([F.listener(IPAddress(v4: 127, 0, 0, 1), processes: [F.proc(200, comm: "docker-proxy")])])
        input.publishers = [DockerPortBinding(id: "0123456789abcdef", name: "web", hostIP: "127.0.0.1", hostPort: 8080,
                                              containerPort: 80, running: true)]
        let f = try #require(Explain.analyze(input).findings.first { $0.code == "loopback_only" })
        #expect(f.remediation?.contains("docker run -p 8080:<container port>") == true, "\(f.remediation ?? "")")
        #expect(f.remediation?.contains("container web; it is published on 127.0.0.1 only") == true, "\(f.remediation ?? "")")
        // Not docker-proxy, or the container not running: the service's own bind setting.
        input.publishers[0].running = false
        let g = try #require(Explain.analyze(input).findings.first { $0.code == "loopback_only" })
        #expect(g.remediation?.contains("docker run") == false, "\(g.remediation ?? "")")
    }

    @Test("served: 0.0.0.0, the target address itself, or [::] taking IPv4; a target in no namespace of this host is not judged")
    func served() {
        for l in [Self.listener(.any4, 80), Self.listener(Self.target.addr, 80), Self.listener(.any6, 80, family: .ipv6, v6only: false)] {
            let r = Explain.analyze(Self.input([l]))
            #expect(r.status == .healthy, "\(l.address): \(r.findings.map(\.message))")
        }
        // [::] with IPV6_V6ONLY does not take the container's IPv4 address.
        let v6 = Explain.analyze(Self.input([Self.listener(.any6, 80, family: .ipv6, v6only: true)]))
        #expect(v6.findings.contains { $0.code == "bound_to_other_address" })
        #expect(Explain.analyze(Self.input([], netns: nil)).status == .healthy)
    }

    @Test("a binding without the container's address (Podman's): any address but loopback serves; the message names the port")
    func addressUnknown() throws {
        func analyze(_ l: ExplainListener) -> ExplainReport {
            var input = Self.input([l])
            input.published[0].target = Endpoint(addr: .any4, port: 80)
            return Explain.analyze(input)
        }
        #expect(analyze(Self.listener(.any4, 80)).status == .healthy)
        #expect(analyze(Self.listener(IPAddress(v4: 10, 88, 0, 5), 80)).status == .healthy)
        let r = analyze(Self.listener(IPAddress(v4: 127, 0, 0, 1), 80))
        let f = try #require(r.findings.first { $0.code == "bound_to_other_address" })
        #expect(f.message.contains("published on 0.0.0.0:8080 to port 80, in "), "\(f.message)")
        #expect(f.remediation?.contains("listen on 0.0.0.0:80 inside the container") == true, "\(f.remediation ?? "")")
    }
}
