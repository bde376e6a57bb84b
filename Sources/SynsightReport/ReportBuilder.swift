import SynsightBase
import SynsightModel
/// Aggregation for `synsight report`. State is bounded whatever the input
/// size: counters per (port, reason, cause) group (at most `maxGroups`), at
/// most `maxTopEntries` distinct processes and clients per group (the rest
/// are counted as "others"), one example record per group (the most recent),
/// and a timeline of at most `maxTimelineBuckets` buckets (the bucket width
/// doubles when a long recording would need more).

public struct ReportOptions: Sendable {
    public var since: Int64?
    public var until: Int64?
    public var ports: Set<Int>
    /// `--node`: hostnames or machine ids; a record matches one of them.
    public var nodes: [String]
    /// `--workload`: units, container names or id prefixes, pods as
    /// `namespace/name`; a record whose process or client matches one.
    public var workloads: [String]

    public init(since: Int64? = nil, until: Int64? = nil, ports: Set<Int> = [], nodes: [String] = [],
                workloads: [String] = []) {
        self.since = since
        self.until = until
        self.ports = ports
        self.nodes = nodes
        self.workloads = workloads
    }
}

/// Event counts saturate at UInt64.max instead of wrapping or trapping: a
/// corrupt or hostile `count` can make a total too large (it is then shown
/// as 18446744073709551615), never smaller than the truth.
extension UInt64 {
    public func saturatingAdd(_ n: UInt64) -> UInt64 {
        let (s, o) = addingReportingOverflow(n)
        return o ? .max : s
    }

    public mutating func saturate(adding n: UInt64) { self = saturatingAdd(n) }
}

extension Sequence where Element == UInt64 {
    public var saturatingSum: UInt64 { reduce(0) { $0.saturatingAdd($1) } }
}

/// Counts per key, holding at most `capacity` keys; later new keys are
/// counted in `others`.
public struct BoundedCounter<Key: Hashable & Sendable>: Sendable {
    public let capacity: Int
    public private(set) var counts: [Key: UInt64] = [:]
    public private(set) var others: UInt64 = 0

    public init(capacity: Int) { self.capacity = capacity }

    public mutating func add(_ key: Key, _ n: UInt64) {
        if let c = counts[key] {
            counts[key] = c.saturatingAdd(n)
        } else if counts.count < capacity {
            counts[key] = n
        } else {
            others = others.saturatingAdd(n)
        }
    }

    /// Keys by count, highest first.
    public func top(_ n: Int, by less: (Key, Key) -> Bool) -> [(Key, UInt64)] {
        Array(counts.sorted { $0.value != $1.value ? $0.value > $1.value : less($0.key, $1.key) }.prefix(n))
    }
}

public struct ReportGroupKey: Hashable, Sendable, Comparable {
    /// -1: records without a port.
    public var port: Int
    public var reason: String
    public var cause: String
    /// The group's reason and cause as typed by the decoder (nil for a group
    /// keyed by kind, or the overflow group): what the fix steps are looked up by.
    public var typedReason: Reason?
    public var typedCause: RecordCause?

    public init(port: Int, reason: String, cause: String) {
        self.port = port
        self.reason = reason
        self.cause = cause
        self.typedReason = Reason(rawValue: reason)
        self.typedCause = cause.isEmpty ? nil : RecordCause(reason: typedReason, rawValue: cause)
    }

    /// The group of a decoded record: its reason (else its kind) and cause.
    init(port: Int, event e: ReportEvent) {
        self.port = port
        self.reason = e.reason?.rawValue ?? e.kind
        self.cause = e.cause?.rawValue ?? ""
        self.typedReason = e.reason?.known
        self.typedCause = e.cause
    }

    public static func < (a: Self, b: Self) -> Bool { (a.port, a.reason, a.cause) < (b.port, b.reason, b.cause) }
}

public struct ReportGroup: Sendable {
    public var key: ReportGroupKey
    public var events: UInt64 = 0
    public var records: UInt64 = 0
    public var first: Int64 = .max
    public var last: Int64 = .min
    public var kinds: BoundedCounter<String>
    public var processes: BoundedCounter<ReportProcess>
    public var clients: BoundedCounter<ReportProcess>
    /// Events per node (shown when the recording has several nodes).
    public var nodes: BoundedCounter<ReportNode>
    /// The most recent record of the group (by `ts`; the later line wins a tie).
    public var latest: ReportEvent?

