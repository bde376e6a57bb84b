@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// A refusal in the namespace of a container or pod that started moments
/// before, where nothing listens yet: `starting`, naming its first process,
/// not `never_listened`. The end-to-end test (DockerWorkloadTests) runs a real one.
@Suite("no_listener: a container or pod that is still starting")
struct StartingWorkloadTests {
    static let hostNS: UInt32 = 4026531840
    static let containerNS: UInt32 = 4026532500
    static let sec: UInt64 = 1_000_000_000
    static let db = WorkloadIdentity(container: ContainerRef(
        runtime: .docker, id: String(repeating: "d", count: 64), name: "shop_db_1",
        service: ComposeService(orchestrator: .compose, project: "shop", name: "db", configFiles: ["/srv/shop/compose.yaml"])))

    struct Resolver: ProcessResolver {
        var workload: WorkloadIdentity?
        var startedAt: UInt64
        func exe(pid: UInt32) -> String? { nil }
        func namespaceStart(netns: UInt32) -> NamespaceStart? {
            netns == StartingWorkloadTests.containerNS
                ? NamespaceStart(process: ProcessRef(pid: 3100, comm: "postgres", workload: workload), startedAt: startedAt) : nil
        }
    }

    /// The record of a refusal at 5432 in `netns` at 300 s, its workload started at `startedAt`.
    static func refusal(netns: UInt32 = containerNS, workload: WorkloadIdentity? = db, startedAt: UInt64,
                        listening: Bool = false) -> Record? {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0), joinWindowNs: 0,
                                  resolver: Resolver(workload: workload, startedAt: startedAt))
        e.hostNetns = hostNS
        if listening {
            e.seed([ListenerInfo(netns: netns, family: .ipv4, local: Endpoint(addr: .any4, port: 9187), ipv6Only: nil,
                                 socketInode: 9, pid: 3200, comm: "exporter")])
        }
        let r = e.ingest(.noSocketReset(NoSocketReset(ts: 300 * sec, family: .ipv4, local: Endpoint(addr: v4(172, 18, 0, 2), port: 5432),
                                                      remote: Endpoint(addr: v4(172, 18, 0, 3), port: 40000), netns: netns)))
        return (r + e.finish()).first
    }

    static func records() -> [Record] { [refusal(startedAt: 298 * sec)].compactMap { $0 } }

    @Test("a Compose container started 1.5 s before the SYN, listening on nothing: starting, its first process, how long, the fix for its clients")
    func starting() throws {
        let r = try #require(Self.refusal(startedAt: 298 * Self.sec + 500_000_000))
        #expect(r.cause == .noListener(.starting), "\(r.json)")
        #expect(r.process?.pid == 3100)
        #expect(r.json["evidence"]?["startup_ms"]?.intValue == 1500)
        #expect(r.json["evidence"]?["started_at"]?.stringValue == "1970-01-01T00:04:58.500000000Z", "\(r.json)")
        let hint = r.hint ?? ""
        #expect(hint.contains("postgres (pid 3100, compose service shop/db container shop_db_1) started 1.50 s before this SYN "
                              + "and nothing listens in its namespace yet"), "\(hint)")
        #expect(hint.contains("depends_on: {db: {condition: service_healthy}}"), "\(hint)")
    }

    @Test("not starting: started long before, something listens there (wrong_port), a plain process, the host's namespace, no start found")
    func notStarting() {
        #expect(Self.refusal(startedAt: 100 * Self.sec)?.cause == .noListener(.neverListened))
        #expect(Self.refusal(startedAt: 299 * Self.sec, listening: true)?.cause == .noListener(.wrongPort))
        #expect(Self.refusal(workload: WorkloadIdentity(cgroup: "/user.slice"), startedAt: 299 * Self.sec)?.cause == .noListener(.neverListened))
        #expect(Self.refusal(netns: Self.hostNS, startedAt: 299 * Self.sec)?.cause == .noListener(.neverListened))
        #expect(Self.refusal(netns: 4026532999, startedAt: 299 * Self.sec)?.cause == .noListener(.neverListened))
        // A clock read out of order (start after the SYN): not starting.
        #expect(Self.refusal(startedAt: 301 * Self.sec)?.cause == .noListener(.neverListened))
    }

    @Test("the fix in the terms of what is starting: a pod's readinessProbe, a container's HEALTHCHECK, else systemd ordering")
    func advice() {
        func fix(_ w: WorkloadIdentity?) -> String {
            var f = Advice.Facts(port: 5432)
            f.workload = w
            return Advice.for(reason: .noListener, cause: .noListener(.starting), facts: f).fix
        }
        #expect(fix(WorkloadIdentity(pod: PodRef(uid: "u", namespace: "shop", name: "db-0"))).hasPrefix("give pod shop/db-0 a readinessProbe"))
        #expect(fix(WorkloadIdentity(container: ContainerRef(runtime: .podman, id: "x", name: "db")))
                .contains("podman inspect --format '{{.State.Health.Status}}' db"))
        #expect(fix(nil).contains("Type=notify"))
    }
}
