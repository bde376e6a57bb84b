import SynsightBase
/// Keeps a storm of identical events from flooding a log: per key (kind,
/// reason, cause, port, netns, attributed process), at most `perKeyPerWindow`
/// records per second pass individually; the rest of that second is folded
/// into one `summary` record with `count`, `first_ts`, `last_ts` and the last
/// folded event as the example. Counts are never lost: every folded event is
/// in exactly one summary.
public struct StormAggregator {
    package struct Key: Hashable {
        package var kind: RecordKind
        package var reason: Reason?
        package var cause: String?
        package var port: UInt16?
        package var netns: UInt32?
        package var pid: UInt32?
    }

    struct Bucket {
        var windowStart: Int64
        var passed: Int
        package var folded: UInt64 = 0
        package var firstTs: Int64 = 0
        package var lastTs: Int64 = 0
        var example: Record?
    }

    /// The evidence field naming the kind of the folded events.
    public static let summarizedKindKey = "summarized_kind"
    /// One second: what `record --aggregate` and `trace --fold` count in.
    public static let defaultWindowNs: Int64 = 1_000_000_000

    public let perKeyPerWindow: Int
    public let windowNs: Int64
    var buckets: [Key: Bucket] = [:]
    /// Distinct keys tracked at once; beyond it records pass unaggregated.
    static let maxKeys = 65536

    public init(perKeyPerWindow: Int, windowNs: Int64 = StormAggregator.defaultWindowNs) {
        self.perKeyPerWindow = max(1, perKeyPerWindow)
        self.windowNs = windowNs
    }

    public var trackedKeys: Int { buckets.count }

    public mutating func add(_ r: Record) -> [Record] {
        if r.kind == .lost || r.kind == .summary { return [r] }
        let key = Key(kind: r.kind, reason: r.reason, cause: r.cause, port: r.port, netns: r.netns, pid: r.process?.pid)
        var out: [Record] = []
        guard var b = buckets[key] else {
            if buckets.count >= Self.maxKeys { return [r] }
            buckets[key] = Bucket(windowStart: r.ts, passed: 1)
            return [r]
        }
        if r.ts - b.windowStart >= windowNs {
            if let s = summary(b) { out.append(s) }
            b = Bucket(windowStart: r.ts, passed: 0)
        }
        if b.passed < perKeyPerWindow {
            b.passed += 1
            out.append(r)
        } else {
            if b.folded == 0 { b.firstTs = r.ts }
            b.folded += 1
            b.lastTs = r.ts
            b.example = r
        }
        buckets[key] = b
        return out
    }

    /// Summaries of windows that ended before `nowEpochNs`; their keys are forgotten.
    public mutating func expire(nowEpochNs: Int64) -> [Record] {
        var out: [Record] = []
        for (k, b) in buckets where nowEpochNs - b.windowStart >= windowNs {
            if let s = summary(b) { out.append(s) }
            buckets.removeValue(forKey: k)
        }
        return out.sorted { $0.ts < $1.ts }
    }

    public mutating func finish() -> [Record] { expire(nowEpochNs: Int64.max) }

    func summary(_ b: Bucket) -> Record? {
        guard b.folded > 0, var s = b.example else { return nil }
        s.evidence.append((Self.summarizedKindKey, .string(s.kind.rawValue)))
        s.kind = .summary
        s.ts = b.lastTs
        s.count = b.folded
        s.firstTs = b.firstTs
        s.lastTs = b.lastTs
        return s
    }
}
