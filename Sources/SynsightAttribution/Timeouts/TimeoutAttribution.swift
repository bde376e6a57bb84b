import SynsightBase
import SynsightModel

/// Timeouts explained (issue 17): a local client's connect() that timed out
/// (ETIMEDOUT) is reported as `connect_failure`/`connect_timeout` with
/// - `dropped_on_host` when a drop record of this host (`firewall_drop`,
///   `packet_dropped`) named the same attempt before the timeout: the record
///   carries that drop (rule, drop reason, location, interface) next to the
///   client and how long it waited. The drop itself was reported at its first
///   occurrence; this is the failure the process saw, tied to it;
/// - `no_answer_past_host` when its SYNs left the host and nothing came
///   back: the route's egress interface and next hop, and how many SYNs were
///   retransmitted, read from the socket at the timeout (bpf/timeouts.bpf.h).
/// Without either (no route record: the kernel lacks inet_sk_error_report,
/// or the record was lost), the client's view stays `unknown`/`timed_out`.
///
/// A connect() its application gave up on while its SYNs went unanswered
/// (ConnectAbandoned: closed in SYN_SENT after a retransmission, no error)
/// is explained the same way, with `abandoned_by` and no errno: most
/// clients give up long before the kernel's ETIMEDOUT.
///
/// The route record and the ETIMEDOUT come from one error report, in either
/// order: the first to arrive waits one join window for the other.

/// A drop record of this host, kept for the timeout of the same attempt.
struct TimeoutDropNote {
    var ts: Int64
    var reason: Reason
    var cause: RecordCause?
    var netns: UInt32?
    var hint: String?
    /// A firewall or kernel drop's evidence fields that say what dropped
    /// it, or a full queue's sizes, as the drop's record wrote them.
    var evidence: [(String, JSONValue)]
    /// A full queue's sizes (`accept_queue_full`, `syn_queue_full`).
    var queues: OverflowEvidence?

    /// The fields of a firewall or kernel drop that are copied.
    static let copied: Set<EvidenceKey> = [
        .table, .chain, .handle, .rule, .ruleComment, .ruleOwner, .service, .chainHook,
        .dropReason, .dropReasonCode, .dropReasonSubsystem, .location, .interface, .ifindex,
        .direction, .segment, .stackHook, .attachPoint, .bpfPrograms, .bpfProgramsUnavailable, .sysctl, .syn, .tcpFlags,
        .rpFilter, .routeBack, .routeLookup, .routeUnavailable, .ctState, .conntrackCount, .conntrackMax,
    ]

    /// Drop records that can explain a timeout: the firewall's, the
    /// kernel's other drops, and a listener's full queue (kind `drop`).
    static let reasons: Set<Reason> = [.firewallDrop, .packetDropped, .acceptQueueFull, .synQueueFull, .noRouteBack]

    init(_ r: Record, reason: Reason) {
        ts = r.ts
        self.reason = reason
        cause = r.cause
        netns = r.netns
        hint = r.hint
        if let o = r.overflowEvidence, reason != .noRouteBack {
            let q = Self.queues(o)
            queues = q
            evidence = q.fields
        } else {
            evidence = r.evidence.filter { EvidenceKey(rawValue: $0.0).map(Self.copied.contains) ?? false }
        }
    }

    /// The queue sizes of a full queue's evidence (what dropped the SYN or ACK), without its listener and method.
    static func queues(_ o: OverflowEvidence) -> OverflowEvidence {
        var q = OverflowEvidence()
        q.stage = o.stage
        q.acceptQueue = o.acceptQueue
        q.maxBacklog = o.maxBacklog
        q.synQueue = o.synQueue
        q.somaxconn = o.somaxconn
        q.listenerDrops = o.listenerDrops
        return q
    }

    /// The segment dropped (`segment`, else a firewall drop's `tcp_flags`): its SYNs, the SYN-ACKs, or the answers.
    var segment: HandshakeSegment {
        if let s = field(.segment).flatMap(HandshakeSegment.init(rawValue:)) { return s }
        return field(.tcpFlags).flatMap { UInt8($0) }.flatMap { HandshakeSegment(tcpFlags: $0) } ?? .syn
    }

    /// What was dropped, for the timeout's hint.
    var droppedText: String {
        switch segment {
        case .synAck: return "the SYN-ACKs coming back"
        case .rst: return "the RSTs refusing it (answering its SYNs)"
        case .icmp: return "the ICMP errors refusing it (answering its SYNs)"
        case .syn, .ack: return "its SYNs"
        }
    }

    func field(_ key: EvidenceKey) -> String? {
        guard let v = evidence.first(where: { $0.0 == key.rawValue })?.1 else { return nil }
        return v.stringValue ?? v.intValue.map(String.init)
    }

