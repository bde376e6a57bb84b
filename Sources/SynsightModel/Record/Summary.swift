import SynsightBase
/// Counts of what a trace saw, for the end-of-trace summary.
public struct TraceSummary: Sendable {
    public struct Key: Hashable, Sendable, Comparable {
        public var port: UInt16
        public var reason: String
        public var cause: String

        public static func < (a: Key, b: Key) -> Bool {
            (a.port, a.reason, a.cause) < (b.port, b.reason, b.cause)
        }
    }

    public private(set) var counts: [Key: UInt64] = [:]
    public private(set) var lost: UInt64 = 0
    public private(set) var undecodable: UInt64 = 0
    public private(set) var total: UInt64 = 0
    /// Records produced but not written out (trace's standard output
    /// failed, record's directory was full or unwritable), and where to.
    public private(set) var unwritten: UInt64 = 0
    public private(set) var unwrittenTarget = ""

    public init() {}

    public mutating func add(_ r: Record) {
        switch r.kind {
        case .lost:
            lost += r.count ?? 0
        default:
            let n = r.kind == .summary ? (r.count ?? 1) : 1
            counts[Key(port: r.port ?? 0, reason: r.reason?.rawValue ?? r.kind.rawValue, cause: r.cause ?? "-"), default: 0] += n
            total += n
        }
    }

    public mutating func addUndecodable(_ n: UInt64 = 1) { undecodable += n }

    public mutating func addUnwritten(_ n: UInt64, target: String) {
        unwritten += n
        unwrittenTarget = target
    }

    /// A short human table.
    public func render(durationSeconds: Double) -> String {
        var lines: [String] = []
        let secs = (durationSeconds * 10).rounded() / 10
        // Two ways to lose something, each named: events the ring buffer
        // dropped before synsight saw them, records it could not write.
        let lostWhere = unwritten > 0 ? " in the ring buffer" : ""
        lines.append("synsight: \(total) event\(total == 1 ? "" : "s") in \(secs)s, \(lost) event\(lost == 1 ? "" : "s") lost\(lostWhere)"
            + (unwritten > 0 ? ", \(unwritten) record\(unwritten == 1 ? "" : "s") not written to \(unwrittenTarget)" : "")
            + (undecodable > 0 ? ", \(undecodable) undecodable record\(undecodable == 1 ? "" : "s")" : ""))
        if !counts.isEmpty {
            lines.append("  " + pad("PORT", 6) + pad("REASON", 27) + pad("CAUSE", 24) + "COUNT")
            for (k, n) in counts.sorted(by: { $0.key < $1.key }) {
                lines.append("  " + pad(String(k.port), 6) + pad(k.reason, 27) + pad(k.cause, 24) + String(n))
            }
        }
        return lines.joined(separator: "\n")
    }

    func pad(_ s: String, _ w: Int) -> String {
        s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count)
    }
}
