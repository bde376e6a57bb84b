import Foundation
import Synchronization
import SynsightModel
import Testing
@testable import SynsightMetrics

/// One sample line of the text exposition format, parsed independently of
/// the library that wrote it.
struct Sample: Equatable, CustomStringConvertible {
    var name: String
    var labels: [String: String]
    var value: Double

    var description: String { "\(name)\(labels) \(value)" }
}

/// Parses `name{a="b",c="d"} value` lines; HELP/TYPE comments go to `meta`.
struct Exposition {
    var samples: [Sample] = []
    var help: [String: String] = [:]
    var type: [String: String] = [:]

    init(_ bytes: [UInt8]) {
        self.init(String(decoding: bytes, as: UTF8.self))
    }

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") {
                let rest = line.dropFirst(7)
                let name = rest.prefix { $0 != " " }
                help[String(name)] = String(rest.dropFirst(name.count + 1))
                continue
            }
            if line.hasPrefix("# TYPE ") {
                let f = line.dropFirst(7).split(separator: " ")
                type[String(f[0])] = String(f[1])
                continue
            }
            var name = "", labels: [String: String] = [:]
            var i = line.startIndex
            while i < line.endIndex, line[i] != "{", line[i] != " " { i = line.index(after: i) }
            name = String(line[line.startIndex..<i])
            if i < line.endIndex, line[i] == "{" {
                i = line.index(after: i)
                while line[i] != "}" {
                    let eq = line[i...].firstIndex(of: "=")!
                    let key = String(line[i..<eq])
                    var j = line.index(eq, offsetBy: 2)
                    var value = ""
                    while line[j] != "\"" {
                        if line[j] == "\\" {
                            j = line.index(after: j)
                            value.append(line[j] == "n" ? "\n" : line[j])
                        } else {
                            value.append(line[j])
                        }
                        j = line.index(after: j)
                    }
                    labels[key] = value
                    i = line.index(after: j)
                    if line[i] == "," { i = line.index(after: i) }
                }
                i = line.index(after: i)
            }
            let value = Double(line[i...].trimmingCharacters(in: .whitespaces)) ?? .nan
            samples.append(Sample(name: name, labels: labels, value: value))
        }
    }

    func values(_ name: String, _ match: [String: String] = [:]) -> [Sample] {
        samples.filter { s in s.name == name && match.allSatisfy { s.labels[$0.key] == $0.value } }
    }

    /// The sum of every sample of `name` whose labels include `match`; nil when there is none.
    func sum(_ name: String, _ match: [String: String] = [:]) -> Double? {
        let v = values(name, match)
        return v.isEmpty ? nil : v.reduce(0) { $0 + $1.value }
    }
}

func refusal(port: UInt16?, kind: RecordKind = .refusal, reason: Reason = .noListener, cause: String? = "never_listened") -> Record {
    Record(ts: 1, kind: kind, reason: reason, cause: cause.map { RecordCause(reason: reason, rawValue: $0) }, port: port)
}

func emptySampler() -> MetricsExporter.Sampler { { ([], 0) } }

@Suite("metrics: counters from records, port label bound")
struct CountersTests {
    @Test("the first N distinct ports get their own label, later ones are 'other', a seen port keeps its label")
    func portLabels() {
        var p = PortLabels(limit: 3)
        #expect(p.slot(80) == .port(80))
        #expect(p.slot(443) == .port(443))
        #expect(p.slot(80) == .port(80))
        #expect(p.slot(8080) == .port(8080))
        #expect(p.slot(9090) == .other)
        #expect(p.slot(443) == .port(443))
        #expect(p.slot(nil) == PortLabels.Slot.none)
        #expect(p.slot(9091).label == "other")
        #expect(p.assigned == [80, 443, 8080])
    }

