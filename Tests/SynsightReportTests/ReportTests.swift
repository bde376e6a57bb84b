import Glibc
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightReport
import Testing
import SynsightTestSupport

/// 2026-11-22T03:00:00Z in nanoseconds since the epoch.
let reportBase: Int64 = RFC3339.parse("2026-11-22T03:00:00Z")!

/// One JSON Lines record, built as JSON (not through `Record`) so tests can
/// add the summary fields and arbitrary extras.
func reportLine(at seconds: Int64, kind: String = "refusal", reason: String? = "no_listener", cause: String? = nil,
                port: Int? = 8080, pid: Int64? = nil, comm: String = "svc", client: (Int64, String)? = nil,
                count: Int64? = nil, first: Int64? = nil, last: Int64? = nil,
                evidence: [(String, JSONValue)] = [], hint: String? = nil,
                extra: [(String, JSONValue)] = []) -> String {
    func ts(_ s: Int64) -> JSONValue { .string(RFC3339.format(nanosecondsSinceEpoch: reportBase + s * 1_000_000_000)) }
    var f: [(String, JSONValue)] = [("v", .int(1)), ("ts", ts(seconds)), ("kind", .string(kind))]
    if let reason { f.append(("reason", .string(reason))) }
    if let cause { f.append(("cause", .string(cause))) }
    if let port { f.append(("port", .int(Int64(port)))) }
    if let pid { f.append(("process", .object([("pid", .int(pid)), ("comm", .string(comm))]))) }
    if let client { f.append(("client", .object([("pid", .int(client.0)), ("comm", .string(client.1))]))) }
    if let count { f.append(("count", .int(count))) }
    if let first { f.append(("first_ts", ts(first))) }
    if let last { f.append(("last_ts", ts(last))) }
    f.append(("evidence", .object(evidence)))
    if let hint { f.append(("hint", .string(hint))) }
    f.append(contentsOf: extra)
    var out: [UInt8] = []
    JSONLines.append(.object(f), to: &out)
    return String(decoding: out, as: UTF8.self)
}

func lostLine(at seconds: Int64, count: Int64) -> String {
    reportLine(at: seconds, kind: "lost", reason: nil, port: nil, count: count)
}

func session(_ lines: [String], name: String = "test.jsonl", options: ReportOptions = ReportOptions()) -> ReportSession {
    var s = ReportSession(options: options)
    s.read(text: lines.map { $0 + "\n" }.joined(), name: name)
    return s
}

func group(_ r: Report, port: Int, reason: String, cause: String = "") -> ReportGroup? {
    r.ports.first { $0.port == port }?.groups.first { $0.key.reason == reason && $0.key.cause == cause }
}

@Suite("Report: RFC 3339 and JSON reader")
struct ReportParsingTests {
    @Test func rfc3339RoundTrips() {
        for ns: Int64 in [0, 1, 1_763_780_400_123_456_789, reportBase, -1_000_000_000] {
            #expect(RFC3339.parse(RFC3339.format(nanosecondsSinceEpoch: ns)) == ns)
        }
        #expect(RFC3339.parse("2026-11-22T03:00:00Z") == reportBase)
        #expect(RFC3339.parse("2026-11-22T04:00:00+01:00") == reportBase)
        #expect(RFC3339.parse("2026-11-21T22:30:00-04:30") == reportBase)
        #expect(RFC3339.parse("2026-11-22t03:00:00.5z") == reportBase + 500_000_000)
        #expect(RFC3339.parse("2024-02-29T00:00:00Z") != nil)
    }

    @Test(arguments: ["", "yesterday", "2026-11-22", "2026-11-22T03:00:00", "2026-13-01T00:00:00Z",
                      "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-11-22T24:00:00Z",
                      "2026-11-22T03:00:00.Z", "2026-11-22T03:00:00Zjunk", "2026-11-22T03:00:00+0100"])
    func rfc3339RejectsBadInput(_ s: String) {
        #expect(RFC3339.parse(s) == nil)
    }

