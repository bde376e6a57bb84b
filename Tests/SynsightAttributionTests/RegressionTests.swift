@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// Regressions for bugs found in review of the first engine (each test failed
/// before its fix).
@Suite("AttributionEngine: regressions")
struct AttributionRegressionTests {
    let port: UInt16 = 8080
    var local: Endpoint { Endpoint(addr: v4(127, 0, 0, 1), port: port) }

    @Test("a PID that exits, listens again and exits again keeps its latest exit past eviction")
    func reusedPIDExitSurvivesEviction() throws {
        var e = engine()
        var out: [Record] = []
        out += e.ingest(exitEvent(at: 1, pid: 42, comm: "old", code: 0))
        out += e.ingest(.listen(listenerChange(at: 2, on: local, pid: 42, comm: "svc", inode: 1)))
        // Push the first exit of pid 42 to the front of the eviction queue.
        for i in 0..<4095 { out += e.ingest(exitEvent(at: 3 + UInt64(i), pid: 100_000 + UInt32(i), comm: "x", code: 0)) }
        out += e.ingest(exitEvent(at: 10_000, pid: 42, comm: "svc", code: 9))
        out += e.ingest(.listenClose(listenerChange(at: 10_001, on: local, pid: 42, comm: "svc", inode: 1)))
        let r = try single(run(&e, [rst(at: 20_000, to: local, from: client1)]))
        #expect(out.isEmpty)
        #expect(r.cause == "listener_exited")
        #expect(r.evidence("signal")?.intValue == 9)
    }

    @Test("an early client older than the join window does not join a later RST")
    func staleEarlyClientDoesNotJoin() throws {
        var e = engine(joinWindowNs: 1_000)
        _ = e.ingest(connectFailure(at: 1_000, from: client1, to: local))
        let r = try single(run(&e, [rst(at: 1_000_000, to: local, from: client1)]))
        #expect(r.client == nil)
    }

    @Test("an IPv6 socket bound to an IPv4-mapped address is an IPv4 listener")
    func v4MappedListenerIsIPv4() throws {
        var e = engine()
        let mapped = Endpoint(addr: v4(127, 0, 0, 1), port: port)
        _ = e.ingest(.listen(listenerChange(at: 1, on: mapped, family: .ipv6, pid: 5, comm: "svc", inode: 9)))
        let r = try single(run(&e, [rst(at: 2, to: Endpoint(addr: v4(10, 0, 0, 1), port: port), from: client1)]))
        #expect(r.cause == "bound_to_other_address")
        #expect(r.process?.pid == 5)
    }
}

@Suite("AttributionEngine: failed listen()")
struct FailedListenTests {
    @Test("a listen() that failed with EADDRINUSE (seen as LISTEN then CLOSE) is not the port's last listener")
    func failedListenIsNotAListener() throws {
        var e = engine()
        let port: UInt16 = 8080
        let real = Endpoint(addr: v4(127, 0, 0, 1), port: port)
        _ = e.ingest(.listen(listenerChange(at: 1_000, on: real, pid: 10, comm: "old", inode: 1)))
        _ = e.ingest(.listenClose(listenerChange(at: 5_000, on: real, pid: 10, comm: "old", inode: 1)))
        // pid 20's listen() fails: LISTEN, CLOSE, then the syscall's EADDRINUSE.
        _ = e.ingest(.listen(listenerChange(at: 9_000, on: real, pid: 20, comm: "new", inode: 2)))
        _ = e.ingest(.listenClose(listenerChange(at: 9_020, on: real, pid: 20, comm: "new", inode: 2)))
        let failure = SocketCallFailure(ts: 9_030, startTs: 8_990, call: .listen, family: .ipv4, local: real,
                                        remote: Endpoint(addr: .any4, port: 0), task: TaskInfo(pid: 20, comm: "new"),
                                        netns: hostNS, errno: 98, fd: 3)
        _ = e.ingest(.socketCall(failure))
        let r = try single(run(&e, [rst(at: 10_000, to: real, from: client1)]).filter { $0.kind == .refusal })
        #expect(r.cause == "listener_closed")
        #expect(r.process?.pid == 10)
    }
}