    @Test("refusals by kind, reason, cause and port; summaries count their events; lost events apart")
    func countersFromRecords() {
        let exporter = MetricsExporter(settings: .init(), sampler: emptySampler())
        let c = exporter.makeEventCounters(recording: false)
        for _ in 0..<3 { c.observe(refusal(port: 8080)) }
        c.observe(refusal(port: 8080, cause: "listener_exited"))
        c.observe(refusal(port: 9090, kind: .drop, reason: .acceptQueueFull, cause: "listener_not_accepting"))
        c.observe(Record(ts: 1, kind: .bindFailure, reason: .addressInUse, port: 22))
        var summary = refusal(port: 8080)
        summary.kind = .summary
        summary.count = 40
        summary.evidence = [("summarized_kind", .string("refusal"))]
        c.observe(summary)
        c.observe(Record(ts: 1, kind: .lost, evidence: [("where", .string("ring buffer full"))], count: 7))
        // The recorder's own lost records are counted from its totals, not here.
        c.observe(Record(ts: 1, kind: .lost, evidence: [("where", .string("recorder: write failed"))], count: 5))

        let e = Exposition(exporter.registry.emitToBuffer())
        let base = ["kind": "refusal", "reason": "no_listener"]
        #expect(e.sum("synsight_refusals_total", base.merging(["cause": "never_listened", "port": "8080"]) { $1 }) == 43)
        #expect(e.sum("synsight_refusals_total", base.merging(["cause": "listener_exited", "port": "8080"]) { $1 }) == 1)
        #expect(e.sum("synsight_refusals_total", ["kind": "drop", "reason": "accept_queue_full",
                                                  "cause": "listener_not_accepting", "port": "9090"]) == 1)
        #expect(e.sum("synsight_refusals_total", ["kind": "bind_failure", "reason": "address_in_use",
                                                  "cause": "none", "port": "22"]) == 1)
        #expect(e.sum("synsight_refusals_total") == 46)
        #expect(e.values("synsight_refusals_total", ["kind": "summary"]).isEmpty)
        #expect(e.sum("synsight_summarized_events_total", ["kind": "refusal", "reason": "no_listener"]) == 40)
        #expect(e.sum("synsight_ring_buffer_lost_events_total") == 7)
        // trace: every delivered record is a written line (9 observed).
        #expect(e.sum("synsight_records_written_total") == 9)
        #expect(e.values("synsight_recorder_lost_events_total").isEmpty, "trace has no recorder")
        #expect(e.type["synsight_refusals_total"] == "counter")
        #expect(e.help["synsight_refusals_total"]?.contains(#"port="other""#) == true)
    }

    @Test("record: written and recorder-lost come from the recorder's running totals")
    func recorderTotals() {
        let exporter = MetricsExporter(settings: .init(), sampler: emptySampler())
        let c = exporter.makeEventCounters(recording: true)
        c.observe(refusal(port: 1))
        c.recorderTotals(written: 10, lost: 0)
        c.recorderTotals(written: 25, lost: 3)
        c.recorderTotals(written: 25, lost: 3)
        let e = Exposition(exporter.registry.emitToBuffer())
        #expect(e.sum("synsight_records_written_total") == 25)
        #expect(e.sum("synsight_recorder_lost_events_total") == 3)
        #expect(e.sum("synsight_refusals_total") == 1)
    }

    @Test("a scan of 5000 ports makes at most --metrics-max-ports + 1 series, and no event is lost from the totals")
    func cardinalityBound() {
        var s = MetricsExporter.Settings()
        s.maxPorts = 10
        let exporter = MetricsExporter(settings: s, sampler: emptySampler())
        let c = exporter.makeEventCounters(recording: false)
        for port in 1...5000 { c.observe(refusal(port: UInt16(port))) }
        for port in 1...5 { c.observe(refusal(port: UInt16(port))) }
        let e = Exposition(exporter.registry.emitToBuffer())
        let series = e.values("synsight_refusals_total")
        #expect(series.count == 11)
        #expect(Set(series.map { $0.labels["port"]! }) == Set((1...10).map(String.init) + ["other"]))
        #expect(e.sum("synsight_refusals_total", ["port": "other"]) == 4990)
        #expect(e.sum("synsight_refusals_total", ["port": "3"]) == 2)
        #expect(e.sum("synsight_refusals_total") == 5005)
        #expect(series.allSatisfy { $0.labels["workload"] == "" }, "no workload: the empty label")
    }

    @Test("label values from the kernel side are escaped in the exposition")
    func escaping() {
        let exporter = MetricsExporter(settings: .init(), sampler: emptySampler())
        let c = exporter.makeEventCounters(recording: false)
        c.observe(refusal(port: 5, cause: "we\"ird\\cause\nline"))
        let text = String(decoding: exporter.registry.emitToBuffer(), as: UTF8.self)
        #expect(text.contains(#"cause="we\"ird\\cause\nline""#))
        #expect(Exposition(text).sum("synsight_refusals_total", ["cause": "we\"ird\\cause\nline"]) == 1)
    }
}