    @Test func readerParsesValuesAndEscapes() {
        let v = JSONReader.parse(#" {"a":[1,-2,3.7,true,false,null],"s":"x\"\\\/\n\u00e9\ud83d\ude00","o":{}} "#)
        #expect(v?["a"] == .array([.int(1), .int(-2), .number("3.7"), .bool(true), .bool(false), .null]))
        #expect(v?["s"] == .string("x\"\\/\né😀"))
        #expect(v?["o"] == .object([]))
    }

    @Test(arguments: ["", "{", "{\"a\":}", "[1,]", "{\"a\":1,}", "\"raw\ncontrol\"", "01", "1.", "-", "1e", "1e+",
                      "{\"a\":1} x", "tru", "\"\\x\"", String(repeating: "[", count: 100) + String(repeating: "]", count: 100)])
    func readerRejectsMalformed(_ s: String) {
        #expect(JSONReader.parse(s) == nil)
    }

    /// Integers and other numbers stay distinguishable: a fraction, an
    /// exponent or an integer outside Int64 is kept as its text, never
    /// truncated to some other integer (1.5 and 1e30 were read as 1).
    @Test func numbersOutsideInt64AreKeptAsText() {
        #expect(JSONReader.parse("9223372036854775807") == .int(.max))
        #expect(JSONReader.parse("-9223372036854775808") == .int(.min))
        for text in ["9223372036854775808", "99999999999999999999", "1.5", "1e30", "-0.25", "1E+2", "0.0"] {
            #expect(JSONReader.parse(text) == .number(text))
            var out: [UInt8] = []
            JSONLines.append(.number(text), to: &out)
            #expect(String(decoding: out, as: UTF8.self) == text)
        }
    }

    @Test func loneSurrogateBecomesReplacement() {
        #expect(JSONReader.parse(#""\ud800x""#) == .string("\u{FFFD}x"))
    }
}

@Suite("Report: building")
struct ReportBuilderTests {
    @Test func countsSummaryCountsAndLostTotals() {
        let s = session([
            reportLine(at: 10, cause: "listener_exited", pid: 100, comm: "nginx", client: (7, "curl")),
            reportLine(at: 20, cause: "listener_exited", pid: 100, comm: "nginx", client: (7, "curl")),
            reportLine(at: 90, kind: "summary", cause: "listener_exited", pid: 100, comm: "nginx",
                       count: 500, first: 30, last: 90, hint: "restart nginx"),
            lostLine(at: 95, count: 12),
            lostLine(at: 96, count: 3),
            reportLine(at: 40, kind: "overflow", reason: "accept_queue_full", port: 9090, pid: 200, comm: "java",
                       evidence: [("backlog", .int(129)), ("max_backlog", .int(128))]),
        ])
        #expect(s.exitStatus == 0)
        #expect(s.messages.isEmpty)
        let r = s.builder.report()
        #expect(r.totals.records == 6)
        #expect(r.totals.events == 503)
        #expect(r.totals.lost == 15)
        #expect(r.totals.lostRecords == 2)
        #expect(r.totals.files == 1)
        // Ports sorted by events, most first.
        #expect(r.ports.map(\.port) == [8080, 9090])
        let g = group(r, port: 8080, reason: "no_listener", cause: "listener_exited")
        #expect(g?.events == 502)
        #expect(g?.records == 3)
        #expect(g?.first == reportBase + 10_000_000_000)
        #expect(g?.last == reportBase + 90_000_000_000)
        #expect(g?.processes.counts[ReportProcess(pid: 100, comm: "nginx")] == 502)
        #expect(g?.clients.counts[ReportProcess(pid: 7, comm: "curl")] == 2)
        #expect(g?.latest?.kind == "summary")
        #expect(g?.latest?.hint == "restart nginx")
        let o = group(r, port: 9090, reason: "accept_queue_full")
        #expect(o?.events == 1)
        #expect(o?.latest?.raw["evidence"]?["backlog"] == .int(129))
    }

    @Test func groupsPerPortAndReasonAndCause() {
        let s = session([
            reportLine(at: 1, cause: "never_listened", port: 80),
            reportLine(at: 2, cause: "bound_to_other_address", port: 80),
            reportLine(at: 3, cause: "bound_to_other_address", port: 80),
            reportLine(at: 4, reason: "firewall_reject", port: 80),
            reportLine(at: 5, reason: "firewall_drop", port: 443),
            reportLine(at: 6, kind: "bind_failure", reason: "address_in_use", port: 443, pid: 9, comm: "dup"),
        ])
        let r = s.builder.report()
        #expect(r.ports.count == 2)
        let p80 = r.ports.first { $0.port == 80 }!
        #expect(p80.events == 4)
        #expect(p80.groups.first?.key.cause == "bound_to_other_address")  // biggest group first
        #expect(p80.groups.count == 3)
        #expect(group(r, port: 443, reason: "address_in_use")?.processes.counts.count == 1)
    }

