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

        var r = Record(ts: clock.epoch(a.ts), kind: .overflow, reason: .fdExhausted, cause: Cause.FdExhausted(errno: a.errno)?.rawValue,
                       port: a.port == 0 ? nil : a.port, netns: a.netns == 0 ? nil : a.netns)
        r.process = ProcessRef(pid: a.task.pid, comm: a.task.comm, exe: resolver?.exe(pid: a.task.pid),
                               workload: resolver?.workload(task: a.task))
        r.evidence = [("errno", .string(a.errnoName)), ("nofile_limit", .int(Int64(clamping: a.nofileLimit))),
                      ("hook", .string("accept()/accept4() exit"))]
        r.hint = a.errno == 24
            ? "\(a.task.comm) (pid \(a.task.pid)) hit its open-file limit (\(a.nofileLimit)): accept() fails with EMFILE and its accept queue cannot drain; raise LimitNOFILE / ulimit -n, or find the fd leak (ls /proc/\(a.task.pid)/fd | wc -l)"
            : "the system-wide file table is full (ENFILE): raise fs.file-max, or find the process leaking files"
        return [r]
    }

    mutating func ingestOverflow(_ o: ListenOverflow) -> [Record] {
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
        var cause: String
        switch o.stage {
        case .synAcceptQueue, .ackDrop: kind = .drop; reason = .acceptQueueFull; cause = Cause.AcceptQueueFull.listenerNotAccepting.rawValue
        case .ackReset: kind = .refusal; reason = .acceptQueueFull; cause = Cause.AcceptQueueFull.listenerNotAccepting.rawValue
        case .synQueueDrop: kind = .drop; reason = .synQueueFull; cause = Cause.SynQueueFull.syncookiesOff.rawValue
        case .synCookie: kind = .overflow; reason = .synQueueFull; cause = Cause.SynQueueFull.syncookiesSent.rawValue
        }
        if reason == .acceptQueueFull, recentAcceptError != nil { cause = Cause.AcceptQueueFull.fdExhausted.rawValue }

        var r = Record(ts: clock.epoch(o.ts), kind: kind, reason: reason, cause: cause, port: port,
                       family: o.family, netns: o.netns, local: o.local, remote: o.remote)
        let pid = listener?.pid ?? o.listenerPID
        let comm = listener?.comm ?? recentAcceptError?.task.comm
        if pid != 0 {
            r.process = ProcessRef(pid: pid, comm: comm ?? "?", exe: listener?.exe ?? resolver?.exe(pid: pid),
                                   workload: listener?.workload ?? resolver?.workload(pid: pid))
        }
        if let c = o.client {
            r.client = ProcessRef(pid: c.pid, comm: c.comm, exe: resolver?.exe(pid: c.pid),
                                  workload: resolver?.workload(task: c))
        }
        var ev: [(String, JSONValue)] = [
            ("stage", .string(o.stage.name)),
            ("accept_queue", .int(Int64(o.acceptQueue))),
            ("max_backlog", .int(Int64(o.maxBacklog))),
            ("syn_queue", .int(Int64(o.synQueue))),
            ("somaxconn", .int(Int64(o.somaxconn))),
            ("listener_drops", .int(Int64(o.drops))),
            ("method", .string(o.method.name)),
        ]
        if o.stage == .ackReset { ev.append(("tcp_abort_on_overflow", .bool(true))) }
        if o.suppressed > 0 { ev.append(("folded", .int(Int64(o.suppressed)))) }
        if o.client == nil, o.clientNotLookedUp {
            ev.append(("client_lookup", .string("skipped: this CPU's client lookups for the last 100 ms were spent (overflow storm)")))
        }
        if let l = listener { ev.append(("listener", l.json)) }
        if let a = recentAcceptError {
            ev.append(("accept_errno", .string(a.errnoName)))
            ev.append(("nofile_limit", .int(Int64(clamping: a.nofileLimit))))
        }
        r.evidence = ev
        if o.suppressed > 0 { r.count = UInt64(o.suppressed) + 1 }

        let who = pid != 0 ? "\(comm ?? "the listener") (pid \(pid))" : "the listener"
        let capped = o.somaxconn > 0 && UInt32(o.somaxconn) == o.maxBacklog
        switch (reason, cause) {
        case (.acceptQueueFull, Cause.AcceptQueueFull.fdExhausted.rawValue):
            r.hint = "\(who) cannot accept on port \(port): accept() fails with \(recentAcceptError?.errnoName ?? "EMFILE") (open-file limit \(recentAcceptError?.nofileLimit ?? 0)); raise LimitNOFILE / ulimit -n or fix the fd leak"
        case (.acceptQueueFull, _):
            r.hint = "\(who) is not accepting connections on port \(port) fast enough (accept queue \(o.acceptQueue)/\(o.maxBacklog)): "
                + "speed up or add workers to its accept loop, and raise the listen() backlog"
                + (capped ? " and net.core.somaxconn (the backlog is capped at somaxconn \(o.somaxconn))" : "")
        case (.synQueueFull, Cause.SynQueueFull.syncookiesOff.rawValue):
            r.hint = "the SYN queue of port \(port) is full (\(o.synQueue)/\(o.maxBacklog)) and syncookies are off, so SYNs are dropped: "
                + "enable net.ipv4.tcp_syncookies=1, raise the listen() backlog and net.ipv4.tcp_max_syn_backlog, and look for a SYN flood or clients that never finish the handshake"
        default:
            r.hint = "the SYN queue of port \(port) is full (\(o.synQueue)/\(o.maxBacklog)): syncookies keep connections working, but this is a SYN flood or a backlog too small for the load; raise the listen() backlog"
        }
        return [r]
    }
}
