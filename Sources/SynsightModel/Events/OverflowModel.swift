import CSynsightABI
import SynsightBase

/// Where in connection setup a listen queue overflowed (enum syn_overflow_stage).
public enum OverflowStage: UInt8, Sendable, CaseIterable {
    case synAcceptQueue = 1
    case synQueueDrop = 2
    case synCookie = 3
    case ackDrop = 4
    case ackReset = 5
    /// The listener dropped the SYN with neither queue full (no route back
    /// for its SYN-ACK, usually): not an overflow (NoRouteBack.swift).
    case synUnanswered = 6

    public var name: String {
        switch self {
        case .synAcceptQueue, .synUnanswered: return "syn"
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
    /// No SYN seen: drops counted from the listener's counter by the sweep
    /// that arms consume_skb (`ListenOverflow.counted`).
    case counter = 8
    /// fexit/tcp_conn_request (beside the fentry) or kretprobe (beside the
    /// kprobe): the listener's drop counter rose during the call and no
    /// request was queued, a SYN left unanswered (`synUnanswered`).
    case connRequestFexit = 10
    case connRequestKretprobe = 11

    public var name: String {
        switch self {
        case .connRequest: return "fentry/tcp_conn_request: queue state as the SYN arrives"
        case .connRequestKprobe: return "kprobe/tcp_conn_request: queue state as the SYN arrives"
        case .synRecvFexit: return "fexit/tcp_v{4,6}_syn_recv_sock: no child socket, accept queue full"
        case .synRecvKretprobe: return "kretprobe/tcp_v{4,6}_syn_recv_sock: no child socket, accept queue full"
        case .consumeSkb: return "tp_btf/consume_skb in tcp_rcv_state_process + listener sk_drops"
        case .kfreeSkb: return "tp_btf/kfree_skb TCP_LISTEN_OVERFLOW"
        case .sendReset: return "tp_btf/tcp_send_reset from the listener (INVALID_SYN)"
        case .counter: return "counter: the listener's sk_drops, read by synsight's sweep while tp_btf/consume_skb was not attached"
        case .connRequestFexit: return "fexit/tcp_conn_request: the listener's drop counter rose, no request queued"
        case .connRequestKretprobe: return "kretprobe/tcp_conn_request: the listener's drop counter rose, no request queued"
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
    /// `.counter` records: how many drops this record counts (0 otherwise).
    /// No SYN was seen, so there is no client and no remote end.
    public var counted: UInt32 = 0
    /// The listener's routing keys, which its SYN-ACK's route lookup takes
    /// (no_route_back replays it with them).
    public var routing: SocketRouting = SocketRouting()

    public init(ts: UInt64, family: AddressFamily, local: Endpoint, remote: Endpoint, client: TaskInfo? = nil,
                clientNotLookedUp: Bool = false, listenerInode: UInt64, netns: UInt32, listenerPID: UInt32 = 0, acceptQueue: UInt32,
                maxBacklog: UInt32, synQueue: UInt32 = 0, drops: UInt32 = 0, somaxconn: Int32 = 4096,
                suppressed: UInt32 = 0, stage: OverflowStage, method: OverflowMethod = .consumeSkb, counted: UInt32 = 0,
                routing: SocketRouting = SocketRouting()) {
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
        self.counted = counted
        self.routing = routing
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
            suppressed: e.suppressed, stage: stage, method: method, counted: e.counted,
            routing: SocketRouting(boundIfindex: e.bound_ifindex, mark: e.mark, uid: e.sk_uid)))
    }
}