    @Test func latestIsByTimestampNotLineOrder() {
        let s = session([
            reportLine(at: 50, hint: "newest"),
            reportLine(at: 10, hint: "older"),
        ])
        #expect(group(s.builder.report(), port: 8080, reason: "no_listener")?.latest?.hint == "newest")
    }

    @Test func timeFilters() {
        let lines = (0..<10).map { reportLine(at: Int64($0) * 60) } + [lostLine(at: 30, count: 4), lostLine(at: 500, count: 1)]
        let opts = ReportOptions(since: reportBase + 120_000_000_000, until: reportBase + 300_000_000_000)
        let r = session(lines, options: opts).builder.report()
        #expect(r.totals.records == 12)
        #expect(r.totals.events == 4)  // minutes 2, 3, 4, 5
        #expect(r.totals.lost == 0)
        #expect(r.totals.first == reportBase + 120_000_000_000)
        #expect(r.totals.last == reportBase + 300_000_000_000)
    }

    @Test func summaryOverlappingTheWindowIsKept() {
        let opts = ReportOptions(since: reportBase + 100_000_000_000)
        let r = session([reportLine(at: 200, kind: "summary", count: 9, first: 50, last: 150),
                         reportLine(at: 60, kind: "summary", count: 5, first: 10, last: 60)],
                        options: opts).builder.report()
        #expect(r.totals.events == 9)
    }

    @Test func portFilterKeepsLostRecords() {
        let r = session([
            reportLine(at: 1, port: 80), reportLine(at: 2, port: 81), reportLine(at: 3, port: 82),
            reportLine(at: 4, reason: nil, port: nil), lostLine(at: 5, count: 2),
        ], options: ReportOptions(ports: [80, 82])).builder.report()
        #expect(r.ports.map(\.port).sorted() == [80, 82])
        #expect(r.totals.events == 2)
        #expect(r.totals.lost == 2)
    }

    @Test("--port matches the port the client connected to before DNAT (a published port) too")
    func portFilterMatchesTheOriginalDestination() {
        func published(_ p: Int) -> [(String, JSONValue)] {
            [("original_destination", .object([("addr", .string("198.18.9.1")), ("port", .int(Int64(p)))]))]
        }
        let r = session([
            reportLine(at: 1, port: 80, extra: published(8080)), reportLine(at: 2, port: 80, extra: published(9090)),
            reportLine(at: 3, port: 8080), reportLine(at: 4, port: 81),
        ], options: ReportOptions(ports: [8080])).builder.report()
        #expect(r.ports.map(\.port).sorted() == [80, 8080])
        #expect(r.totals.events == 2)
    }

    @Test("--port matches the published port docker-proxy forwarded to the refusing container's port")
    func portFilterMatchesTheProxiedPublishedPort() {
        func proxied(_ published: String) -> [(String, JSONValue)] {
            [("proxy", .object([("tool", .string("docker-proxy")), ("published", .string(published)),
                                ("target", .string("172.17.0.2:80"))]))]
        }
        let r = session([
            reportLine(at: 1, port: 80, evidence: proxied("127.0.0.1:8080")), reportLine(at: 2, port: 80, evidence: proxied("[::]:9090")),
            reportLine(at: 3, port: 80),
        ], options: ReportOptions(ports: [8080])).builder.report()
        #expect(r.totals.events == 1)
        let v6 = session([reportLine(at: 2, port: 80, evidence: proxied("[::]:9090"))], options: ReportOptions(ports: [9090]))
        #expect(v6.builder.report().totals.events == 1)
    }

    @Test func recordsWithoutPortOrReasonAreGrouped() {
        let r = session([reportLine(at: 1, kind: "connect_failure", reason: nil, port: nil)]).builder.report()
        #expect(r.ports.first?.port == -1)
        #expect(r.ports.first?.groups.first?.key.reason == "connect_failure")
    }

