@testable import SynsightBase
@testable import SynsightModel
import Testing
import SynsightTestSupport



@Suite("TraceSummary")
struct TraceSummaryTests {
    @Test func emptySummary() {
        let s = TraceSummary()
        #expect(s.total == 0)
        #expect(s.lost == 0)
        #expect(s.undecodable == 0)
        #expect(s.counts.isEmpty)
        #expect(s.render(durationSeconds: 1) == "synsight: 0 events in 1.0s, 0 events lost")
    }

    @Test func recordsNotWrittenAreNamedApartFromRingBufferLosses() {
        var s = TraceSummary()
        for _ in 0..<10 { s.add(refusal(port: 8080, cause: "never_listened")) }
        s.addUnwritten(10, target: "standard output")
        let first = s.render(durationSeconds: 2).split(separator: "\n").first.map(String.init)
        // Never "0 events lost" alone when output was lost.
        #expect(first == "synsight: 10 events in 2.0s, 0 events lost in the ring buffer, 10 records not written to standard output")
        s.add(Record(ts: 0, kind: .lost, count: 3))
        s.addUnwritten(1, target: "standard output")
        #expect(s.render(durationSeconds: 2).hasPrefix(
            "synsight: 10 events in 2.0s, 3 events lost in the ring buffer, 11 records not written to standard output\n"))
    }

    @Test func countsPerPortReasonCause() {
        var s = TraceSummary()
        s.add(refusal(port: 8080, cause: "never_listened"))
        s.add(refusal(port: 8080, cause: "never_listened"))
        s.add(refusal(port: 8080, cause: "listener_exited"))
        s.add(refusal(port: 9090, cause: "bound_to_other_address"))
        s.add(refusal(port: 22, cause: nil, reason: .firewallReject))
        s.add(Record(ts: 0, kind: .lost, count: 5))
        s.add(Record(ts: 0, kind: .lost, count: 7))
        s.add(Record(ts: 0, kind: .summary, reason: .noListener, cause: "never_listened", port: 443, count: 10))
        s.addUndecodable()
        s.addUndecodable(2)

        #expect(s.total == 15)
        #expect(s.lost == 12)
        #expect(s.undecodable == 3)
        #expect(s.counts.count == 5)
        #expect(count(s, 8080, "no_listener", "never_listened") == 2)
        #expect(count(s, 8080, "no_listener", "listener_exited") == 1)
        #expect(count(s, 9090, "no_listener", "bound_to_other_address") == 1)
        #expect(count(s, 22, "firewall_reject", "-") == 1)
        #expect(count(s, 443, "no_listener", "never_listened") == 10)

        let text = s.render(durationSeconds: 12.34)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.count == 7)
        #expect(lines.first == "synsight: 15 events in 12.3s, 12 events lost, 3 undecodable records")
        let rows = lines.dropFirst(2).map { $0.split(separator: " ").map(String.init) }
        #expect(lines[1].split(separator: " ") == ["PORT", "REASON", "CAUSE", "COUNT"])
        // Sorted by port, then reason, then cause.
        #expect(rows == [
            ["22", "firewall_reject", "-", "1"],
            ["443", "no_listener", "never_listened", "10"],
            ["8080", "no_listener", "listener_exited", "1"],
            ["8080", "no_listener", "never_listened", "2"],
            ["9090", "no_listener", "bound_to_other_address", "1"],
        ])
    }

    @Test func singularWording() {
        var s = TraceSummary()
        s.add(refusal(port: 1, cause: "never_listened"))
        s.add(Record(ts: 0, kind: .lost, count: 1))
        s.addUndecodable()
        #expect(s.render(durationSeconds: 0.04).hasPrefix("synsight: 1 event in 0.0s, 1 event lost, 1 undecodable record\n"))
    }

    @Test func lostWithoutCountAddsNothing() {
        var s = TraceSummary()
        s.add(Record(ts: 0, kind: .lost))
        #expect(s.lost == 0)
        #expect(s.total == 0)
    }
}
