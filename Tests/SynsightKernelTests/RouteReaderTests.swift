import Glibc
import Testing
@testable import SynsightBase
@testable import SynsightKernel
@testable import SynsightModel

/// RouteReader against this host's kernel, without root: a lookup in
/// synsight's own namespace (loopback), a namespace that is gone (said, not
/// silent), and drops of other reasons (never looked up). Lookups in
/// namespaces a test creates, with asymmetric routes and a missing route,
/// are in DropTests (root).
@Suite("route reader: lookups in the drop's namespace, what cannot be read is said")
struct RouteReaderTests {
    static let noNetns: UInt32 = 0xFFFF_FFF0
    /// 6.18's values (DropCoreTests' kernel618).
    static let names = DropReasonNames(core: [("SKB_DROP_REASON_IP_RPFILTER", 16), ("SKB_DROP_REASON_IP_INNOROUTES", 88),
                                              ("SKB_DROP_REASON_TCP_CSUM", 5)])

    static func drop(reason: UInt32, netns: UInt32, ifname: String = "lo", ifindex: UInt32 = 1) -> PacketDrop {
        PacketDrop(ts: 1, family: .ipv4, local: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 8080),
                   remote: Endpoint(addr: IPAddress(v4: 127, 0, 0, 2), port: 40000), netns: netns, reasonCode: reason,
                   ifindex: ifindex, ifname: ifname)
    }

    @Test("rp_filter in synsight's own namespace: lo's sysctls and the route back by lo")
    func ownNamespace() throws {
        let reader = RouteReader(reasons: Self.names)
        defer { reader.stop() }
        let d = Self.drop(reason: 16, netns: reader.ownNetns ?? 0)
        reader.pin(d)
        let q = try #require(DropRouteQuery.of(d, cause: .rpFilter))
        let f = reader.lookup(q)
        #expect(f.unavailable.isEmpty, "\(f.unavailable)")
        let all = ProcFS.read("/proc/sys/net/ipv4/conf/all/rp_filter").flatMap { Int($0.split(separator: "\n").first ?? "") }
        #expect(f.rpFilter?.all == all)
        #expect(f.route?.route?.type == 2, "127.0.0.2 is local: \(String(describing: f.route))")
        #expect(f.route?.oifName == "lo")
    }

    @Test("a namespace that is gone: the findings say so")
    func namespaceGone() throws {
        let reader = RouteReader(reasons: Self.names)
        defer { reader.stop() }
        let d = Self.drop(reason: 88, netns: Self.noNetns, ifname: "veth0", ifindex: 2)
        reader.pin(d)
        let f = reader.lookup(try #require(DropRouteQuery.of(d, cause: .noRoute)))
        #expect(f.route == nil && f.rpFilter == nil)
        #expect(f.unavailable == ["network namespace \(Self.noNetns) is gone (not in /run/netns, no process in it): its routes and sysctls cannot be read"])
    }

    @Test("drops of other reasons start no lookup")
    func otherReasons() {
        let reader = RouteReader(reasons: Self.names)
        defer { reader.stop() }
        reader.pin(Self.drop(reason: 5, netns: Self.noNetns))
        #expect(reader.reader.lock.withLock { reader.reader.slots.isEmpty && reader.reader.worker == nil })
    }

    @Test("a lookup that cannot be made waits a bounded time, then says why")
    func boundedWait() throws {
        let reader = RouteReader(reasons: Self.names, timeoutMs: 50)
        reader.stop()  // no reader thread: nothing will answer
        let d = Self.drop(reason: 88, netns: reader.ownNetns ?? 0)
        let started = ConditionLock.now()
        let f = reader.lookup(try #require(DropRouteQuery.of(d, cause: .noRoute)))
        let waitedMs = (ConditionLock.now() - started) / 1_000_000
        #expect(f.unavailable == ["the route lookup did not finish within 50 ms (0 other lookups queued)"])
        #expect(waitedMs >= 50 && waitedMs < 1000, "waited \(waitedMs) ms")
    }

    @Test("this host can make route lookups (doctor's probe)")
    func probe() {
        #expect(RouteReader.probe().isSupported, "\(RouteReader.probe().detail)")
    }
}
