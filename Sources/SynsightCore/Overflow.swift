import CSynsightABI

/// Where in connection setup a listen queue overflowed (enum syn_overflow_stage).
public enum OverflowStage: UInt8, Sendable, CaseIterable {
    case synAcceptQueue = 1
    case synQueueDrop = 2
    case synCookie = 3
    case ackDrop = 4
    case ackReset = 5

    public var name: String {
        switch self {
        case .synAcceptQueue: return "syn"
        case .synQueueDrop: return "syn"
        case .synCookie: return "syn"
        case .ackDrop: return "ack"
        case .ackReset: return "ack"
        }
    }
}

/// How it was seen (enum syn_overflow_method).
public enum OverflowMethod: UInt8, Sendable, CaseIterable {
    case consumeSkb = 1
    case kfreeSkb = 2
    case sendReset = 3
    case connRequest = 4
    case connRequestKprobe = 5
    case synRecvFexit = 6
    case synRecvKretprobe = 7

    public var name: String {
        switch self {
        case .connRequest: return "fentry/tcp_conn_request: queue state as the SYN arrives"
        case .connRequestKprobe: return "kprobe/tcp_conn_request: queue state as the SYN arrives"
        case .synRecvFexit: return "fexit/tcp_v{4,6}_syn_recv_sock: no child socket, accept queue full"
        case .synRecvKretprobe: return "kretprobe/tcp_v{4,6}_syn_recv_sock: no child socket, accept queue full"
        case .consumeSkb: return "tp_btf/consume_skb in tcp_rcv_state_process + listener sk_drops"
        case .kfreeSkb: return "tp_btf/kfree_skb TCP_LISTEN_OVERFLOW"
        case .sendReset: return "tp_btf/tcp_send_reset from the listener (INVALID_SYN)"
        }
    }
}

/// A connection attempt that hit a full listen queue.
public struct ListenOverflow: Sendable, Hashable {
    public var ts: UInt64
    public var family: AddressFamily
    /// The listener's side (destination of the SYN/ACK) and the client.
    public var local: Endpoint
    public var remote: Endpoint
    public var client: TaskInfo?
    /// The kernel did not look for the client: its per-CPU budget of table
    /// walks was spent (an overflow storm; bpf/conntab.bpf.h find_client).
    public var clientNotLookedUp: Bool = false
    public var listenerInode: UInt64
    public var netns: UInt32
    public var listenerPID: UInt32
    public var acceptQueue: UInt32
    public var maxBacklog: UInt32
    public var synQueue: UInt32
    public var drops: UInt32
    public var somaxconn: Int32
    public var suppressed: UInt32
    public var stage: OverflowStage
    public var method: OverflowMethod

    public init(ts: UInt64, family: AddressFamily, local: Endpoint, remote: Endpoint, client: TaskInfo? = nil,
                clientNotLookedUp: Bool = false, listenerInode: UInt64, netns: UInt32, listenerPID: UInt32 = 0, acceptQueue: UInt32,
                maxBacklog: UInt32, synQueue: UInt32 = 0, drops: UInt32 = 0, somaxconn: Int32 = 4096,
                suppressed: UInt32 = 0, stage: OverflowStage, method: OverflowMethod = .consumeSkb) {
        self.ts = ts
        self.family = family
        self.local = local
        self.remote = remote
        self.client = client
        self.clientNotLookedUp = clientNotLookedUp
        self.listenerInode = listenerInode
        self.netns = netns
        self.listenerPID = listenerPID
        self.acceptQueue = acceptQueue
        self.maxBacklog = maxBacklog
        self.synQueue = synQueue
        self.drops = drops
        self.somaxconn = somaxconn
        self.suppressed = suppressed
        self.stage = stage
        self.method = method
    }
}

/// accept() on a listener failed with EMFILE/ENFILE.
public struct AcceptError: Sendable, Hashable {
    public var ts: UInt64
    public var task: TaskInfo
    public var listenerInode: UInt64
    public var netns: UInt32
    /// Positive errno: 24 EMFILE, 23 ENFILE.
    public var errno: Int32
    public var nofileLimit: UInt64
    public var port: UInt16

    public init(ts: UInt64, task: TaskInfo, listenerInode: UInt64, netns: UInt32, errno: Int32,
                nofileLimit: UInt64, port: UInt16) {
        self.ts = ts
        self.task = task
        self.listenerInode = listenerInode
        self.netns = netns
        self.errno = errno
        self.nofileLimit = nofileLimit
        self.port = port
    }

    public var errnoName: String { ErrnoName.name(errno) }
}

extension EventDecoder {
    static let overflowSizes: [UInt32: Int] = [
        SYN_EV_LISTEN_OVERFLOW.rawValue: MemoryLayout<syn_ev_listen_overflow>.size,
        SYN_EV_ACCEPT_ERROR.rawValue: MemoryLayout<syn_ev_accept_error>.size,
    ]

    /// Decodes the overflow area's records (size already checked).
    static func decodeOverflow(kind: UInt32, _ raw: UnsafeRawBufferPointer) throws(DecodeError) -> KernelEvent {
        if kind == SYN_EV_ACCEPT_ERROR.rawValue {
            let e = raw.loadUnaligned(as: syn_ev_accept_error.self)
            return .acceptError(AcceptError(ts: e.hdr.ts_ns, task: task(e.task), listenerInode: e.listener_ino,
                                            netns: e.netns, errno: -e.err, nofileLimit: e.nofile_cur, port: e.port))
        }
        let e = raw.loadUnaligned(as: syn_ev_listen_overflow.self)
        let t = try tuple(e.t)
        guard let stage = OverflowStage(rawValue: e.stage) else { throw .unknownKind(e.stage) }
        guard let method = OverflowMethod(rawValue: e.method) else { throw .unknownHook(e.method) }
        return .listenOverflow(ListenOverflow(
            ts: e.hdr.ts_ns, family: t.family, local: t.local, remote: t.remote,
            client: e.client_found == UInt8(SYN_CLIENT_FOUND.rawValue) ? task(e.client) : nil,
            clientNotLookedUp: e.client_found == UInt8(SYN_CLIENT_NOT_LOOKED_UP.rawValue), listenerInode: e.listener_ino,
            netns: e.netns, listenerPID: e.listener_pid, acceptQueue: e.ack_backlog,
            maxBacklog: e.max_ack_backlog, synQueue: e.syn_qlen, drops: e.drops, somaxconn: e.somaxconn,
            suppressed: e.suppressed, stage: stage, method: method))
    }
}

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
