import Glibc
import SynsightBase
import SynsightModel

/// Network namespace -> its first process (not a pause process) and that
/// process's start, from one walk of /proc (each process's ns/net link and
/// stat). Asked on the pipeline thread only for a refusal in a namespace
/// other than the host's where nothing listens at all; one walk serves every
/// namespace for `ttlNs`, a namespace it did not see (created since) walks
/// again at most every `retryNs`: at most a few walks a second, whatever
/// the refusal rate.
final class NamespaceStarts {
    static let ttlNs: UInt64 = 2_000_000_000
    static let retryNs: UInt64 = 500_000_000
    /// The sandbox process of a Kubernetes pod (and of Podman pods): it
    /// holds the namespace, the containers after it run what listens.
    static let sandboxComms: Set<String> = ["pause", "catatonit"]

    var firsts: [UInt32: (pid: UInt32, ticks: UInt64)] = [:]
    var walkedAt: UInt64?
    lazy var nsPerTick: UInt64 = 1_000_000_000 / UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))

    /// The namespace's first process and its start (boot ns); nil when none was found.
    func first(netns: UInt32, now: UInt64) -> (pid: UInt32, startedAt: UInt64)? {
        let age = walkedAt.map { now &- $0 }
        if age == nil || age! >= Self.ttlNs || (firsts[netns] == nil && age! >= Self.retryNs) {
            walk()
            walkedAt = now
        }
        return firsts[netns].map { ($0.pid, $0.ticks * nsPerTick) }
    }

    func walk() {
        var found: [UInt32: (pid: UInt32, ticks: UInt64)] = [:]
        for pid in ProcFS.pids() {
            guard let ns = ProcFS.nsInode("/proc/\(pid)/ns/net"),
                  let stat = ProcFS.read("/proc/\(pid)/stat", limit: 4096), let ticks = ProcStat.startTicks(stat),
                  found[ns].map({ ticks < $0.ticks }) ?? true,
                  !Self.sandboxComms.contains(ProcFS.comm(pid) ?? "") else { continue }
            found[ns] = (pid, ticks)
        }
        firsts = found
    }
}