func withWorkload(_ r: Record, process: WorkloadIdentity? = nil, client: WorkloadIdentity? = nil) -> Record {
    var r = r
    if let process { r.process = ProcessRef(pid: 4410, comm: "nginx", workload: process) }
    if let client { r.client = ProcessRef(pid: 77, comm: "curl", workload: client) }
    return r
}

@Suite("metrics: workload label and its bound")
struct WorkloadLabelTests {
    static let podID = "0f4c3a2e-1b7d-4c8e-9a6f-2d5e8b1c7a90"
    static let containerID = String(repeating: "ab12", count: 16)

    @Test("each workload kind yields its label: unit, container (name, else short id), pod (namespace/name, else uid); none is empty")
    func eachKind() {
        let exporter = MetricsExporter(settings: .init(), sampler: emptySampler())
        let c = exporter.makeEventCounters(recording: false)
        c.observe(withWorkload(refusal(port: 80), process: WorkloadIdentity(cgroup: "/system.slice/nginx.service",
                                                                             unit: "nginx.service")))
        c.observe(withWorkload(refusal(port: 80), process: WorkloadIdentity(
            unit: "docker-\(Self.containerID).scope", container: ContainerRef(runtime: .docker, id: Self.containerID, name: "web"))))
        c.observe(withWorkload(refusal(port: 80), process: WorkloadIdentity(
            container: ContainerRef(runtime: .containerd, id: Self.containerID))))
        c.observe(withWorkload(refusal(port: 80), process: WorkloadIdentity(
            container: ContainerRef(runtime: .containerd, id: Self.containerID, name: "k8s_api"),
            pod: PodRef(uid: Self.podID, qos: .burstable, namespace: "shop", name: "api-7d9f", container: "api"))))
        c.observe(withWorkload(refusal(port: 80), process: WorkloadIdentity(pod: PodRef(uid: Self.podID))))
        c.observe(refusal(port: 80))
        // No process: the client's workload; a process without a workload is still the process's (none).
        c.observe(withWorkload(refusal(port: 81), client: WorkloadIdentity(unit: "cron.service")))
        var both = withWorkload(refusal(port: 82), client: WorkloadIdentity(unit: "cron.service"))
        both.process = ProcessRef(pid: 1, comm: "x")
        c.observe(both)

        let e = Exposition(exporter.registry.emitToBuffer())
        let byWorkload = Dictionary(grouping: e.values("synsight_refusals_total"), by: { $0.labels["workload"] ?? "<absent>" })
            .mapValues { $0.reduce(0) { $0 + $1.value } }
        #expect(byWorkload == [
            "unit:nginx.service": 1, "container:web": 1, "container:ab12ab12ab12": 1, "pod:shop/api-7d9f": 1,
            "pod:\(Self.podID)": 1, "": 2, "unit:cron.service": 1,
        ])
        #expect(e.sum("synsight_refusals_total", ["workload": "unit:cron.service", "port": "81"]) == 1)
        #expect(e.sum("synsight_refusals_total", ["workload": "", "port": "82"]) == 1)
        #expect(e.sum("synsight_refusals_total") == 8)
        #expect(e.help["synsight_refusals_total"]?.contains(#"workload="other""#) == true)
    }

    @Test("5000 distinct pods make at most --metrics-max-workloads labels plus \"other\" (and \"\" for none); overflow counted, totals exact")
    func bound() {
        var s = MetricsExporter.Settings()
        s.maxWorkloads = 10
        let exporter = MetricsExporter(settings: s, sampler: emptySampler())
        let c = exporter.makeEventCounters(recording: false)
        func pod(_ i: Int) -> WorkloadIdentity {
            WorkloadIdentity(pod: PodRef(uid: "uid-\(i)", namespace: "shop", name: "api-\(i)"))
        }
        for i in 1...5000 { c.observe(withWorkload(refusal(port: 8080), process: pod(i))) }
        for i in 1...5 { c.observe(withWorkload(refusal(port: 8080), process: pod(i))) }  // admitted ones keep their label
        c.observe(refusal(port: 8080))  // no workload: "", not counted against the bound
        var summary = withWorkload(refusal(port: 8080), process: pod(3))
        summary.kind = .summary
        summary.count = 40
        summary.evidence = [("summarized_kind", .string("refusal"))]
        c.observe(summary)

        let e = Exposition(exporter.registry.emitToBuffer())
        let series = e.values("synsight_refusals_total")
        #expect(series.count == 12)
        #expect(Set(series.map { $0.labels["workload"]! })
                == Set((1...10).map { "pod:shop/api-\($0)" } + ["other", ""]))
        #expect(e.sum("synsight_refusals_total", ["workload": "other"]) == 4990)
        #expect(e.sum("synsight_refusals_total", ["workload": "pod:shop/api-3"]) == 42)
        #expect(e.sum("synsight_refusals_total", ["workload": ""]) == 1)
        #expect(e.sum("synsight_refusals_total") == 5046)
        #expect(c.workloads.assigned.count == 10)
        // The summary's folded events carry the same bounded label.
        #expect(e.sum("synsight_summarized_events_total", ["workload": "pod:shop/api-3"]) == 40)
    }

    @Test("summarized events by workload: a storm names its pod or unit; past the bound \"other\", none \"\"; totals exact")
    func summarizedByWorkload() {
        var s = MetricsExporter.Settings()
        s.maxWorkloads = 2
        let exporter = MetricsExporter(settings: s, sampler: emptySampler())
        let c = exporter.makeEventCounters(recording: false)
        func summary(_ w: WorkloadIdentity?, count: UInt64, reason: Reason = .noListener) -> Record {
            var r = refusal(port: 8080)
            r.reason = reason
            if let w { r = withWorkload(r, process: w) }
            r.kind = .summary
            r.count = count
            r.evidence = [("summarized_kind", .string("refusal"))]
            return r
        }
        let api = WorkloadIdentity(pod: PodRef(uid: "u1", namespace: "shop", name: "api"))
        c.observe(summary(api, count: 30))
        c.observe(summary(WorkloadIdentity(unit: "nginx.service"), count: 7))
        c.observe(summary(WorkloadIdentity(container: ContainerRef(runtime: .docker, id: WorkloadLabelTests.containerID,
                                                                   name: "web")), count: 5))
        c.observe(summary(nil, count: 2))
        c.observe(summary(api, count: 3, reason: .acceptQueueFull))

        let e = Exposition(exporter.registry.emitToBuffer())
        let byWorkload = Dictionary(grouping: e.values("synsight_summarized_events_total"),
                                    by: { $0.labels["workload"] ?? "<absent>" })
            .mapValues { $0.reduce(0) { $0 + $1.value } }
        #expect(byWorkload == ["pod:shop/api": 33, "unit:nginx.service": 7, "other": 5, "": 2])
        #expect(e.sum("synsight_summarized_events_total", ["workload": "pod:shop/api", "reason": "accept_queue_full"]) == 3)
        // The refusal counter agrees: one bound for both families.
        #expect(e.sum("synsight_refusals_total", ["workload": "other"]) == 5)
        #expect(e.sum("synsight_summarized_events_total") == e.sum("synsight_refusals_total"))
        #expect(e.help["synsight_summarized_events_total"]?.contains("workload") == true)
    }

    @Test("untrusted names: quote and backslash escaped by the writer, control characters replaced, long names cut")
    func sanitising() {
        let exporter = MetricsExporter(settings: .init(), sampler: emptySampler())
        let c = exporter.makeEventCounters(recording: false)
        c.observe(withWorkload(refusal(port: 5), process: WorkloadIdentity(unit: "we\"ird\\unit\nline\u{7}.service")))
        let long = String(repeating: "n", count: 500)
        c.observe(withWorkload(refusal(port: 5), process: WorkloadIdentity(
            container: ContainerRef(runtime: .docker, id: Self.containerID, name: long))))
        let text = String(decoding: exporter.registry.emitToBuffer(), as: UTF8.self)
        #expect(text.contains(#"workload="unit:we\"ird\\unit?line?.service""#))
        let e = Exposition(text)
        #expect(e.sum("synsight_refusals_total", ["workload": "unit:we\"ird\\unit?line?.service"]) == 1)
        let cut = "container:" + String(repeating: "n", count: WorkloadLabels.maxLength - "container:".count)
        #expect(e.sum("synsight_refusals_total", ["workload": cut]) == 1)
    }
}