    @Test func timelineCountsPerMinuteByReason() {
        let r = session([
            reportLine(at: 0), reportLine(at: 59), reportLine(at: 61),
            reportLine(at: 61, reason: "firewall_drop"),
            reportLine(at: 125, kind: "summary", count: 40),
        ]).builder.report()
        #expect(r.timeline.bucketSeconds == 60)
        let m0 = reportBase / 1_000_000_000
        #expect(r.timeline.buckets[m0] == ["no_listener": 2])
        #expect(r.timeline.buckets[m0 + 60] == ["no_listener": 1, "firewall_drop": 1])
        #expect(r.timeline.buckets[m0 + 120] == ["no_listener": 40])
    }

    @Test func timelineCoarsensInsteadOfGrowing() {
        var b = ReportBuilder()
        for minute in 0..<(ReportBuilder.maxTimelineBuckets * 3) {
            b.add(line: reportLine(at: Int64(minute) * 60))
        }
        let r = b.report()
        #expect(r.timeline.buckets.count <= ReportBuilder.maxTimelineBuckets)
        #expect(r.timeline.bucketSeconds > 60)
        #expect(r.timeline.buckets.values.reduce(0) { $0 + $1.values.reduce(0, +) } == UInt64(ReportBuilder.maxTimelineBuckets * 3))
    }

    @Test func processesAndClientsAreBounded() {
        var b = ReportBuilder()
        for pid in 0..<1000 { b.add(line: reportLine(at: 1, pid: Int64(pid), client: (Int64(pid), "c"))) }
        let g = group(b.report(), port: 8080, reason: "no_listener")!
        #expect(g.processes.counts.count == ReportBuilder.maxTopEntries)
        #expect(g.processes.others == UInt64(1000 - ReportBuilder.maxTopEntries))
        #expect(g.clients.counts.count == ReportBuilder.maxTopEntries)
        #expect(g.events == 1000)
    }

    @Test func extraFieldsAreAccepted() {
        let s = session([reportLine(at: 1, extra: [("container", .string("abc")), ("new_field", .array([.int(1)]))])])
        #expect(s.exitStatus == 0)
        #expect(s.builder.totals.events == 1)
    }
}

@Suite("Report: bad input")
struct ReportBadInputTests {
    @Test func badLinesAreSkippedWithFileAndLine() {
        let good = reportLine(at: 1)
        var s = ReportSession()
        s.read(text: [
            good,
            "garbage",
            "[1,2,3]",
            #"{"v":2,"ts":"2026-11-22T03:00:00Z","kind":"refusal"}"#,
            #"{"ts":"2026-11-22T03:00:00Z","kind":"refusal"}"#,
            #"{"v":1,"ts":"yesterday","kind":"refusal"}"#,
            #"{"v":1,"ts":"2026-11-22T03:00:00Z"}"#,
            #"{"v":1,"ts":"2026-11-22T03:00:00Z","kind":"summary","reason":"no_listener","evidence":{}}"#,
            #"{"v":1,"ts":"2026-11-22T03:00:00Z","kind":"refusal","port":70000}"#,
            "",
            good,
        ].joined(separator: "\n") + "\n" + String(good.prefix(40)), name: "/var/log/x.jsonl")
        #expect(s.builder.totals.events == 2)
        #expect(s.skippedLines == 9)
        #expect(s.exitStatus == 2)
        let m = s.messages
        #expect(m.contains { $0.hasPrefix("/var/log/x.jsonl:2: ") && $0.contains("invalid JSON") })
        #expect(m.contains { $0.hasPrefix("/var/log/x.jsonl:3: ") && $0.contains("not a JSON object") })
        #expect(m.contains { $0.hasPrefix("/var/log/x.jsonl:4: ") && $0.contains("schema version 2") })
        #expect(m.contains { $0.hasPrefix("/var/log/x.jsonl:5: ") && $0.contains("'v'") })
        #expect(m.contains { $0.hasPrefix("/var/log/x.jsonl:6: ") && $0.contains("'ts'") })
        #expect(m.contains { $0.hasPrefix("/var/log/x.jsonl:7: ") && $0.contains("'kind'") })
        #expect(m.contains { $0.hasPrefix("/var/log/x.jsonl:8: ") && $0.contains("'count'") })
        #expect(m.contains { $0.hasPrefix("/var/log/x.jsonl:9: ") && $0.contains("'port'") })
        #expect(m.contains { $0.hasPrefix("/var/log/x.jsonl:12: ") && $0.contains("truncated") })
        #expect(s.diagnostics.last?.contains("9 lines were skipped") == true)
    }

