import CSynsightABI
import SynsightBase
import SynsightModel
import SynsightNftables

/// The overflow area's state inside the attribution engine.
struct OverflowState {
    /// Last accept() failure per (netns, listener inode), and per PID for
    /// listeners whose inode was not readable.
    var acceptErrors: [ListenerID: AcceptError] = [:]
    var acceptErrorsByPID: [UInt32: AcceptError] = [:]
    /// ACK-stage resets already reported, so the kfree_skb of the same ACK is not reported twice.
    var recentResets: [JoinKey: UInt64] = [:]
    /// Attempts already reported as no_route_back (their retransmitted SYNs are not new failures).
    var unanswered = ReportedAttempts<JoinKey>(capacity: 4096)

    /// An accept() failure explains overflows for this long afterwards.
    static let acceptErrorValidityNs: UInt64 = 30_000_000_000
}

extension AttributionEngine {
    mutating func ingestAcceptError(_ a: AcceptError) -> [Record] {
        let id = ListenerID(netns: a.netns, inode: a.listenerInode)
        if a.listenerInode != 0 { overflow.acceptErrors[id] = a }
        overflow.acceptErrorsByPID[a.task.pid] = a
        if overflow.acceptErrors.count > 4096 { overflow.acceptErrors.removeAll() }
        if overflow.acceptErrorsByPID.count > 4096 { overflow.acceptErrorsByPID.removeAll() }

        var r = Record(ts: clock.epoch(a.ts), kind: .overflow, reason: .fdExhausted, cause: Cause.FdExhausted(errno: a.errno).map(RecordCause.fdExhausted),
                       port: a.port == 0 ? nil : a.port, netns: a.netns == 0 ? nil : a.netns)
        r.process = ProcessRef(pid: a.task.pid, comm: a.task.comm, exe: resolver?.exe(pid: a.task.pid),
                               workload: resolver?.workload(task: a.task))
        var ev = FdExhaustedEvidence()
        ev.errno = a.errnoName
        ev.nofileLimit = a.nofileLimit
        ev.hook = "accept()/accept4() exit"
        r.evidence = ev.fields
        let situation = a.errno == 24
            ? "\(a.task.comm) (pid \(a.task.pid)) hit its open-file limit (\(a.nofileLimit)): accept() fails with EMFILE and its accept queue cannot drain; "
            : "the system-wide file table is full (ENFILE): "
        r.hint = situation + Advice.for(reason: .fdExhausted, cause: r.cause, facts: Advice.Facts(pid: a.task.pid)).fix
        return [r]
    }

