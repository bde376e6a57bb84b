@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightReport
import Testing
import SynsightTestSupport

@Suite("report: node and workload model")
struct ReportWorkloadTests {
    func event(_ line: String) throws -> ReportEvent {
        var s = line
        return try s.withUTF8 { try ReportEvent.decode(line: $0).get() }
    }

    @Test func identityFieldsAreReadAndWrongTypesIgnored() throws {
        let e = try event(#"{"v":1,"ts":"2026-11-22T03:00:00Z","kind":"refusal","port":80,"process":{"pid":1,"comm":"a","unit":"a.service","container":{"id":"abc","name":"web","extra":[1]},"pod":{"namespace":"ns","name":"p","uid":"u","container":"c"}},"client":{"pid":2,"unit":7,"container":"not an object","pod":null},"node":{"hostname":"h","machine_id":"m","boot_id":"b","new":{}}}"#)
        #expect(e.process?.workload?.unit == "a.service")
        #expect(e.process?.workload?.container?.name == "web")
        #expect(e.process?.workload?.podName == "ns/p")
        #expect(e.process?.workload?.label == "pod ns/p container c")
        #expect(e.client?.workload == nil)  // every identity field of the wrong type: no workload, line still read
        #expect(e.node == ReportNode(hostname: "h", machineID: "m"))
        let noNode = try event(#"{"v":1,"ts":"2026-11-22T03:00:00Z","kind":"refusal","node":"h"}"#)
        #expect(noNode.node == nil)
    }

    @Test func workloadMatching() throws {
        let e = try event(#"{"v":1,"ts":"2026-11-22T03:00:00Z","kind":"refusal","process":{"pid":1,"unit":"docker-abc.scope","container":{"id":"abcdef","name":"web"},"pod":{"namespace":"ns","name":"p","uid":"u"}}}"#)
        let w = try #require(e.process?.workload)
        for yes in ["docker-abc.scope", "web", "abc", "abcdef", "ns/p"] { #expect(w.matches(yes), "\(yes)") }
        for no in ["p", "ns", "bcd", "we", "u"] { #expect(!w.matches(no), "\(no)") }
    }

    /// The per-node totals hold at most maxNodes nodes; the rest is counted, not kept.
    @Test func nodeTotalsAreBounded() throws {
        var b = ReportBuilder()
        let n = ReportBuilder.maxNodes + 100
        for i in 0..<n {
            b.add(line: #"{"v":1,"ts":"2026-11-22T03:00:00Z","kind":"refusal","port":80,"node":{"hostname":"n\#(i)"}}"#)
        }
        #expect(b.totals.nodeEvents.counts.count == ReportBuilder.maxNodes)
        #expect(b.totals.nodeEvents.others == 100)
        #expect(b.totals.events == UInt64(n))
        let g = try #require(b.groups.values.first)
        #expect(g.nodes.counts.count == ReportBuilder.maxTopEntries)
        #expect(b.report().text().contains("other nodes: 100 events in 100 records"))
    }
}