    @Test func emptyFileIsReportedButNotAnError() {
        var s = ReportSession()
        s.read(text: "", name: "empty.jsonl")
        #expect(s.messages == ["empty.jsonl: empty file (no records)"])
        #expect(s.exitStatus == 0)
        #expect(s.builder.report().text().contains("No refusals recorded."))
    }

    @Test func perLineMessagesAreCapped() {
        var s = ReportSession()
        s.read(text: String(repeating: "nope\n", count: 100), name: "f")
        #expect(s.messages.count == ReportSession.maxMessages)
        #expect(s.suppressedMessages == 100 - ReportSession.maxMessages)
        #expect(s.diagnostics.contains { $0.contains("\(100 - ReportSession.maxMessages) more") })
        #expect(s.skippedLines == 100)
    }

    @Test func crlfLinesAreAccepted() {
        var s = ReportSession()
        s.read(text: reportLine(at: 1) + "\r\n" + reportLine(at: 2) + "\r\n", name: "f")
        #expect(s.exitStatus == 0)
        #expect(s.builder.totals.events == 2)
    }

    @Test func unreadableInputExitsOne() {
        var s = ReportSession()
        s.addInput("/nonexistent/synsight-\(getpid()).jsonl")
        #expect(s.exitStatus == 1)
        #expect(s.messages.first?.contains("cannot read") == true)
    }
}

@Suite("Report: formats")
struct ReportFormatTests {
    static let fixture: [String] = [
        reportLine(at: 10, cause: "listener_exited", pid: 1234, comm: "nginx", client: (55, "curl"),
                   evidence: [("exited_at", .string("2026-11-22T02:59:00Z")), ("signal", .int(9))],
                   hint: "the listener was killed by signal 9; restart it"),
        reportLine(at: 70, kind: "summary", cause: "listener_exited", pid: 1234, comm: "nginx",
                   count: 41, first: 20, last: 70, hint: "the listener was killed by signal 9; restart it"),
        reportLine(at: 80, kind: "overflow", reason: "accept_queue_full", port: 9090, pid: 77, comm: "java",
                   evidence: [("backlog", .int(5)), ("max_backlog", .int(4)), ("somaxconn", .int(4096))],
                   hint: "raise the backlog"),
        lostLine(at: 90, count: 3),
    ]

    @Test func textGolden() {
        let text = session(Self.fixture).builder.report().text()
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == "synsight report: 43 events in 4 records from 1 file, 2026-11-22T03:00:10.000000000Z .. 2026-11-22T03:01:30.000000000Z")
        #expect(lines.contains("WARNING: 3 events LOST in the ring buffer (1 lost record): counts below are lower bounds"))
        #expect(lines.contains("PORT 8080: 42 events, first 2026-11-22T03:00:10.000000000Z, last 2026-11-22T03:01:10.000000000Z"))
        #expect(lines.contains("  no_listener/listener_exited: 42 events, first 2026-11-22T03:00:10.000000000Z, last 2026-11-22T03:01:10.000000000Z"))
        #expect(lines.contains("    processes: nginx[1234] ×42"))
        #expect(lines.contains("    clients:   curl[55] ×1"))
        #expect(lines.contains("    hint:      the listener was killed by signal 9; restart it"))
        #expect(lines.contains("PORT 9090: 1 event, first 2026-11-22T03:01:20.000000000Z, last 2026-11-22T03:01:20.000000000Z"))
        #expect(lines.contains("    evidence:  backlog=5 max_backlog=4 somaxconn=4096"))
        #expect(lines.contains { $0.contains("somaxconn") && $0.hasPrefix("      - Raise the listen backlog") })
        // Port 8080 (more events) comes before 9090.
        #expect(text.range(of: "PORT 8080")!.lowerBound < text.range(of: "PORT 9090")!.lowerBound)
        #expect(lines.contains("TIMELINE (events per minute, UTC)"))
        #expect(lines.contains { $0.hasPrefix("  TIME") && $0.contains("no_listener") && $0.contains("accept_queue_full") })
        #expect(lines.contains { $0.hasPrefix("  2026-11-22T03:00:00Z") && $0.split(separator: " ").dropFirst().map(String.init) == ["1", "0"] })
        #expect(lines.contains { $0.hasPrefix("  2026-11-22T03:01:00Z") && $0.split(separator: " ").dropFirst().map(String.init) == ["41", "1"] })
        #expect(lines.contains("TOTALS: 4 records read from 1 file, 43 events, 3 lost"))
        #expect(!lines.contains { $0.hasSuffix(" ") })
    }

