import SynsightBase
import SynsightModel
import SynsightNftables
/// The attribution engine: joins kernel events into verdicts. Pure and
/// synchronous; owned by one consumer thread. Everything it knows comes from
/// `seed` (the start-up snapshot) and `ingest` (kernel events in ring order).
///
/// PID semantics (docs/architecture.md): `process` is what the refusal is attributed to
/// (the listener that closed, exited, or listens elsewhere); `client` is the
/// connecting process when it is on this host, taken from its connect() in
/// process context and joined by 4-tuple, never from softirq `current`.

struct ListenerID: Hashable {
    package var netns: UInt32
    package var inode: UInt64
}

struct NetnsPort: Hashable {
    package var netns: UInt32
    package var port: UInt16
}

struct ClosedListener {
    var listener: ListenerInfo
    var closedAt: UInt64
    var closer: TaskInfo
}

struct JoinKey: Hashable {
    package var client: Endpoint
    package var server: Endpoint
}

struct Pending {
    package var record: Record
    /// A `restarting` record's `listener_exited` alternative (`joinClient`),
    /// boxed: nil for nearly every refusal, and a storm moves many Pendings.
    package var exited: ExitedRecord?
    package var deadline: UInt64
    package var serial: UInt64
}

/// A `restarting` record's `listener_exited` alternative, by reference.
package final class ExitedRecord {
    package let record: Record
    init(_ record: Record) { self.record = record }
}

public struct AttributionEngine {
    public let clock: ClockMapping
    /// How long a server-side refusal waits for the local client's side
    /// (connect() failing with ECONNREFUSED) before it is emitted without a
    /// client. The client's RST processing follows within microseconds on
    /// loopback and veth; a remote client never comes.
    public let joinWindowNs: UInt64
    let resolver: (any ProcessResolver)?

    var listeners: [ListenerID: ListenerInfo] = [:]
    var byPort: [UInt16: Set<ListenerID>] = [:]
    /// Listeners of containers and pods, by network namespace (wrong_port).
    var workloadListeners: [UInt32: Set<ListenerID>] = [:]
    var history: [NetnsPort: ClosedListener] = [:]
    var exits: [UInt32: ProcessExit] = [:]
    var exitOrder: [(pid: UInt32, ts: UInt64)] = []
    var pending: [JoinKey: Pending] = [:]
    package var serial: UInt64 = 0
    var earlyClients = ExpiringMap<JoinKey, ConnectError>()
    /// Connect errors just reported, so that the kernel's repeat of one is dropped.
    var repeatedErrors = RepeatedErrorReports()
    /// Refused attempts by 4-tuple and ISN: a SYN retransmitted because its
    /// RST was lost or dropped is refused again, and is not a new refusal.
    /// Only refusals that cross the ring are here (a storm's are folded in
    /// the kernel): 16,384 entries, about 2 MB at most.
    var refusedAttempts = ReportedAttempts<JoinKey>(capacity: 16384)
    /// Refusals and their clients across a destination NAT (NATJoin.swift).
    var natJoin = NATJoinState()
    /// synsight's own (the host's) network namespace: a namespace with a few
    /// listeners on other ports is a container's only when it is not this one.
    public var hostNetns: UInt32?
    /// Firewall REJECT/DROP decisions in progress, and the rule source (FirewallAttribution.swift).
    public var firewall = FirewallState()
    var overflow = OverflowState()
    /// The closure each history entry replaced, so that a LISTEN->CLOSE that
    /// was really a failed listen() can be taken back (undoFailedListen).
    var replacedHistory: [NetnsPort: ClosedListener] = [:]
    /// bind/listen/connect failures: hooks, port-holder lookup, caches (SyscallAttribution.swift).
    public var syscalls = SyscallState()
    /// Handshake segments dropped for other reasons: reason names, symbols (DropAttribution.swift).
    public var drops = DropState()
    /// Timed-out connects waiting for their route record, and the drops that explain them (TimeoutAttribution.swift).
    var timeouts = TimeoutState()
    /// RSTs that refused local clients, with their TTL, waiting for their refusal's record (ResetTTLAttribution.swift).
    var resets = ResetTTLState()
    /// The hook connection errors come from (evidence.hook of client-side failures).
    public var clientErrorHook = ClientErrorHook.stateChange

