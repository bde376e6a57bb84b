@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

// Synthetic event sequences through the attribution engine. Times are kernel
// boot nanoseconds; the clock maps them to a fixed wall-clock epoch.












@Suite("AttributionEngine: causes")
struct AttributionCauseTests {
    @Test func neverListened() throws {
        var e = engine()
        let local = Endpoint(addr: v4(127, 0, 0, 1), port: 9)
        let r = try single(run(&e, [rst(at: 1_000, to: local, from: client1, hook: .kfreeSkb)]))
        #expect(r.kind == .refusal)
        #expect(r.reason == .noListener)
        #expect(r.cause?.rawValue == "never_listened")
        #expect(r.port == 9)
        #expect(r.family == .ipv4)
        #expect(r.netns == hostNS)
        #expect(r.local == local)
        #expect(r.remote == client1)
        #expect(r.ts == bootOffset + 1_000)
        #expect(r.process == nil)
        #expect(r.client == nil)
        #expect(r.evidence("hook")?.stringValue == "tp_btf/kfree_skb")
        #expect(r.evidence("listeners") == nil)
        let hint = try #require(r.hint)
        #expect(hint.contains("port 9"))
    }

    @Test("a SYN retransmitted because its RST was lost is the same refused attempt; a new ISN is a new one")
    func retransmittedSYNRefusedAgain() {
        var e = engine()
        let local = Endpoint(addr: v4(127, 0, 0, 1), port: 9)
        let first = run(&e, [rst(at: 1_000, to: local, from: client1, isn: 77)])
        let again = run(&e, [rst(at: 1_000_001_000, to: local, from: client1, isn: 77),
                             rst(at: 3_000_001_000, to: local, from: client1, isn: 77)])
        let next = run(&e, [rst(at: 4_000_000_000, to: local, from: client1, isn: 78)])
        #expect(first.count == 1 && again.isEmpty && next.count == 1, "\(first) \(again) \(next)")
    }