    /// "nft rule `tcp dport 80 drop` (table inet filter, chain input)" or
    /// "kernel drop reason ip_rpfilter at ip_rcv_finish_core+0x1c3 on veth0".
    var actor: String {
        if let rule = field(.rule) {
            var where_: [String] = []
            if let t = field(.table) { where_.append("table \(t)") }
            if let c = field(.chain) { where_.append("chain \(c)") }
            return "the firewall rule `\(rule)`" + (where_.isEmpty ? "" : " (\(where_.joined(separator: ", ")))")
        }
        if reason == .noRouteBack {
            return "the listener, which had no route back to it (\(cause?.rawValue ?? "no route")): its SYNs were left unanswered"
        }
        if let q = queues {
            let queue = reason == .synQueueFull ? "SYN queue" : "accept queue"
            return "the listener's full \(queue)" + (q.acceptQueue.map { " (\($0) of \(q.maxBacklog.map(String.init) ?? "?") waiting)" } ?? "")
        }
        if let r = field(.dropReason) {
            return "the kernel (drop reason \(r)" + (field(.location).map { " at \($0)" } ?? "")
                + (field(.interface).map { " on \($0)" } ?? "") + ")"
        }
        return reason == .firewallDrop ? "a firewall rule" : "the kernel"
    }

    var json: JSONValue {
        var f: [(String, JSONValue)] = [("reason", .string(reason.rawValue))]
        if let cause { f.append(("cause", .string(cause.rawValue))) }
        if let netns { f.append(("netns", .int(Int64(netns)))) }
        f.append(("ts", .string(RFC3339.format(nanosecondsSinceEpoch: ts))))
        return .object(f + evidence)
    }
}

/// The engine's timeout state (one stored property of `AttributionEngine`).
public struct TimeoutState {
    /// The latest drop record of each attempt, by 4-tuple.
    var drops: [JoinKey: TimeoutDropNote] = [:]
    /// Route records waiting for their ETIMEDOUT, and ETIMEDOUTs waiting for their route.
    var routes = ExpiringMap<JoinKey, ConnectTimeoutRoute>()
    var waiting = ExpiringMap<JoinKey, ConnectError>()

    static let maxEntries = 16384
    /// A SYN is retransmitted for up to ~130 s (tcp_syn_retries=6).
    static let dropTTL: Int64 = Int64(ReportedAttempts<JoinKey>.ttl)

    public init() {}

    mutating func note(_ d: TimeoutDropNote, key: JoinKey) {
        if drops.count >= Self.maxEntries {
            drops = drops.filter { $0.value.ts + Self.dropTTL > d.ts }
            if drops.count >= Self.maxEntries { drops.removeAll() }
        }
        drops[key] = d
    }

    /// The drop of this attempt seen before `ts` (epoch ns), within a SYN's retry time.
    func drop(_ key: JoinKey, before ts: Int64) -> TimeoutDropNote? {
        guard let d = drops[key], d.ts <= ts, ts - d.ts < Self.dropTTL else { return nil }
        return d
    }
}

extension AttributionEngine {
    /// Remember the drops among `records` (just decided), by attempt.
    mutating func noteHandshakeDrops(_ records: [Record]) -> [Record] {
        for r in records {
            guard r.kind == .drop, let reason = r.reason, TimeoutDropNote.reasons.contains(reason),
                  let local = r.local, let remote = r.remote, let port = r.port else { continue }
            // The server end carries the service port (a SYN's destination, a SYN-ACK's source).
            let note = TimeoutDropNote(r, reason: reason)
            if local.port == port { timeouts.note(note, key: JoinKey(client: remote, server: local)) }
            if remote.port == port { timeouts.note(note, key: JoinKey(client: local, server: remote)) }
        }
        return records
    }

    /// The route record of a timed-out connect().
    mutating func ingestConnectTimeout(_ route: ConnectTimeoutRoute) -> [Record] {
        let key = JoinKey(client: route.local, server: route.remote)
        if let ce = timeouts.waiting.removeValue(forKey: key) {
            return [timeoutRecord(ce, route: ce.netns == route.netns ? route : nil)]
        }
        if timeouts.routes.count >= TimeoutState.maxEntries { _ = timeouts.routes.removeOldest() }
        timeouts.routes.insert(route, forKey: key, deadline: route.ts &+ joinWindowNs)
        return []
    }

    /// A local connect() failed with ETIMEDOUT. A firewall attempt still
    /// waiting for the client's outcome is decided first (as before).
    mutating func connectTimedOut(_ ce: ConnectError) -> [Record] {
        let key = JoinKey(client: ce.local, server: ce.remote)
        let explained: [Record]? = dropExplains(ce) ? [] : firewallClientOutcome(ce)
        let decided = noteHandshakeDrops(explained ?? [])
        // Explained by a drop no longer remembered: reported already, as before.
        if explained != nil, timeouts.drop(key, before: clock.epoch(ce.ts)) == nil { return decided }
        if let route = timeouts.routes.removeValue(forKey: key), route.netns == ce.netns {
            return decided + [timeoutRecord(ce, route: route)]
        }
        if timeouts.waiting.count >= TimeoutState.maxEntries, let old = timeouts.waiting.removeOldest() {
            return decided + [timeoutRecord(old, route: nil)]
        }
        timeouts.waiting.insert(ce, forKey: key, deadline: ce.ts &+ joinWindowNs)
        return decided
    }

