import SynsightBase
import SynsightModel
import SynsightNftables
/// `explain` output: one JSON object (`--json`, fields documented in
/// README) or plain text for a terminal. Untrusted strings (process names,
/// paths, namespace names, rule text) are escaped by the JSON writer and by
/// `TerminalText` respectively.
public enum ExplainFormat {
    public static let schemaVersion = 1

    /// "1 network namespace scanned", "12 network namespaces scanned".
    package static func namespacesScanned(_ n: Int) -> String {
        "\(n) network namespace\(n == 1 ? "" : "s") scanned"
    }

    package static func seconds(_ s: Double) -> String {
        let tenths = Int((s * 10).rounded())
        return tenths % 10 == 0 ? String(tenths / 10) : "\(tenths / 10).\(tenths % 10)"
    }

    // MARK: JSON

    public static func json(_ r: ExplainReport) -> JSONValue {
        let i = r.input
        var top: [(String, JSONValue)] = [
            ("v", .int(Int64(schemaVersion))),
            ("ts", .string(RFC3339.format(nanosecondsSinceEpoch: i.ts))),
            ("port", .int(Int64(i.port))),
            ("verdict", .object([
                ("status", .string(r.status.rawValue)),
                ("summary", .string(r.summary)),
                ("actions", .array(r.actions.map { .string($0) })),
            ])),
            ("findings", .array(r.findings.map(findingJSON))),
            ("viewpoint", .object([("netns", .int(Int64(i.viewpoint)))] + (i.namespace(i.viewpoint)?.name.map { [("name", JSONValue.string($0))] } ?? []))),
            ("listeners", .array(i.listeners.map { listenerJSON($0, input: i) })),
            ("namespaces", .array(i.namespaces.map { namespaceJSON($0, report: r) })),
            ("recent", recentJSON(i.recent)),
        ]
        if !i.notes.isEmpty { top.append(("notes", .array(i.notes.map { .string($0) }))) }
        return .object(top)
    }

    public static func jsonLine(_ r: ExplainReport) -> String {
        var out: [UInt8] = []
        JSONLines.append(json(r), to: &out)
        out.append(0x0A)
        return String(decoding: out, as: UTF8.self)
    }

    static func findingJSON(_ f: Finding) -> JSONValue {
        var o: [(String, JSONValue)] = [("severity", .string(f.severity.rawValue)), ("code", .string(f.code))]
        if let ns = f.netns { o.append(("netns", .int(Int64(ns)))) }
        o.append(("message", .string(f.message)))
        if let r = f.remediation { o.append(("remediation", .string(r))) }
        o.append(("evidence", .object(f.evidence)))
        return .object(o)
    }

    static func processJSON(_ p: ExplainProcess) -> JSONValue {
        var o: [(String, JSONValue)] = [("pid", .int(Int64(p.pid))), ("comm", .string(p.comm))]
        if let exe = p.exe { o.append(("exe", .string(exe))) }
        if p.limitsKnown {
            o.append(("nofile_soft", p.nofileSoft.map { .int(Int64(clamping: $0)) } ?? .string("unlimited")))
            o.append(("nofile_hard", p.nofileHard.map { .int(Int64(clamping: $0)) } ?? .string("unlimited")))
        }
        if let n = p.openFds { o.append(("open_fds", .int(Int64(n)))) }
        if let st = p.runState { o.append(("threads", st.json["threads"] ?? .null)) }
        if let t = p.cpuThrottle { o.append(("cpu_throttle", t.json)) }
        if let w = p.workload { o += w.jsonFields }
        return .object(o)
    }

    static func listenerJSON(_ l: ExplainListener, input: ExplainInput) -> JSONValue {
        var o: [(String, JSONValue)] = [
            ("netns", .int(Int64(l.netns))),
            ("family", .string(l.family.rawValue)),
            ("addr", .string(l.local.addr.description)),
            ("port", .int(Int64(l.local.port))),
        ]
        if let v = l.ipv6Only { o.append(("ipv6only", .bool(v))) }
        if let d = l.boundDevice { o.append(("bound_device", d.json)) }
        o.append(("inode", .int(Int64(clamping: l.inode))))
        if let q = l.acceptQueue { o.append(("accept_queue", .int(Int64(q)))) }
        if let m = l.maxBacklog { o.append(("max_backlog", .int(Int64(m)))) }
        if let s = l.synQueue { o.append(("syn_queue", .int(Int64(s)))) }
        if let d = l.drops { o.append(("drops", .int(Int64(d)))) }
        if let s = input.namespace(l.netns)?.sysctls.somaxconn { o.append(("somaxconn", .int(Int64(s)))) }
        o.append(("processes", .array(l.processes.map(processJSON))))
        return .object(o)
    }

