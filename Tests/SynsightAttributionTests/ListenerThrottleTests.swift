@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// accept_queue_full explained by the CPU limit over the listener
/// (Overflow.swift, `ProcessResolver.cpuThrottle`): throttled, limited but
/// not throttled, stopped (which wins), and the fix by workload.
@Suite("overflow: a listener throttled at its CPU limit")
struct ListenerThrottleTests {
    struct Limits: ProcessResolver {
        var throttle: CPUThrottle?
        var state: ProcessRunState? = ProcessRunState(threads: ["R": 1, "S": 3])
        var identity: WorkloadIdentity?
        func exe(pid: UInt32) -> String? { nil }
        func runState(pid: UInt32) -> ProcessRunState? { state }
        func cpuThrottle(pid: UInt32) -> CPUThrottle? { throttle }
        func workload(pid: UInt32, cgroupID: UInt64) -> WorkloadIdentity? { identity }
    }

    static func throttle(throttled: UInt64 = 40, periods: UInt64 = 52, window: UInt64? = 5_200_000_000) -> CPUThrottle {
        CPUThrottle(cgroup: "/kubepods/burstable/podabc/cri-containerd-1", hierarchy: .v2, quotaUs: 50_000, periodUs: 100_000,
                    periods: periods, throttled: throttled, throttledUs: 3_900_000, windowNs: window)
    }

    static func overflow(_ r: Limits) -> [Record] {
        var e = engine(resolver: r)
        return e.ingest(.listenOverflow(ListenOverflow(
            ts: 1_000, family: .ipv4, local: Endpoint(addr: v4(127, 0, 0, 1), port: 8080), remote: client1,
            listenerInode: 90, netns: hostNS, listenerPID: 800, acceptQueue: 5, maxBacklog: 4, stage: .synAcceptQueue)))
    }

    static let pod = WorkloadIdentity(pod: PodRef(uid: "abc", namespace: "shop", name: "api-7d9f", container: "api"))

    /// One record of the cause (SchemaRecordsTests validates it).
    static func records() -> [Record] { overflow(Limits(throttle: throttle(), identity: pod)) }

    @Test("throttled in the window: listener_throttled, the limit in the evidence and the hint, the pod's limit in the fix")
    func throttledPod() throws {
        let r = try single(Self.overflow(Limits(throttle: Self.throttle(), identity: Self.pod)))
        #expect(r.reason == .acceptQueueFull && r.cause?.rawValue == "listener_throttled")
        let t = try #require(r.evidence("cpu_throttle"))
        #expect(t["quota_us"]?.intValue == 50_000 && t["period_us"]?.intValue == 100_000)
        #expect(t["throttled_periods"]?.intValue == 40 && t["window_ms"]?.intValue == 5_200 && t["throttling"] == .bool(true))
        let hint = try #require(r.hint)
        #expect(hint.contains("throttled at its CPU limit (0.5 CPU (50 ms per 100 ms period), cgroup /kubepods/burstable/podabc/cri-containerd-1; "
                              + "throttled in 40 of 52 periods (3.9 s) in the last 5.2 s)"), "\(hint)")
        #expect(hint.contains("resources.limits.cpu of container api in pod shop/api-7d9f"), "\(hint)")
    }

    @Test("the fix follows the workload: docker update for a container, CPUQuota= for a unit, the cgroup's file otherwise")
    func fixByWorkload() throws {
        let docker = WorkloadIdentity(container: ContainerRef(runtime: .docker, id: String(repeating: "ab", count: 32), name: "web"))
        let c = try single(Self.overflow(Limits(throttle: Self.throttle(), identity: docker)))
        #expect(c.hint?.contains("docker update --cpus <more> web") == true, "\(c.hint ?? "")")
        let unit = WorkloadIdentity(cgroup: "/system.slice/api.service", unit: "api.service")
        let u = try single(Self.overflow(Limits(throttle: Self.throttle(), identity: unit)))
        #expect(u.hint?.contains("systemctl set-property api.service CPUQuota=") == true, "\(u.hint ?? "")")
        var v1 = Self.throttle()
        v1.hierarchy = .v1
        let bare = try single(Self.overflow(Limits(throttle: v1)))
        #expect(bare.hint?.contains("cpu.cfs_quota_us of cgroup /kubepods/burstable/podabc/cri-containerd-1") == true, "\(bare.hint ?? "")")
    }

    @Test("limited but not throttled, or throttled rarely over the counters' life: listener_not_accepting, the limit still shown")
    func notThrottling() throws {
        let idle = try single(Self.overflow(Limits(throttle: Self.throttle(throttled: 0))))
        #expect(idle.cause?.rawValue == "listener_not_accepting")
        #expect(idle.evidence("cpu_throttle")?["throttling"] == .bool(false))
        // First reading (no window): 2 of 1000 periods is old history, not now.
        let rare = try single(Self.overflow(Limits(throttle: Self.throttle(throttled: 2, periods: 1000, window: nil))))
        #expect(rare.cause?.rawValue == "listener_not_accepting")
        let often = try single(Self.overflow(Limits(throttle: Self.throttle(throttled: 300, periods: 1000, window: nil))))
        #expect(often.cause?.rawValue == "listener_throttled")
        #expect(often.hint?.contains("since the limit was set") == true, "\(often.hint ?? "")")
    }

    @Test("a stopped listener is stopped, whatever its CPU limit says")
    func stoppedWins() throws {
        let r = try single(Self.overflow(Limits(throttle: Self.throttle(), state: ProcessRunState(threads: ["T": 2]))))
        #expect(r.cause?.rawValue == "listener_stopped")
    }

    @Test("limits in CPUs (0.05, 0.5, 1.5, 2) and durations rounded for reading")
    func limitPhrase() {
        func phrase(_ q: UInt64, _ p: UInt64) -> String {
            CPUThrottle(cgroup: "/", hierarchy: .v2, quotaUs: q, periodUs: p, periods: 0, throttled: 0, throttledUs: 0, windowNs: nil).limitPhrase
        }
        #expect(phrase(5_000, 100_000) == "0.05 CPU (5 ms per 100 ms period)")
        #expect(phrase(50_000, 100_000) == "0.5 CPU (50 ms per 100 ms period)")
        #expect(phrase(150_000, 100_000) == "1.5 CPU (150 ms per 100 ms period)")
        #expect(phrase(200_000, 100_000) == "2 CPU (200 ms per 100 ms period)")
        #expect(phrase(1_500, 1_000_000) == "0.002 CPU (1.5 ms per 1 s period)")
        #expect(CPUThrottle.duration(250) == "250 µs" && CPUThrottle.duration(809_514) == "809.5 ms")
        #expect(CPUThrottle.duration(4_725_758) == "4.73 s")
    }
}
