import SynsightBase
import SynsightModel
/// Text, Markdown and JSON renderings of a `Report` (HTML: ReportHTML.swift).
/// Every string that came from a record (comm, exe, hint, cause, evidence,
/// rule text) is untrusted: escaped for the terminal in text, for Markdown in
/// markdown, JSON-escaped in JSON, and HTML-escaped in HTML.

public enum ReportFormat: String, Sendable, CaseIterable {
    case text, markdown, json, html
}

/// Markdown escaping for untrusted text: terminal controls first, then every
/// character CommonMark/GFM could read as markup (including `|` for tables).
public enum MarkdownText {
    static let special: Set<Character> = ["\\", "`", "*", "_", "{", "}", "[", "]", "<", ">", "(", ")", "#", "+", "-",
                                          "!", "|", "~", "&", ":", "\"", "'"]

    public static func escape(_ s: String) -> String {
        var out = ""
        for ch in TerminalText.escape(s) {
            if special.contains(ch) { out.append("\\") }
            out.append(ch)
        }
        return out
    }
}

extension JSONValue {
    /// A count in the JSON report: exact up to UInt64.max (beyond Int64 as
    /// number text), where clamping would disagree with the text report.
    static func unsigned(_ n: UInt64) -> JSONValue { n <= UInt64(Int64.max) ? .int(Int64(n)) : .number(String(n)) }
}

extension Report {
    static func time(_ ns: Int64) -> String { RFC3339.format(nanosecondsSinceEpoch: ns) }

    /// A bucket edge in seconds (it may lie past the last representable
    /// nanosecond, so it is not converted to nanoseconds).
    static func time(seconds: Int64) -> String { RFC3339.format(secondsSinceEpoch: seconds) }

    /// Seconds precision, for tables.
    static func shortTime(_ ns: Int64) -> String {
        let t = time(ns)
        return String(t.prefix(19)) + "Z"
    }

    static func shortTime(seconds: Int64) -> String { String(time(seconds: seconds).prefix(19)) + "Z" }

    static func portLabel(_ p: Int) -> String { p < 0 ? "(none)" : String(p) }

    static func plural(_ n: UInt64, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }

    /// Orders processes with equal counts: pid, comm, then workload.
    static func processOrder(_ a: ReportProcess, _ b: ReportProcess) -> Bool {
        (a.pid, a.comm, a.workload?.label ?? "") < (b.pid, b.comm, b.workload?.label ?? "")
    }

    /// `nginx[4410] ×3`, with the workload when the record named one:
    /// `nginx[4410] (pod shop/api container web) ×3`.
    static func processList(_ c: BoundedCounter<ReportProcess>, limit: Int, escape: (String) -> String) -> String {
        var items = c.top(limit, by: processOrder).map { p, n in
            "\(escape(p.comm))[\(p.pid)]" + (p.workload.map { " (\(escape($0.label)))" } ?? "") + " ×\(n)"
        }
        let shown = items.count
        let rest = c.counts.count - shown
        if rest > 0 { items.append("\(rest) more") }
        if c.others > 0 { items.append("others ×\(c.others)") }
        return items.joined(separator: ", ")
    }

    /// `key=value` pairs of the evidence object, values compact JSON.
    static func evidenceText(_ raw: JSONValue) -> [(String, String)] {
        guard case .object(let fields)? = raw["evidence"] else { return [] }
        return fields.map { k, v in
            if case .string(let s) = v { return (k, s) }
            var out: [UInt8] = []
            JSONLines.append(v, to: &out)
            return (k, String(decoding: out, as: UTF8.self))
        }
    }

    static func endpoints(_ raw: JSONValue) -> String? {
        func ep(_ v: JSONValue?) -> String? {
            guard let v, let a = v["addr"]?.stringValue else { return nil }
            let p = v["port"]?.intValue.map { String($0) } ?? "?"
            return a.contains(":") ? "[\(a)]:\(p)" : "\(a):\(p)"
        }
        switch (ep(raw["remote"]), ep(raw["local"])) {
        case let (r?, l?): return "\(r) -> \(l)"
        case let (nil, l?): return "on \(l)"
        case let (r?, nil): return "to \(r)"
        default: return nil
        }
    }

    /// Whether the matched records come from more than one node: then the
    /// groups name their nodes and a per-node total is shown.
    var multiNode: Bool { totals.nodeEvents.counts.count + (totals.nodeEvents.others > 0 ? 1 : 0) > 1 }

    /// `host-a ×3, host-b ×2` (the group's events per node).
    static func nodeList(_ c: BoundedCounter<ReportNode>, limit: Int, escape: (String) -> String) -> String {
        var items = c.top(limit, by: <).map { "\(escape($0.0.label)) ×\($0.1)" }
        let rest = c.counts.count - items.count
        if rest > 0 { items.append("\(rest) more") }
        if c.others > 0 { items.append("others ×\(c.others)") }
        return items.joined(separator: ", ")
    }

