import Testing
import SynsightTestSupport
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightAttribution

/// rp_filter and no-route drops without a kernel: the lookup asked for each
/// drop, the reverse-path decision from the settings and the route back, and
/// the record's evidence and hint from a fixed route source (the reads
/// themselves are tested against real namespaces in DropTests and
/// RouteReaderTests).
@Suite("drops: route state of rp_filter and no-route drops")
struct DropRoutesTests {
    /// Answers every query with `findings`, and remembers what was asked.
    final class FixedRoutes: DropRouteSource, @unchecked Sendable {
        let findings: DropRouteFindings
        var asked: [DropRouteQuery] = []
        init(_ findings: DropRouteFindings) { self.findings = findings }
        func pin(_ drop: PacketDrop) {}
        func lookup(_ query: DropRouteQuery) -> DropRouteFindings {
            asked.append(query)
            return findings
        }
    }

    static let server = Endpoint(addr: v4(198, 18, 40, 1), port: 8080)
    static let client = Endpoint(addr: v4(198, 18, 41, 2), port: 40000)

    static func drop(reason: String, direction hook: FirewallHook = .prerouting, ifname: String = "veth-s1",
                     to local: Endpoint = DropRoutesTests.server) -> (PacketDrop, DropReasonName) {
        let d = PacketDrop(ts: 3_000, family: .ipv4, local: local, remote: client, netns: 77, reasonCode: 16,
                           location: 0xFFFF_FFFF_8100_0260, ifindex: 2, ifname: ifname, tcpFlags: 0x02, hook: hook,
                           client: TaskInfo(pid: 31, comm: "curl"))
        return (d, DropReasonName(name: reason, code: 16, subsystem: nil, known: true))
    }

    static func routeBack(by oif: String, gateway: IPAddress? = nil) -> RouteLookupResult {
        RouteLookupResult(request: RouteGet.Request(family: .ipv4, dst: client.addr, src: server.addr),
                          answer: .route(RouteGet.Route(type: 1, table: 254, oif: 3, gateway: gateway, prefSrc: v4(198, 18, 41, 1))),
                          oifName: oif)
    }

    static func record(_ findings: DropRouteFindings, reason: String, hook: FirewallHook = .prerouting,
                       to local: Endpoint = DropRoutesTests.server) -> Record {
        var e = engine()
        e.drops.routes = FixedRoutes(findings)
        let (d, name) = drop(reason: reason, direction: hook, to: local)
        return e.dropRecord(d, reason: name, location: ("ip_rcv_finish_core", 0x260))
    }

    /// Records of every shape (SchemaRecordsTests validates them).
    static func records() -> [Record] {
        let noRoute = RouteLookupResult(request: RouteGet.Request(family: .ipv4, dst: v4(198, 18, 43, 9), src: client.addr, iif: 2),
                                        answer: .failed(101))
        return [
            record(DropRouteFindings(rpFilter: RPFilterSysctls(all: 1, device: 1), route: routeBack(by: "veth-s2", gateway: v4(198, 18, 41, 254))),
                   reason: "ip_rpfilter"),
            record(DropRouteFindings(rpFilter: RPFilterSysctls(all: 0, device: 2),
                                     route: RouteLookupResult(request: routeBack(by: "x").request, answer: .failed(101))),
                   reason: "ip_rpfilter"),
            record(DropRouteFindings(unavailable: ["network namespace 77 is gone (not in /run/netns, no process in it): its routes and sysctls cannot be read"]),
                   reason: "ip_rpfilter"),
            record(DropRouteFindings(route: noRoute), reason: "ip_innoroutes", hook: .forward, to: Endpoint(addr: v4(198, 18, 43, 9), port: 8080)),
            record(DropRouteFindings(route: RouteLookupResult(request: noRoute.request, answer: .route(RouteGet.Route(type: 1, table: 254, oif: 4)),
                                                              oifName: "veth-r2")),
                   reason: "ip_innoroutes", hook: .forward, to: Endpoint(addr: v4(198, 18, 43, 9), port: 8080)),
        ]
    }

    @Test("the lookups asked: rp_filter the route back to the source; no_route the packet's own, input on its interface when it arrived")
    func queries() {
        let (syn, _) = Self.drop(reason: "ip_rpfilter")
        let rp = DropRouteQuery.of(syn, cause: .rpFilter)
        #expect(rp?.purpose == .reversePath && rp?.ifname == "veth-s1" && rp?.netns == 77)
        #expect(rp?.lookup == RouteGet.Request(family: .ipv4, dst: Self.client.addr, src: Self.server.addr))
        let (fwd, _) = Self.drop(reason: "ip_innoroutes", direction: .forward)
        #expect(DropRouteQuery.of(fwd, cause: .noRoute)?.lookup == RouteGet.Request(family: .ipv4, dst: Self.server.addr, src: Self.client.addr, iif: 2))
        var out = fwd
        out.hasSocket = true
        #expect(DropRouteQuery.of(out, cause: .noRoute)?.lookup.iif == nil)
        var v6 = syn
        v6.family = .ipv6
        #expect(DropRouteQuery.of(v6, cause: .rpFilter) == nil)
        #expect(DropRouteQuery.of(syn, cause: .checksum) == nil)
    }