    package init(key: ReportGroupKey, top: Int) {
        self.key = key
        kinds = BoundedCounter(capacity: 8)
        processes = BoundedCounter(capacity: top)
        clients = BoundedCounter(capacity: top)
        nodes = BoundedCounter(capacity: top)
    }

    /// The group's fix steps, from the advice catalogue, with what all its
    /// events share: the port, and the process when there is only one (the
    /// catalogue writes `<port>`, `<pid>` where it is not known).
    public var steps: [String] {
        var facts = Advice.Facts()
        if key.port >= 0 { facts.port = UInt16(exactly: key.port) }
        if processes.counts.count == 1, processes.others == 0, let p = processes.counts.keys.first {
            facts.pid = UInt32(exactly: p.pid)
        }
        return Advice.for(reason: key.typedReason, cause: key.typedCause, facts: facts).steps
    }
}

public struct ReportTimeline: Sendable {
    public private(set) var bucketSeconds: Int64 = 60
    /// Bucket start (seconds since the epoch) -> reason -> events.
    public private(set) var buckets: [Int64: [String: UInt64]] = [:]
    public let maxBuckets: Int

    package init(maxBuckets: Int) { self.maxBuckets = maxBuckets }

    /// Floor division for b > 0; cannot overflow (Int64.min included).
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a % b < 0 ? a / b - 1 : a / b }

    package mutating func add(ts: Int64, reason: String, _ n: UInt64) {
        let start = Self.floorDiv(Self.floorDiv(ts, 1_000_000_000), bucketSeconds) * bucketSeconds
        buckets[start, default: [:]][reason, default: 0].saturate(adding: n)
        while buckets.count > maxBuckets { coarsen() }
    }

    mutating func coarsen() {
        bucketSeconds *= 2
        var merged: [Int64: [String: UInt64]] = [:]
        for (start, row) in buckets {
            let s = Self.floorDiv(start, bucketSeconds) * bucketSeconds
            for (r, n) in row { merged[s, default: [:]][r, default: 0].saturate(adding: n) }
        }
        buckets = merged
    }

    /// The timeline re-bucketed so it has at most `rows` non-empty rows.
    public func compacted(rows: Int) -> ReportTimeline {
        var t = self
        while t.buckets.count > rows { t.coarsen() }
        return t
    }
}

public struct ReportTotals: Sendable {
    public var files = 0
    /// Lines that were valid records (before filters).
    public var records: UInt64 = 0
    /// Records that passed --since/--until/--port.
    public var matched: UInt64 = 0
    /// Events in matched records (a summary counts its `count`), lost excluded.
    public var events: UInt64 = 0
    /// Sum of the `count` of matched `lost` records.
    public var lost: UInt64 = 0
    public var lostRecords: UInt64 = 0
    public var skippedLines: UInt64 = 0
    public var first: Int64?
    public var last: Int64?
    /// Matched records and events per node (lost events excluded; records
    /// without a node are not counted here).
    public var nodeEvents = BoundedCounter<ReportNode>(capacity: ReportBuilder.maxNodes)
    public var nodeRecords = BoundedCounter<ReportNode>(capacity: ReportBuilder.maxNodes)
}

public struct ReportBuilder: Sendable {
    public static let maxGroups = 4096
    public static let maxTopEntries = 32
    public static let maxTimelineBuckets = 2048
    /// Distinct nodes counted in the totals; more are counted as "others".
    public static let maxNodes = 1024

    public let options: ReportOptions
    public var totals = ReportTotals()
    public private(set) var groups: [ReportGroupKey: ReportGroup] = [:]
    public private(set) var timeline = ReportTimeline(maxBuckets: ReportBuilder.maxTimelineBuckets)
    /// Per-second (at finest) counts for the HTML chart; bounded like `timeline`.
    public private(set) var chart = ReportChartTimeline()
    /// Records whose group was not created because `maxGroups` was reached.
    public private(set) var overflowedGroups: UInt64 = 0

    public init(options: ReportOptions = ReportOptions()) { self.options = options }

    /// Example records held in memory (at most one per group).
    public var retainedExamples: Int { groups.values.reduce(0) { $0 + ($1.latest == nil ? 0 : 1) } }

    /// Parses and adds one line (without its newline). Returns why it was skipped, if it was.
    @discardableResult
    public mutating func add(line: UnsafeBufferPointer<UInt8>) -> ReportLineError? {
        // Validates the whole line but builds only the fields the report reads.
        switch ReportEvent.decode(line: line) {
        case .failure(let e): return e
        case .success(let ev):
            add(ev)
            return nil
        }
    }