    @Test func listenerClosed() throws {
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 8080)
        let records = run(&e, [
            .listen(listenerChange(at: 100, on: addr, pid: 500, comm: "webapp", inode: 11)),
            .listenClose(listenerChange(at: 200, on: addr, pid: 500, comm: "webapp", inode: 11)),
            rst(at: 300, to: Endpoint(addr: v4(10, 0, 0, 1), port: 8080), from: Endpoint(addr: v4(10, 0, 0, 2), port: 5555)),
        ])
        let r = try single(records)
        #expect(r.reason == .noListener)
        #expect(r.cause?.rawValue == "listener_closed")
        #expect(r.port == 8080)
        #expect(r.process?.pid == 500)
        #expect(r.process?.comm == "webapp")
        #expect(r.client == nil)
        #expect(r.evidence("listened_on")?.stringValue == "0.0.0.0:8080")
        #expect(r.evidence("closed_at")?.stringValue == RFC3339.format(nanosecondsSinceEpoch: bootOffset + 200))
        #expect(r.evidence("closed_by") == nil)
        #expect(r.evidence("closed_at_exact") == nil)
        #expect(r.evidence("exited_at") == nil)
        let hint = try #require(r.hint)
        #expect(hint.contains("webapp"))
        #expect(hint.contains("8080"))
        #expect(hint.contains("still running"))
        #expect(e.knownListeners.isEmpty)
    }

    @Test("a close noticed without the state-change hook (closer unknown): listener_closed, no closed_by, closed_at not exact")
    func listenerClosedNoticedLater() throws {
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 8080)
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: addr, pid: 500, comm: "webapp", inode: 11)),
            .listenClose(listenerChange(at: 290, on: Endpoint(addr: .any4, port: 8080), pid: 0, comm: "", inode: 11)),
            rst(at: 300, to: Endpoint(addr: v4(127, 0, 0, 1), port: 8080), from: client1),
        ]))
        #expect(r.cause?.rawValue == "listener_closed")
        #expect(r.process?.pid == 500)
        #expect(r.process?.comm == "webapp")
        #expect(r.evidence("listened_on")?.stringValue == "0.0.0.0:8080")
        #expect(r.evidence("closed_by") == nil)
        #expect(r.evidence("closed_at_exact") == .bool(false))
    }

    @Test func listenerClosedByAnotherProcess() throws {
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 8080)
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: addr, pid: 500, comm: "parent", inode: 11)),
            .listenClose(listenerChange(at: 200, on: addr, pid: 501, comm: "child", inode: 11)),
            rst(at: 300, to: Endpoint(addr: v4(127, 0, 0, 1), port: 8080), from: client1),
        ]))
        #expect(r.cause?.rawValue == "listener_closed")
        #expect(r.process?.pid == 500)
        #expect(r.process?.comm == "parent")
        #expect(r.evidence("closed_by")?["pid"]?.intValue == 501)
        #expect(r.evidence("closed_by")?["comm"]?.stringValue == "child")
    }

    @Test func listenerExitedBySIGKILL() throws {
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 6379)
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: addr, pid: 900, comm: "redis-server", inode: 42)),
            exitEvent(at: 1_000, pid: 900, comm: "redis-server", code: 9),
            .listenClose(listenerChange(at: 1_001, on: addr, pid: 900, comm: "redis-server", inode: 42)),
            rst(at: 5_000, to: Endpoint(addr: v4(127, 0, 0, 1), port: 6379), from: client1),
        ]))
        #expect(r.reason == .noListener)
        #expect(r.cause?.rawValue == "listener_exited")
        #expect(r.port == 6379)
        #expect(r.process?.pid == 900)
        #expect(r.process?.comm == "redis-server")
        #expect(r.evidence("signal")?.intValue == 9)
        #expect(r.evidence("signal_name")?.stringValue == "SIGKILL")
        #expect(r.evidence("exit_status") == nil)
        #expect(r.evidence("core_dumped") == nil)
        #expect(r.evidence("exited_at")?.stringValue == RFC3339.format(nanosecondsSinceEpoch: bootOffset + 1_000))
        #expect(r.evidence("closed_at")?.stringValue == RFC3339.format(nanosecondsSinceEpoch: bootOffset + 1_001))
        #expect(r.evidence("hook")?.stringValue == "tp_btf/tcp_send_reset")
        let hint = try #require(r.hint)
        #expect(hint.contains("SIGKILL"))
        #expect(hint.contains("6379"))
        #expect(hint.contains("redis-server"))
    }

    @Test func listenerExitedWithCoreDump() throws {
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 7000)
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: addr, pid: 901, comm: "crashy", inode: 43)),
            exitEvent(at: 1_000, pid: 901, comm: "crashy", code: 0x80 | 11),
            .listenClose(listenerChange(at: 1_001, on: addr, pid: 901, comm: "crashy", inode: 43)),
            rst(at: 5_000, to: Endpoint(addr: v4(127, 0, 0, 1), port: 7000), from: client1),
        ]))
        #expect(r.cause?.rawValue == "listener_exited")
        #expect(r.evidence("signal")?.intValue == 11)
        #expect(r.evidence("signal_name")?.stringValue == "SIGSEGV")
        #expect(r.evidence("core_dumped") == .bool(true))
        #expect(r.hint?.contains("core dumped") == true)
    }

    @Test func listenerExitedWithStatus3() throws {
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 3000)
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: addr, pid: 910, comm: "node", inode: 44)),
            exitEvent(at: 2_000, pid: 910, comm: "node", code: 0x300),
            .listenClose(listenerChange(at: 2_001, on: addr, pid: 910, comm: "node", inode: 44)),
            rst(at: 9_000, to: Endpoint(addr: v4(127, 0, 0, 1), port: 3000), from: client1),
        ]))
        #expect(r.cause?.rawValue == "listener_exited")
        #expect(r.process?.pid == 910)
        #expect(r.process?.comm == "node")
        #expect(r.evidence("exit_status")?.intValue == 3)
        #expect(r.evidence("signal") == nil)
        #expect(r.evidence("signal_name") == nil)
        let hint = try #require(r.hint)
        #expect(hint.contains("status 3"))
        #expect(hint.contains("3000"))
    }

    @Test func exitBeforeListeningAgainIsNotTheCause() throws {
        // The PID exited once (or was reused), then listened: the later close
        // is a close by a live process, not an exit.
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 8081)
        let r = try single(run(&e, [
            exitEvent(at: 50, pid: 920, comm: "svc", code: 9),
            .listen(listenerChange(at: 100, on: addr, pid: 920, comm: "svc", inode: 45)),
            .listenClose(listenerChange(at: 200, on: addr, pid: 920, comm: "svc", inode: 45)),
            rst(at: 300, to: Endpoint(addr: v4(127, 0, 0, 1), port: 8081), from: client1),
        ]))
        #expect(r.cause?.rawValue == "listener_closed")
        #expect(r.evidence("signal") == nil)
    }

    @Test func exitOlderThanTheListenerIsNotTheCause() throws {
        // The engine knows when this listener started (since: 1_000); an exit
        // of the same PID stamped earlier (a previous process, or a record
        // from another CPU arriving late) does not explain its closing.
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 8082)
        e.seed([ListenerInfo(netns: hostNS, family: .ipv4, local: addr, ipv6Only: false,
                             socketInode: 46, pid: 930, comm: "svc", since: 1_000)])
        let r = try single(run(&e, [
            exitEvent(at: 500, pid: 930, comm: "svc", code: 9),
            .listenClose(listenerChange(at: 2_000, on: addr, pid: 930, comm: "svc", inode: 46)),
            rst(at: 3_000, to: Endpoint(addr: v4(127, 0, 0, 1), port: 8082), from: client1),
        ]))
        #expect(r.cause?.rawValue == "listener_closed")
        #expect(r.evidence("exited_at") == nil)
    }

    @Test func boundToOtherAddress() throws {
        var e = engine()
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: Endpoint(addr: v4(127, 0, 0, 1), port: 8080), pid: 600, comm: "devserver", inode: 12)),
            rst(at: 200, to: Endpoint(addr: v4(10, 0, 0, 1), port: 8080), from: Endpoint(addr: v4(10, 0, 0, 2), port: 33333)),
        ]))
        #expect(r.reason == .noListener)
        #expect(r.cause?.rawValue == "bound_to_other_address")
        #expect(r.port == 8080)
        #expect(r.process?.pid == 600)
        #expect(r.process?.comm == "devserver")
        guard case .array(let ls)? = r.evidence("listeners") else {
            Issue.record("listeners evidence missing")
            return
        }
        #expect(ls.count == 1)
        #expect(ls.first?["addr"]?.stringValue == "127.0.0.1")
        #expect(ls.first?["port"]?.intValue == 8080)
        #expect(ls.first?["pid"]?.intValue == 600)
        #expect(ls.first?["netns"]?.intValue == Int64(hostNS))
        #expect(ls.first?["family"]?.stringValue == "ipv4")
        let hint = try #require(r.hint)
        #expect(hint.contains("127.0.0.1:8080"))
        #expect(hint.contains("10.0.0.1"))
        #expect(hint.contains("0.0.0.0"))
        #expect(hint.contains("devserver"))
    }

    @Test func familyMismatchIPv6OnlyListenerIPv4SYN() throws {
        var e = engine()
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: Endpoint(addr: .any6, port: 8443), pid: 700, comm: "envoy", inode: 13, ipv6Only: true)),
            rst(at: 200, to: Endpoint(addr: v4(127, 0, 0, 1), port: 8443), from: client1),
        ]))
        #expect(r.cause?.rawValue == "family_mismatch")
        #expect(r.family == .ipv4)
        #expect(r.port == 8443)
        #expect(r.process?.pid == 700)
        #expect(r.process?.comm == "envoy")
        guard case .array(let ls)? = r.evidence("listeners") else {
            Issue.record("listeners evidence missing")
            return
        }
        #expect(ls.first?["addr"]?.stringValue == "::")
        #expect(ls.first?["family"]?.stringValue == "ipv6")
        #expect(ls.first?["ipv6only"] == .bool(true))
        let hint = try #require(r.hint)
        #expect(hint.contains("IPV6_V6ONLY"))
        #expect(hint.contains("0.0.0.0:8443"))
        #expect(hint.contains("envoy"))
    }

    /// "localhost" split: the service on [::1] (the kernel marks a socket
    /// bound to a specific IPv6 address IPV6_V6ONLY), the client on
    /// 127.0.0.1. Clearing IPV6_V6ONLY would not help: the fix is a
    /// 127.0.0.1 socket, [::] for both, or the client using [::1].
    @Test func familyMismatchIPv6LoopbackListenerIPv4SYN() throws {
        var e = engine()
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: Endpoint(addr: ip6(0, 0, 0, 0, 0, 0, 0, 1), port: 3000), pid: 720, comm: "node",
                                   inode: 16, ipv6Only: true)),
            rst(at: 200, to: Endpoint(addr: v4(127, 0, 0, 1), port: 3000), from: client1),
        ]))
        #expect(r.cause?.rawValue == "family_mismatch")
        let hint = try #require(r.hint)
        #expect(hint.contains("also listen on 127.0.0.1:3000"), "\(hint)")
        #expect(hint.contains("connect to [::1]:3000") && hint.contains("localhost"), "\(hint)")
        #expect(!hint.contains("clear IPV6_V6ONLY"), "\(hint)")
    }

    @Test func familyMismatchIPv4LoopbackListenerIPv6SYN() throws {
        var e = engine()
        let local = Endpoint(addr: ip6(0, 0, 0, 0, 0, 0, 0, 1), port: 3001)
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: Endpoint(addr: v4(127, 0, 0, 1), port: 3001), pid: 730, comm: "py", inode: 17)),
            rst(at: 200, to: local, from: Endpoint(addr: ip6(0, 0, 0, 0, 0, 0, 0, 1), port: 50_001)),
        ]))
        #expect(r.cause?.rawValue == "family_mismatch")
        let hint = try #require(r.hint)
        #expect(hint.contains("also listen on [::1]:3001") && hint.contains("127.0.0.1:3001") && hint.contains("localhost"), "\(hint)")
    }

    @Test func familyMismatchIPv4ListenerIPv6SYN() throws {
        var e = engine()
        let local = Endpoint(addr: ip6(0, 0, 0, 0, 0, 0, 0, 1), port: 8080)
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: Endpoint(addr: .any4, port: 8080), pid: 710, comm: "py", inode: 14)),
            rst(at: 200, to: local, from: Endpoint(addr: ip6(0, 0, 0, 0, 0, 0, 0, 1), port: 50_000)),
        ]))
        #expect(r.cause?.rawValue == "family_mismatch")
        #expect(r.family == .ipv6)
        #expect(r.local?.description == "[::1]:8080")
        #expect(r.process?.pid == 710)
        #expect(r.process?.comm == "py")
        let hint = try #require(r.hint)
        #expect(hint.contains("[::]:8080"))
        #expect(hint.contains("IPv4"))
    }

    @Test func otherNetns() throws {
        var e = engine()
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: Endpoint(addr: .any4, port: 5000), pid: 800, comm: "containerd-app", inode: 15, netns: otherNS)),
            rst(at: 200, to: Endpoint(addr: v4(127, 0, 0, 1), port: 5000), from: client1, netns: hostNS),
        ]))
        #expect(r.cause?.rawValue == "other_netns")
        #expect(r.netns == hostNS)
        #expect(r.port == 5000)
        #expect(r.process?.pid == 800)
        #expect(r.process?.comm == "containerd-app")
        guard case .array(let ls)? = r.evidence("listeners") else {
            Issue.record("listeners evidence missing")
            return
        }
        #expect(ls.count == 1)
        #expect(ls.first?["netns"]?.intValue == Int64(otherNS))
        let hint = try #require(r.hint)
        #expect(hint.contains("5000"))
        #expect(hint.contains(String(otherNS)))
        #expect(hint.contains(String(hostNS)))
    }

    @Test func seededListenerBoundElsewhere() throws {
        var e = engine()
        e.seed([ListenerInfo(netns: hostNS, family: .ipv4, local: Endpoint(addr: v4(127, 0, 0, 1), port: 5432),
                             ipv6Only: nil, socketInode: 555, pid: 321, comm: "postgres",
                             exe: "/usr/lib/postgresql/16/bin/postgres")])
        #expect(e.knownListeners.count == 1)
        #expect(e.knownListeners.first?.pid == 321)
        let r = try single(run(&e, [
            rst(at: 200, to: Endpoint(addr: v4(192, 168, 1, 10), port: 5432), from: Endpoint(addr: v4(192, 168, 1, 20), port: 41000)),
        ]))
        #expect(r.cause?.rawValue == "bound_to_other_address")
        #expect(r.process == ProcessRef(pid: 321, comm: "postgres", exe: "/usr/lib/postgresql/16/bin/postgres"))
        #expect(r.hint?.contains("postgres") == true)
        #expect(r.hint?.contains("127.0.0.1:5432") == true)
        // Unknown IPV6_V6ONLY (snapshot) is not reported as a value.
        guard case .array(let ls)? = r.evidence("listeners") else {
            Issue.record("listeners evidence missing")
            return
        }
        #expect(ls.first?["ipv6only"] == nil)
    }

    @Test func seededListenerThatExits() throws {
        // A listener from the start-up snapshot has no `since`: any exit counts.
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 9200)
        e.seed([ListenerInfo(netns: hostNS, family: .ipv4, local: addr, ipv6Only: nil,
                             socketInode: 556, pid: 322, comm: "java")])
        let r = try single(run(&e, [
            exitEvent(at: 10, pid: 322, comm: "java", code: 15),
            .listenClose(listenerChange(at: 11, on: addr, pid: 322, comm: "java", inode: 556)),
            rst(at: 20, to: Endpoint(addr: v4(127, 0, 0, 1), port: 9200), from: client1),
        ]))
        #expect(r.cause?.rawValue == "listener_exited")
        #expect(r.process?.pid == 322)
        #expect(r.evidence("signal_name")?.stringValue == "SIGTERM")
    }

    @Test func acceptingListenerIsIgnored() throws {
        // The registry says 0.0.0.0:8080 listens, yet the kernel answered RST:
        // the registry raced with a close. That listener explains nothing.
        var e = engine()
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: Endpoint(addr: .any4, port: 8080), pid: 1000, comm: "racer", inode: 16)),
            rst(at: 200, to: Endpoint(addr: v4(10, 0, 0, 1), port: 8080), from: client1),
        ]))
        #expect(r.cause?.rawValue == "never_listened")
        #expect(r.process == nil)
        #expect(r.evidence("listeners") == nil)
    }

    @Test func dualStackListenerAcceptsIPv4AndIsIgnored() throws {
        var e = engine()
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: Endpoint(addr: .any6, port: 8080), pid: 1001, comm: "dual", inode: 17, ipv6Only: false)),
            rst(at: 200, to: Endpoint(addr: v4(127, 0, 0, 1), port: 8080), from: client1),
        ]))
        #expect(r.cause?.rawValue == "never_listened")
        #expect(r.process == nil)
    }

    @Test func listenerOnAnotherPortDoesNotMatter() throws {
        var e = engine()
        let r = try single(run(&e, [
            .listen(listenerChange(at: 100, on: Endpoint(addr: v4(127, 0, 0, 1), port: 8081), pid: 1002, comm: "other", inode: 18)),
            rst(at: 200, to: Endpoint(addr: v4(10, 0, 0, 1), port: 8080), from: client1),
        ]))
        #expect(r.cause?.rawValue == "never_listened")
        #expect(r.port == 8080)
        #expect(r.process == nil)
    }

    @Test func resolverEnrichesProcessAndClient() throws {
        struct Exes: ProcessResolver {
            func exe(pid: UInt32) -> String? { "/usr/bin/p\(pid)" }
        }
        var e = engine(resolver: Exes())
        let server = Endpoint(addr: v4(127, 0, 0, 1), port: 8080)
        let records = run(&e, [
            .listen(listenerChange(at: 100, on: server, pid: 10, comm: "srv", inode: 19)),
            rst(at: 200, to: Endpoint(addr: v4(10, 0, 0, 1), port: 8080), from: Endpoint(addr: v4(10, 0, 0, 1), port: 40_001)),
            connectFailure(at: 210, from: Endpoint(addr: v4(10, 0, 0, 1), port: 40_001), to: Endpoint(addr: v4(10, 0, 0, 1), port: 8080), pid: 20),
        ])
        let r = try single(records)
        #expect(r.process?.exe == "/usr/bin/p10")
        #expect(r.client?.exe == "/usr/bin/p20")
    }
}