    /// Bounds on remembered state, so memory does not grow with uptime.
    static let maxExits = 4096
    static let maxHistory = 65536
    static let maxPending = 65536
    static let maxEarlyClients = 16384

    public init(clock: ClockMapping, joinWindowNs: UInt64 = 200_000_000,
                resolver: (any ProcessResolver)? = nil) {
        self.clock = clock
        self.joinWindowNs = joinWindowNs
        self.resolver = resolver
    }

    public var knownListeners: [ListenerInfo] { Array(listeners.values) }
    public var pendingCount: Int { pending.count }

    /// Listeners that existed before tracing started.
    public mutating func seed(_ infos: [ListenerInfo]) {
        for info in infos { add(info) }
    }

    package mutating func add(_ info: ListenerInfo) {
        let id = ListenerID(netns: info.netns, inode: info.socketInode)
        if let old = listeners[id], old.local.port != info.local.port {
            byPort[old.local.port]?.remove(id)
        }
        listeners[id] = info
        byPort[info.local.port, default: []].insert(id)
        if info.workload?.container != nil || info.workload?.pod != nil {
            workloadListeners[info.netns, default: []].insert(id)
        } else {
            forgetWorkloadListener(id)
        }
    }

    mutating func forgetWorkloadListener(_ id: ListenerID) {
        guard workloadListeners[id.netns]?.remove(id) != nil else { return }
        if workloadListeners[id.netns]?.isEmpty == true { workloadListeners[id.netns] = nil }
    }

    /// Feed one kernel event; returns the records that became final.
    public mutating func ingest(_ event: KernelEvent) -> [Record] {
        let records = ingestEvent(event)
        return annotateResets(records)  // a refusal's RST TTL (ResetTTLAttribution.swift)
    }