    @Test func textEscapesUntrustedStrings() {
        let text = session([reportLine(at: 1, cause: "c\u{1b}]0;x\u{07}", pid: 1, comm: "e\u{1b}[31mvil",
                                       evidence: [("rule", .string("drop\r\nfake line"))], hint: "h\u{9b}2J",
                                       extra: [])]).builder.report().text()
        #expect(!text.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 || $0.value == 0x9b || $0.value == 0x0d })
        #expect(text.contains(#"e\x1b[31mvil[1]"#))
        #expect(text.contains(#"rule=drop\x0d\x0afake line"#))
    }

    @Test func markdownEscapesUntrustedStrings() {
        let md = session([reportLine(at: 1, port: 80, pid: 1, comm: "*bold*|<script>",
                                     evidence: [("rule", .string("[x](http://evil)"))], hint: "use `rm -rf` _now_\u{1b}[2J")])
            .builder.report().markdown()
        #expect(md.contains(#"\*bold\*\|\<script\>[1]"#))
        #expect(md.contains(#"\[x\]\(http\://evil\)"#))
        #expect(md.contains(#"use \`rm \-rf\` \_now\_\\x1b\[2J"#))
        #expect(!md.contains("<script>"))
        #expect(!md.unicodeScalars.contains { $0.value == 0x1b })
        #expect(md.hasPrefix("# synsight report\n"))
        #expect(md.contains("## Port 80: 1 event"))
        #expect(md.contains("| time | no\\_listener |"))
    }

    @Test func jsonParsesAndHasTotals() throws {
        let out = session(Self.fixture).builder.report().json()
        #expect(out.hasSuffix("}\n"))
        #expect(out.filter { $0 == "\n" }.count == 1)
        let v = try #require(JSONReader.parse(out))
        #expect(v["totals"]?["events"] == .int(43))
        #expect(v["totals"]?["lost"] == .int(3))
        #expect(v["totals"]?["records"] == .int(4))
        #expect(v["totals"]?["files"] == .int(1))
        guard case .array(let ports)? = v["ports"] else { Issue.record("no ports"); return }
        #expect(ports.count == 2)
        #expect(ports.first?["port"] == .int(8080))
        guard case .array(let reasons)? = ports.first?["reasons"] else { Issue.record("no reasons"); return }
        #expect(reasons.first?["events"] == .int(42))
        #expect(reasons.first?["cause"] == .string("listener_exited"))
        #expect(reasons.first?["latest"]?["kind"] == .string("summary"))
        guard case .array(let steps)? = reasons.first?["remediation"] else { Issue.record("no remediation"); return }
        #expect(!steps.isEmpty)
        // A group's port, and its one process, fill the catalogue's `<port>` and `<pid>`.
        var g = ReportGroup(key: ReportGroupKey(port: 9090, reason: "fd_exhausted", cause: ""), top: 4)
        g.processes.add(ReportProcess(pid: 77, comm: "java"), 3)
        #expect(g.steps.contains { $0.contains("/proc/77/fd") }, "\(g.steps)")
        g.processes.add(ReportProcess(pid: 78, comm: "java"), 1)
        #expect(g.steps.contains { $0.contains("/proc/<pid>/fd") }, "two processes: \(g.steps)")
        let unknown = ReportGroup(key: ReportGroupKey(port: 8443, reason: "unknown", cause: "timed_out"), top: 4)
        #expect(unknown.steps.joined().contains("--port 8443") && !unknown.steps.joined().contains("<port>"), "\(unknown.steps)")
        #expect(v["timeline"]?["bucket_seconds"] == .int(60))
    }

    @Test func everyReasonHasRemediation() {
        for r in Reason.allCases {
            #expect(!Remediation.steps(reason: r.rawValue, cause: "").isEmpty)
        }
        #expect(Remediation.steps(reason: "no_listener", cause: "bound_to_other_address").first?.contains("bind address") == true)
        #expect(Remediation.steps(reason: "lsm_denied", cause: "").contains { $0.contains("semanage port") })
        #expect(Remediation.steps(reason: "fd_exhausted", cause: "").contains { $0.contains("LimitNOFILE") })
    }
}