@Suite("AttributionEngine: client join")
struct AttributionJoinTests {
    let server = Endpoint(addr: v4(127, 0, 0, 1), port: 9)

    @Test func rstThenConnectErrorJoins() throws {
        var e = engine()
        #expect(e.ingest(rst(at: 1_000, to: server, from: client1)).isEmpty)
        #expect(e.pendingCount == 1)
        let out = e.ingest(connectFailure(at: 1_050, from: client1, to: server, pid: 4321, comm: "psql"))
        let r = try single(out)
        #expect(r.cause?.rawValue == "never_listened")
        #expect(r.client == ProcessRef(pid: 4321, comm: "psql"))
        #expect(r.port == 9)
        #expect(r.remote == client1)
        #expect(e.pendingCount == 0)
        #expect(e.expire(now: .max).isEmpty)
        #expect(e.finish().isEmpty)
    }

    @Test func earlyClientJoins() throws {
        var e = engine()
        #expect(e.ingest(connectFailure(at: 990, from: client1, to: server, pid: 4322, comm: "wget")).isEmpty)
        #expect(e.pendingCount == 0)
        let r = try single(e.ingest(rst(at: 1_000, to: server, from: client1)))
        #expect(r.client?.pid == 4322)
        #expect(r.client?.comm == "wget")
        #expect(r.reason == .noListener)
        #expect(e.pendingCount == 0)
        #expect(e.finish().isEmpty)
    }

