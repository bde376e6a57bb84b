import SynsightBase

/// The CPU bandwidth limit (CFS quota) over a listener's process, and how
/// often the kernel throttled it: a container or unit at its CPU limit
/// (`docker run --cpus`, a pod's `resources.limits.cpu`, systemd
/// `CPUQuota=`) is taken off the CPU for the rest of each period once its
/// quota is spent, and a throttled accept loop lets the accept queue fill.
///
/// Read from the cgroup that holds the limit: the process's own cgroup or
/// the nearest ancestor with one (a pod's limit is on the pod's cgroup as
/// well as the container's), in cgroup v2 (`cpu.max`, `cpu.stat`) or v1's
/// `cpu` hierarchy (`cpu.cfs_quota_us`, `cpu.cfs_period_us`, `cpu.stat`).
public struct CPUThrottle: Sendable, Hashable {
    public enum Hierarchy: String, Sendable, Hashable {
        case v2, v1
    }

    /// The limited cgroup, as /proc/<pid>/cgroup spells paths.
    public var cgroup: String
    public var hierarchy: Hierarchy
    /// CPU time allowed per period, and the period, in microseconds.
    public var quotaUs: UInt64
    public var periodUs: UInt64
    /// Over the window: periods in which the cgroup ran, periods that ended
    /// throttled, and the time spent throttled (µs).
    public var periods: UInt64
    public var throttled: UInt64
    public var throttledUs: UInt64
    /// The window the counts cover: since the previous reading (ns), or nil
    /// for the counters' whole life (no earlier reading of this cgroup).
    public var windowNs: UInt64?

    public init(cgroup: String, hierarchy: Hierarchy, quotaUs: UInt64, periodUs: UInt64,
                periods: UInt64, throttled: UInt64, throttledUs: UInt64, windowNs: UInt64?) {
        self.cgroup = cgroup
        self.hierarchy = hierarchy
        self.quotaUs = quotaUs
        self.periodUs = periodUs
        self.periods = periods
        self.throttled = throttled
        self.throttledUs = throttledUs
        self.windowNs = windowNs
    }

    /// Over a window since an earlier reading, any throttled period counts;
    /// over the counters' whole life (the first reading), only a limit hit
    /// in at least `lifetimeShare` of its periods (a service that was
    /// throttled once last week is not throttled now).
    public var throttling: Bool {
        guard throttled > 0 else { return false }
        return windowNs != nil || Double(throttled) >= Self.lifetimeShare * Double(max(periods, 1))
    }

    public static let lifetimeShare = 0.05

    /// The limit in CPUs (quota / period), e.g. 0.5.
    public var cpus: Double { periodUs == 0 ? 0 : Double(quotaUs) / Double(periodUs) }

    /// "0.05 CPU (5 ms per 100 ms period)".
    public var limitPhrase: String {
        "\(Self.decimal(cpus)) CPU (\(Self.duration(quotaUs)) per \(Self.duration(periodUs)) period)"
    }

    /// "throttled in 40 of 52 periods (3.9 s) in the last 5.2 s".
    public var summary: String {
        let span = windowNs.map { "in the last \(Self.duration($0 / 1000))" } ?? "since the limit was set"
        return "throttled in \(throttled) of \(periods) periods (\(Self.duration(throttledUs))) \(span)"
    }

    package var json: JSONValue {
        var o: [(String, JSONValue)] = [
            ("cgroup", .string(cgroup)), ("hierarchy", .string(hierarchy.rawValue)),
            ("quota_us", .int(Int64(quotaUs))), ("period_us", .int(Int64(periodUs))),
            ("periods", .int(Int64(periods))), ("throttled_periods", .int(Int64(throttled))),
            ("throttled_us", .int(Int64(throttledUs))),
        ]
        if let windowNs { o.append(("window_ms", .int(Int64(windowNs / 1_000_000)))) }
        o.append(("throttling", .bool(throttling)))
        return .object(o)
    }

    /// 0.5 -> "0.5", 0.05 -> "0.05", 2 -> "2", 0.0015 -> "0.002" (`places` decimals at most).
    static func decimal(_ v: Double, places: Int = 3) -> String {
        var scale = 1
        for _ in 0..<places { scale *= 10 }
        let t = Int((v * Double(scale)).rounded())
        var frac = String(t % scale)
        frac = String(repeating: "0", count: places - frac.count) + frac
        while frac.hasSuffix("0") { frac.removeLast() }
        return frac.isEmpty ? "\(t / scale)" : "\(t / scale).\(frac)"
    }

    /// 250 -> "250 µs", 1500 -> "1.5 ms", 809514 -> "809.5 ms", 4725758 -> "4.73 s".
    static func duration(_ us: UInt64) -> String {
        if us >= 1_000_000 { return decimal(Double(us) / 1_000_000, places: 2) + " s" }
        if us >= 1000 { return decimal(Double(us) / 1000, places: 1) + " ms" }
        return "\(us) µs"
    }
}
