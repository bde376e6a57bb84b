import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables
import SynsightExplain
import SynsightKernel

/// What `explain` knows about one port, read live from the host: the
/// listeners and request sockets in every network namespace (sock_diag),
/// the processes holding them with their fd limits (/proc), and each
/// namespace's sysctls, TcpExt counters and nftables ruleset. The
/// namespace walk itself is the kernel module's `PortState`.
public enum ExplainSnapshot {
    public struct Gathered: Sendable {
        public var namespaces: [ExplainNamespace]
        public var listeners: [ExplainListener]
        public var notes: [String]
        /// Docker containers that publish the port and are not running.
        public var stoppedPublishers: [DockerPortBinding] = []
        /// Local sockets connecting to the port, their SYN retransmitted (SYN_SENT).
        public var connecting: [ExplainConnecting] = []
        /// Running Docker containers' mappings of the port, with the listeners at their end.
        public var published: [ExplainPublished] = []
        /// Every container binding of the port: Docker's (running or not) and Podman's.
        public var publishers: [DockerPortBinding] = []
    }

    /// Reads everything `explain` needs about `port`. `podLogRoot`: kubelet's
    /// pod log root when not the default (--pod-log-dir).
    public static func gather(port: UInt16, namespaces: [PortState.Namespace], countersAtStart: [UInt32: [String: UInt64]]?,
                              podLogRoot: String? = nil) throws(KernelError) -> Gathered {
        // One probe (it walks /proc for dockerd's data roots) for the workloads and the publishers.
        let sources = WorkloadSources.probe(podLogRoot: podLogRoot)
        let resolver = WorkloadResolver(sources: sources)
        let docker = sources.dockerDataRoots, podman = sources.podmanStorageRoots
        let podmanBindings = podman.isEmpty ? [] : PodmanPortReader(roots: podman, owners: sources.rootlessOwners).bindings()
            .filter { $0.hostPort == port }
        let ends = PublishedEnds(port: port, sources: sources, podman: podmanBindings, resolver: resolver, namespaces: namespaces)
        var (states, sockets, vanished, read) = try PortState.onOwnThread { () throws(KernelError) in
            try readNamespaces(port: port, namespaces: namespaces, countersAtStart: countersAtStart, published: ends)
        }
        var notes: [String] = []
        if !vanished.isEmpty {
            notes.append("network namespace\(vanished.count == 1 ? "" : "s") \(vanished.map(String.init).joined(separator: ", ")) disappeared during the scan")
        }

        // Firewall: each namespace's ruleset, read in-process (libnftables).
        let rules = NftRuleSource(ttlNs: 60_000_000_000, timeoutMs: 10_000)
        for ns in states.indices { rules.pin(netns: states[ns].inode) }
        for i in states.indices {
            switch rules.ruleset(netns: states[i].inode) {
            case .ruleset(let rs):
                states[i].firewall = .ruleset(rs)
                // iptables-legacy tables it could not read: say so rather than report "no rule".
                states[i].problems += rs.legacyUnread
            case .unavailable(let why): states[i].firewall = .unavailable(why)
            }
        }

        // Listeners, their SYN queues, the sockets connecting to the port, and the processes holding them.
        var listeners: [ExplainListener] = []
        var connecting: [ExplainConnecting] = []
        for (ns, found) in sockets {
            let listening = found.filter { $0.state == SockDiag.stateListen }
            let requests = found.filter { $0.state == SockDiag.stateSynRecv && $0.inode == 0 }
            var here = listening.map { s in
                ExplainListener(netns: ns, family: s.family, local: s.local,
                                ipv6Only: s.family == .ipv6 ? s.ipv6Only : nil, inode: s.inode,
                                acceptQueue: s.rqueue, maxBacklog: s.wqueue, synQueue: 0, drops: s.drops,
                                boundDevice: s.boundDevice)
            }
            if states.first(where: { $0.inode == ns })?.socketSource != "sock_diag" {
                // /proc has the accept queue but neither the backlog nor IPV6_V6ONLY.
                for j in here.indices { here[j].maxBacklog = nil; here[j].acceptQueue = nil; here[j].drops = nil }
            }
            Explain.assignSynQueues(&here, requests: requests.map { ($0.family, $0.local) })
            listeners += here
            connecting += found.compactMap { s in
                let phase: ExplainConnecting.Phase
                switch s.state {
                case SockDiag.stateSynSent where s.retransmits > 0: phase = .connecting
                case SockDiag.stateEstablished: phase = .established
                case SockDiag.stateTimeWait: phase = .closed
                default: return nil
                }
                return ExplainConnecting(netns: ns, local: s.local, remote: s.remote, retransmits: s.retransmits, inode: s.inode,
                                         phase: phase)
            }
        }
        var published = read.found
        let inodes = listeners.map(\.inode) + connecting.map(\.inode) + published.flatMap { $0.listeners.map(\.inode) }
        let owners = PortState.socketOwners(Set(inodes.filter { $0 != 0 }))
        var processes: [UInt32: ExplainProcess] = [:]
        let workloads = owners.isEmpty ? nil : resolver
        func holders(_ inode: UInt64) -> [ExplainProcess] {
            (owners[inode] ?? []).sorted().map { pid in
                if let p = processes[pid] { return p }
                var p = process(pid)
                p.workload = workloads?.identity(pid: pid)
                processes[pid] = p
                return p
            }
        }
        for i in listeners.indices { listeners[i].processes = holders(listeners[i].inode) }
        for i in connecting.indices { connecting[i].processes = holders(connecting[i].inode) }
        for i in published.indices {
            for j in published[i].listeners.indices { published[i].listeners[j].processes = holders(published[i].listeners[j].inode) }
        }
        readThrottles(&listeners)
        // A namespace without an `ip netns` name takes the container's or pod's listening in it.
        if let workloads {
            for i in states.indices where states[i].name == nil && !states[i].isHost {
                states[i].name = workloads.netnsName(states[i].inode)
            }
        }
        if geteuid() != 0 { notes.append("not root: sockets, fds and limits of other users' processes may be missing") }
        // Podman's bindings say nothing of running: its running containers' conmon holds the port (explain checks that).
        let publishers = (docker.isEmpty ? [] : DockerPortReader(roots: docker, owners: sources.rootlessOwners).bindings()
            .filter { $0.hostPort == port }) + podmanBindings
        let stopped = publishers.filter { $0.runtime == .podman || !$0.running }
        return Gathered(namespaces: states, listeners: listeners, notes: notes, stoppedPublishers: stopped, connecting: connecting,
                        published: published, publishers: publishers)
    }