    @Test func unmatchedRSTIsEmittedAfterTheJoinWindow() throws {
        var e = engine(joinWindowNs: 200_000_000)
        #expect(e.ingest(rst(at: 1_000, to: server, from: Endpoint(addr: v4(10, 9, 8, 7), port: 1234))).isEmpty)
        #expect(e.expire(now: 1_000).isEmpty)
        #expect(e.expire(now: 1_000 + 200_000_000 - 1).isEmpty)
        #expect(e.pendingCount == 1)
        let r = try single(e.expire(now: 1_000 + 200_000_000))
        #expect(r.client == nil)
        #expect(r.cause?.rawValue == "never_listened")
        #expect(r.remote?.description == "10.9.8.7:1234")
        #expect(e.pendingCount == 0)
        #expect(e.expire(now: .max).isEmpty)
    }

    @Test func expireEmitsInArrivalOrder() throws {
        var e = engine(joinWindowNs: 100)
        for i in 0..<5 {
            _ = e.ingest(rst(at: 1_000 + UInt64(i), to: server, from: Endpoint(addr: v4(10, 0, 0, 1), port: 2000 + UInt16(i))))
        }
        let out = e.expire(now: 1_102)
        #expect(out.map { $0.remote?.port } == [2000, 2001, 2002])
        #expect(e.pendingCount == 2)
        #expect(e.finish().map { $0.remote?.port } == [2003, 2004])
    }

