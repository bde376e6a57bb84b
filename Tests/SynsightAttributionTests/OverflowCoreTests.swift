import CSynsightABI
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

func overflowRecordBytes(stage: UInt8, method: UInt8 = 1, clientFound: Bool = true, clientLookup: UInt8? = nil, ack: UInt32 = 2,
                         max: UInt32 = 1, qlen: UInt32 = 0, suppressed: UInt32 = 0, counted: UInt32 = 0) -> [UInt8] {
    var e = syn_ev_listen_overflow()
    e.hdr = header(SYN_EV_LISTEN_OVERFLOW, size: MemoryLayout<syn_ev_listen_overflow>.size, ts: 9_000)
    e.t = tuple(local: mapped(127, 0, 0, 1), lport: 8080, remote: mapped(127, 0, 0, 1), rport: 50_000, family: 2)
    e.client = task(pid: 321, tid: 321, uid: 0, cgroup: 1, comm: Array("curl".utf8))
    e.client_found = clientLookup ?? (clientFound ? 1 : 0)
    e.listener_ino = 555
    e.netns = 4_026_531_840
    e.listener_pid = 0
    e.ack_backlog = ack
    e.max_ack_backlog = max
    e.syn_qlen = qlen
    e.drops = 3
    e.somaxconn = 4096
    e.suppressed = suppressed
    e.stage = stage
    e.method = method
    e.counted = counted
    return rawBytes(of: e)
}

@Suite("overflow records and attribution")
struct OverflowCoreTests {
    let listenerEnd = Endpoint(addr: v4(127, 0, 0, 1), port: 8080)

    func seeded() -> AttributionEngine {
        var e = engine()
        e.seed([ListenerInfo(netns: 4_026_531_840, family: .ipv4, local: listenerEnd, ipv6Only: nil,
                             socketInode: 555, pid: 77, comm: "nginx")])
        return e
    }

    @Test func decodesOverflowRecord() throws {
        guard case .listenOverflow(let o) = try EventDecoder.decode(overflowRecordBytes(stage: 1)) else {
            Issue.record("expected listenOverflow")
            return
        }
        #expect(o.stage == .synAcceptQueue)
        #expect(o.method == .consumeSkb)
        #expect(o.local.port == 8080 && o.remote.port == 50_000)
        #expect(o.client?.pid == 321 && o.client?.comm == "curl")
        #expect(o.acceptQueue == 2 && o.maxBacklog == 1 && o.drops == 3 && o.somaxconn == 4096)
        #expect(o.listenerInode == 555)
    }

    @Test func clientAbsentWhenNotFound() throws {
        guard case .listenOverflow(let o) = try EventDecoder.decode(overflowRecordBytes(stage: 1, clientFound: false)) else {
            Issue.record("expected listenOverflow")
            return
        }
        #expect(o.client == nil)
    }

    @Test("a client the kernel did not look for (walk budget spent) is absent, and the record says why")
    func clientNotLookedUp() throws {
        guard case .listenOverflow(let o) = try EventDecoder.decode(
            overflowRecordBytes(stage: 1, clientLookup: UInt8(SYN_CLIENT_NOT_LOOKED_UP.rawValue))) else {
            Issue.record("expected listenOverflow")
            return
        }
        #expect(o.client == nil && o.clientNotLookedUp)
        var e = seeded()
        let r = try single(e.ingest(.listenOverflow(o)))
        #expect(r.client == nil)
        #expect(r.evidence("client_lookup")?.stringValue?.hasPrefix("skipped") == true)
        // Not found (looked for): no such evidence.
        guard case .listenOverflow(let nf) = try EventDecoder.decode(overflowRecordBytes(stage: 1, clientFound: false)) else {
            Issue.record("expected listenOverflow")
            return
        }
        #expect(!nf.clientNotLookedUp)
        var e2 = seeded()
        #expect(try single(e2.ingest(.listenOverflow(nf))).evidence("client_lookup") == nil)
    }