    /// The running containers' mappings of the port, whose ends the
    /// namespace walk reads: a running Docker container's by its target
    /// address (the namespace holding it), a running Podman container's
    /// (its binding has no address) in the namespace whose processes'
    /// cgroups name the container (any of them: a pod's bindings are its
    /// infra container's, whose process shares the namespace with the app
    /// containers'), known before the walk. An end whose
    /// namespace's listeners cannot be read is left unjudged (netns nil).
    struct PublishedEnds {
        var found: [ExplainPublished] = []
        /// Podman's: the namespace of its container.
        var knownNetns: [UInt32?] = []

        init(port: UInt16, sources: WorkloadSources, podman: [DockerPortBinding], resolver: WorkloadResolver,
             namespaces: [PortState.Namespace]) {
            for p in PublishedPort.publishing([port], in: sources.dockerPublishedPorts()) {
                guard let target = ExplainSnapshot.endpoint(p.target) else { continue }
                append(ExplainPublished(published: p.published, target: target, netns: nil, listeners: []), in: nil)
            }
            guard !podman.isEmpty else { return }
            for ns in namespaces where !ns.isHost {
                guard let b = Self.podmanBinding(of: ns, podman, resolver) else { continue }
                let host = b.hostIP.isEmpty ? "0.0.0.0" : b.hostIP
                append(ExplainPublished(published: PublishedPort.join(host, String(b.hostPort)),
                                        target: Endpoint(addr: .any4, port: b.containerPort), netns: nil, listeners: []), in: ns.inode)
            }
        }

        /// The Podman binding of a container whose process lives in `ns`
        /// (each container's identity resolved once).
        static func podmanBinding(of ns: PortState.Namespace, _ podman: [DockerPortBinding],
                                  _ resolver: WorkloadResolver) -> DockerPortBinding? {
            var seen: Set<String> = []
            for pid in ns.pids {
                guard let id = resolver.identity(pid: pid)?.container?.id, seen.insert(id).inserted else { continue }
                if let b = podman.first(where: { !$0.id.isEmpty && id.hasPrefix($0.id) }) { return b }
            }
            return nil
        }

        mutating func append(_ p: ExplainPublished, in ns: UInt32?) {
            found.append(p)
            knownNetns.append(ns)
        }

        /// In namespace `ns` (the walk's thread is in it): the ends it holds, with every listener of it.
        mutating func read(in ns: UInt32) {
            var mine = found.indices.filter { knownNetns[$0] == ns }
            let byAddress = found.indices.filter { knownNetns[$0] == nil && found[$0].netns == nil }
            if !byAddress.isEmpty {
                let here = Set(PortState.addressesHere())
                mine += byAddress.filter { here.contains(found[$0].target.addr) }
            }
            guard !mine.isEmpty, let sockets = PortState.listenersHere() else { return }
            for i in mine {
                found[i].netns = ns
                found[i].listeners = ExplainSnapshot.listeners(in: ns, sockets)
            }
        }
    }