    static func ruleJSON(_ m: PortRuleMatch) -> JSONValue {
        var o = ruleFields(m)
        if let s = m.shadowedBy { o.append(("shadowed_by", .int(Int64(s)))) }
        return .object(o)
    }

    /// A rule found for the port, as the namespace's rule list and a
    /// firewall finding's evidence both begin it.
    static func ruleFields(_ m: PortRuleMatch) -> [(String, JSONValue)] {
        var o: [(String, JSONValue)] = [
            ("table", .string(m.rule.table)), ("chain", .string(m.rule.chain)),
            ("hook", m.hook.map { .string($0) } ?? .null),
        ]
        if let h = m.rule.handle { o.append(("handle", .int(Int64(h)))) }
        o.append(("rule", .string(m.rule.text)))
        if let saved = m.rule.iptablesRule { o.append(("iptables_rule", .string(saved))) }
        if let c = m.rule.comment { o.append(("rule_comment", .string(c))) }
        if let owner = m.rule.owner { o.append(("rule_owner", .string(owner.rawValue))) }
        switch m.rule.verdict {
        case .drop: o.append(("verdict", .string("drop")))
        case .policyDrop: o.append(("verdict", .string("policy_drop")))
        case .reject(let w): o.append(("verdict", .string("reject"))); o.append(("reject_with", .string(w)))
        }
        o.append(("direction", .string(m.direction.rawValue)))
        o.append(("confidence", .string(m.confidence.rawValue)))
        if !m.conditions.isEmpty { o.append(("conditions", .array(m.conditions.map { .string($0) }))) }
        return o
    }

    static func namespaceJSON(_ n: ExplainNamespace, report: ExplainReport) -> JSONValue {
        let i = report.input
        var o: [(String, JSONValue)] = [("netns", .int(Int64(n.inode)))]
        if let name = n.name { o.append(("name", .string(name))) }
        o.append(("host", .bool(n.isHost)))
        o.append(("viewpoint", .bool(n.inode == i.viewpoint)))
        o.append(("processes", .int(Int64(n.processCount))))
        o.append(("listeners", .int(Int64(i.listeners.filter { $0.netns == n.inode }.count))))
        var sys: [(String, JSONValue)] = []
        if let v = n.sysctls.somaxconn { sys.append(("somaxconn", .int(Int64(v)))) }
        if let v = n.sysctls.tcpMaxSynBacklog { sys.append(("tcp_max_syn_backlog", .int(Int64(v)))) }
        if let v = n.sysctls.tcpSyncookies { sys.append(("tcp_syncookies", .int(Int64(v)))) }
        if let v = n.sysctls.tcpAbortOnOverflow { sys.append(("tcp_abort_on_overflow", .int(Int64(v)))) }
        o.append(("sysctls", .object(sys)))
        let counters = ExplainNamespace.overflowCounters.compactMap { k in n.counters[k].map { (k, JSONValue.int(Int64(clamping: $0))) } }
        o.append(("counters", .object(counters)))
        if n.countersAtStart != nil {
            o.append(("counters_delta", .object(n.countersDelta.map { ($0.0, .int(Int64(clamping: $0.1))) })))
        }
        o.append(("sockets_from", .string(n.socketSource)))
        switch n.firewall {
        case .ruleset:
            o.append(("firewall", .object([("checked", .bool(true)),
                                           ("rules", .array((report.firewall[n.inode] ?? []).map(ruleJSON)))])))
        case .unavailable(let why):
            o.append(("firewall", .object([("checked", .bool(false)), ("reason", .string(why))])))
        }
        if !n.problems.isEmpty { o.append(("problems", .array(n.problems.map { .string($0) }))) }
        return .object(o)
    }

    static func recentJSON(_ r: RecentActivity) -> JSONValue {
        var o: [(String, JSONValue)] = [("status", .string(r.status.rawValue))]
        if r.status == .ran || r.status == .failed { o.append(("duration_ms", .int(Int64((r.seconds * 1000).rounded())))) }
        if let d = r.detail { o.append(("reason", .string(d))) }
        if let h = r.hook { o.append(("hook", .string(h))) }
        o.append(("lost", .int(Int64(clamping: r.lost))))
        o.append(("records", .array(r.events.map(\.json))))
        return .object(o)
    }

    // MARK: text