    @Test func truncatedAndBadStage() {
        let full = overflowRecordBytes(stage: 1)
        #expect(throws: DecodeError.truncated(kind: UInt8(SYN_EV_LISTEN_OVERFLOW.rawValue), got: full.count - 1, need: full.count)) {
            try EventDecoder.decode(Array(full.dropLast()))
        }
        #expect(throws: DecodeError.unknownKind(9)) { try EventDecoder.decode(overflowRecordBytes(stage: 9)) }
        #expect(throws: DecodeError.unknownHook(99)) { try EventDecoder.decode(overflowRecordBytes(stage: 1, method: 99)) }
    }

    @Test func decodesAcceptError() throws {
        var e = syn_ev_accept_error()
        e.hdr = header(SYN_EV_ACCEPT_ERROR, size: MemoryLayout<syn_ev_accept_error>.size, ts: 1)
        e.task = task(pid: 77, tid: 78, uid: 33, cgroup: 0, comm: Array("nginx".utf8))
        e.err = -24
        e.nofile_cur = 1024
        e.port = 8080
        e.listener_ino = 555
        e.netns = 9
        guard case .acceptError(let a) = try EventDecoder.decode(rawBytes(of: e)) else {
            Issue.record("expected acceptError")
            return
        }
        #expect(a.errno == 24 && a.errnoName == "EMFILE" && a.nofileLimit == 1024 && a.port == 8080 && a.task.pid == 77)
    }

    @Test func acceptQueueFullIsAttributedToTheListener() throws {
        var e = seeded()
        let o = ListenOverflow(ts: 5, family: .ipv4, local: listenerEnd, remote: client1,
                               client: TaskInfo(pid: 321, comm: "curl"), listenerInode: 555, netns: 4_026_531_840,
                               acceptQueue: 129, maxBacklog: 128, somaxconn: 128, stage: .synAcceptQueue)
        let r = try single(e.ingest(.listenOverflow(o)))
        #expect(r.kind == .drop)
        #expect(r.reason == .acceptQueueFull)
        #expect(r.cause?.rawValue == "listener_not_accepting")
        #expect(r.port == 8080)
        #expect(r.process?.pid == 77 && r.process?.comm == "nginx")
        #expect(r.client?.pid == 321)
        #expect(r.evidence("accept_queue")?.intValue == 129)
        #expect(r.evidence("max_backlog")?.intValue == 128)
        #expect(r.evidence("stage")?.stringValue == "syn")
        // The backlog equals somaxconn: the hint says to raise somaxconn too.
        #expect(r.hint?.contains("somaxconn") == true)
    }

    @Test("drops counted from the listener's counter (consume_skb not armed yet): one record with the count, no client, no remote")
    func countedDrops() throws {
        let bytes = overflowRecordBytes(stage: UInt8(SYN_OVF_SYN_ACCEPTQ.rawValue), method: UInt8(SYN_OVF_M_COUNTER.rawValue),
                                        clientFound: false, counted: 4)
        guard case .listenOverflow(let o) = try EventDecoder.decode(bytes) else {
            Issue.record("expected listenOverflow")
            return
        }
        #expect(o.method == .counter && o.counted == 4)
        var e = seeded()
        let r = try single(e.ingest(.listenOverflow(o)))
        #expect(r.reason == .acceptQueueFull && r.kind == .drop && r.cause?.rawValue == "listener_not_accepting")
        #expect(r.process?.pid == 77 && r.client == nil && r.remote == nil)
        #expect(r.count == 4)
        #expect(r.overflowEvidence?.countedDrops == 4)
        #expect(r.overflowEvidence?.method?.hasPrefix("counter:") == true)
        #expect(r.hint?.hasPrefix("4 SYNs were dropped before synsight watched SYNs one by one") == true)
        // A SYN seen one by one carries no count.
        var e2 = seeded()
        let seen = try single(e2.ingest(.listenOverflow(try #require(
            { if case .listenOverflow(let x) = try EventDecoder.decode(overflowRecordBytes(stage: 1)) { return x }; return nil }()))))
        #expect(seen.overflowEvidence?.countedDrops == nil && seen.client?.pid == 321)
    }

    @Test func acceptErrorMakesTheCauseFdExhausted() throws {
        var e = seeded()
        let err = AcceptError(ts: 1, task: TaskInfo(pid: 77, comm: "nginx"), listenerInode: 555,
                              netns: 4_026_531_840, errno: 24, nofileLimit: 1024, port: 8080)
        let first = try single(e.ingest(.acceptError(err)))
        #expect(first.kind == .overflow && first.reason == .fdExhausted && first.process?.pid == 77)
        #expect(first.evidence("nofile_limit")?.intValue == 1024)
        let o = ListenOverflow(ts: 2, family: .ipv4, local: listenerEnd, remote: client1, listenerInode: 555,
                               netns: 4_026_531_840, acceptQueue: 2, maxBacklog: 1, stage: .synAcceptQueue)
        let r = try single(e.ingest(.listenOverflow(o)))
        #expect(r.cause?.rawValue == "fd_exhausted")
        #expect(r.evidence("accept_errno")?.stringValue == "EMFILE")
        #expect(r.hint?.contains("LimitNOFILE") == true)
    }

    @Test func oldAcceptErrorDoesNotExplainANewOverflow() throws {
        var e = seeded()
        _ = e.ingest(.acceptError(AcceptError(ts: 1, task: TaskInfo(pid: 77, comm: "nginx"), listenerInode: 555,
                                              netns: 4_026_531_840, errno: 24, nofileLimit: 8, port: 8080)))
        let o = ListenOverflow(ts: 1 + 60_000_000_000, family: .ipv4, local: listenerEnd, remote: client1,
                               listenerInode: 555, netns: 4_026_531_840, acceptQueue: 2, maxBacklog: 1,
                               stage: .synAcceptQueue)
        #expect(try single(e.ingest(.listenOverflow(o))).cause?.rawValue == "listener_not_accepting")
    }

    @Test(arguments: [(OverflowStage.synQueueDrop, RecordKind.drop, "syncookies_off"),
                      (.synCookie, .overflow, "syncookies_sent")])
    func synQueue(stage: OverflowStage, kind: RecordKind, cause: String) throws {
        var e = seeded()
        let o = ListenOverflow(ts: 3, family: .ipv4, local: listenerEnd, remote: client1, listenerInode: 555,
                               netns: 4_026_531_840, acceptQueue: 0, maxBacklog: 2, synQueue: 3,
                               suppressed: stage == .synCookie ? 41 : 0, stage: stage)
        let r = try single(e.ingest(.listenOverflow(o)))
        #expect(r.kind == kind && r.reason == .synQueueFull && r.cause?.rawValue == cause && r.process?.pid == 77)
        if stage == .synCookie {
            #expect(r.count == 42)
            #expect(r.evidence("folded")?.intValue == 41)
        } else {
            #expect(r.hint?.contains("tcp_syncookies") == true)
        }
    }

    @Test func ackResetIsARefusalAndItsDropIsNotCountedTwice() throws {
        var e = seeded()
        let reset = ListenOverflow(ts: 10, family: .ipv4, local: listenerEnd, remote: client1, listenerInode: 555,
                                   netns: 4_026_531_840, acceptQueue: 2, maxBacklog: 1, stage: .ackReset, method: .sendReset)
        let r = try single(e.ingest(.listenOverflow(reset)))
        #expect(r.kind == .refusal && r.reason == .acceptQueueFull)
        #expect(r.evidence("tcp_abort_on_overflow") == .bool(true))
        var drop = reset
        drop.ts = 11
        drop.stage = .ackDrop
        drop.method = .kfreeSkb
        #expect(e.ingest(.listenOverflow(drop)).isEmpty)
        // A later ACK drop of another connection is reported.
        drop.remote = Endpoint(addr: v4(127, 0, 0, 1), port: 50_001)
        #expect(try single(e.ingest(.listenOverflow(drop))).kind == .drop)
    }
}