    mutating func ingestEvent(_ event: KernelEvent) -> [Record] {
        switch event {
        case .socketCall(let s):
            if s.call == .listen && s.errno == 98 { undoFailedListen(s) }
            return ingestSocketCall(s)
        case .listenOverflow(let o):
            return noteHandshakeDrops(ingestOverflow(o))
        case .acceptError(let a):
            return ingestAcceptError(a)
        case .listen(let c):
            exits.removeValue(forKey: c.task.pid)  // a PID that listens again is alive
            var info = ListenerInfo(netns: c.netns, family: c.family, local: c.local, ipv6Only: c.ipv6Only,
                                    socketInode: c.socketInode, pid: c.task.pid, comm: c.task.comm,
                                    exe: resolver?.exe(pid: c.task.pid), since: c.ts,
                                    workload: resolver?.workload(task: c.task), boundDevice: c.boundDevice)
            info.launch = resolver?.launch(pid: c.task.pid)
            add(info)
            return []
        case .listenClose(let c):
            let id = ListenerID(netns: c.netns, inode: c.socketInode)
            let info: ListenerInfo
            if let known = listeners.removeValue(forKey: id) {
                forgetWorkloadListener(id)
                byPort[known.local.port]?.remove(id)
                if byPort[known.local.port]?.isEmpty == true { byPort[known.local.port] = nil }
                info = known
            } else {
                info = ListenerInfo(netns: c.netns, family: c.family, local: c.local, ipv6Only: c.ipv6Only,
                                    socketInode: c.socketInode, pid: c.task.pid, comm: c.task.comm)
            }
            if history.count >= Self.maxHistory, history[NetnsPort(netns: info.netns, port: info.local.port)] == nil {
                // Forget the oldest closure rather than grow without bound.
                if let oldest = history.min(by: { $0.value.closedAt < $1.value.closedAt })?.key {
                    history.removeValue(forKey: oldest)
                }
            }
            let np = NetnsPort(netns: info.netns, port: info.local.port)
            if let old = history.updateValue(ClosedListener(listener: info, closedAt: c.ts, closer: c.task), forKey: np) {
                replacedHistory[np] = old
                if replacedHistory.count > 1024 { replacedHistory.removeAll() }
            }
            return []
        case .exit(let x):
            exits[x.task.pid] = x
            exitOrder.append((x.task.pid, x.ts))
            if exitOrder.count > Self.maxExits {
                let drop = exitOrder.count - Self.maxExits
                // Evict an exit only if it is still the one remembered for
                // that PID (a reused PID may have exited again since).
                for old in exitOrder.prefix(drop) where exits[old.pid]?.ts == old.ts {
                    exits.removeValue(forKey: old.pid)
                }
                exitOrder.removeFirst(drop)
            }
            return []
        case .noSocketReset(let r):
            if refusedAgain(r) { return [] }
            var (record, exited) = attributeRefusal(r)
            // The client connected to the address before DNAT: join on that.
            let key = JoinKey(client: r.remote, server: r.originalDestination ?? r.local)
            if let ce = earlyClients.removeValue(forKey: key), ce.ts &+ joinWindowNs > r.ts {
                joinClient(ce, to: &record, exited: exited)
                return [record] + pruneEarlyClients(now: r.ts)
            }
            if let ce = natEarlyClient(for: r, key: key) {
                joinClient(ce, to: &record, exited: exited)
                applyNAT(&record, clientDestination: ce.remote)
                return [record] + pruneEarlyClients(now: r.ts)
            }
            let expiredClients = pruneEarlyClients(now: r.ts)
            serial += 1
            natJoin.notePending(key)
            if let displaced = pending.updateValue(Pending(record: record, exited: exited, deadline: r.ts + joinWindowNs, serial: serial),
                                                   forKey: key) {
                return expiredClients + [displaced.record]
            }
            var out: [Record] = expiredClients
            if pending.count > Self.maxPending { out = expire(now: UInt64.max, limit: pending.count - Self.maxPending) }
            return out
        case .firewallDrop, .firewallICMP, .synRetransmit:
            return noteHandshakeDrops(ingestFirewall(event))
        case .packetDrop(let d):
            return noteHandshakeDrops(ingestDrop(d))
        case .connectTimeout(let route):
            return ingestConnectTimeout(route)
        case .connectAbandoned(let a):
            return connectAbandoned(a)  // TimeoutAttribution.swift
        case .connectReset(let reset):
            return noteConnectReset(reset)  // ResetTTLAttribution.swift
        case .connectError(let ce) where ce.errno == 110:
            return connectTimedOut(ce)  // TimeoutAttribution.swift
        case .connectError(let ce):
            let key = JoinKey(client: ce.local, server: ce.remote)
            if repeatedErrors.isRepeat(ce, key: key) { return [] }  // the kernel's second report of it
            // The common case of a refusal storm: the server side's
            // no-listener RST is already waiting for this very client. A
            // no-socket RST is not a firewall's, so the firewall's
            // bookkeeping is skipped (it used to remember every such error).
            if ce.errno == 111, firewall.attempts[key] == nil, var p = pending.removeValue(forKey: key) {
                joinClient(ce, to: &p.record, exited: p.exited)
                return [p.record]
            }
            if dropExplains(ce) { return [] }
            if let fw = firewallClientOutcome(ce) { return fw }
            if ce.errno == 104 {
                // Already reported from the server side (the listener's RST)?
                if let t = overflow.recentResets[key], ce.ts >= t, ce.ts - t < 1_000_000_000 { return [] }
                return [clientFailureRecord(ce)]
            }
            // Only ECONNREFUSED answers a no-listener RST; other errors stand alone.
            guard ce.errno == 111 else { return [clientFailureRecord(ce)] }
            if var p = pending.removeValue(forKey: key) {
                joinClient(ce, to: &p.record, exited: p.exited)
                return [p.record]
            }
            if var p = natPendingRefusal(for: ce, key: key) {
                joinClient(ce, to: &p.record, exited: p.exited)
                applyNAT(&p.record, clientDestination: ce.remote)
                return [p.record]
            }
            if case (var p, let seenFrom, let match)? = natMasqueradedRefusal(for: ce) {
                joinClient(ce, to: &p.record, exited: p.exited)
                applyNAT(&p.record, clientDestination: ce.remote, translatedSource: seenFrom, match: match)
                return [p.record]
            }
            // Wait one join window for a server-side RST of this host.
            var out = pruneEarlyClients(now: ce.ts)
            if earlyClients.count >= Self.maxEarlyClients, let old = earlyClients.removeOldest() {
                out.append(clientFailureRecord(old))
            }
            earlyClients.insert(ce, forKey: key, deadline: ce.ts &+ joinWindowNs)
            natJoin.noteEarly(key)
            return out
        }
    }

