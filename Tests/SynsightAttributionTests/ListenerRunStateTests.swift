@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// accept_queue_full explained by what the listener's threads are doing
/// (Overflow.swift, `ProcessResolver.runState`): stopped, blocked, or neither.
@Suite("overflow: a listener that cannot run")
struct ListenerRunStateTests {
    struct States: ProcessResolver {
        var state: ProcessRunState?
        func exe(pid: UInt32) -> String? { nil }
        func runState(pid: UInt32) -> ProcessRunState? { state }
    }

    static func overflow(_ state: ProcessRunState?, stage: OverflowStage = .synAcceptQueue) -> [Record] {
        var e = engine(resolver: States(state: state))
        return e.ingest(.listenOverflow(ListenOverflow(
            ts: 1_000, family: .ipv4, local: Endpoint(addr: v4(127, 0, 0, 1), port: 8080), remote: client1,
            listenerInode: 90, netns: hostNS, listenerPID: 800, acceptQueue: 5, maxBacklog: 4, stage: stage)))
    }

    static let stopped = ProcessRunState(threads: ["T": 3])
    static let blocked = ProcessRunState(threads: ["D": 2, "T": 1], waitChannels: ["nfs_wait_bit_killable"])

    /// One record of each cause (SchemaRecordsTests validates them).
    static func records() -> [Record] { overflow(stopped) + overflow(blocked) }

    @Test("every thread stopped: listener_stopped, the threads in the evidence, kill -CONT in the fix")
    func stoppedListener() throws {
        let r = try single(Self.overflow(Self.stopped))
        #expect(r.reason == .acceptQueueFull && r.cause?.rawValue == "listener_stopped")
        #expect(r.evidence("listener_state")?["threads"]?["T"]?.intValue == 3)
        let hint = try #require(r.hint)
        #expect(hint.contains("is stopped (3 threads: 3 T (stopped))") && hint.contains("kill -CONT 800"), "\(hint)")
    }

    @Test("no thread can run, some in D: listener_blocked naming where they wait")
    func blockedListener() throws {
        let r = try single(Self.overflow(Self.blocked))
        #expect(r.cause?.rawValue == "listener_blocked")
        #expect(r.evidence("listener_state")?["wchan"] == .array([.string("nfs_wait_bit_killable")]))
        #expect(r.hint?.contains("waiting in nfs_wait_bit_killable") == true, "\(r.hint ?? "")")
    }

    @Test("a thread that can run, or no state (gone): listener_not_accepting; the SYN queue is not asked")
    func runnable() throws {
        let busy = try single(Self.overflow(ProcessRunState(threads: ["R": 1, "S": 7, "D": 1])))
        #expect(busy.cause?.rawValue == "listener_not_accepting")
        #expect(busy.evidence("listener_state")?["threads"]?["S"]?.intValue == 7)
        let gone = try single(Self.overflow(nil))
        #expect(gone.cause?.rawValue == "listener_not_accepting" && gone.evidence("listener_state") == nil)
        let syn = try single(Self.overflow(Self.stopped, stage: .synQueueDrop))
        #expect(syn.reason == .synQueueFull && syn.evidence("listener_state") == nil)
    }

    @Test("/proc stat's state letter follows the last ')' (a comm may hold one)")
    func stateLetter() {
        #expect(ProcessRunState.stateLetter(stat: "42 (nginx) S 1 42 42") == "S")
        #expect(ProcessRunState.stateLetter(stat: "42 (a) T (b)) T 1 2") == "T")
        #expect(ProcessRunState.stateLetter(stat: "garbage") == nil)
    }
}
