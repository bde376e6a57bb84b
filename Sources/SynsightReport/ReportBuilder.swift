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

    public init(port: Int, reason: String, cause: String) {
        self.port = port
        self.reason = reason
        self.cause = cause
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
            guard let p = e.port, options.ports.contains(p) else { return false }
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
        var key = ReportGroupKey(port: e.port ?? -1, reason: e.reason ?? e.kind, cause: e.cause ?? "")
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

/// What an experienced engineer does about each reason.
public enum Remediation {
    public static func steps(reason: String, cause: String) -> [String] {
        switch (reason, cause) {
        case ("no_listener", Cause.NoListener.listenerExited.rawValue):
            return ["Find why the service exited (journalctl -u <unit>, dmesg for the OOM killer, the exit signal in the evidence).",
                    "Restart it, and make the supervisor restart it (systemd Restart=on-failure, a liveness probe).",
                    "Keep clients from hammering a dead port: retries with backoff, health-checked load balancing."]
        case ("no_listener", Cause.NoListener.listenerClosed.rawValue):
            return ["The service closed its listening socket: check for a reload or a graceful shutdown that did not finish.",
                    "Restart the service; for zero-downtime reloads hand the socket over (systemd socket activation, SO_REUSEPORT)."]
        case ("no_listener", Cause.NoListener.boundToOtherAddress.rawValue):
            return ["Fix the bind address: listen on 0.0.0.0/:: or the address clients use, not 127.0.0.1 or another interface.",
                    "Check the service's listen/bind setting and restart it; verify with ss -ltnp."]
        case ("no_listener", Cause.NoListener.familyMismatch.rawValue):
            return ["The listener is IPv4-only or IPv6-only: listen on both (:: with net.ipv6.bindv6only=0, or two sockets).",
                    "Or point clients at the family the service listens on (check DNS A/AAAA records)."]
        case ("no_listener", Cause.NoListener.otherNetns.rawValue):
            return ["The service listens in another network namespace (container/pod): publish the port or connect to the namespace's address.",
                    "Check the container's port mapping and the pod's Service/targetPort."]
        case ("no_listener", Cause.NoListener.wrongPort.rawValue):
            return ["The service in that container, pod or namespace listens on another port (named in the evidence): "
                        + "fix the port mapping (docker run -p HOST:CONTAINER, the Service's targetPort) or the service's listen port.",
                    "Verify inside the namespace with nsenter -n -t <pid> ss -ltnp."]
        case ("no_listener", Cause.NoListener.restarting.rawValue):
            return ["The service was restarted and its new process does not listen yet: traffic reaches it before it is ready.",
                    "Route only to ready instances (readiness probe, systemd Type=notify, a health-checked load balancer), "
                        + "and find why the previous process exited (evidence.previous)."]
        case ("no_listener", _):
            return ["Nothing listens on this port: start the service (or its socket unit), or fix the client's port.",
                    "Check that the service's configured port matches what clients use; verify with ss -ltnp."]
        case ("accept_queue_full", _):
            return ["The service does not accept connections fast enough: fix the slow accept loop (blocked event loop, too few workers/threads).",
                    "Raise the listen backlog in the service and net.core.somaxconn (the backlog is capped by it).",
                    "Check for fd exhaustion behind it (EMFILE on accept) and for CPU starvation of the process."]
        case ("syn_queue_full", _):
            return ["Likely a SYN flood or a burst: keep net.ipv4.tcp_syncookies=1.",
                    "Raise net.ipv4.tcp_max_syn_backlog and the listen backlog/net.core.somaxconn.",
                    "If it is an attack, rate-limit SYNs upstream (firewall, load balancer)."]
        case ("firewall_reject", Cause.Firewall.serviceWithoutEndpoints.rawValue),
             ("firewall_drop", Cause.Firewall.serviceWithoutEndpoints.rawValue):
            return ["kube-proxy rejects connections to a Service without ready endpoints (the Service is in the evidence).",
                    "Check its pods and selector: kubectl get endpointslices -l kubernetes.io/service-name=<name>, "
                        + "and why the pods are not ready (kubectl describe pod)."]
        case ("firewall_reject", _), ("firewall_drop", _):
            return ["A firewall rule blocks this traffic: find it (the rule in the evidence; nft list ruleset / iptables -S).",
                    "Change the rule (or add an accept rule before it) for the intended sources, and persist the change.",
                    "Check every layer: host firewall, container/Kubernetes network policy, cloud security groups."]
        case ("lsm_denied", _):
            return ["An LSM (SELinux/AppArmor/Landlock) denied it: read the denial in the evidence (ausearch -m avc).",
                    "For SELinux add the port label: semanage port -a -t <type>_port_t -p tcp <port>.",
                    "Or fix the policy or profile; do not switch enforcement off."]
        case ("address_in_use", _):
            return ["Another process holds the port (see the holder in the evidence; ss -ltnp 'sport = :<port>').",
                    "Stop the old instance or move one service to another port; use SO_REUSEADDR for restarts over TIME_WAIT."]
        case ("privileged_port", _):
            return ["Ports below net.ipv4.ip_unprivileged_port_start need privilege: grant CAP_NET_BIND_SERVICE (systemd AmbientCapabilities).",
                    "Or use a port above 1024 behind a redirect, or lower net.ipv4.ip_unprivileged_port_start."]
        case ("address_not_available", _):
            return ["The bind address is not on this host (yet): fix the configured address, or bind after the network is up.",
                    "For a floating/virtual IP set net.ipv4.ip_nonlocal_bind=1; order the unit after network-online.target."]
        case ("fd_exhausted", _):
            return ["The process ran out of file descriptors: raise its limit (systemd LimitNOFILE=, ulimit -n).",
                    "Look for a descriptor leak (ls /proc/<pid>/fd | wc -l over time); check fs.file-max for ENFILE."]
        case ("ephemeral_ports_exhausted", _):
            return ["The client ran out of local ports: reuse connections (keep-alive, pooling).",
                    "Widen net.ipv4.ip_local_port_range; enable net.ipv4.tcp_tw_reuse for outgoing connections."]
        case ("packet_dropped", let cause):
            return [(DropCause(rawValue: cause) ?? .other).remediation,
                    "Watch it live with sudo synsight trace --port <port>; the evidence names the interface and the kernel function."]
        case ("connect_timeout", Cause.ConnectTimeout.droppedOnHost.rawValue):
            return ["The connection attempts were dropped on this host, not lost on the way: the drop is in evidence.drop "
                        + "(the firewall rule, or the kernel's drop reason, location and interface).",
                    "Fix that drop as its own record says (the firewall_drop or packet_dropped record of the same port, just before)."]
        case ("connect_timeout", _):
            return ["The SYNs left this host (evidence: egress_interface, next_hop, syn_retransmits) and nothing came back: "
                        + "the problem is past this host.",
                    "Check that the route is the intended one (ip route get <destination>); then the path from the next hop on: "
                        + "a firewall or security group dropping, the peer down, or nothing listening there (run synsight on the peer)."]
        case ("reset_by_peer", _):
            return ["The peer reset the connection: check the peer's logs and its own refusals (run synsight there)."]
        default:
            return ["Read the evidence of the most recent record below; run sudo synsight trace --port <port> to watch it live."]
        }
    }
}