    /// A SYN retransmitted because its RST was lost or dropped (a
    /// firewall's answer-drop record says where) is refused again: the same
    /// attempt, already reported. Notes the attempt otherwise.
    mutating func refusedAgain(_ r: NoSocketReset) -> Bool {
        guard r.isn != 0 else { return false }
        let attempt = JoinKey(client: r.remote, server: r.local)
        if refusedAttempts.contains(attempt, isn: r.isn, at: r.ts) { return true }
        refusedAttempts.insert(attempt, isn: r.isn, ts: r.ts, now: r.ts)
        return false
    }

    /// inet_csk_listen_start enters LISTEN before it takes the port, so a
    /// listen() failing with EADDRINUSE was seen as LISTEN then CLOSE by the
    /// same process just before the failure: that socket never listened and
    /// must not stand as the port's last listener.
    mutating func undoFailedListen(_ s: SocketCallFailure) {
        let np = NetnsPort(netns: s.netns, port: s.local.port)
        guard let cur = history[np], cur.closer.pid == s.task.pid, cur.listener.pid == s.task.pid,
              s.ts >= cur.closedAt, s.ts - cur.closedAt < 1_000_000_000 else { return }
        if let previous = replacedHistory.removeValue(forKey: np) {
            history[np] = previous
        } else {
            history.removeValue(forKey: np)
        }
    }

    /// The client of a connect() error; nil when its connect() was not seen.
    func clientRef(_ ce: ConnectError) -> ProcessRef? { ce.task.map(processRef) }

    /// A process BPF named (a client, a failing caller): its comm as the
    /// event carried it, its executable and workload from the resolver.
    func processRef(_ t: TaskInfo) -> ProcessRef {
        ProcessRef(pid: t.pid, comm: t.comm, exe: resolver?.exe(pid: t.pid), workload: resolver?.workload(task: t))
    }

    /// Emit refusals whose join window has passed (`now` in kernel boot ns).
    public mutating func expire(now: UInt64) -> [Record] {
        let clients = pruneEarlyClients(now: now)
        let firewall = noteHandshakeDrops(expireFirewall(now: now))
        let out = annotateResets(firewall + expire(now: now, limit: Int.max) + clients + expireTimeouts(now: now))
        expireResets(now: now)
        return out
    }

    /// Refused connects that no server-side RST joined within the window
    /// become client-side records (the server is not on this host).
    mutating func pruneEarlyClients(now: UInt64) -> [Record] {
        guard !earlyClients.isEmpty else { return [] }
        // Oldest first, O(1) amortized (ExpiringMap): this runs per event.
        return earlyClients.expire(now: now).map { clientFailureRecord($0) }
    }

    package mutating func expire(now: UInt64, limit: Int) -> [Record] {
        guard !pending.isEmpty else { return [] }
        var due = pending.filter { $0.value.deadline <= now }.sorted { $0.value.serial < $1.value.serial }
        if due.count > limit { due = Array(due.prefix(limit)) }
        for (k, _) in due { pending.removeValue(forKey: k) }
        return due.map(\.value.record)
    }

    /// Emit everything still waiting (end of tracing).
    public mutating func finish() -> [Record] { expire(now: UInt64.max) }

    // MARK: - Causes

    package func attribute(_ r: NoSocketReset) -> Record { attributeRefusal(r).record }