    @Test func timeoutErrnoDoesNotJoin() throws {
        var e = engine()
        #expect(e.ingest(rst(at: 1_000, to: server, from: client1)).isEmpty)
        // A timeout stands alone as the client's view (after waiting one
        // window for where its SYNs went, which no record says here).
        #expect(e.ingest(connectFailure(at: 1_050, from: client1, to: server, errno: 110)).isEmpty)
        #expect(e.pendingCount == 1)
        let out = e.finish()
        let timeout = try #require(out.first { $0.kind == .connectFailure })
        #expect(timeout.cause?.rawValue == "timed_out" && timeout.process?.pid == 777)
        let r = try #require(out.first { $0.reason == .noListener })
        #expect(r.client == nil)
    }

    @Test func timeoutErrnoBeforeRSTIsNotAnEarlyClient() throws {
        var e = engine()
        #expect(e.ingest(connectFailure(at: 990, from: client1, to: server, errno: 110)).isEmpty)
        #expect(e.ingest(rst(at: 1_000, to: server, from: client1)).isEmpty)
        let out = e.finish()
        #expect(out.first { $0.kind == .connectFailure }?.cause?.rawValue == "timed_out")
        let r = try #require(out.first { $0.reason == .noListener })
        #expect(r.client == nil)
    }

