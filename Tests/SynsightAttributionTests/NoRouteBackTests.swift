import CSynsightABI
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

@Suite("no_route_back: a SYN a listener left unanswered, its SYN-ACK without a route back")
struct NoRouteBackTests {
    let server = Endpoint(addr: v4(10, 77, 0, 1), port: 8080)

    func unanswered(from last: UInt8, port: UInt16 = 40_000, ts: UInt64 = 1_000, method: OverflowMethod = .consumeSkb) -> KernelEvent {
        .listenOverflow(ListenOverflow(ts: ts, family: .ipv4, local: server, remote: Endpoint(addr: v4(203, 0, 113, last), port: port),
                                       client: TaskInfo(pid: 321, comm: "curl"), listenerInode: 555, netns: hostNS,
                                       acceptQueue: 0, maxBacklog: 128, stage: .synUnanswered, method: method))
    }

    func seeded() -> AttributionEngine {
        var e = engine()
        e.seed([ListenerInfo(netns: hostNS, family: .ipv4, local: Endpoint(addr: .any4, port: 8080), ipv6Only: nil,
                             socketInode: 555, pid: 77, comm: "nginx")])
        e.drops.routes = FakeRoutes()
        return e
    }

    @Test("no route back: a drop naming the listener and the client, the lookup back as evidence, a route-back fix")
    func noRoute() throws {
        var e = seeded()
        let r = try #require(e.ingest(unanswered(from: 1)).first)
        #expect(r.kind == .drop && r.reason == .noRouteBack && r.cause?.rawValue == "no_matching_route")
        #expect(r.process?.pid == 77 && r.process?.comm == "nginx" && r.client?.pid == 321)
        #expect(r.local == server && r.remote?.addr == v4(203, 0, 113, 1))
        let back = try #require(r.overflowEvidence?.routeBack)
        #expect(back["destination"]?.stringValue == "203.0.113.1" && back["source"]?.stringValue == "10.77.0.1"
                && back["errno"]?.stringValue == "ENETUNREACH")
        let hint = try #require(r.hint)
        #expect(hint.contains("nginx (pid 77) on 10.77.0.1:8080 got a SYN from 203.0.113.1:40000") && hint.contains("add a route back to 203.0.113.1"),
                "\(hint)")
    }

    @Test("seen by fexit or kretprobe on tcp_conn_request (beside its fentry or kprobe): the same record, the method named; decoded from the ABI",
          arguments: [(OverflowMethod.connRequestFexit, "fexit/tcp_conn_request"), (.connRequestKretprobe, "kretprobe/tcp_conn_request")])
    func connRequestExit(method: OverflowMethod, hook: String) throws {
        var e = seeded()
        let r = try #require(e.ingest(unanswered(from: 2, method: method)).first)
        #expect(r.reason == .noRouteBack && r.cause?.rawValue == "unreachable_route")
        #expect(r.overflowEvidence?.method?.hasPrefix(hook) == true)
        guard case .listenOverflow(let o) = try EventDecoder.decode(overflowRecordBytes(stage: 6, method: method.rawValue)) else {
            Issue.record("expected listenOverflow")
            return
        }
        #expect(o.stage == .synUnanswered && o.method == method)
    }

    @Test("a reject route back: its type is the cause, and the fix removes it")
    func rejectRoute() throws {
        var e = seeded()
        let r = try #require(e.ingest(unanswered(from: 3)).first)
        #expect(r.cause?.rawValue == "prohibit_route")
        #expect(r.hint?.contains("a prohibit route or rule answers for 203.0.113.1") == false)
        #expect(r.hint?.contains("a prohibit route or rule answers for 203.0.113.3") == true, "\(r.hint ?? "")")
    }

    @Test("a route back exists: not a routing failure (another of tcp_conn_request's drops, or a drop counted in between): nothing")
    func routeFound() {
        var e = seeded()
        #expect(e.ingest(unanswered(from: 9)).isEmpty)
    }

    @Test("the retransmitted SYNs of one attempt are one record; another attempt is another")
    func oneRecordPerAttempt() {
        var e = seeded()
        #expect(e.ingest(unanswered(from: 1, ts: 1_000)).count == 1)
        #expect(e.ingest(unanswered(from: 1, ts: 1_000_000_000)).isEmpty)
        #expect(e.ingest(unanswered(from: 1, port: 40_001, ts: 2_000_000_000)).count == 1)
    }

    /// The SYN's destination is not a local address (a route through lo
    /// delivered it): the lookup finds a route only without it as source.
    struct NonLocalSource: DropRouteSource {
        func pin(_ drop: PacketDrop) {}
        func lookup(_ q: DropRouteQuery) -> DropRouteFindings {
            #expect(q.purpose == .routeBack && q.lookup.src == v4(10, 77, 0, 1) && q.lookup.tcpSport == 8080)
            return DropRouteFindings(route: RouteLookupResult(request: q.lookup, answer: .route(RouteGet.Route(type: 1, table: 254, oif: 1)),
                                                              withoutSource: true))
        }
    }

    @Test("a SYN to an address that is not local (found only without it as source): not a missing route back, nothing")
    func nonLocalDestination() {
        var e = seeded()
        e.drops.routes = NonLocalSource()
        #expect(e.ingest(unanswered(from: 1)).isEmpty)
    }

    /// A route back, and the namespace's syncookies and SYN backlog.
    struct Backlog: DropRouteSource {
        var sysctls: SynBacklogSysctls
        func pin(_ drop: PacketDrop) {}
        func lookup(_ q: DropRouteQuery) -> DropRouteFindings {
            DropRouteFindings(route: RouteLookupResult(request: q.lookup, answer: .route(RouteGet.Route(type: 1, table: 254, oif: 2))),
                              synBacklog: sysctls)
        }
    }

    func withSynQueue(_ qlen: UInt32, from last: UInt8 = 9) -> KernelEvent {
        guard case .listenOverflow(var o) = unanswered(from: last) else { return unanswered(from: last) }
        o.synQueue = qlen
        return .listenOverflow(o)
    }

    @Test("a route back, syncookies off and the SYN queue past three quarters of tcp_max_syn_backlog: syn_queue_full, the reserve named")
    func synBacklogReserve() throws {
        var e = seeded()
        e.drops.routes = Backlog(sysctls: SynBacklogSysctls(syncookies: 0, maxSynBacklog: 16))
        let r = try #require(e.ingest(withSynQueue(13)).first)
        #expect(r.kind == .drop && r.reason == .synQueueFull && r.cause?.rawValue == "syncookies_off")
        #expect(r.process?.pid == 77 && r.client?.pid == 321)
        #expect(r.overflowEvidence?.maxSynBacklog == 16 && r.overflowEvidence?.synQueue == 13)
        let hint = try #require(r.hint)
        #expect(hint.contains("holds 13 requests, past three quarters of net.ipv4.tcp_max_syn_backlog (16)") && hint.contains("tcp_syncookies=1"),
                "\(hint)")
        // Its retransmission is the same attempt.
        #expect(e.ingest(withSynQueue(14)).isEmpty)
    }

    @Test("the reserve not reached, or syncookies on: nothing")
    func synBacklogReserveNot() {
        var e = seeded()
        e.drops.routes = Backlog(sysctls: SynBacklogSysctls(syncookies: 0, maxSynBacklog: 16))
        #expect(e.ingest(withSynQueue(12)).isEmpty)  // 16 - 12 == 16 / 4: not fewer
        e.drops.routes = Backlog(sysctls: SynBacklogSysctls(syncookies: 1, maxSynBacklog: 16))
        #expect(e.ingest(withSynQueue(15, from: 8)).isEmpty)
    }

    @Test("counted without its SYN (no client address): no lookup, no record")
    func counted() {
        var e = seeded()
        #expect(e.ingest(unanswered(from: 1, method: .counter)).isEmpty)
    }
}