    /// The refusal's record, and, when it is `restarting`, the
    /// `listener_exited` record that stands if the new process turns out to be the client.
    package func attributeRefusal(_ r: NoSocketReset) -> (record: Record, exited: ExitedRecord?) {
        var record = Record(ts: clock.epoch(r.ts), kind: .refusal, reason: .noListener,
                            port: r.local.port, family: r.family, netns: r.netns,
                            local: r.local, remote: r.remote)
        let port = r.local.port
        let onPort = (byPort[port] ?? []).compactMap { listeners[$0] }
            .sorted { ($0.netns, $0.socketInode) < ($1.netns, $1.socketInode) }
        // Listeners that would have taken this SYN say the registry raced with
        // the kernel (closing right now); they explain nothing.
        let here = onPort.filter { $0.netns == r.netns && !$0.accepts(family: r.family, addr: r.local.addr) }
        // Listeners on the address that the SYN's device kept from taking it.
        let elsewhere = onPort.filter {
            $0.netns == r.netns && $0.accepts(family: r.family, addr: r.local.addr) && !$0.takes(device: r.inDevice, vrf: r.inVRF)
        }
        var evidence = NoListenerEvidence()
        var cause: NoListenerCause
        // What was seen; the hint ends with the catalogue's fix (Advice.swift).
        var situation: String
        var facts = Advice.Facts(port: port, address: r.local.addr, family: r.family)
        // Docker's bindings of the port (cached by the resolver): who publishes it on the host (none elsewhere).
        // Read again after the port's listener was found closed (a container just stopped).
        let publishers = r.netns == hostNetns
            ? resolver?.publishers(port: port, freshSince: history[NetnsPort(netns: r.netns, port: port)]?.closedAt ?? 0) ?? [] : []

        if let l = elsewhere.first {
            record.process = l.process
            evidence.listeners = elsewhere.map(\.json)
            evidence.synDevice = r.inDevice?.json
            evidence.synVRF = r.inVRF?.json
            facts.listenerDevice = l.boundDevice
            facts.synDevice = r.inDevice
            facts.synVRF = r.inVRF
            (cause, situation) = Self.deviceMismatch(l, r)
        } else if !here.isEmpty {
            let sameFamily = here.filter { $0.effectiveFamily == r.family }
            let l = (sameFamily.first ?? here[0])
            record.process = l.process
            evidence.listeners = here.map(\.json)
            if !sameFamily.isEmpty {
                cause = .boundToOtherAddress
                let addrs = sameFamily.map { Endpoint(addr: $0.local.addr, port: port).description }
                situation = "\(l.label) listens on \(addrs.joined(separator: ", ")) only, but the SYN was sent to \(r.local)"
                // docker-proxy, or dockerd's own listener holding the port without it
                // (--userland-proxy=false), or Podman's conmon holding it for its container.
                if let c = Self.holderPublisher(l, publishers, on: sameFamily) {
                    // docker-proxy listens where the container is published: the fix is the publish address.
                    evidence.container = c.json
                    facts.publisher(c)
                    situation = "\(c.phrase) publishes port \(port) on \(c.hostIP) only (\(l.comm) listens there, "
                        + "to its port \(c.containerPort)), but the SYN was sent to \(r.local)"
                }
                if sameFamily.allSatisfy({ $0.local.addr.isLoopback }) {
                    facts.listenerAddress = l.local.addr
                    facts.listenerWorkload = l.workload?.isolationKind
                }
            } else {
                cause = .familyMismatch
                let other = l.effectiveFamily == .ipv6 ? "IPv6" : "IPv4"
                let asked = r.family == .ipv6 ? "IPv6" : "IPv4"
                facts.listenerFamily = l.effectiveFamily
                facts.listenerAddress = l.local.addr
                situation = "\(l.label) listens on \(Endpoint(addr: l.local.addr, port: port)) for \(other) only"
                    // A [::] listener that did not take an IPv4 SYN is IPV6_V6ONLY,
                    // also when the start-up snapshot could not say so.
                    + (l.effectiveFamily == .ipv6 && l.local.addr.isUnspecified && l.ipv6Only != false ? " (IPV6_V6ONLY)" : "")
                    + " but the client used \(asked)"
            }
        } else if let closed = history[NetnsPort(netns: r.netns, port: port)],
                  let c = Self.stoppedPublisher(closed.listener, publishers, synTo: r.local) {
            // The container's forwarding (docker-proxy, dockerd) or reservation (podman, conmon) went with it.
            cause = .publisherStopped
            record.process = closed.listener.process
            evidence.listenedOn = Endpoint(addr: closed.listener.local.addr, port: port).description
            evidence.container = c.json
            facts.publisher(c)
            let role = c.runtime == .podman && c.rootless == nil ? "port reservation" : "port forwarding"
            situation = "nothing listens on port \(port) of the host: \(c.phrase) "
                + "publishes it (\(c.published) to its port \(c.containerPort)), and its \(role) (\(closed.listener.label)) is gone: \(c.how)"
        } else if let closed = history[NetnsPort(netns: r.netns, port: port)] {
            let l = closed.listener
            record.process = l.process
            evidence.listenedOn = Endpoint(addr: l.local.addr, port: port).description
            evidence.closedAt = RFC3339.format(nanosecondsSinceEpoch: clock.epoch(closed.closedAt))
            if closed.closer.pid == 0 {
                // Found closed when needed or by the sweep (no state-change
                // hook): closed_at is when it was noticed, not the close.
                evidence.closedAtExact = false
            }
            if let x = exits[l.pid], x.ts >= (l.since ?? 0) {
                cause = .listenerExited
                evidence.exitedAt = RFC3339.format(nanosecondsSinceEpoch: clock.epoch(x.ts))
                if let sig = x.signal {
                    evidence.signal = Int64(sig)
                    evidence.signalName = Signals.name(sig)
                    evidence.coreDumped = x.coreDumped
                    facts.killedBySignal = true
                    situation = "\(l.label) was killed by \(Signals.name(sig))\(x.coreDumped ? " (core dumped)" : "") and nothing listens on port \(port) since"
                } else {
                    let status = x.status ?? 0
                    evidence.exitStatus = Int64(status)
                    situation = "\(l.label) exited with status \(status) and nothing listens on port \(port) since"
                }
            } else {
                cause = .listenerClosed
                if closed.closer.pid != 0 && closed.closer.pid != l.pid {
                    evidence.closedBy = ProcessRef(pid: closed.closer.pid, comm: closed.closer.comm).json
                }
                situation = "\(l.label) closed its listening socket on port \(port) but is still running"
            }
        } else if let sorted = wrongPortListeners(netns: r.netns, port: port) {
            let l = sorted[0]
            cause = .wrongPort
            record.process = l.process
            evidence.listeners = sorted.prefix(8).map(\.json)
            let ports = Set(sorted.filter { $0.pid == l.pid }.map(\.local.port)).sorted().map(String.init)
            situation = "nothing listens on port \(port) in this namespace, but \(l.label) listens on \(ports.joined(separator: ", ")) only"
        } else if let start = startingWorkload(netns: r.netns, synAt: r.ts) {
            cause = .starting
            record.process = start.process
            evidence.startedAt = RFC3339.format(nanosecondsSinceEpoch: clock.epoch(start.startedAt))
            evidence.startupMs = Int64((r.ts - start.startedAt) / 1_000_000)
            situation = "\(start.process.label) started \(SelfCostFormat.seconds(Double(r.ts - start.startedAt) / 1e9)) before this SYN and nothing "
                + "listens in its namespace yet"
        } else if let l = onPort.first(where: { $0.netns != r.netns }) {
            cause = .otherNetns
            record.process = l.process
            evidence.listeners = onPort.filter { $0.netns != r.netns }.map(\.json)
            situation = "port \(port) listens in network namespace \(l.netns) (\(l.label)), but the SYN arrived in namespace \(r.netns)"
        } else if let (c, why) = Self.publisherCause(publishers, synTo: r.local) {
            cause = why
            evidence.container = c.json
            facts.publisher(c)
            switch why {
            case .publisherStopped:
                situation = "nothing listens on port \(port) of the host: \(c.phrase) publishes it "
                    + "(\(c.published) to its port \(c.containerPort)) but is not running: \(c.how)"
            case .publisherNotForwarded:
                situation = "\(c.phrase) is running and publishes \(c.published) (to its port \(c.containerPort)), "
                    + "but nothing on the host takes the port: Docker's forwarding of it is gone"
            default:
                situation = "\(c.phrase) publishes port \(port) on \(c.hostIP) only (to its port \(c.containerPort)), "
                    + "but the SYN was sent to \(r.local)"
            }
        } else {
            cause = .neverListened
            situation = "nothing has listened on port \(port) in this network namespace since synsight started"
        }
        evidence.hook = r.hook.name
        var exited: ExitedRecord?
        if cause == .listenerExited, let closed = history[NetnsPort(netns: r.netns, port: port)],
           let x = exits[closed.listener.pid], let (next, how) = restart(of: closed.listener, exitedAt: x.ts) {
            // Restarted by its supervisor, not listening yet: the new process is the one to look at.
            // Unless it is the refused client itself (`joinClient`): then this is the record.
            var alternative = record
            finish(&alternative, cause, evidence, facts, situation, r)
            exited = ExitedRecord(alternative)
            cause = .restarting
            evidence.previous = closed.listener.process.json
            if let launch = closed.listener.launch, how == nil {
                evidence.restartedBy = ProcessRef(pid: launch.parent, comm: launch.parentComm, exe: resolver?.exe(pid: launch.parent)).json
            }
            record.process = next
            situation = "\(next.label) has \(how ?? "been started again by \(closed.listener.launch?.parentLabel ?? "its parent")") since "
                + "\(closed.listener.label) exited, but does not listen on port \(port) yet"
        }
        finish(&record, cause, evidence, facts, situation, r)
        return (record, exited)
    }