    @Test func differentTupleDoesNotJoin() throws {
        var e = engine()
        #expect(e.ingest(rst(at: 1_000, to: server, from: client1)).isEmpty)
        // Same client address, another source port.
        #expect(e.ingest(connectFailure(at: 1_050, from: Endpoint(addr: client1.addr, port: 40_001), to: server)).isEmpty)
        // Same client, another destination port.
        #expect(e.ingest(connectFailure(at: 1_060, from: client1, to: Endpoint(addr: server.addr, port: 10))).isEmpty)
        #expect(e.pendingCount == 1)
        // Finishing emits the unjoined refusal and the two clients' own views.
        let all = e.finish()
        #expect(all.count == 3)
        let refusal = try #require(all.first { $0.kind == .refusal })
        #expect(refusal.client == nil)
        #expect(all.filter { $0.kind == .connectFailure && $0.cause?.rawValue == "connection_refused" }.count == 2)
    }

    @Test("refused with no TCP segment back (an ICMP port unreachable): rejected_with_icmp with a firewall fix; a reset: connection_refused")
    func refusedByICMP() throws {
        var e = engine()
        _ = e.ingest(connectFailure(at: 1_000, from: client1, to: server, segmentsIn: 0))
        let r = try single(e.finish())
        #expect(r.kind == .connectFailure && r.reason == .unknown && r.cause == .unknown(.rejectedWithICMP), "\(r.json)")
        #expect(r.evidence("refused_by") == .string("icmp") && r.evidence("errno") == .string("ECONNREFUSED"), "\(r.json)")
        let hint = r.hint ?? ""
        #expect(hint.contains("answered with an ICMP port unreachable, not a TCP reset") && hint.contains("iptables -j REJECT"), "\(hint)")
        var f = engine()
        _ = f.ingest(connectFailure(at: 1_000, from: client1, to: server, segmentsIn: 1))
        let s = try single(f.finish())
        #expect(s.cause == .unknown(.connectionRefused) && s.evidence("refused_by") == .string("tcp_reset"), "\(s.json)")
    }