    public static func text(_ r: ExplainReport, maxRecords: Int = 20) -> String {
        let i = r.input
        let esc = TerminalText.escape
        var l: [String] = []
        l.append("synsight explain: TCP port \(i.port), \(RFC3339.format(nanosecondsSinceEpoch: i.ts))")
        l.append("")
        l.append("VERDICT: \(r.status.rawValue.uppercased()) -- \(esc(r.summary))")
        if !r.actions.isEmpty {
            l.append("what to do:")
            for a in r.actions { l.append("  - \(esc(a))") }
        }

        l.append("")
        l.append("listeners")
        if i.listeners.isEmpty { l.append("  none on port \(i.port) (" + namespacesScanned(i.namespaces.count) + ")") }
        for x in i.listeners {
            var head = "  \(x.address)  \(x.family.rawValue)"
            if let v = x.ipv6Only, x.family == .ipv6 { head += v ? "  IPV6_V6ONLY" : "  dual-stack" }
            head += "  \(esc(i.label(x.netns)))"
            l.append(head)
            for p in x.processes {
                var line = "    \(esc(p.comm)) (pid \(p.pid)\(p.exe.map { ", " + esc($0) } ?? "")\(p.workload?.phrase.map { ", " + esc($0) } ?? ""))"
                if p.limitsKnown, let open = p.openFds {
                    line += "  open files \(open) / limit \(p.nofileSoft.map(String.init) ?? "unlimited") (hard \(p.nofileHard.map(String.init) ?? "unlimited"))"
                }
                l.append(line)
            }
            if x.processes.isEmpty { l.append("    (no process holds socket inode \(x.inode))") }
            var q: [String] = []
            if let a = x.acceptQueue, let m = x.maxBacklog {
                q.append("accept queue \(a)/\(m)")
                if let s = i.namespace(x.netns)?.sysctls.somaxconn { q.append("backlog \(m), somaxconn \(s)") }
            }
            if let s = x.synQueue { q.append("SYN queue \(s)") }
            if let d = x.drops { q.append("drops \(d)") }
            if !q.isEmpty { l.append("    " + q.joined(separator: "  ")) }
        }

        l.append("")
        let shown = i.namespaces.filter { n in
            n.inode == i.viewpoint || i.listeners.contains { $0.netns == n.inode } || !(r.firewall[n.inode] ?? []).isEmpty
        }
        l.append("network namespaces (\(i.namespaces.count) scanned, \(shown.count) shown)")
        for n in shown {
            var tags: [String] = []
            if n.inode == i.viewpoint { tags.append("viewpoint") }
            let count = i.listeners.filter { $0.netns == n.inode }.count
            tags.append("\(count) listener\(count == 1 ? "" : "s")")
            l.append("  \(esc(n.label)) [\(tags.joined(separator: ", "))]")
            let s = n.sysctls
            l.append("    somaxconn \(s.somaxconn.map(String.init) ?? "?")  tcp_max_syn_backlog \(s.tcpMaxSynBacklog.map(String.init) ?? "?")"
                + "  tcp_syncookies \(s.tcpSyncookies.map(String.init) ?? "?")  tcp_abort_on_overflow \(s.tcpAbortOnOverflow.map(String.init) ?? "?")")
            let c = ExplainNamespace.overflowCounters.compactMap { k in n.counters[k].map { "\(k) \($0)" } }
            if !c.isEmpty {
                let d = n.countersDelta
                l.append("    " + c.joined(separator: "  ") + (d.isEmpty ? "" : "  (during the trace: " + d.map { "\($0.0) +\($0.1)" }.joined(separator: ", ") + ")"))
            }
            switch n.firewall {
            case .unavailable(let why): l.append("    firewall: not checked (\(esc(why)))")
            case .ruleset:
                let rules = r.firewall[n.inode] ?? []
                if rules.isEmpty { l.append("    firewall: no rule drops or rejects port \(i.port)") }
                for m in rules {
                    l.append("    firewall: \(m.name) \(m.verb) \(m.direction.rawValue) [\(m.confidence.rawValue)"
                        + (m.shadowedBy.map { " by handle \($0)" } ?? "") + "]: \(esc(m.rule.text))")
                }
            }
            if n.socketSource != "sock_diag" { l.append("    sockets read from \(esc(n.socketSource))") }
        }

        l.append("")
        let rec = i.recent
        switch rec.status {
        case .skipped: l.append("recent refusals: not traced (--duration 0)")
        case .unavailable, .failed: l.append("recent refusals: trace \(rec.status.rawValue): \(esc(rec.detail ?? "unknown reason"))")
        case .ran:
            let ev = rec.events
            l.append("recent refusals (\(rec.secondsText) s trace\(rec.hook.map { ", hook \($0)" } ?? "")): \(ev.isEmpty ? "none" : String(ev.count))"
                + (rec.lost > 0 ? ", \(rec.lost) lost" : ""))
            for e in ev.suffix(maxRecords) { l.append("  " + TextFormat.line(e)) }
            if ev.count > maxRecords { l.append("  (\(ev.count - maxRecords) earlier not shown; --json has them all)") }
        }

        l.append("")
        l.append("findings")
        if r.findings.isEmpty { l.append("  none") }
        for f in r.findings {
            l.append("  [\(f.severity.rawValue)] \(f.code): \(esc(f.message))")
            if let rem = f.remediation { l.append("      -> \(esc(rem))") }
        }
        return l.joined(separator: "\n") + "\n"
    }
}
