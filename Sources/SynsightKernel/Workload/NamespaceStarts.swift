import Glibc
import SynsightBase
import SynsightModel

/// Network namespace -> its first process (not a pause process) and that
/// process's start, from one walk of /proc (each process's ns/net link and
/// stat). Asked on the pipeline thread only for a refusal in a namespace
/// other than the host's where nothing listens at all; one walk serves every
/// namespace for `ttlNs`; a namespace it did not see (created since) walks
/// again once, `retryNs` after the last walk at the earliest, and is then
/// not looked for again for `ttlNs` (a namespace without processes, as
/// `ip netns add` makes): at most two walks a second, whatever the refusal
/// rate and however many namespaces refuse.
final class NamespaceStarts {
    static let ttlNs: UInt64 = 2_000_000_000
    static let retryNs: UInt64 = 500_000_000
    /// The sandbox process of a Kubernetes pod (and of Podman pods): it
    /// holds the namespace, the containers after it run what listens.
    static let sandboxComms: Set<String> = ["pause", "catatonit"]

    var firsts: [UInt32: (pid: UInt32, ticks: UInt64)] = [:]
    var walkedAt: UInt64?
    /// Namespaces a walk made for them did not find, and when.
    var missed: [UInt32: UInt64] = [:]
    /// synsight's own namespace (the host's): never asked for, so its
    /// processes, most of a host's, cost one readlink each and no stat read.
    lazy var ownNetns = ProcFS.nsInode("/proc/self/ns/net")

    /// The namespace's first process and its start (boot ns); nil when none was found.
    func first(netns: UInt32, now: UInt64) -> (pid: UInt32, startedAt: UInt64)? {
        let age = walkedAt.map { now &- $0 } ?? .max
        if age >= Self.ttlNs {
            walk(now: now)
        } else if firsts[netns] == nil, age >= Self.retryNs, missed[netns].map({ now &- $0 >= Self.ttlNs }) ?? true {
            walk(now: now)
            if firsts[netns] == nil {
                if missed.count >= 1024 { missed.removeAll() }
                missed[netns] = now
            }
        }
        return firsts[netns].map { ($0.pid, $0.ticks * ProcFS.nsPerTick) }
    }

    func walk(now: UInt64) {
        walkedAt = now
        var found: [UInt32: (pid: UInt32, ticks: UInt64)] = [:]
        for pid in ProcFS.pids() {
            guard let ns = ProcFS.nsInode("/proc/\(pid)/ns/net"), ns != ownNetns,
                  let stat = ProcFS.read("/proc/\(pid)/stat", limit: 4096), let ticks = ProcStat.startTicks(stat),
                  found[ns].map({ ticks < $0.ticks }) ?? true,
                  !Self.sandboxComms.contains(ProcFS.comm(pid) ?? "") else { continue }
            found[ns] = (pid, ticks)
        }
        firsts = found
    }
}