    /// The process that restarted a listener that exited at `exitedAt`, and
    /// how it is related: "started in the same unit nginx.service" (its
    /// unit, container or pod), or nil when it is the same parent's child
    /// with the same command line (no cgroup groups them).
    func restart(of l: ListenerInfo, exitedAt: UInt64) -> (ProcessRef, String?)? {
        if let w = l.workload, let scope = w.phrase,
           let next = resolver?.successor(of: w, excluding: l.pid, comm: l.comm, startedAfter: exitedAt) {
            return (next, "started in the same \(scope)")
        }
        guard let launch = l.launch,
              let next = resolver?.relaunch(of: launch, excluding: l.pid, comm: l.comm, startedAfter: exitedAt) else { return nil }
        return (next, nil)
    }

    /// The record with its cause, evidence and hint (situation, then the catalogue's fix).
    func finish(_ record: inout Record, _ cause: NoListenerCause, _ evidence: NoListenerEvidence, _ facts: Advice.Facts,
                _ situation: String, _ r: NoSocketReset) {
        var facts = facts
        record.cause = .noListener(cause)
        record.evidence = evidence.fields
        facts.workload = record.process?.workload
        record.hint = situation + ": " + Advice.for(reason: .noListener, cause: record.cause, facts: facts).fix
        // The SYN's own conntrack entry (DNAT in this namespace) names where the client connected to.
        if let o = r.originalDestination { applyNAT(&record, clientDestination: o) }
    }