    @Test("the reverse-path decision: strict with another interface, no route back, settings or routes changed since")
    func decision() {
        let strict = RPFilterSysctls(all: 1, device: 0), loose = RPFilterSysctls(all: 1, device: 2)
        #expect(strict.effective == 1 && strict.mode == "strict" && loose.effective == 2 && loose.mode == "loose")
        let other = RPFilterDecision.of(strict, route: Self.routeBack(by: "veth-s2"), arrivedOn: "veth-s1")
        #expect(other == .otherInterface("strict: the route back to 198.18.41.2 leaves by veth-s2, not by veth-s1 where the packet arrived"))
        let none = RouteLookupResult(request: Self.routeBack(by: "x").request, answer: .failed(101))
        #expect(RPFilterDecision.of(loose, route: none, arrivedOn: "veth-s1") == .noRouteBack("loose: no route back to 198.18.41.2 (the lookup answers no_route)"))
        guard case .changedSince = RPFilterDecision.of(strict, route: Self.routeBack(by: "veth-s1"), arrivedOn: "veth-s1") else {
            Issue.record("a matching route back is a change since the drop")
            return
        }
        guard case .changedSince = RPFilterDecision.of(loose, route: Self.routeBack(by: "veth-s2"), arrivedOn: "veth-s1") else {
            Issue.record("loose mode with a route back does not drop")
            return
        }
        guard case .changedSince = RPFilterDecision.of(RPFilterSysctls(all: 0, device: 0), route: none, arrivedOn: "veth-s1") else {
            Issue.record("rp_filter off now is a change since the drop")
            return
        }
        #expect(RPFilterDecision.of(nil, route: none, arrivedOn: "veth-s1") == .unknown)
    }

    @Test("rp_filter: the sysctls, the effective value, the route back and a hint naming the interface it leaves by")
    func rpFilterRecord() {
        let r = Self.record(DropRouteFindings(rpFilter: RPFilterSysctls(all: 1, device: 0),
                                              route: Self.routeBack(by: "veth-s2", gateway: v4(198, 18, 41, 254))), reason: "ip_rpfilter")
        #expect(r.cause?.rawValue == "rp_filter")
        let rp = r.evidence(.rpFilter)
        #expect(rp?["all"] == .int(1) && rp?["device"] == .int(0) && rp?["effective"] == .int(1) && rp?["mode"] == .string("strict"))
        #expect(rp?["decision"] == .string("strict: the route back to 198.18.41.2 leaves by veth-s2, not by veth-s1 where the packet arrived"))
        let back = r.evidence(.routeBack)
        #expect(back?["destination"] == .string("198.18.41.2") && back?["source"] == .string("198.18.40.1"))
        #expect(back?["result"] == .string("route") && back?["interface"] == .string("veth-s2") && back?["ifindex"] == .int(3))
        #expect(back?["next_hop"] == .string("198.18.41.254") && back?["table"] == .int(254) && back?["type"] == .string("unicast"))
        #expect(r.evidence(.sysctl) == .string("net.ipv4.conf.veth-s1.rp_filter"))
        #expect(r.evidence(.routeUnavailable) == nil)
        #expect((r.hint ?? "").contains("leaves by veth-s2 via 198.18.41.254, not veth-s1"), "\(r.hint ?? "")")
        #expect((r.hint ?? "").contains("net.ipv4.conf.veth-s1.rp_filter=2") && (r.hint ?? "").contains("now 1"), "\(r.hint ?? "")")
    }

    @Test("no_route: the lookup that failed, replayed, with its result and errno; a route found now is said")
    func noRouteRecord() {
        let recs = Self.records()
        let failed = recs[3], foundNow = recs[4]
        let l = failed.evidence(.routeLookup)
        #expect(l?["destination"] == .string("198.18.43.9") && l?["source"] == .string("198.18.41.2") && l?["iif"] == .string("veth-s1"))
        #expect(l?["result"] == .string("no_route") && l?["errno"] == .string("ENETUNREACH") && l?["interface"] == nil)
        #expect((failed.hint ?? "").contains("`ip route get 198.18.43.9 from 198.18.41.2 iif veth-s1` in that namespace answers no_route (ENETUNREACH)"), "\(failed.hint ?? "")")
        #expect(foundNow.evidence(.routeLookup)?["result"] == .string("route"))
        #expect((foundNow.hint ?? "").contains("finds one now by veth-r2"), "\(foundNow.hint ?? "")")
    }

    @Test("a namespace gone before the read: the record says so, with the cause's own hint")
    func unavailable() {
        let r = Self.records()[2]
        #expect(r.evidence(.rpFilter) == nil && r.evidence(.routeBack) == nil)
        #expect(r.evidence(.routeUnavailable)?.stringValue?.contains("network namespace 77 is gone") == true)
        let (d, name) = Self.drop(reason: "ip_rpfilter")
        #expect(r.hint == DropCause.rpFilter.hint(d, reason: name, port: 8080))
    }

    @Test("only rp_filter and no-route reasons are looked up, by this kernel's numbers")
    func codes() {
        let names = DropReasonNames(core: kernel618)
        let codes = names.codes(of: [.rpFilter, .noRoute])
        #expect(codes == [16: .rpFilter, 88: .noRoute])
        let r = Self.record(DropRouteFindings(), reason: "tcp_csum")
        #expect(r.evidence(.routeUnavailable) == nil && r.evidence(.routeLookup) == nil)
    }
}
