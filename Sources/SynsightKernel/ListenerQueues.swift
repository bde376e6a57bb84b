import Glibc
import Synchronization
import SynsightBase
import SynsightModel
import SynsightNftables

/// Accept-queue length and backlog of every listening TCP socket, in every
/// network namespace, for the per-listener metrics gauges. Read at scrape
/// time (never per packet) on the metrics thread, with explain's namespace
/// walk: `PortState.namespaces()` lists them, `PortState.inside` moves the
/// calling thread into each for a sock_diag dump and back. /proc/<pid>/net/tcp
/// is not used because it lacks the backlog (see `SockDiag`).
public enum ListenerQueues {
    public struct Sample: Sendable {
        public var listeners: [ListenerQueue]
        /// Namespaces that could not be entered or queried.
        public var unreadable: Int
    }

    /// Set if the thread ever failed to return to its own namespace (never
    /// seen): it samples no more, so nothing it does later lands elsewhere.
    static let stuck = Atomic<Bool>(false)

    public static func sample() -> Sample {
        var out: [ListenerQueue] = []
        var unreadable = 0
        for ns in PortState.namespaces() {
            if stuck.load(ordering: .relaxed) { unreadable += 1; continue }
            var found: [ListenerQueue] = []
            var ok = true
            do {
                let entered = try PortState.inside(ns) {
                    for family in [AddressFamily.ipv4, .ipv6] {
                        guard case .success(let sockets) = PortState.diagDump(family: family) else { ok = false; continue }
                        for s in sockets where s.state == SockDiag.stateListen {
                            found.append(ListenerQueue(netns: ns.inode, local: s.local, acceptQueue: s.rqueue,
                                                       maxBacklog: s.wqueue, inode: s.inode))
                        }
                    }
                }
                // A namespace that vanished since it was listed has no listeners.
                if !entered { continue }
            } catch {
                if ProcFS.nsInode("/proc/thread-self/ns/net") != PortState.ownNetns() { stuck.store(true, ordering: .relaxed) }
                ok = false
            }
            out += found
            if !ok { unreadable += 1 }
        }
        return Sample(listeners: out, unreadable: unreadable)
    }
}