    /// `record` with its refused client: a `restarting` record whose new
    /// process is that client (the same program in the same unit or pod,
    /// started after the listener exited: a health check, a sidecar) was no
    /// restart, and `exited` (its `listener_exited` record) stands instead.
    func joinClient(_ ce: ConnectError, to record: inout Record, exited: ExitedRecord?) {
        if let exited, let pid = ce.task?.pid, record.process?.pid == pid { record = exited.record }
        record.client = clientRef(ce)
    }
}

extension AttributionEngine {
    /// The running container a forwarding listener holds the port for
    /// (DockerPortBinding.heldBy: docker-proxy, dockerd, podman, conmon and
    /// the rootless forwarders; a Podman container runs while its
    /// reservation is held).
    static func holderPublisher(_ l: ListenerInfo, _ publishers: [DockerPortBinding], on listeners: [ListenerInfo]) -> DockerPortBinding? {
        guard var p = publishers.first(where: { p in
            p.heldBy(l.comm) && (p.running || p.runtime == .podman) && listeners.contains { p.covers($0.local.addr) }
        }) else { return nil }
        p.running = true
        return p
    }

    /// The container, not running now, whose forwarding or reservation the
    /// closed listener was, and that publishes the SYN's address.
    static func stoppedPublisher(_ l: ListenerInfo, _ publishers: [DockerPortBinding], synTo dst: Endpoint) -> DockerPortBinding? {
        publishers.first { $0.heldBy(l.comm) && !$0.running && $0.covers(dst.addr) }
    }