    @Test("the kernel's second report of one connect()'s ICMP refusal (no caller: its entry was taken) is dropped: one record, with the caller")
    func repeatedReport() throws {
        for errno: Int32 in [111, 113] {
            var e = engine()
            var out = e.ingest(connectFailure(at: 1_000, from: client1, to: server, errno: errno, segmentsIn: 0))
            var again = ConnectError(ts: 1_027, connectTs: nil, family: .ipv4, local: client1, remote: server, task: nil,
                                     netns: hostNS, errno: errno)
            again.segmentsIn = 0
            out += e.ingest(.connectError(again)) + e.finish()
            #expect(out.count == 1 && out.first?.process?.pid == 777, "\(errno): \(out.map(\.json))")
            // A new connect() on the same 4-tuple, past the window: its own record.
            var f = engine()
            var both = f.ingest(connectFailure(at: 1_000, from: client1, to: server, errno: errno)) + f.finish()
            both += f.ingest(connectFailure(at: 5_000_000, from: client1, to: server, errno: errno)) + f.finish()
            #expect(both.count == 2, "\(errno): \(both.map(\.json))")
        }
    }

    @Test func ipv6Join() throws {
        var e = engine()
        let srv = Endpoint(addr: ip6(0, 0, 0, 0, 0, 0, 0, 1), port: 8443)
        let cli = Endpoint(addr: ip6(0, 0, 0, 0, 0, 0, 0, 1), port: 51_000)
        #expect(e.ingest(rst(at: 1_000, to: srv, from: cli)).isEmpty)
        let r = try single(e.ingest(connectFailure(at: 1_010, from: cli, to: srv, pid: 55, comm: "grpc")))
        #expect(r.family == .ipv6)
        #expect(r.client?.pid == 55)
    }

    @Test func secondRSTOnTheSameTupleEmitsTheFirst() throws {
        var e = engine()
        #expect(e.ingest(rst(at: 1_000, to: server, from: client1)).isEmpty)
        let displaced = try single(e.ingest(rst(at: 2_000, to: server, from: client1)))
        #expect(displaced.ts == bootOffset + 1_000)
        #expect(displaced.client == nil)
        #expect(e.pendingCount == 1)
        let joined = try single(e.ingest(connectFailure(at: 2_010, from: client1, to: server)))
        #expect(joined.ts == bootOffset + 2_000)
        #expect(joined.client?.pid == 777)
    }

    @Test func staleEarlyClientIsForgottenOnExpiry() throws {
        var e = engine(joinWindowNs: 1_000)
        #expect(e.ingest(connectFailure(at: 10_000, from: client1, to: server)).isEmpty)
        // An unrelated refusal is pending when time passes beyond the window.
        let stranger = Endpoint(addr: v4(10, 1, 1, 1), port: 7)
        #expect(e.ingest(rst(at: 10_500, to: server, from: stranger)).isEmpty)
        let expired = e.expire(now: 20_000)
        #expect(expired.count == 2)
        let refusal = try #require(expired.first { $0.kind == .refusal })
        #expect(refusal.remote == stranger)
        #expect(refusal.client == nil)
        // The early client that nothing joined becomes the client's own view.
        let own = try #require(expired.first { $0.kind == .connectFailure })
        #expect(own.cause?.rawValue == "connection_refused" && own.process?.pid == 777 && own.port == server.port)
        // The early client is older than the window now: no join.
        #expect(e.ingest(rst(at: 30_000, to: server, from: client1)).isEmpty)
        let r = try single(e.finish())
        #expect(r.client == nil)
        #expect(r.remote == client1)
    }
}