@Suite("metrics: listener queue gauges")
struct ListenerGaugeTests {
    static func q(_ netns: UInt32, _ addr: IPAddress, _ port: UInt16, _ queue: UInt32, _ backlog: UInt32) -> ListenerQueue {
        ListenerQueue(netns: netns, local: Endpoint(addr: addr, port: port), acceptQueue: queue, maxBacklog: backlog)
    }

    @Test("a SO_REUSEPORT group is one series (summed), series are ordered by port and bounded")
    func selection() {
        let lo = IPAddress(v4: 127, 0, 0, 1)
        let sockets = [
            Self.q(1, .any4, 8080, 2, 128), Self.q(1, .any4, 8080, 1, 128),  // reuseport group
            Self.q(1, .any6, 8080, 0, 4096), Self.q(2, lo, 22, 0, 128), Self.q(1, lo, 9000, 5, 5),
        ]
        let all = ListenerSelection.select(sockets, ports: [], limit: 100)
        #expect(all.total == 4)
        #expect(all.entries.map(\.series) == [
            ListenerSeries(netns: 2, port: 22, address: "127.0.0.1"),
            ListenerSeries(netns: 1, port: 8080, address: "0.0.0.0"),
            ListenerSeries(netns: 1, port: 8080, address: "::"),
            ListenerSeries(netns: 1, port: 9000, address: "127.0.0.1"),
        ])
        #expect(all.entries[1].acceptQueue == 3 && all.entries[1].maxBacklog == 256)
        let bounded = ListenerSelection.select(sockets, ports: [], limit: 2)
        #expect(bounded.total == 4 && bounded.entries.count == 2)
        #expect(bounded.entries.map(\.series.port) == [22, 8080])
        let filtered = ListenerSelection.select(sockets, ports: [9000], limit: 100)
        #expect(filtered.total == 1 && filtered.entries.first?.acceptQueue == 5)
    }

    @Test("the workload holding a listener is a label of its series; a SO_REUSEPORT group of one workload stays one series")
    func workloadLabel() {
        let lo = IPAddress(v4: 127, 0, 0, 1)
        let web = WorkloadIdentity(container: ContainerRef(runtime: .docker, id: WorkloadLabelTests.containerID, name: "web"))
        let api = WorkloadIdentity(pod: PodRef(uid: "u1", namespace: "shop", name: "api"))
        func w(_ q: ListenerQueue, _ id: WorkloadIdentity?) -> ListenerQueue { var q = q; q.workload = id; return q }
        let sockets = [w(Self.q(1, lo, 80, 1, 8), web), w(Self.q(1, lo, 80, 2, 8), web),
                       w(Self.q(2, .any4, 8080, 0, 128), api), Self.q(3, lo, 22, 0, 128)]
        let sel = ListenerSelection.select(sockets, ports: [], limit: 100)
        #expect(sel.total == 3)
        #expect(sel.entries.map(\.series) == [
            ListenerSeries(netns: 3, port: 22, address: "127.0.0.1", workload: ""),
            ListenerSeries(netns: 1, port: 80, address: "127.0.0.1", workload: "container:web"),
            ListenerSeries(netns: 2, port: 8080, address: "0.0.0.0", workload: "pod:shop/api"),
        ])
        #expect(sel.entries[1].acceptQueue == 3)
        let exporter = MetricsExporter(settings: .init(), sampler: { (sockets, 0) })
        let e = Exposition(exporter.render())
        #expect(e.sum("synsight_listener_accept_queue", ["workload": "container:web", "port": "80"]) == 3)
        #expect(e.sum("synsight_listener_max_backlog", ["workload": "pod:shop/api"]) == 128)
        #expect(e.sum("synsight_listener_accept_queue", ["workload": "", "port": "22"]) == 0)
    }

    @Test("gauges follow the listeners: a closed listener's series disappears; samples are reused briefly")
    func gaugesFollowSamples() {
        let calls = Atomic<Int>(0)
        let lo = IPAddress(v4: 127, 0, 0, 1)
        let sampler: MetricsExporter.Sampler = {
            let n = calls.add(1, ordering: .relaxed).newValue
            if n == 1 { return ([Self.q(7, lo, 80, 3, 4), Self.q(7, lo, 81, 0, 8), Self.q(8, lo, 82, 0, 1)], 1) }
            return ([Self.q(7, lo, 80, 4, 4)], 0)
        }
        var s = MetricsExporter.Settings()
        s.maxListeners = 2
        let exporter = MetricsExporter(settings: s, sampler: sampler)
        exporter.refreshListeners(now: 1_000_000_000)
        var e = Exposition(exporter.registry.emitToBuffer())
        #expect(e.sum("synsight_listener_accept_queue", ["netns": "7", "port": "80", "address": "127.0.0.1"]) == 3)
        #expect(e.sum("synsight_listener_max_backlog", ["netns": "7", "port": "80"]) == 4)
        #expect(e.sum("synsight_listener_max_backlog", ["netns": "7", "port": "81"]) == 8)
        #expect(e.values("synsight_listener_accept_queue", ["port": "82"]).isEmpty, "bounded to 2 series")
        #expect(e.sum("synsight_listeners") == 3)
        #expect(e.sum("synsight_listeners_not_exported") == 1)
        #expect(e.sum("synsight_listener_namespaces_unreadable") == 1)
        #expect(e.type["synsight_listener_accept_queue"] == "gauge")

        exporter.refreshListeners(now: 1_100_000_000)  // within the reuse window
        #expect(calls.load(ordering: .relaxed) == 1)
        exporter.refreshListeners(now: 2_000_000_000)
        #expect(calls.load(ordering: .relaxed) == 2)
        e = Exposition(exporter.registry.emitToBuffer())
        #expect(e.sum("synsight_listener_accept_queue", ["port": "80"]) == 4)
        #expect(e.values("synsight_listener_accept_queue", ["port": "81"]).isEmpty)
        #expect(e.values("synsight_listener_max_backlog", ["port": "81"]).isEmpty)
        #expect(e.sum("synsight_listeners_not_exported") == 0)
    }

    @Test("build info and start time")
    func buildInfo() {
        var s = MetricsExporter.Settings()
        s.version = "9.8.7"
        s.command = "record"
        let exporter = MetricsExporter(settings: s, sampler: emptySampler())
        let e = Exposition(exporter.render())
        #expect(e.sum("synsight_build_info", ["version": "9.8.7", "command": "record"]) == 1)
        let start = e.sum("synsight_start_time_seconds") ?? 0
        #expect(abs(start - Date().timeIntervalSince1970) < 60)
    }
}