    mutating func ingestOverflow(_ o: ListenOverflow) -> [Record] {
        if o.stage == .synUnanswered { return noRouteBack(o).map { [$0] } ?? [] }
        let key = JoinKey(client: o.remote, server: o.local)
        if o.stage == .ackReset {
            overflow.recentResets[key] = o.ts
            if overflow.recentResets.count > 4096 {
                overflow.recentResets = overflow.recentResets.filter { $0.value + 1_000_000_000 > o.ts }
            }
        } else if o.stage == .ackDrop, let t = overflow.recentResets.removeValue(forKey: key), o.ts - t < 1_000_000_000 {
            return []  // the same ACK, already reported with its RST
        }

        let port = o.local.port
        let listener = listeners[ListenerID(netns: o.netns, inode: o.listenerInode)]
        let acceptError = overflow.acceptErrors[ListenerID(netns: o.netns, inode: o.listenerInode)]
            ?? listener.flatMap { overflow.acceptErrorsByPID[$0.pid] }
        let recentAcceptError = acceptError.flatMap { o.ts >= $0.ts && o.ts - $0.ts < OverflowState.acceptErrorValidityNs ? $0 : nil }

        let kind: RecordKind
        let reason: Reason
        var cause: RecordCause
        switch o.stage {
        case .synAcceptQueue, .ackDrop: kind = .drop; reason = .acceptQueueFull; cause = .acceptQueueFull(.listenerNotAccepting)
        case .ackReset: kind = .refusal; reason = .acceptQueueFull; cause = .acceptQueueFull(.listenerNotAccepting)
        case .synQueueDrop: kind = .drop; reason = .synQueueFull; cause = .synQueueFull(.syncookiesOff)
        case .synCookie: kind = .overflow; reason = .synQueueFull; cause = .synQueueFull(.syncookiesSent)
        case .synUnanswered: return []  // noRouteBack, above
        }
        if reason == .acceptQueueFull, recentAcceptError != nil { cause = .acceptQueueFull(.fdExhausted) }
        let pid = listener?.pid ?? o.listenerPID
        // Why it does not accept: a process that cannot run accepts nothing.
        let state = reason == .acceptQueueFull && pid != 0 ? resolver?.runState(pid: pid) : nil
        if cause == .acceptQueueFull(.listenerNotAccepting), let state, let why = ProcessRunState.cannotRun([state]) {
            cause = .acceptQueueFull(why)
        }
        // Or runs only part of each period: its cgroup is at its CPU limit.
        let throttle = reason == .acceptQueueFull && pid != 0 ? resolver?.cpuThrottle(pid: pid) : nil
        if cause == .acceptQueueFull(.listenerNotAccepting), throttle?.throttling == true {
            cause = .acceptQueueFull(.listenerThrottled)
        }

        // Counted drops (the sweep that arms consume_skb): no SYN was seen, no remote end.
        let counted = o.method == .counter
        var r = Record(ts: clock.epoch(o.ts), kind: kind, reason: reason, cause: cause, port: port,
                       family: o.family, netns: o.netns, local: o.local, remote: counted ? nil : o.remote)
        let comm = listener?.comm ?? recentAcceptError?.task.comm
        r.process = listenerRef(pid: pid, comm: comm, listener: listener)
        r.client = o.client.map(processRef)
        var ev = Self.overflowEvidence(o, listener: listener, acceptError: recentAcceptError)
        ev.listenerState = state?.json
        ev.cpuThrottle = throttle?.json
        r.evidence = ev.fields
        if o.suppressed > 0 { r.count = UInt64(o.suppressed) + 1 }
        if counted && o.counted > 1 { r.count = UInt64(o.counted) }

        let who = pid != 0 ? "\(comm ?? "the listener") (pid \(pid))" : "the listener"
        let capped = o.somaxconn > 0 && UInt32(o.somaxconn) == o.maxBacklog
        // What was seen; the hint ends with the catalogue's fix (Advice.swift).
        let situation: String
        switch (reason, cause) {
        case (.acceptQueueFull, .acceptQueueFull(.fdExhausted)):
            situation = "\(who) cannot accept on port \(port): accept() fails with \(recentAcceptError?.errnoName ?? "EMFILE") (open-file limit \(recentAcceptError?.nofileLimit ?? 0)); "
        case (.acceptQueueFull, .acceptQueueFull(.listenerStopped)):
            situation = "\(who) is stopped (\(state?.summary ?? "every thread stopped")): nothing accepts on port \(port) "
                + "and its accept queue is full (\(o.acceptQueue)/\(o.maxBacklog)): "
        case (.acceptQueueFull, .acceptQueueFull(.listenerBlocked)):
            let wait = state.map { $0.waitChannels.isEmpty ? "" : ", waiting in \($0.waitChannels.joined(separator: ", "))" } ?? ""
            situation = "\(who) is blocked in the kernel (\(state?.summary ?? "uninterruptible sleep")\(wait)): nothing accepts on port \(port) "
                + "and its accept queue is full (\(o.acceptQueue)/\(o.maxBacklog)): "
        case (.acceptQueueFull, .acceptQueueFull(.listenerThrottled)):
            let limit = throttle.map { "\($0.limitPhrase), cgroup \($0.cgroup); \($0.summary)" } ?? "its cgroup's CPU limit"
            situation = "\(who) is throttled at its CPU limit (\(limit)): it accepts too slowly on port \(port) "
                + "and its accept queue is full (\(o.acceptQueue)/\(o.maxBacklog)): "
        case (.acceptQueueFull, _):
            situation = "\(who) is not accepting connections on port \(port) fast enough (accept queue \(o.acceptQueue)/\(o.maxBacklog)): "
        case (.synQueueFull, .synQueueFull(.syncookiesOff)):
            situation = "the SYN queue of port \(port) is full (\(o.synQueue)/\(o.maxBacklog)) and syncookies are off, so SYNs are dropped: "
        default:
            situation = "the SYN queue of port \(port) is full (\(o.synQueue)/\(o.maxBacklog)): syncookies keep connections working, but this is a SYN flood or a backlog too small for the load; "
        }
        var facts = Advice.Facts(port: port, pid: pid != 0 ? pid : nil, somaxconnCap: capped ? o.somaxconn : nil)
        facts.cpuThrottle = throttle
        facts.workload = r.process?.workload
        r.hint = Self.countedNote(o) + situation + Advice.for(reason: reason, cause: cause, facts: facts).fix
        return [r]
    }

    /// The listener of an overflow record (nil for pid 0): the registry's
    /// view of it, else the resolver's; `comm` "?" when neither knows it.
    func listenerRef(pid: UInt32, comm: String?, listener: ListenerInfo?) -> ProcessRef? {
        guard pid != 0 else { return nil }
        return ProcessRef(pid: pid, comm: comm ?? "?", exe: listener?.exe ?? resolver?.exe(pid: pid),
                          workload: listener?.workload ?? resolver?.workload(pid: pid))
    }

    /// How a counted record's drops were known (empty for SYNs seen one by one).
    static func countedNote(_ o: ListenOverflow) -> String {
        guard o.method == .counter else { return "" }
        let n = o.counted == 1 ? "1 SYN was" : "\(o.counted) SYNs were"
        return "\(n) dropped before synsight watched SYNs one by one (counted from the listener's drop counter; "
            + "the clients are unknown): "
    }

    static func overflowEvidence(_ o: ListenOverflow, listener: ListenerInfo?, acceptError: AcceptError?) -> OverflowEvidence {
        var ev = OverflowEvidence()
        ev.stage = o.stage.name
        ev.acceptQueue = o.acceptQueue
        ev.maxBacklog = o.maxBacklog
        ev.synQueue = o.synQueue
        ev.somaxconn = o.somaxconn
        ev.listenerDrops = o.drops
        ev.method = o.method.name
        ev.tcpAbortOnOverflow = o.stage == .ackReset
        if o.suppressed > 0 { ev.folded = o.suppressed }
        if o.method == .counter { ev.countedDrops = max(1, o.counted) }
        if o.client == nil, o.clientNotLookedUp {
            ev.clientLookup = "skipped: this CPU's client lookups for the last 100 ms were spent (overflow storm)"
        }
        ev.listener = listener?.json
        ev.acceptErrno = acceptError?.errnoName
        ev.nofileLimit = acceptError?.nofileLimit
        return ev
    }
}