    /// A connect() given up by its application, unanswered. A firewall
    /// attempt still waiting for the client's outcome is decided as the
    /// drop the retransmissions said it was; the record carries the route
    /// (one kernel record has both: no join).
    mutating func connectAbandoned(_ a: ConnectAbandoned) -> [Record] {
        let ce = a.attempt
        let key = JoinKey(client: ce.local, server: ce.remote)
        var decided: [Record] = []
        if var attempt = firewall.attempts[key] {
            attempt.client = attempt.client ?? ce.task
            firewall.attempts[key] = attempt
            decided = noteHandshakeDrops(decideFirewall(key, .retransmission, now: ce.ts))
        }
        return decided + [timeoutRecord(ce, route: a.route.netns == ce.netns ? a.route : nil, abandoned: a)]
    }

    /// Timeouts whose route record did not come within the window.
    mutating func expireTimeouts(now: UInt64) -> [Record] {
        if !timeouts.routes.isEmpty { _ = timeouts.routes.expire(now: now) }
        guard !timeouts.waiting.isEmpty else { return [] }
        return timeouts.waiting.expire(now: now).map { timeoutRecord($0, route: nil) }
    }

    /// "3 SYNs" (the first and its retransmissions), "SYNs" without the route record.
    static func synsSent(_ route: ConnectTimeoutRoute?) -> String {
        route.map { "\($0.synRetransmits + 1) SYNs" } ?? "SYNs"
    }

    /// The record of an unanswered connect(): timed out (ETIMEDOUT), or
    /// given up by its application (`abandoned`).
    func timeoutRecord(_ ce: ConnectError, route: ConnectTimeoutRoute?, abandoned: ConnectAbandoned? = nil) -> Record {
        let key = JoinKey(client: ce.local, server: ce.remote)
        let drop = timeouts.drop(key, before: clock.epoch(ce.ts))
        // A loopback egress never left the host: not "past this host" (a
        // local destination, or a NAT's, whose drop, if any, was not joined).
        let pastHost = route?.egress.map { !$0.loopback } ?? false
        guard drop != nil || pastHost else {
            return abandoned.map { abandonedUnexplained($0, route: route) } ?? clientFailureRecord(ce)
        }
        var r = Record(ts: clock.epoch(ce.ts), kind: .connectFailure, reason: .connectTimeout,
                       port: ce.remote.port, family: ce.family, netns: ce.netns, local: ce.local, remote: ce.remote)
        r.process = clientRef(ce)
        let elapsedMs = ce.elapsedMs
        var ev = ConnectTimeoutEvidence()
        ev.afterMs = elapsedMs
        ev.clientSeen = ce.task != nil
        if let abandoned {
            noteAbandonment(abandoned, into: &ev)
        } else {
            ev.errno = ErrnoName.name(ce.errno)
            ev.hook = clientErrorHook.rawValue
        }
        if let route {
            ev.synRetransmits = route.synRetransmits
            if let e = route.egress {
                ev.egressInterface = e.ifname
                ev.ifindex = e.ifindex
                ev.nextHop = e.nextHop
                ev.routeFrom = route.fromLastRetransmit ? "last_retransmit" : "socket"
            }
        }
        let who = ce.clientLabel
        let sent = Self.synsSent(route)
        let outcome = abandoned.map { Self.abandonedText($0, sent: sent) }
            ?? "connect() from \(who) to \(ce.remote) timed out\(elapsedMs.map { " after \($0) ms" } ?? "")"
        if let drop {
            r.cause = .connectTimeout(.droppedOnHost)
            ev.drop = drop.json
            r.hint = outcome + ": \(drop.droppedText) were dropped on this host by "
                + drop.actor + " (the \(drop.reason.rawValue) record at the first drop)" + (drop.hint.map { ": " + $0 } ?? "")
        } else if let e = route?.egress, pastHost {
            r.cause = .connectTimeout(.noAnswerPastHost)
            let via = e.gateway.map { "via gateway \($0)" } ?? "to a directly connected destination"
            let advice = Advice.for(reason: .connectTimeout, cause: r.cause,
                                    facts: Advice.Facts(port: ce.remote.port, address: ce.remote.addr,
                                                        nextHop: e.gateway.map { "\($0)" } ?? e.ifname))
            let unanswered = "\(ce.remote) never answered \(who)'s \(sent), which left this host through \(e.ifname) (ifindex \(e.ifindex)) \(via), "
                + "and nothing on this host dropped them: " + advice.fix
            r.hint = abandoned == nil ? unanswered : outcome + ": " + unanswered
        }
        r.evidence = ev.fields
        return r
    }
}