    /// One line per node for the per-node totals, unescaped: `host-a
    /// (machine id 0123…): 5 events in 4 records`; other nodes last.
    var nodeTotals: [String] {
        var lines = totals.nodeEvents.top(ReportBuilder.maxNodes, by: <).map { n, events in
            var s = n.label
            if n.hostname != nil, let m = n.machineID { s += " (machine id \(m))" }
            return s + ": \(Report.plural(events, "event")) in \(Report.plural(totals.nodeRecords.counts[n] ?? 0, "record"))"
        }
        if totals.nodeEvents.others > 0 {
            lines.append("other nodes: \(Report.plural(totals.nodeEvents.others, "event")) in \(Report.plural(totals.nodeRecords.others, "record"))")
        }
        return lines
    }

    var lostWarning: String? {
        guard totals.lost > 0 else { return nil }
        return "\(Report.plural(totals.lost, "event")) LOST in the ring buffer (\(Report.plural(totals.lostRecords, "lost record"))): counts below are lower bounds"
    }

    var filterDescription: String? {
        var parts: [String] = []
        if let s = options.since { parts.append("since \(Report.time(s))") }
        if let u = options.until { parts.append("until \(Report.time(u))") }
        if !options.ports.isEmpty { parts.append("port " + options.ports.sorted().map(String.init).joined(separator: ", ")) }
        if !options.nodes.isEmpty { parts.append("node " + options.nodes.joined(separator: ", ")) }
        if !options.workloads.isEmpty { parts.append("workload " + options.workloads.joined(separator: ", ")) }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    /// Reasons in the timeline, most events first.
    static func timelineColumns(_ t: ReportTimeline) -> [String] {
        var totals: [String: UInt64] = [:]
        for row in t.buckets.values { for (r, n) in row { totals[r, default: 0].saturate(adding: n) } }
        return totals.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map(\.key)
    }

    static func widthLabel(_ seconds: Int64) -> String {
        if seconds == 60 { return "minute" }
        if seconds % 3600 == 0 { return "\(seconds / 3600) hours" }
        if seconds % 60 == 0 { return "\(seconds / 60) minutes" }
        return "\(seconds) seconds"
    }

    public static let timelineRows = 60
    public static let topShown = 5

    // MARK: text

    public func text() -> String {
        let esc = TerminalText.escape
        var out: [String] = []
        var head = "synsight report: \(Report.plural(totals.events, "event")) in \(Report.plural(totals.matched, "record")) from \(totals.files) file\(totals.files == 1 ? "" : "s")"
        if let f = totals.first, let l = totals.last { head += ", \(Report.time(f)) .. \(Report.time(l))" }
        out.append(head)
        if let filterDescription { out.append("filter: \(filterDescription) (\(totals.matched) of \(totals.records) records match)") }
        if let lostWarning { out.append("WARNING: \(lostWarning)") }
        if totals.skippedLines > 0 { out.append("WARNING: \(Report.plural(totals.skippedLines, "line")) skipped (see stderr)") }
        if ports.isEmpty { out.append(""); out.append("No refusals recorded.") }
        for p in ports {
            out.append("")
            out.append("PORT \(Report.portLabel(p.port)): \(Report.plural(p.events, "event")), first \(Report.time(p.first)), last \(Report.time(p.last))")
            for g in p.groups {
                let why = g.key.cause.isEmpty ? esc(g.key.reason) : "\(esc(g.key.reason))/\(esc(g.key.cause))"
                out.append("  \(why): \(Report.plural(g.events, "event")), first \(Report.time(g.first)), last \(Report.time(g.last))")
                if !g.processes.counts.isEmpty || g.processes.others > 0 {
                    out.append("    processes: " + Report.processList(g.processes, limit: Report.topShown, escape: esc))
                }
                if !g.clients.counts.isEmpty || g.clients.others > 0 {
                    out.append("    clients:   " + Report.processList(g.clients, limit: Report.topShown, escape: esc))
                }
                if multiNode, !g.nodes.counts.isEmpty || g.nodes.others > 0 {
                    out.append("    nodes:     " + Report.nodeList(g.nodes, limit: Report.topShown, escape: esc))
                }
                if let l = g.latest {
                    var latest = "    latest:    \(Report.time(l.ts)) \(esc(l.kind))"
                    if let e = Report.endpoints(l.raw) { latest += " " + esc(e) }
                    if let exe = l.raw["process"]?["exe"]?.stringValue { latest += " exe \(esc(exe))" }
                    out.append(latest)
                    let ev = Report.evidenceText(l.raw)
                    if !ev.isEmpty { out.append("    evidence:  " + ev.map { "\(esc($0.0))=\(esc($0.1))" }.joined(separator: " ")) }
                    if let h = l.hint { out.append("    hint:      " + esc(h)) }
                }
                out.append("    fix:")
                for s in g.steps { out.append("      - " + s) }
            }
        }
        let t = timeline.compacted(rows: Report.timelineRows)
        if !t.buckets.isEmpty {
            out.append("")
            out.append("TIMELINE (events per \(Report.widthLabel(t.bucketSeconds)), UTC)")
            let cols = Report.timelineColumns(t)
            let widths = cols.map { max($0.count, 6) }
            out.append("  " + "TIME".padding(22) + zip(cols, widths).map { esc($0).padding($1 + 2) }.joined())
            for start in t.buckets.keys.sorted() {
                let row = t.buckets[start]!
                out.append("  " + Report.shortTime(seconds: start).padding(22)
                           + zip(cols, widths).map { String(row[$0] ?? 0).padding($1 + 2) }.joined())
            }
        }
        if multiNode {
            out.append("")
            out.append("NODES (events per node)")
            for line in nodeTotals { out.append("  " + esc(line)) }
        }
        out.append("")
        var tl = "TOTALS: \(Report.plural(totals.records, "record")) read from \(totals.files) file\(totals.files == 1 ? "" : "s"), \(Report.plural(totals.events, "event")), \(totals.lost) lost"
        if totals.skippedLines > 0 { tl += ", \(Report.plural(totals.skippedLines, "line")) skipped" }
        if overflowedGroups > 0 { tl += ", \(overflowedGroups) records in an overflow group (too many distinct port/reason/cause)" }
        out.append(tl)
        return out.map { $0.replacingTrailingSpaces() }.joined(separator: "\n") + "\n"
    }

    // MARK: markdown

    public func markdown() -> String {
        let esc = MarkdownText.escape
        var out: [String] = ["# synsight report", ""]
        out.append("- Events: **\(totals.events)** in \(totals.matched) records from \(totals.files) file\(totals.files == 1 ? "" : "s")")
        if let f = totals.first, let l = totals.last { out.append("- Time range: \(Report.time(f)) .. \(Report.time(l))") }
        if let filterDescription { out.append("- Filter: \(filterDescription) (\(totals.matched) of \(totals.records) records match)") }
        out.append("- Lost events: \(totals.lost)")
        if totals.skippedLines > 0 { out.append("- Skipped lines: \(totals.skippedLines)") }
        if let lostWarning { out.append(""); out.append("> **Warning:** \(lostWarning)") }
        if ports.isEmpty { out.append(""); out.append("No refusals recorded.") }
        for p in ports {
            out.append("")
            out.append("## Port \(Report.portLabel(p.port)): \(Report.plural(p.events, "event"))")
            out.append("")
            out.append("First \(Report.time(p.first)), last \(Report.time(p.last)).")
            for g in p.groups {
                out.append("")
                let why = g.key.cause.isEmpty ? esc(g.key.reason) : "\(esc(g.key.reason)) / \(esc(g.key.cause))"
                out.append("### \(why): \(Report.plural(g.events, "event"))")
                out.append("")
                out.append("- First: \(Report.time(g.first)), last: \(Report.time(g.last))")
                if !g.processes.counts.isEmpty || g.processes.others > 0 {
                    out.append("- Processes: " + Report.processList(g.processes, limit: Report.topShown, escape: esc))
                }
                if !g.clients.counts.isEmpty || g.clients.others > 0 {
                    out.append("- Clients: " + Report.processList(g.clients, limit: Report.topShown, escape: esc))
                }
                if multiNode, !g.nodes.counts.isEmpty || g.nodes.others > 0 {
                    out.append("- Nodes: " + Report.nodeList(g.nodes, limit: Report.topShown, escape: esc))
                }
                if let l = g.latest {
                    var latest = "- Latest: \(Report.time(l.ts)) \(esc(l.kind))"
                    if let e = Report.endpoints(l.raw) { latest += " " + esc(e) }
                    if let exe = l.raw["process"]?["exe"]?.stringValue { latest += ", exe " + esc(exe) }
                    out.append(latest)
                    for (k, v) in Report.evidenceText(l.raw) { out.append("  - \(esc(k)): \(esc(v))") }
                    if let h = l.hint { out.append("- Hint: " + esc(h)) }
                }
                out.append("- Fix:")
                for s in g.steps { out.append("  1. " + esc(s)) }
            }
        }
        if multiNode {
            out.append("")
            out.append("## Nodes")
            out.append("")
            for line in nodeTotals { out.append("- " + esc(line)) }
        }
        let t = timeline.compacted(rows: Report.timelineRows)
        if !t.buckets.isEmpty {
            let cols = Report.timelineColumns(t)
            out.append("")
            out.append("## Timeline (events per \(Report.widthLabel(t.bucketSeconds)), UTC)")
            out.append("")
            out.append("| time | " + cols.map(esc).joined(separator: " | ") + " |")
            out.append("|---|" + cols.map { _ in "---:|" }.joined())
            for start in t.buckets.keys.sorted() {
                let row = t.buckets[start]!
                out.append("| \(Report.shortTime(seconds: start)) | " + cols.map { String(row[$0] ?? 0) }.joined(separator: " | ") + " |")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }

    // MARK: json

    public var jsonValue: JSONValue {
        func procs(_ c: BoundedCounter<ReportProcess>) -> JSONValue {
            .array(c.top(ReportBuilder.maxTopEntries, by: Report.processOrder).map { p, n in
                .object([("pid", .int(p.pid)), ("comm", .string(p.comm))] + (p.workload?.jsonFields ?? [])
                        + [("count", .unsigned(n))])
            })
        }
        func ts(_ v: Int64?) -> JSONValue { v.map { .string(Report.time($0)) } ?? .null }
        var totalsFields: [(String, JSONValue)] = [
            ("files", .int(Int64(totals.files))),
            ("records", .unsigned(totals.records)),
            ("matched", .unsigned(totals.matched)),
            ("events", .unsigned(totals.events)),
            ("lost", .unsigned(totals.lost)),
            ("skipped_lines", .unsigned(totals.skippedLines)),
            ("first", ts(totals.first)),
            ("last", ts(totals.last)),
        ]
        if overflowedGroups > 0 { totalsFields.append(("overflowed_group_records", .unsigned(overflowedGroups))) }
        let portsJSON: [JSONValue] = ports.map { p in
            .object([
                ("port", p.port < 0 ? .null : .int(Int64(p.port))),
                ("events", .unsigned(p.events)),
                ("first", ts(p.first)), ("last", ts(p.last)),
                ("reasons", .array(p.groups.map { g in
                    var f: [(String, JSONValue)] = [
                        ("reason", .string(g.key.reason)),
                        ("cause", g.key.cause.isEmpty ? .null : .string(g.key.cause)),
                        ("events", .unsigned(g.events)),
                        ("records", .unsigned(g.records)),
                        ("first", ts(g.first)), ("last", ts(g.last)),
                        ("processes", procs(g.processes)),
                        ("other_processes", .unsigned(g.processes.others)),
                        ("clients", procs(g.clients)),
                        ("other_clients", .unsigned(g.clients.others)),
                    ]
                    if !g.nodes.counts.isEmpty || g.nodes.others > 0 {
                        f.append(("nodes", .array(g.nodes.top(ReportBuilder.maxTopEntries, by: <).map {
                            .object([("node", $0.0.json), ("events", .unsigned($0.1))])
                        })))
                        if g.nodes.others > 0 { f.append(("other_nodes", .unsigned(g.nodes.others))) }
                    }
                    f.append(("latest", g.latest?.raw ?? .null))
                    f.append(("hint", g.latest?.hint.map { .string($0) } ?? .null))
                    f.append(("remediation", .array(g.steps.map { .string($0) })))
                    return .object(f)
                })),
            ])
        }
        let timelineJSON: JSONValue = .object([
            ("bucket_seconds", .int(timeline.bucketSeconds)),
            ("buckets", .array(timeline.buckets.keys.sorted().map { start in
                .object([("start", .string(Report.time(seconds: start))),
                         ("counts", .object(timeline.buckets[start]!.sorted { $0.key < $1.key }.map {
                             ($0.key, .unsigned($0.value))
                         }))])
            })),
        ])
        var top: [(String, JSONValue)] = [("v", .int(1)), ("totals", .object(totalsFields)), ("ports", .array(portsJSON)),
                                          ("timeline", timelineJSON)]
        // Only when records named their node: reports of older recordings are unchanged.
        if !totals.nodeEvents.counts.isEmpty {
            var nodes: [JSONValue] = totals.nodeEvents.top(ReportBuilder.maxNodes, by: <).map { n, events in
                .object([("node", n.json), ("events", .unsigned(events)),
                         ("records", .unsigned(totals.nodeRecords.counts[n] ?? 0))])
            }
            if totals.nodeEvents.others > 0 {
                nodes.append(.object([("node", .null), ("events", .unsigned(totals.nodeEvents.others)),
                                      ("records", .unsigned(totals.nodeRecords.others))]))
            }
            top.append(("nodes", .array(nodes)))
        }
        return .object(top)
    }

    public func json() -> String {
        var out: [UInt8] = []
        JSONLines.append(jsonValue, to: &out)
        out.append(0x0A)
        return String(decoding: out, as: UTF8.self)
    }

    public func render(_ format: ReportFormat) -> String {
        switch format {
        case .text: return text()
        case .markdown: return markdown()
        case .json: return json()
        case .html: return html()
        }
    }
}

extension String {
    func replacingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
