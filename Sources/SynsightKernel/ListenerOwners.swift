import Synchronization
import SynsightModel

/// The workload holding each listening socket, for the listener gauges'
/// `workload` label. Read on the metrics thread at scrape time: a socket's
/// owner is looked up (a walk of /proc/<pid>/fd, `PortState.socketOwners`)
/// only when its inode is new, and remembered while the socket exists, so
/// a steady set of listeners costs no /proc walk per scrape.
public final class ListenerOwners: Sendable {
    struct State {
        let resolver: WorkloadResolver
        /// Socket inode -> its holder's workload (nil: none found).
        var known: [UInt64: WorkloadIdentity?] = [:]
    }

    let state: Mutex<State>

    public init(sources: WorkloadSources = .probe()) {
        state = Mutex(State(resolver: WorkloadResolver(sources: sources)))
    }

    /// Sets `workload` on every listener whose holder is known.
    public func annotate(_ listeners: inout [ListenerQueue]) {
        state.withLock { s in
            let present = Set(listeners.map(\.inode).filter { $0 != 0 })
            s.known = s.known.filter { present.contains($0.key) }
            let new = present.subtracting(s.known.keys)
            if !new.isEmpty {
                let owners = PortState.socketOwners(new)
                for inode in new {
                    s.known[inode] = owners[inode]?.min().flatMap { s.resolver.identity(pid: $0) }
                }
            }
            for i in listeners.indices where listeners[i].inode != 0 {
                listeners[i].workload = s.known[listeners[i].inode] ?? nil
            }
        }
    }
}