@Suite("client-side failures")
struct ClientFailureTests {
    let server = Endpoint(addr: v4(192, 0, 2, 10), port: 443)

    @Test(arguments: [(Int32(110), "timed_out", Reason.unknown), (113, "host_unreachable", .unknown),
                      (101, "network_unreachable", .unknown), (104, "reset_after_setup", .resetByPeer)])
    func standAloneErrors(errno: Int32, cause: String, reason: Reason) throws {
        var e = engine()
        // A timeout waits one join window for where its SYNs went (TimeoutAttribution.swift); none comes here.
        let r = try single(run(&e, [connectFailure(at: 5_000, from: client1, to: server, pid: 9, comm: "curl", errno: errno)]))
        #expect(r.kind == .connectFailure)
        #expect(r.reason == reason)
        #expect(r.cause?.rawValue == cause)
        #expect(r.port == 443)
        #expect(r.process?.pid == 9)
        #expect(r.remote == server)
        #expect(!(r.hint ?? "").isEmpty)
    }

    @Test func refusedByARemoteHostAfterTheJoinWindow() throws {
        var e = engine(joinWindowNs: 1_000)
        #expect(e.ingest(connectFailure(at: 5_000, from: client1, to: server)).isEmpty)
        #expect(e.expire(now: 5_500).isEmpty)
        let r = try single(e.expire(now: 6_001))
        #expect(r.kind == .connectFailure && r.cause?.rawValue == "connection_refused" && r.process?.pid == 777)
        #expect(r.evidence("errno")?.stringValue == "ECONNREFUSED")
    }

    @Test func resetAlreadyReportedByTheListenerIsNotRepeated() throws {
        var e = engine()
        let reset = ListenOverflow(ts: 10, family: .ipv4, local: server, remote: client1, listenerInode: 1,
                                   netns: 1, acceptQueue: 2, maxBacklog: 1, stage: .ackReset, method: .sendReset)
        #expect(e.ingest(.listenOverflow(reset)).count == 1)
        #expect(e.ingest(connectFailure(at: 20, from: client1, to: server, errno: 104)).isEmpty)
    }
}