@Suite("AttributionEngine: bounded state")
struct AttributionBoundsTests {
    @Test func manyExitsKeepTheEngineWorking() throws {
        var e = engine()
        let addr = Endpoint(addr: .any4, port: 8080)
        _ = e.ingest(.listen(listenerChange(at: 10, on: addr, pid: 1, comm: "victim", inode: 99)))
        for i in 0..<6_000 {
            #expect(e.ingest(exitEvent(at: 100 + UInt64(i), pid: 10_000 + UInt32(i), comm: "short", code: 0)).isEmpty)
        }
        // The listener's own exit is the most recent one: it must be remembered.
        _ = e.ingest(exitEvent(at: 10_000, pid: 1, comm: "victim", code: 9))
        _ = e.ingest(.listenClose(listenerChange(at: 10_001, on: addr, pid: 1, comm: "victim", inode: 99)))
        let r = try single(run(&e, [rst(at: 30_000, to: Endpoint(addr: v4(127, 0, 0, 1), port: 8080), from: client1)]))
        #expect(r.reason == .noListener)
        #expect(r.cause?.rawValue == "listener_exited")
        #expect(r.process?.pid == 1)
        #expect(r.evidence("signal_name")?.stringValue == "SIGKILL")

        // And an unrelated port still attributes normally.
        let other = try single(run(&e, [rst(at: 40_000, to: Endpoint(addr: v4(127, 0, 0, 1), port: 1), from: client1)]))
        #expect(other.cause?.rawValue == "never_listened")
    }

    @Test func manyEarlyClientsDoNotBreakJoining() throws {
        var e = engine(joinWindowNs: 1_000)
        let server = Endpoint(addr: v4(127, 0, 0, 1), port: 9)
        for i in 0..<5_000 {
            let cli = Endpoint(addr: v4(127, 0, 1, UInt8(i % 250)), port: 1_000 + UInt16(i))
            // Older unjoined clients come out as client-side records, never lost.
            for r in e.ingest(connectFailure(at: 100 + UInt64(i) * 10, from: cli, to: server)) {
                #expect(r.kind == .connectFailure)
            }
        }
        let cli = Endpoint(addr: v4(127, 0, 0, 9), port: 65_000)
        _ = e.ingest(connectFailure(at: 60_000, from: cli, to: server, pid: 4_444, comm: "last"))
        let out = e.ingest(rst(at: 60_001, to: server, from: cli))
        let r = try #require(out.first { $0.kind == .refusal })
        #expect(r.client?.pid == 4_444)
    }

    @Test func manyListenersAndClosures() throws {
        var e = engine()
        for i in 0..<5_000 {
            let ep = Endpoint(addr: v4(127, 0, 0, 1), port: 10_000 + UInt16(i))
            _ = e.ingest(.listen(listenerChange(at: UInt64(i), on: ep, pid: 2, comm: "many", inode: UInt64(i))))
        }
        #expect(e.knownListeners.count == 5_000)
        for i in 0..<5_000 where i % 2 == 0 {
            let ep = Endpoint(addr: v4(127, 0, 0, 1), port: 10_000 + UInt16(i))
            _ = e.ingest(.listenClose(listenerChange(at: 10_000 + UInt64(i), on: ep, pid: 2, comm: "many", inode: UInt64(i))))
        }
        #expect(e.knownListeners.count == 2_500)
        let closed = try single(run(&e, [rst(at: 20_000, to: Endpoint(addr: v4(127, 0, 0, 1), port: 10_000), from: client1)]))
        #expect(closed.cause?.rawValue == "listener_closed")
        let elsewhere = try single(run(&e, [rst(at: 20_001, to: Endpoint(addr: v4(10, 0, 0, 1), port: 10_001), from: client1)]))
        #expect(elsewhere.cause?.rawValue == "bound_to_other_address")
    }
}

@Suite("Signals")
struct SignalTests {
    @Test func names() {
        #expect(Signals.name(9) == "SIGKILL")
        #expect(Signals.name(15) == "SIGTERM")
        #expect(Signals.name(11) == "SIGSEGV")
        #expect(Signals.name(6) == "SIGABRT")
        #expect(Signals.name(64) == "signal 64")
    }
}