    /// What a Docker container publishing the refused host port says, if
    /// any does: running on the SYN's address, Docker's forwarding of it is
    /// gone (nothing else refuses it there); running on other addresses only,
    /// the client used an address it does not publish on; not running, it
    /// stopped.
    static func publisherCause(_ bindings: [DockerPortBinding], synTo dst: Endpoint) -> (DockerPortBinding, NoListenerCause)? {
        if let c = bindings.first(where: { $0.running && $0.covers(dst.addr) }) { return (c, .publisherNotForwarded) }
        if let c = bindings.first(where: \.running) { return (c, .boundToOtherAddress) }
        if let c = bindings.first(where: { !$0.running }) { return (c, .publisherStopped) }
        return nil
    }

    /// A listener on the SYN's address that its device binding, or the
    /// SYN's VRF, kept from taking it: the cause and what was seen.
    static func deviceMismatch(_ l: ListenerInfo, _ r: NoSocketReset) -> (NoListenerCause, String) {
        let came = (r.inDevice.map { "came in on \($0.label)" } ?? "came in on another device")
            + (r.inVRF.map { " through \($0.label)" } ?? "")
        let at = Endpoint(addr: l.local.addr, port: l.local.port)
        guard let bound = l.boundDevice else {
            return (.otherVRF, "\(l.label) listens on \(at) in the default VRF, but the SYN \(came) "
                        + "and net.ipv4.tcp_l3mdev_accept is 0 in this namespace")
        }
        let what = bound.isVRF ? "in \(bound.label) (bound to it)" : "bound to device \(bound.label) (SO_BINDTODEVICE)"
        let cause: NoListenerCause = bound.isVRF ? .otherVRF : .boundToOtherDevice
        return (cause, "\(l.label) listens on \(at) \(what), but the SYN \(came)")
    }

    /// The most common container mistake: the SYN was sent (or mapped) to
    /// one port, the service in that namespace listens on another. The
    /// listeners of the container or pod owning the namespace; else, for a
    /// namespace other than the host's, its listeners when they are on at
    /// most `maxWrongPortPorts` ports (a container's, not a host's dozens).
    /// Sorted by port; nil when neither applies.
    func wrongPortListeners(netns: UInt32, port: UInt16) -> [ListenerInfo]? {
        let byPort: (ListenerInfo, ListenerInfo) -> Bool = { ($0.local.port, $0.socketInode) < ($1.local.port, $1.socketInode) }
        if let owned = workloadListeners[netns]?.compactMap({ listeners[$0] }), !owned.isEmpty {
            return owned.sorted(by: byPort)
        }
        guard let hostNetns, netns != hostNetns else { return nil }
        let others = listeners.values.filter { $0.netns == netns && $0.local.port != port }.sorted(by: byPort)
        let ports = Set(others.map(\.local.port))
        guard !ports.isEmpty, ports.count <= Self.maxWrongPortPorts else { return nil }
        return others
    }

    static let maxWrongPortPorts = 4

    /// The container or pod living in a namespace other than the host's that
    /// started within `startingWindowNs` before the SYN, when nothing listens
    /// anywhere in that namespace: it is starting, not down.
    func startingWorkload(netns: UInt32, synAt ts: UInt64) -> NamespaceStart? {
        guard let hostNetns, netns != hostNetns, !listeners.values.contains(where: { $0.netns == netns }),
              let start = resolver?.namespaceStart(netns: netns), start.process.workload?.isolationKind != nil,
              start.startedAt <= ts, ts - start.startedAt < NoListenerEvidence.startingWindowNs else { return nil }
        return start
    }
}