@Suite("Report: streaming")
struct ReportStreamingTests {
    /// 200k lines in a temp file: read through the fixed-size buffer, state bounded.
    @Test func largeFileHasBoundedState() throws {
        let path = "/tmp/synsight-report-stream-\(getpid()).jsonl"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        let reasons = ["no_listener", "accept_queue_full", "firewall_drop", "lsm_denied"]
        var chunk: [UInt8] = []
        let total = 200_000
        for i in 0..<total {
            let line = reportLine(at: Int64(i), reason: reasons[i % 4], port: 8000 + i % 10, pid: Int64(i % 5000),
                                  client: (Int64(i), "client"))
            chunk.append(contentsOf: line.utf8)
            chunk.append(0x0A)
            if chunk.count > 1 << 20 || i == total - 1 {
                let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                try #require(n == chunk.count)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        close(fd)
        var s = ReportSession()
        s.readFile(path)
        #expect(s.exitStatus == 0)
        let b = s.builder
        #expect(b.totals.records == UInt64(total))
        #expect(b.totals.events == UInt64(total))
        #expect(b.groups.count == 20)  // 10 ports x 2 reasons each (i%4 and i%10 correlate)
        #expect(b.retainedExamples == b.groups.count)
        #expect(b.retainedExamples <= ReportBuilder.maxGroups)
        for g in b.groups.values {
            #expect(g.processes.counts.count <= ReportBuilder.maxTopEntries)
            #expect(g.clients.counts.count <= ReportBuilder.maxTopEntries)
        }
        #expect(b.timeline.buckets.count <= ReportBuilder.maxTimelineBuckets)
        #expect(b.report().ports.reduce(0) { $0 + $1.events } == UInt64(total))
    }

    @Test func linesSplitAcrossReadBuffersAndOverlongLines() throws {
        let path = "/tmp/synsight-report-long-\(getpid()).jsonl"
        defer { unlink(path) }
        // A valid line with a large extra field (crosses the 64 KiB read buffer),
        // then a line over the 1 MiB limit, then a normal line.
        let big = reportLine(at: 1, extra: [("pad", .string(String(repeating: "a", count: 200_000)))])
        let huge = String(repeating: "b", count: ReportSession.maxLineBytes + 10)
        let text = big + "\n" + huge + "\n" + reportLine(at: 2) + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        var s = ReportSession()
        s.readFile(path)
        #expect(s.builder.totals.events == 2)
        #expect(s.skippedLines == 1)
        #expect(s.messages.contains { $0.hasPrefix("\(path):2: ") && $0.contains("longer than") })
    }
}

/// The report's fix steps name the new causes, not the generic fallback.
@Suite("report remediation for the newer causes")
struct RemediationCoverageTests {
    static let generic = Remediation.steps(reason: "no_such_reason", cause: "-")

    @Test(arguments: [("no_listener", "wrong_port"), ("no_listener", "restarting"),
                      ("firewall_reject", "service_without_endpoints"), ("firewall_drop", "service_without_endpoints"),
                      ("connect_timeout", "dropped_on_host")])
    func namedCause(_ reason: String, _ cause: String) {
        let steps = Remediation.steps(reason: reason, cause: cause)
        #expect(steps != Self.generic)
        #expect(steps != Remediation.steps(reason: reason, cause: "some_other_cause"), "\(reason)/\(cause) falls back to the reason's steps")
    }

    @Test func everyConnectTimeoutCauseHasItsOwnSteps() {
        let steps = Cause.ConnectTimeout.allCases.map { Remediation.steps(reason: "connect_timeout", cause: $0.rawValue) }
        #expect(!steps.contains(Self.generic))
        #expect(Set(steps).count == Cause.ConnectTimeout.allCases.count)
    }

    @Test func everyDropCauseHasItsOwnStep() {
        for cause in DropCause.allCases where cause != .unspecified && cause != .other {
            let first = Remediation.steps(reason: "packet_dropped", cause: cause.rawValue).first
            #expect(first != nil && first != DropCause.other.remediation, "\(cause.rawValue)")
        }
    }
}
