import SynsightBase
import SynsightModel
/// `no_route_back`: a listener dropped a SYN with neither of its queues
/// full (`OverflowStage.synUnanswered`). tcp_conn_request drops a SYN past
/// its queue checks when the SYN-ACK cannot be routed back to the client
/// (route_req: no route, an unreachable, prohibit or blackhole route or
/// rule — the host with rp_filter off or loose that lets in SYNs from a
/// network it has no route to), and also when an LSM's inet_conn_request
/// hook refuses it or no memory is left; the kernel only counts it
/// (TcpExtListenDrops, IpOutNoRoutes) and the client times out. The route
/// back, replayed in the listener's namespace when the SYN is decoded
/// (`DropRouteSource.pin(overflow:)`), decides: only a failing lookup (or a
/// reject route) is reported, so a drop counted for another reason in
/// between is never called a routing failure. With a route back, the SYN
/// backlog's reserve (syncookies off) is the next suspect: SynBacklogReserve.swift.

extension AttributionEngine {
    mutating func noRouteBack(_ o: ListenOverflow) -> Record? {
        // The SYN is retransmitted (same 4-tuple) until the client gives up: one record per attempt.
        let attempt = JoinKey(client: o.remote, server: o.local)
        guard !overflow.unanswered.contains(attempt, isn: 0, at: o.ts) else { return nil }
        guard let q = DropRouteQuery.of(routeBack: o), let found = drops.routes?.lookup(q),
              // Found only without the SYN's destination as source: that address is not local (a SYN
              // delivered by a route through lo), not a route missing back.
              let lookup = found.route, !lookup.withoutSource else { return nil }
        guard let cause = Cause.NoRoute.of(lookup), Cause.NoRoute.routeBackCauses.contains(cause) else {
            // A route back: tcp_conn_request's next drop is the SYN backlog's reserve (SynBacklogReserve.swift).
            guard let backlog = found.synBacklog, backlog.reserveRefuses(synQueue: o.synQueue) else { return nil }
            overflow.unanswered.insert(attempt, isn: 0, ts: o.ts, now: o.ts)
            return synBacklogReserve(o, backlog)
        }
        overflow.unanswered.insert(attempt, isn: 0, ts: o.ts, now: o.ts)
        var (r, ev) = unansweredRecord(o, reason: .noRouteBack, cause: .noRoute(cause))
        ev.routeBack = Self.routeJSON(lookup, iifName: nil, oifName: found.boundDevice?.reference)
        if !found.unavailable.isEmpty { ev.routeUnavailable = found.unavailable.joined(separator: "; ") }
        r.evidence = ev.fields
        var facts = Advice.Facts(address: o.remote.addr, family: o.family)
        facts.listenerAddress = o.local.addr
        facts.port = o.local.port
        facts.routeGetKeys = Self.routeGetKeys(q.lookup, device: found.boundDevice)
        r.hint = Self.noRouteBackSituation(o, who: r.process, lookup: lookup, keys: facts.routeGetKeys)
            + Advice.for(reason: .noRouteBack, cause: r.cause, facts: facts).fix
        return r
    }

    /// A drop record for a SYN the listener left unanswered: the listener,
    /// the client and the overflow evidence; the caller adds its own.
    func unansweredRecord(_ o: ListenOverflow, reason: Reason, cause: RecordCause) -> (Record, OverflowEvidence) {
        var r = Record(ts: clock.epoch(o.ts), kind: .drop, reason: reason, cause: cause, port: o.local.port,
                       family: o.family, netns: o.netns, local: o.local, remote: o.remote)
        let listener = listeners[ListenerID(netns: o.netns, inode: o.listenerInode)]
        r.process = listenerRef(pid: listener?.pid ?? o.listenerPID, comm: listener?.comm, listener: listener)
        r.client = o.client.map(processRef)
        return (r, Self.overflowEvidence(o, listener: listener, acceptError: nil))
    }

    /// `keys`: the listener's own lookup keys as `ip route get` takes them
    /// (its bound device, mark, owner), which its SYN-ACK's lookup used.
    static func noRouteBackSituation(_ o: ListenOverflow, who: ProcessRef?, lookup: RouteLookupResult, keys: String) -> String {
        let listener = who.map { "\($0.comm) (pid \($0.pid))" } ?? "the listener"
        let answer: String
        switch lookup.answer {
        case .failed(let e): answer = "answers \(lookup.result) (\(ErrnoName.name(e)))"
        case .route(let route): answer = lookup.isLoopbackReject ? "answers a route through lo (a reject route)" : "answers a \(route.typeName) route"
        }
        return "\(listener) on \(o.local) got a SYN from \(o.remote) and could not answer it: network namespace \(o.netns) "
            + "has no route back to \(o.remote.addr) (`ip route get \(o.remote.addr) from \(o.local.addr)\(keys)` \(answer)), "
            + "so the kernel dropped the SYN without a SYN-ACK or a reset and the client waits until it times out: "
    }
}