    static func listeners(in ns: UInt32, _ sockets: [SockDiag.Socket]) -> [ExplainListener] {
        sockets.sorted { $0.local.port < $1.local.port }.map { s in
            ExplainListener(netns: ns, family: s.family, local: s.local, ipv6Only: s.family == .ipv6 ? s.ipv6Only : nil, inode: s.inode)
        }
    }

    /// "172.17.0.2:80", "[fd00::2]:80".
    static func endpoint(_ text: String) -> Endpoint? {
        guard let port = PublishedPort.port(of: text), let colon = text.lastIndex(of: ":") else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return IPAddress.parse(String(host)).map { Endpoint(addr: $0, port: port) }
    }

    /// Per-namespace reads, on the namespace-hopping thread.
    static func readNamespaces(port: UInt16, namespaces: [PortState.Namespace], countersAtStart: [UInt32: [String: UInt64]]?,
                               published: PublishedEnds)
        throws(KernelError) -> ([ExplainNamespace], [(ns: UInt32, sockets: [SockDiag.Socket])], [UInt32], PublishedEnds) {
        var ends = published
        var states: [ExplainNamespace] = []
        var sockets: [(ns: UInt32, sockets: [SockDiag.Socket])] = []
        var vanished: [UInt32] = []
        for ns in namespaces {
            var state = ExplainNamespace(inode: ns.inode, name: ns.name, isHost: ns.isHost, processCount: ns.processCount)
            let entered = try PortState.inside(ns) {
                let (found, source) = PortState.portSockets(port)
                sockets.append((ns.inode, found))
                state.socketSource = source
                state.sysctls = NetnsSysctls(
                    somaxconn: PortState.sysctl("net/core/somaxconn"),
                    tcpMaxSynBacklog: PortState.sysctl("net/ipv4/tcp_max_syn_backlog"),
                    tcpSyncookies: PortState.sysctl("net/ipv4/tcp_syncookies"),
                    tcpAbortOnOverflow: PortState.sysctl("net/ipv4/tcp_abort_on_overflow"),
                    conntrackCount: PortState.sysctl("net/netfilter/nf_conntrack_count"),
                    conntrackMax: PortState.sysctl("net/netfilter/nf_conntrack_max"))
                if let text = ProcFS.read("/proc/thread-self/net/netstat") {
                    state.counters = ProcText.netstat(text)
                } else {
                    state.problems.append("cannot read /proc/net/netstat")
                }
                state.countersAtStart = countersAtStart?[ns.inode]
                ends.read(in: ns.inode)
            }
            if entered { states.append(state) } else { vanished.append(ns.inode) }
        }
        return (states, sockets, vanished, ends)
    }

    /// The CPU limits over the listeners' processes, read twice
    /// `throttleWindowUs` apart when any has one: throttling is judged on
    /// the moment, not on the cgroup's whole life (CPUThrottleReader).
    static func readThrottles(_ listeners: inout [ExplainListener]) {
        let reader = CPUThrottleReader.host()
        let pids = Set(listeners.flatMap { $0.processes.map(\.pid) })
        let limited = pids.filter { reader.read(pid: $0) != nil }
        guard !limited.isEmpty else { return }
        usleep(throttleWindowUs)
        let now = Dictionary(uniqueKeysWithValues: limited.map { ($0, reader.read(pid: $0)) })
        for i in listeners.indices {
            for j in listeners[i].processes.indices {
                listeners[i].processes[j].cpuThrottle = now[listeners[i].processes[j].pid] ?? nil
            }
        }
    }

    static let throttleWindowUs: UInt32 = 300_000

    static func process(_ pid: UInt32) -> ExplainProcess {
        var p = ExplainProcess(pid: pid, comm: ProcFS.comm(pid) ?? "?", exe: ProcFS.readlink("/proc/\(pid)/exe"))
        if let text = ProcFS.read("/proc/\(pid)/limits"), let lim = ProcText.openFileLimits(text) {
            p.nofileSoft = lim.soft
            p.nofileHard = lim.hard
            p.limitsKnown = true
        }
        p.runState = ProcFS.runState(pid: pid)
        let fds = ProcFS.list("/proc/\(pid)/fd")
        // An empty list is a process that is gone (or unreadable), not one with no fds.
        if !fds.isEmpty { p.openFds = fds.count }
        return p
    }
}
