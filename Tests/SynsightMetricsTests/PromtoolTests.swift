import Foundation
import SynsightModel
import Testing
@testable import SynsightMetrics

/// promtool from Debian's prometheus package, unpacked (never installed)
/// into .tools/prometheus by scripts/fetch-prometheus.sh.
enum PrometheusTools {
    static var root: URL {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }

    static func binary(_ name: String) throws -> String {
        let path = root.appendingPathComponent(".tools/prometheus/usr/bin/\(name)").path
        try #require(FileManager.default.isExecutableFile(atPath: path),
                     "\(path) is missing: run scripts/fetch-prometheus.sh (scripts/install-deps.sh does)")
        return path
    }

    /// `promtool check metrics` on `text`: exit status and everything it printed.
    static func checkMetrics(_ text: [UInt8]) throws -> (status: Int32, output: String) {
        // Files, not pipes: no partial writes or EINTR to handle.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-promtool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("metrics.prom"), output = dir.appendingPathComponent("out")
        try Data(text).write(to: input)
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try binary("promtool"))
        p.arguments = ["check", "metrics"]
        p.standardInput = try FileHandle(forReadingFrom: input)
        p.standardOutput = try FileHandle(forWritingTo: output)
        p.standardError = p.standardOutput
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: try Data(contentsOf: output), as: UTF8.self))
    }
}

@Suite("metrics: promtool check metrics")
struct PromtoolTests {
    @Test("every metric family, populated, passes promtool's lint with no warning")
    func lintClean() throws {
        let lo = IPAddress(v4: 127, 0, 0, 1)
        var s = MetricsExporter.Settings()
        s.maxPorts = 2
        s.maxWorkloads = 2
        let exporter = MetricsExporter(settings: s) {
            ([ListenerQueue(netns: 4026531840, local: Endpoint(addr: lo, port: 8080), acceptQueue: 3, maxBacklog: 4),
              ListenerQueue(netns: 4026531840, local: Endpoint(addr: .any6, port: 8443), acceptQueue: 0, maxBacklog: 4096)], 0)
        }
        let c = exporter.makeEventCounters(recording: true)
        for port: UInt16 in [80, 443, 8080, 9090] {
            c.observe(Record(ts: 1, kind: .refusal, reason: .noListener, cause: .noListener(.neverListened), port: port))
        }
        c.observe(Record(ts: 1, kind: .drop, reason: .firewallDrop, port: 22))
        // Every workload kind, an untrusted name, and the overflow bucket (bound of 2).
        let workloads = [
            WorkloadIdentity(unit: "nginx.service"),
            WorkloadIdentity(container: ContainerRef(runtime: .docker, id: String(repeating: "c", count: 64), name: "web")),
            WorkloadIdentity(pod: PodRef(uid: "u-1", namespace: "shop", name: "api-7d9f", container: "api")),
            WorkloadIdentity(unit: "we\"ird\\x\n.service"),
        ]
        for w in workloads {
            c.observe(Record(ts: 1, kind: .refusal, reason: .noListener, cause: .noListener(.neverListened), port: 80,
                             process: ProcessRef(pid: 1, comm: "p", workload: w)))
        }
        var summary = Record(ts: 1, kind: .summary, reason: .noListener, cause: .noListener(.listenerClosed), port: 80, count: 12)
        summary.evidence = [("summarized_kind", .string("refusal"))]
        c.observe(summary)
        c.observe(Record(ts: 1, kind: .lost, evidence: [("where", .string("ring buffer full"))], count: 2))
        c.recorderTotals(written: 7, lost: 1)
        let text = exporter.render()
        let e = Exposition(text)
        for name in ["synsight_refusals_total", "synsight_summarized_events_total", "synsight_ring_buffer_lost_events_total",
                     "synsight_recorder_lost_events_total", "synsight_records_written_total", "synsight_listener_accept_queue",
                     "synsight_listener_max_backlog", "synsight_listeners", "synsight_listeners_not_exported",
                     "synsight_listener_namespaces_unreadable", "synsight_build_info", "synsight_start_time_seconds"] {
            #expect(!e.values(name).isEmpty, "\(name) missing")
            #expect(e.help[name]?.isEmpty == false, "\(name) has no HELP")
        }
        #expect(e.sum("synsight_refusals_total", ["workload": "unit:nginx.service"]) == 1)
        #expect(e.sum("synsight_refusals_total", ["workload": "other"]) == 2)
        let r = try PrometheusTools.checkMetrics(text)
        #expect(r.status == 0, "promtool: \(r.output)")
        #expect(r.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "promtool: \(r.output)")
    }

    @Test("promtool does flag a bad exposition (the check is not vacuous)")
    func lintCatchesProblems() throws {
        let r = try PrometheusTools.checkMetrics(Array("# TYPE synsight_bad counter\nsynsight_bad 1\n".utf8))
        #expect(r.output.contains("_total") || r.output.contains("help"), "promtool printed: \(r.output)")
    }
}
