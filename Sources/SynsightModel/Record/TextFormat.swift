import SynsightBase
/// The human-readable form of a record: one line, untrusted strings escaped.
public enum TextFormat {
    public static func line(_ r: Record) -> String {
        let time = RFC3339.format(nanosecondsSinceEpoch: r.ts)
        // "2026-11-22T03:10:11.123456789Z" -> "03:10:11.123456"
        let clock = String(time.dropFirst(11).prefix(15))
        switch r.kind {
        case .lost:
            return "\(clock)  LOST     \(r.count ?? 0) event(s) lost" + (r.hint.map { ": " + TerminalText.escape($0) } ?? "")
        case .summary:
            // A storm folded by StormAggregator: the last folded event, then how many.
            let kind = r.evidence.first { $0.0 == StormAggregator.summarizedKindKey }?.1.stringValue ?? r.kind.rawValue
            var parts = [clock, kind.uppercased().padding(8)] + describe(r)
            parts.append("… ×\(r.count ?? 0) more in the last \(StormAggregator.defaultWindowNs / 1_000_000_000)s")
            return parts.joined(separator: "  ")
        default:
            var parts = [clock, r.kind.rawValue.uppercased().padding(8)] + describe(r)
            if let hint = r.hint { parts.append("| " + TerminalText.escape(hint)) }
            return parts.joined(separator: "  ")
        }
    }

    /// Port, reason/cause, addresses and processes, untrusted strings escaped.
    static func describe(_ r: Record) -> [String] {
        var parts: [String] = []
        if let port = r.port { parts.append("port \(port)") }
        var why = r.reason?.rawValue ?? "unknown"
        if let cause = r.cause { why += "/" + cause }
        parts.append(why)
        if let remote = r.remote, let local = r.local {
            parts.append("\(remote) -> \(local)")
        } else if let local = r.local {
            parts.append("on \(local)")
        }
        if let name = r.netnsName { parts.append("netns \(TerminalText.escape(name))") }
        if let c = r.client { parts.append("client \(ref(c))") }
        if let p = r.process { parts.append("process \(ref(p))") }
        return parts
    }

    /// `nginx[4410]`, then the workload: `nginx[4410] unit nginx.service`,
    /// `api[77] pod shop/api-7d9f container api`, `httpd[5] container web`.
    static func ref(_ p: ProcessRef) -> String {
        var s = "\(TerminalText.escape(p.comm))[\(p.pid)]"
        if let words = p.workload?.phrase { s += " " + TerminalText.escape(words) }
        return s
    }
}

extension String {
    /// Left-aligned in a column of `width` characters.
    public func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
