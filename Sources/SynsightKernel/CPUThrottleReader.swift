import SynsightBase
import SynsightModel

/// A process's CPU bandwidth limit and how often it was throttled
/// (`CPUThrottle`), from the cgroup files: its own cgroup or the nearest
/// ancestor with a quota, in cgroup v2 or in v1's `cpu` hierarchy (hybrid
/// hosts such as Docker's cgroupfs driver on v1 keep the limit there).
///
/// Throttling is judged over a window: the counters of each limited cgroup
/// are kept from one reading to the next (`baselines`), so a listener whose
/// accept queue overflows repeatedly is judged on the last seconds, not on
/// its whole life. Read on the pipeline thread (never the ring-buffer
/// consumer's), or by explain. Not thread-safe.
package final class CPUThrottleReader {
    struct Counters: Hashable {
        var periods: UInt64
        var throttled: UInt64
        var throttledUs: UInt64
    }

    /// The cgroup v2 mount, and the v1 mount carrying the `cpu` controller.
    let v2: MountInfo?
    let v1CPU: MountInfo?
    var baselines: [String: (at: UInt64, counters: Counters)] = [:]

    /// A baseline older than this is replaced after use, so windows stay a
    /// few seconds long; one younger than two periods is too short to judge.
    static let renewAfterNs: UInt64 = 10_000_000_000
    /// Past this window (the service was quiet in between) a throttled period
    /// counts only at CPUThrottle.lifetimeShare of the periods, as on a first reading.
    static let longWindowNs: UInt64 = 60_000_000_000
    static let maxBaselines = 1024

    /// `wholeV2`: a path that opens the whole v2 hierarchy (CgroupRoot),
    /// used before `mountinfo`'s v2 mount, which may be a sub-tree.
    package init(mountinfo: String?, wholeV2: String? = nil) {
        let mounts = MountInfo.parse(mountinfo ?? "")
        v2 = wholeV2.map { MountInfo(root: "/", point: $0, fsType: "cgroup2", superOptions: []) }
            ?? mounts.first { $0.fsType == "cgroup2" }
        v1CPU = mounts.first { $0.fsType == "cgroup" && $0.superOptions.contains("cpu") }
    }

    /// The reader of this host's limits.
    package static func host() -> CPUThrottleReader {
        CPUThrottleReader(mountinfo: ProcFS.read("/proc/self/mountinfo"), wholeV2: CgroupRoot.path)
    }

    /// Where limits are read, for doctor: "cgroup v2 at /sys/fs/cgroup",
    /// "cgroup v1 cpu at /sys/fs/cgroup/cpu"; nil when no hierarchy has the
    /// cpu controller (no limit can be seen).
    package var sources: String? {
        var out: [String] = []
        if let v2, ProcFS.read(v2.point + "/cgroup.controllers", limit: 4096)?.split(whereSeparator: \.isWhitespace).contains("cpu") == true {
            out.append("cgroup v2 at \(v2.point)")
        }
        if let v1CPU { out.append("cgroup v1 cpu at \(v1CPU.point)") }
        return out.isEmpty ? nil : out.joined(separator: " and ")
    }

    /// The limit over `pid` and its throttling; nil when no cgroup of it has
    /// a quota (or the process is gone).
    package func read(pid: UInt32, now: UInt64 = ConditionLock.now()) -> CPUThrottle? {
        guard let lines = ProcFS.read("/proc/\(pid)/cgroup", limit: 16 << 10) else { return nil }
        return read(procCgroup: lines, now: now)
    }

    /// From the text of /proc/<pid>/cgroup: v2's limits first, then v1's.
    package func read(procCgroup: String, now: UInt64) -> CPUThrottle? {
        var found: [CPUThrottle] = []
        for line in procCgroup.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            if f[0] == "0", f[1].isEmpty, let v2 {
                found += limited(path: String(f[2]), in: v2, hierarchy: .v2, now: now)
            } else if f[1].split(separator: ",").contains("cpu"), let v1CPU {
                found += limited(path: String(f[2]), in: v1CPU, hierarchy: .v1, now: now)
            }
        }
        // The deepest limit that throttles, else the deepest limit.
        return found.first(where: \.throttling) ?? found.first
    }

    /// Every cgroup from `path` up to the hierarchy's root that has a quota, deepest first.
    func limited(path: String, in mount: MountInfo, hierarchy: CPUThrottle.Hierarchy, now: UInt64) -> [CPUThrottle] {
        guard let relative = Self.relative(path, to: mount.root) else { return [] }
        var out: [CPUThrottle] = []
        var components = relative.split(separator: "/").map(String.init)
        while !components.isEmpty {
            let below = "/" + components.joined(separator: "/")
            let shown = mount.root == "/" ? below : mount.root + below
            if let t = throttle(dir: mount.point + below, cgroup: shown, hierarchy: hierarchy, now: now) {
                out.append(t)
            }
            components.removeLast()
        }
        return out
    }

    /// `path` below a mount whose root is `root` ("/" for the whole hierarchy).
    static func relative(_ path: String, to root: String) -> String? {
        if root == "/" { return path }
        if path == root { return "/" }
        return path.hasPrefix(root + "/") ? String(path.dropFirst(root.count)) : nil
    }

    func throttle(dir: String, cgroup: String, hierarchy: CPUThrottle.Hierarchy, now: UInt64) -> CPUThrottle? {
        guard let (quota, period) = Self.limit(dir: dir, hierarchy: hierarchy),
              let stat = ProcFS.read(dir + "/cpu.stat", limit: 4096),
              let counters = Self.counters(stat: stat, hierarchy: hierarchy) else { return nil }
        var t = CPUThrottle(cgroup: cgroup, hierarchy: hierarchy, quotaUs: quota, periodUs: period,
                            periods: counters.periods, throttled: counters.throttled,
                            throttledUs: counters.throttledUs, windowNs: nil)
        if let base = baselines[dir], now &- base.at >= 2 * period * 1000, counters.periods >= base.counters.periods {
            t.periods = counters.periods - base.counters.periods
            t.throttled = counters.throttled &- base.counters.throttled
            t.throttledUs = counters.throttledUs &- base.counters.throttledUs
            t.windowNs = now - base.at
            if now - base.at > Self.longWindowNs, Double(t.throttled) < CPUThrottle.lifetimeShare * Double(max(t.periods, 1)) {
                t.throttled = 0  // a throttle minutes ago, rare among the window's periods: not the cause now
            }
        }
        if baselines[dir].map({ now &- $0.at >= Self.renewAfterNs || counters.periods < $0.counters.periods }) ?? true {
            if baselines.count >= Self.maxBaselines { baselines.removeAll(keepingCapacity: true) }
            baselines[dir] = (now, counters)
        }
        return t
    }

    /// (quota, period) in µs when `dir` has a quota: v2 `cpu.max` ("max
    /// 100000" is none), v1 `cpu.cfs_quota_us` (-1 is none) and `cpu.cfs_period_us`.
    static func limit(dir: String, hierarchy: CPUThrottle.Hierarchy) -> (UInt64, UInt64)? {
        switch hierarchy {
        case .v2:
            guard let text = ProcFS.read(dir + "/cpu.max", limit: 256) else { return nil }
            return parseMax(text)
        case .v1:
            guard let q = ProcFS.read(dir + "/cpu.cfs_quota_us", limit: 64).flatMap({ Int64($0.trimmingCharacters(in: " \n")) }), q > 0,
                  let p = ProcFS.read(dir + "/cpu.cfs_period_us", limit: 64).flatMap({ UInt64($0.trimmingCharacters(in: " \n")) }), p > 0
            else { return nil }
            return (UInt64(q), p)
        }
    }

    /// cgroup v2 `cpu.max`: "<quota|max> <period>".
    static func parseMax(_ text: String) -> (UInt64, UInt64)? {
        let f = text.split(whereSeparator: \.isWhitespace)
        guard f.count >= 2, let q = UInt64(f[0]), q > 0, let p = UInt64(f[1]), p > 0 else { return nil }
        return (q, p)
    }

    /// `cpu.stat`: v2 `throttled_usec`, v1 `throttled_time` (ns).
    static func counters(stat: String, hierarchy: CPUThrottle.Hierarchy) -> Counters? {
        var v: [Substring: UInt64] = [:]
        for line in stat.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let n = UInt64(f[1]) { v[f[0]] = n }
        }
        guard let periods = v["nr_periods"], let throttled = v["nr_throttled"] else { return nil }
        let us = hierarchy == .v2 ? v["throttled_usec"] : v["throttled_time"].map { $0 / 1000 }
        return Counters(periods: periods, throttled: throttled, throttledUs: us ?? 0)
    }
}