    @discardableResult
    public mutating func add(line: String) -> ReportLineError? {
        var s = line
        return s.withUTF8 { add(line: $0) }
    }

    public func matches(_ e: ReportEvent) -> Bool {
        if let since = options.since, e.lastTs < since { return false }
        if let until = options.until, e.firstTs > until { return false }
        if !options.ports.isEmpty, e.kind != RecordKind.lost.rawValue {
            guard [e.port, e.originalPort].contains(where: { $0.map(options.ports.contains) == true })
                || e.proxyPublishedPort.map(options.ports.contains) == true else { return false }
        }
        if !options.nodes.isEmpty {
            guard let n = e.node, options.nodes.contains(where: n.matches) else { return false }
        }
        // Lost records name no process: like --port, --workload keeps them.
        if !options.workloads.isEmpty, e.kind != RecordKind.lost.rawValue {
            let ws = [e.process?.workload, e.client?.workload].compactMap { $0 }
            guard ws.contains(where: { w in options.workloads.contains(where: w.matches) }) else { return false }
        }
        return true
    }

    public mutating func add(_ e: ReportEvent) {
        totals.records += 1
        guard matches(e) else { return }
        totals.matched += 1
        totals.first = min(totals.first ?? e.firstTs, e.firstTs)
        totals.last = max(totals.last ?? e.lastTs, e.lastTs)
        if e.kind == RecordKind.lost.rawValue {
            totals.lost.saturate(adding: e.count)
            totals.lostRecords += 1
            return
        }
        totals.events.saturate(adding: e.count)
        if let n = e.node {
            totals.nodeEvents.add(n, e.count)
            totals.nodeRecords.add(n, 1)
        }
        var key = ReportGroupKey(port: e.port ?? -1, event: e)
        if groups[key] == nil, groups.count >= Self.maxGroups {
            overflowedGroups += 1
            key = ReportGroupKey(port: -1, reason: "(too many groups)", cause: "")
        }
        var g = groups.removeValue(forKey: key) ?? ReportGroup(key: key, top: Self.maxTopEntries)
        g.events.saturate(adding: e.count)
        g.records += 1
        g.first = min(g.first, e.firstTs)
        g.last = max(g.last, e.lastTs)
        g.kinds.add(e.kind, e.count)
        if let p = e.process { g.processes.add(p, e.count) }
        if let c = e.client { g.clients.add(c, e.count) }
        if let n = e.node { g.nodes.add(n, e.count) }
        if let l = g.latest {
            if e.ts >= l.ts { g.latest = e }
        } else {
            g.latest = e
        }
        groups[key] = g
        timeline.add(ts: e.ts, reason: key.reason, e.count)
        chart.add(ts: e.ts, reason: key.reason, e.count)
    }

    /// A sorted snapshot for the formatters.
    public func report() -> Report {
        var byPort: [Int: [ReportGroup]] = [:]
        for g in groups.values { byPort[g.key.port, default: []].append(g) }
        var ports: [Report.Port] = byPort.map { port, gs in
            let sorted = gs.sorted { $0.events != $1.events ? $0.events > $1.events : $0.key < $1.key }
            return Report.Port(port: port, events: gs.reduce(0) { $0.saturatingAdd($1.events) },
                               first: gs.map(\.first).min() ?? 0, last: gs.map(\.last).max() ?? 0, groups: sorted)
        }
        ports.sort { $0.events != $1.events ? $0.events > $1.events : $0.port < $1.port }
        return Report(totals: totals, ports: ports, timeline: timeline, chart: chart, options: options,
                      overflowedGroups: overflowedGroups)
    }
}

public struct Report: Sendable {
    public struct Port: Sendable {
        /// -1: records without a port.
        public var port: Int
        public var events: UInt64
        public var first: Int64
        public var last: Int64
        public var groups: [ReportGroup]
    }

    public var totals: ReportTotals
    public var ports: [Port]
    public var timeline: ReportTimeline
    public var chart: ReportChartTimeline
    public var options: ReportOptions
    public var overflowedGroups: UInt64
}

/// The report's fix steps for a group: the advice catalogue's steps
/// (Advice.swift in SynsightModel), looked up by the group's reason and cause
/// as read from the recording (unknown ones get the general steps).
public enum Remediation {
    public static func steps(reason: String, cause: String) -> [String] {
        let known = Reason(rawValue: reason)
        return Advice.for(reason: known, cause: cause.isEmpty ? nil : RecordCause(reason: known, rawValue: cause)).steps
    }
}
