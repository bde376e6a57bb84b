import SynsightBase
import SynsightModel
/// The HTML report: one self-contained file (inline CSS, inline SVG; no
/// script, no external resource, and a Content-Security-Policy that forbids
/// loading any), with a stacked bar chart of events over time by reason and
/// the same per-port root-cause content as the text report.
///
/// Hand-written rather than templated: the page is small and fixed, and a
/// template engine would still need this escaping, which is what matters.

/// HTML escaping for untrusted text: terminal controls, C1 codes and bidi
/// overrides made visible first (as in the text report), then the five
/// characters HTML gives meaning to, and Unicode noncharacters (a parse error
/// in HTML) made visible too. Safe in text and in quoted attribute values.
public enum HTMLText {
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in TerminalText.escape(s).unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                let v = scalar.value
                if (0xFDD0...0xFDEF).contains(v) || v & 0xFFFE == 0xFFFE {
                    out += "\\u{\(String(v, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

extension Report {
    public static let chartMaxBars = 120

    /// Fixed colours for the known reasons, so reports compare at a glance.
    static let colorOfReason: [Reason: String] = [
        .noListener: "#d62728", .acceptQueueFull: "#ff7f0e", .synQueueFull: "#e6b800",
        .firewallReject: "#9467bd", .firewallDrop: "#5b2c83", .lsmDenied: "#8c564b",
        .addressInUse: "#1f77b4", .privilegedPort: "#17becf", .addressNotAvailable: "#2ca02c",
        .fdExhausted: "#e377c2", .ephemeralPortsExhausted: "#7f7f7f", .noRoute: "#393b79", .resetByPeer: "#bcbd22",
        .connectTimeout: "#aec7e8", .noRouteBack: "#6b6ecf",
    ]
    /// By the series name (a reason's raw value, or a kind).
    static let reasonColors: [String: String] = Dictionary(uniqueKeysWithValues: colorOfReason.map { ($0.key.rawValue, $0.value) })
    static let fallbackColors = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#31a354", "#756bb1"]

    static func color(_ series: [String], _ i: Int) -> String {
        if series[i] == ReportChartTimeline.otherSeries { return "#aaaaaa" }
        if let c = reasonColors[series[i]] { return c }
        let unknown = series[..<i].filter { reasonColors[$0] == nil }.count
        return fallbackColors[unknown % fallbackColors.count]
    }

    static func widthPhrase(_ s: Int64) -> String {
        if s % 86400 == 0 { return s == 86400 ? "1 day" : "\(s / 86400) days" }
        if s % 3600 == 0 { return s == 3600 ? "1 hour" : "\(s / 3600) hours" }
        if s % 60 == 0 { return s == 60 ? "1 minute" : "\(s / 60) minutes" }
        return s == 1 ? "1 second" : "\(s) seconds"
    }

    /// A round axis step (1, 2 or 5 x 10^k, at least 1) giving at most 5
    /// steps. UInt128: the stacked bars of UInt64 counts cannot overflow it.
    static func axisStep(_ top: UInt128) -> UInt128 {
        var step: UInt128 = 1
        while true {
            for m: UInt128 in [1, 2, 5] where (top + step * m - 1) / (step * m) <= 5 { return step * m }
            step *= 10
        }
    }

    package static func clock(_ seconds: Int64, width: Int64, spanDays: Bool) -> String {
        let t = time(seconds: seconds)  // 2026-11-22T03:10:11.000000000Z
        let date = String(t.prefix(10)), hms = String(t.dropFirst(11).prefix(8)), hm = String(t.dropFirst(11).prefix(5))
        if width >= 86400 { return date }
        if spanDays { return String(date.dropFirst(5)) + " " + hm }
        return width < 60 ? hms : hm
    }

    /// The timeline as inline SVG; nil when there are no events.
    func chartSVG() -> String? {
        guard let bars = chart.bars(maxBars: Report.chartMaxBars), bars.tallest > 0 else { return nil }
        let esc = HTMLText.escape
        let w = 960.0, h = 330.0, left = 64.0, right = 16.0, top = 40.0, bottom = 56.0
        let plotW = w - left - right, plotH = h - top - bottom
        let n = bars.counts.count
        let slot = plotW / Double(n)
        let barW = max(1.0, slot * (n > 60 ? 0.9 : 0.8))
        let tallest = bars.counts.map { $0.reduce(UInt128(0)) { $0 + UInt128($1) } }.max() ?? 0
        let step = Report.axisStep(tallest)
        let axisTop = ((tallest + step - 1) / step) * step
        func y(_ v: UInt128) -> Double { top + plotH - plotH * Double(v) / Double(axisTop) }
        func f(_ d: Double) -> String {
            let r = (d * 10).rounded() / 10
            return r == r.rounded() ? String(Int(r)) : String(r)
        }
        let width = Report.widthPhrase(bars.bucketSeconds)
        let endSecond = bars.start + Int64(n) * bars.bucketSeconds
        let spanDays = Report.time(seconds: bars.start).prefix(10) != Report.time(seconds: endSecond - 1).prefix(10)
        let perWhat = bars.bucketSeconds == 1 ? "per second" : "per \(width)"
        var s: [String] = []
        s.append("<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(f(w)) \(f(h))\" role=\"img\" "
                 + "aria-labelledby=\"chart-title\" data-bucket-seconds=\"\(bars.bucketSeconds)\" data-bars=\"\(n)\" "
                 + "data-total=\"\(bars.total)\">")
        s.append("<title id=\"chart-title\">Events \(perWhat) by reason, \(esc(Report.time(seconds: bars.start))) to "
                 + "\(esc(Report.time(seconds: endSecond)))</title>")
        s.append("<text class=\"caption\" x=\"\(f(left))\" y=\"18\">Events \(perWhat) by reason (UTC)</text>")
        s.append("<text class=\"width\" x=\"\(f(w - right))\" y=\"18\" text-anchor=\"end\">each bar = \(width) · \(n) bar\(n == 1 ? "" : "s")</text>")
        // Grid and y axis.
        var v: UInt128 = 0
        while v <= axisTop {
            s.append("<line class=\"grid\" x1=\"\(f(left))\" x2=\"\(f(w - right))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\"/>")
            s.append("<text class=\"tick\" x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(v)</text>")
            v += step
        }
        s.append("<text class=\"axis\" transform=\"translate(14 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">events / \(width)</text>")
        // Bars: one rect per non-zero (bar, reason), stacked in series order.
        for (i, row) in bars.counts.enumerated() {
            let barStart = bars.start + Int64(i) * bars.bucketSeconds
            let x = left + Double(i) * slot + (slot - barW) / 2
            var base: UInt128 = 0
            for (k, c) in row.enumerated() where c > 0 {
                // At least 2 px, so a single event next to a storm stays visible.
                let y0 = y(base), hgt = max(2, y0 - y(base + UInt128(c))), y1 = y0 - hgt
                let label = "\(Report.shortTime(seconds: barStart)) +\(width): \(esc(bars.series[k])) \(c)"
                s.append("<rect class=\"bar\" x=\"\(f(x))\" y=\"\(f(y1))\" width=\"\(f(barW))\" height=\"\(f(hgt))\" "
                         + "fill=\"\(Report.color(bars.series, k))\" data-start=\"\(barStart)\" data-reason=\"\(esc(bars.series[k]))\" "
                         + "data-count=\"\(c)\"><title>\(label)</title></rect>")
                base += UInt128(c)
            }
        }
        // x axis with about 6 time labels.
        s.append("<line class=\"axisline\" x1=\"\(f(left))\" x2=\"\(f(w - right))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH))\"/>")
        let every = max(1, Int((Double(n) / 6).rounded(.up)))
        for i in stride(from: 0, to: n, by: every) {
            let x = left + Double(i) * slot
            let sec = bars.start + Int64(i) * bars.bucketSeconds
            s.append("<line class=\"axisline\" x1=\"\(f(x))\" x2=\"\(f(x))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH + 5))\"/>")
            s.append("<text class=\"tick\" x=\"\(f(x))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">"
                     + "\(Report.clock(sec, width: bars.bucketSeconds, spanDays: spanDays))</text>")
        }
        s.append("<text class=\"tick\" x=\"\(f(left))\" y=\"\(f(h - 10))\">from \(Report.shortTime(seconds: bars.start))</text>")
        s.append("<text class=\"tick\" x=\"\(f(w - right))\" y=\"\(f(h - 10))\" text-anchor=\"end\">to \(Report.shortTime(seconds: endSecond))</text>")
        s.append("</svg>")
        // Legend: reasons with their totals, as HTML under the chart.
        var totals = [UInt64](repeating: 0, count: bars.series.count)
        for row in bars.counts { for (k, c) in row.enumerated() { totals[k].saturate(adding: c) } }
        s.append("<ul class=\"legend\">")
        for k in bars.series.indices {
            s.append("<li><span class=\"swatch\" style=\"background:\(Report.color(bars.series, k))\"></span>"
                     + "\(esc(bars.series[k])) <span class=\"n\">\(totals[k])</span></li>")
        }
        s.append("</ul>")
        return s.joined(separator: "\n")
    }

    static let css = """
        :root{color-scheme:light;--fg:#1d1f21;--muted:#5f6368;--line:#d9dce0;--bg:#ffffff;--card:#f7f8fa;--warn:#fff4e5;--warnline:#f0a020}
        *{box-sizing:border-box}
        body{margin:0 auto;max-width:1000px;padding:24px;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
        h1{font-size:24px;margin:0 0 4px}
        h2{font-size:19px;margin:32px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
        h3{font-size:16px;margin:0 0 8px}
        .meta{color:var(--muted);margin:0 0 16px}
        .warn{background:var(--warn);border-left:4px solid var(--warnline);padding:8px 12px;margin:8px 0}
        .stats{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
        .stat{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:120px}
        .stat b{display:block;font-size:22px}
        .stat span{color:var(--muted);font-size:13px}
        svg.chart{width:100%;height:auto;display:block;background:#fff;border:1px solid var(--line);border-radius:6px}
        svg.chart .grid{stroke:#eceef1;stroke-width:1}
        svg.chart .axisline{stroke:#9aa0a6;stroke-width:1}
        svg.chart text{font:12px system-ui,sans-serif;fill:var(--muted)}
        svg.chart .caption{font-weight:600;font-size:14px;fill:var(--fg)}
        svg.chart .width{font-size:13px;fill:var(--fg)}
        ul.legend{list-style:none;padding:0;margin:8px 0 0;display:flex;flex-wrap:wrap;gap:6px 18px}
        ul.legend li{display:flex;align-items:center;gap:6px}
        .swatch{display:inline-block;width:12px;height:12px;border-radius:2px}
        .n{color:var(--muted)}
        table{border-collapse:collapse;width:100%;margin:8px 0}
        th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
        th{font-weight:600;color:var(--muted);font-size:13px}
        td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
        .group{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:12px 16px;margin:12px 0}
        .group dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px;margin:0}
        .group dt{color:var(--muted)}
        .group dd{margin:0;overflow-wrap:anywhere}
        code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
        .hint{font-weight:600}
        ol.fix{margin:4px 0 0;padding-left:22px}
        footer{margin-top:32px;color:var(--muted);font-size:13px}
        a{color:#1a5fb4}
        """

    public func html() -> String {
        let esc = HTMLText.escape
        var out: [String] = []
        out.append("<!DOCTYPE html>")
        out.append("<html lang=\"en\">")
        out.append("<head>")
        out.append("<meta charset=\"utf-8\">")
        out.append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">")
        out.append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        out.append("<title>synsight report: \(Report.plural(totals.events, "event"))</title>")
        out.append("<style>\n\(Report.css)\n</style>")
        out.append("</head>")
        out.append("<body>")
        out.append("<header>")
        out.append("<h1>synsight report</h1>")
        var meta = "\(Report.plural(totals.events, "event")) in \(Report.plural(totals.matched, "record")) from \(totals.files) file\(totals.files == 1 ? "" : "s")"
        if let f = totals.first, let l = totals.last { meta += ", \(Report.time(f)) .. \(Report.time(l))" }
        out.append("<p class=\"meta\">\(esc(meta))</p>")
        if let filterDescription {
            out.append("<p class=\"meta\">Filter: \(esc(filterDescription)) (\(totals.matched) of \(totals.records) records match)</p>")
        }
        if let lostWarning { out.append("<p class=\"warn\"><strong>Warning:</strong> \(esc(lostWarning))</p>") }
        if totals.skippedLines > 0 {
            out.append("<p class=\"warn\"><strong>Warning:</strong> \(Report.plural(totals.skippedLines, "line")) could not be read and were skipped (see the messages of synsight report).</p>")
        }
        out.append("</header>")
        out.append("<div class=\"stats\">")
        out.append("<div class=\"stat\"><b>\(totals.events)</b><span>events</span></div>")
        out.append("<div class=\"stat\"><b>\(ports.filter { $0.port >= 0 }.count)</b><span>ports</span></div>")
        out.append("<div class=\"stat\"><b>\(ports.reduce(0) { $0 + $1.groups.count })</b><span>reasons/causes</span></div>")
        out.append("<div class=\"stat\"><b>\(totals.lost)</b><span>lost events</span></div>")
        out.append("</div>")

        out.append("<section id=\"timeline\">")
        out.append("<h2>Timeline</h2>")
        out.append(chartSVG() ?? "<p>No events in the selected range.</p>")
        out.append("</section>")

        if !ports.isEmpty {
            out.append("<section id=\"overview\">")
            out.append("<h2>Ports</h2>")
            out.append("<table>")
            out.append("<thead><tr><th>Port</th><th class=\"num\">Events</th><th>Reasons</th><th>First seen</th><th>Last seen</th></tr></thead>")
            out.append("<tbody>")
            for p in ports {
                let reasons = p.groups.map { g in
                    (g.key.cause.isEmpty ? esc(g.key.reason) : "\(esc(g.key.reason)) / \(esc(g.key.cause))") + " (\(g.events))"
                }.joined(separator: "<br>")
                out.append("<tr><td><a href=\"#\(Report.anchor(p.port))\">\(Report.portLabel(p.port))</a></td>"
                           + "<td class=\"num\">\(p.events)</td><td>\(reasons)</td>"
                           + "<td>\(Report.shortTime(p.first))</td><td>\(Report.shortTime(p.last))</td></tr>")
            }
            out.append("</tbody>")
            out.append("</table>")
            out.append("</section>")
        }

        for p in ports {
            out.append("<section id=\"\(Report.anchor(p.port))\">")
            out.append("<h2>Port \(Report.portLabel(p.port)): \(Report.plural(p.events, "event"))</h2>")
            out.append("<p class=\"meta\">First \(Report.time(p.first)), last \(Report.time(p.last))</p>")
            for g in p.groups {
                out.append("<article class=\"group\">")
                let why = g.key.cause.isEmpty ? esc(g.key.reason) : "\(esc(g.key.reason)) / \(esc(g.key.cause))"
                out.append("<h3>\(why): \(Report.plural(g.events, "event"))</h3>")
                out.append("<dl>")
                out.append("<dt>First seen</dt><dd>\(Report.time(g.first))</dd>")
                out.append("<dt>Last seen</dt><dd>\(Report.time(g.last))</dd>")
                if !g.processes.counts.isEmpty || g.processes.others > 0 {
                    out.append("<dt>Processes</dt><dd>\(Report.processList(g.processes, limit: Report.topShown, escape: esc))</dd>")
                }
                if !g.clients.counts.isEmpty || g.clients.others > 0 {
                    out.append("<dt>Clients</dt><dd>\(Report.processList(g.clients, limit: Report.topShown, escape: esc))</dd>")
                }
                if multiNode, !g.nodes.counts.isEmpty || g.nodes.others > 0 {
                    out.append("<dt>Nodes</dt><dd>\(Report.nodeList(g.nodes, limit: Report.topShown, escape: esc))</dd>")
                }
                if let l = g.latest {
                    var latest = "\(Report.time(l.ts)) \(esc(l.kind))"
                    if let e = Report.endpoints(l.raw) { latest += " " + esc(e) }
                    if let exe = l.raw["process"]?["exe"]?.stringValue { latest += ", exe <code>\(esc(exe))</code>" }
                    out.append("<dt>Latest</dt><dd>\(latest)</dd>")
                    let ev = Report.evidenceText(l.raw)
                    if !ev.isEmpty {
                        out.append("<dt>Evidence</dt><dd><table class=\"evidence\"><tbody>")
                        for (k, v) in ev { out.append("<tr><th>\(esc(k))</th><td><code>\(esc(v))</code></td></tr>") }
                        out.append("</tbody></table></dd>")
                    }
                    if let hint = l.hint { out.append("<dt>Hint</dt><dd class=\"hint\">\(esc(hint))</dd>") }
                }
                out.append("<dt>Fix</dt><dd><ol class=\"fix\">")
                for step in g.steps { out.append("<li>\(esc(step))</li>") }
                out.append("</ol></dd>")
                out.append("</dl>")
                out.append("</article>")
            }
            out.append("</section>")
        }
        if ports.isEmpty { out.append("<p>No refusals recorded.</p>") }
        if multiNode {
            out.append("<section id=\"nodes\">")
            out.append("<h2>Nodes</h2>")
            out.append("<ul>")
            for line in nodeTotals { out.append("<li>\(esc(line))</li>") }
            out.append("</ul>")
            out.append("</section>")
        }

        var tl = "Totals: \(Report.plural(totals.records, "record")) read from \(totals.files) file\(totals.files == 1 ? "" : "s"), \(Report.plural(totals.events, "event")), \(totals.lost) lost"
        if totals.skippedLines > 0 { tl += ", \(Report.plural(totals.skippedLines, "line")) skipped" }
        if overflowedGroups > 0 { tl += ", \(overflowedGroups) records in an overflow group (too many distinct port/reason/cause)" }
        out.append("<footer>\(esc(tl)). Generated by synsight report.</footer>")
        out.append("</body>")
        out.append("</html>")
        return out.joined(separator: "\n") + "\n"
    }

    static func anchor(_ port: Int) -> String { port < 0 ? "port-none" : "port-\(port)" }
}
