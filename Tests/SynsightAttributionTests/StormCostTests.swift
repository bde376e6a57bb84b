@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

// The structures a refusal storm goes through once per event: their cost must
// not grow with the number of events still inside a join window
// (docs/benchmarks.md: a filter-all prune made the consumer quadratic).

@Suite("ExpiringMap")
struct ExpiringMapTests {
    @Test func expiresOldestFirstAtTheirDeadline() {
        var m = ExpiringMap<Int, String>()
        m.insert("a", forKey: 1, deadline: 10)
        m.insert("b", forKey: 2, deadline: 20)
        m.insert("c", forKey: 3, deadline: 30)
        #expect(m.expire(now: 9).isEmpty)
        #expect(m.expire(now: 20) == ["a", "b"])
        #expect(m.count == 1)
        #expect(m[3] == "c")
        #expect(m[1] == nil)
        #expect(m.expire(now: .max) == ["c"])
        #expect(m.isEmpty)
    }

    @Test func removedAndReplacedKeysAreNotExpiredTwice() {
        var m = ExpiringMap<Int, String>()
        m.insert("a", forKey: 1, deadline: 10)
        m.insert("b", forKey: 2, deadline: 11)
        #expect(m.removeValue(forKey: 1) == "a")
        // Re-inserted later: the old FIFO slot is stale, the new one counts.
        m.insert("b2", forKey: 2, deadline: 50)
        #expect(m.expire(now: 40).isEmpty)
        #expect(m[2] == "b2")
        #expect(m.expire(now: 50) == ["b2"])
    }

    @Test func removeOldestSkipsStaleSlots() {
        var m = ExpiringMap<Int, Int>()
        for i in 0..<10 { m.insert(i, forKey: i, deadline: UInt64(i)) }
        for i in 0..<5 { m.removeValue(forKey: i) }
        #expect(m.removeOldest() == 5)
        #expect(m.count == 4)
    }

    @Test func memoryStaysProportionalToLiveEntries() {
        // Insert and remove a million keys: the FIFO is compacted as it goes.
        var m = ExpiringMap<Int, Int>()
        for i in 0..<1_000_000 {
            m.insert(i, forKey: i, deadline: UInt64(i) + 1_000_000_000)
            if i % 2 == 0 { m.removeValue(forKey: i) }
            if i % 4 == 3 { _ = m.removeOldest() }
        }
        #expect(m.count == 250_000)
        #expect(m.fifoSlots <= 2 * m.count + 4096)
        #expect(m.expire(now: .max).count == 250_000)
        #expect(m.fifoSlots == 0)
    }
}

@Suite("AttributionEngine: storms")
struct AttributionStormTests {
    let server = Endpoint(addr: v4(127, 0, 0, 1), port: 9)

    /// A storm of refusals whose client errors all arrive inside one
    /// firewall decision window: each is joined to its RST, nothing is left
    /// behind in the firewall's or the engine's waiting rooms, and it runs in
    /// linear time (200k events in well under the test's time limit: about
    /// 4 s alone in a debug build, up to 3 minutes of wall time in the full
    /// run on 2 CPUs beside the end-to-end tests' daemons and tracers, which
    /// is what the limit allows for; a quadratic join would take hours).
    @Test(.timeLimit(.minutes(4))) func refusalStormJoinsEveryEventInLinearTime() throws {
        var e = engine()
        var joined = 0
        let n = 200_000
        for i in 0..<n {
            let client = Endpoint(addr: v4(127, 0, 0, 1), port: UInt16(1024 + i % 60_000))
            let ts = 1_000_000 + UInt64(i) * 5_000  // 200k/s
            #expect(e.ingest(rst(at: ts, to: server, from: client)).isEmpty)
            let out = e.ingest(connectFailure(at: ts + 1_000, from: client, to: server, pid: 4321, comm: "refuse"))
            if out.count == 1, out[0].client?.pid == 4321, out[0].cause?.rawValue == "never_listened" { joined += 1 }
        }
        #expect(joined == n)
        #expect(e.pendingCount == 0)
        #expect(e.firewall.earlyErrors.isEmpty)
        #expect(e.earlyClients.isEmpty)
        #expect(e.finish().isEmpty)
    }

    /// Refused connects to a server that is not on this host: each waits one
    /// join window and then stands alone as the client's view; the waiting
    /// room is bounded.
    @Test(.timeLimit(.minutes(4))) func remoteRefusalStormIsBoundedAndLinear() throws {
        var e = engine(joinWindowNs: 200_000_000)
        let remote = Endpoint(addr: v4(10, 1, 2, 3), port: 9)
        var records = 0, mostWaiting = 0
        let n = 100_000
        for i in 0..<n {
            let client = Endpoint(addr: v4(10, 0, 0, 1), port: UInt16(1024 + i % 60_000))
            let ts = 1_000_000 + UInt64(i) * 1_000  // 1M/s: 200k inside one window
            records += e.ingest(connectFailure(at: ts, from: client, to: remote, errno: 111)).count
            mostWaiting = max(mostWaiting, e.earlyClients.count)
        }
        // One expectation, not one per event: 100,000 of them cost more than
        // the engine under a loaded full run.
        #expect(mostWaiting <= AttributionEngine.maxEarlyClients)
        records += e.finish().count
        #expect(records == n)
    }
}
