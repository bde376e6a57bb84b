import Glibc
import SynsightBase
import SynsightModel

/// Network namespace -> its first process (not a pause process) and that
/// process's start, from one walk of /proc (each process's ns/net link and
/// stat). Asked on the pipeline thread only for a refusal in a namespace
/// other than the host's where nothing listens at all; one walk serves every
/// namespace for `ttlNs`. A namespace it did not see (created since) walks
/// again once, and is then not looked for again for `ttlNs` (a namespace
/// without processes, as `ip netns add` makes). That second look is a full
/// walk when the last one is `retryNs` old; sooner, it reads only the
/// processes the last walks did not see (a new namespace's processes are
/// new: a container's init, an `unshare`), at most `newWalkBudget` times
/// between full walks — so a container that starts moments after another
/// namespace's refusal walked /proc is still found, and the cost stays
/// bounded whatever the refusal rate and however many namespaces refuse.
final class NamespaceStarts {
    static let ttlNs: UInt64 = 2_000_000_000
    static let retryNs: UInt64 = 500_000_000
    static let newWalkBudget = 8
    /// The sandbox process of a Kubernetes pod (and of Podman pods): it
    /// holds the namespace, the containers after it run what listens.
    static let sandboxComms: Set<String> = ["pause", "catatonit"]

    var firsts: [UInt32: (pid: UInt32, ticks: UInt64)] = [:]
    var walkedAt: UInt64?
    /// The processes the walks since the last full one looked at.
    var seen: Set<UInt32> = []
    /// Walks of new processes since the last full walk.
    var newWalks = 0
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
        } else if firsts[netns] == nil, missed[netns].map({ now &- $0 >= Self.ttlNs }) ?? true {
            if age >= Self.retryNs {
                walk(now: now)
            } else if !walkNew() {
                return nil  // over budget: not marked missed, so a later refusal looks again
            }
            if firsts[netns] == nil {
                if missed.count >= 1024 { missed.removeAll() }
                missed[netns] = now
            }
        }
        return firsts[netns].map { ($0.pid, $0.ticks * ProcFS.nsPerTick) }
    }

    func walk(now: UInt64) {
        walkedAt = now
        firsts = [:]
        seen = []
        newWalks = 0
        visit(ProcFS.pids())
    }

    /// Looks at the processes no walk since the last full one saw; false
    /// when the budget until the next full walk is spent.
    func walkNew() -> Bool {
        guard newWalks < Self.newWalkBudget else { return false }
        newWalks += 1
        visit(ProcFS.pids().filter { !seen.contains($0) })
        return true
    }

    func visit(_ pids: [UInt32]) {
        for pid in pids {
            seen.insert(pid)
            guard let ns = ProcFS.nsInode("/proc/\(pid)/ns/net"), ns != ownNetns,
                  let stat = ProcFS.read("/proc/\(pid)/stat", limit: 4096), let ticks = ProcStat.startTicks(stat),
                  firsts[ns].map({ ticks < $0.ticks }) ?? true,
                  !Self.sandboxComms.contains(ProcFS.comm(pid) ?? "") else { continue }
            firsts[ns] = (pid, ticks)
        }
    }
}
