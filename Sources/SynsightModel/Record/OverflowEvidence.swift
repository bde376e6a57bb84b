import SynsightBase
/// The evidence of `accept_queue_full` and `syn_queue_full`
/// (`$defs/evidence_overflow`): the listener's queues when the SYN or ACK was
/// dropped (bpf/overflow.bpf.h), and the accept() failure that explains a
/// full accept queue.
public struct OverflowEvidence: ReasonEvidence {
    public static let reasons: Set<Reason> = [.acceptQueueFull, .synQueueFull, .noRouteBack]

    /// syn or ack (`OverflowStage.name`).
    public var stage: String?
    public var acceptQueue: UInt32?
    public var maxBacklog: UInt32?
    public var synQueue: UInt32?
    /// net.core.somaxconn of the listener's namespace.
    public var somaxconn: Int32?
    /// The listener's drop counter.
    public var listenerDrops: UInt32?
    /// How the queue was read (`OverflowMethod.name`).
    public var method: String?
    /// The ACK was answered with RST (net.ipv4.tcp_abort_on_overflow).
    public var tcpAbortOnOverflow = false
    /// Overflows of the same listener folded into this record by the kernel.
    public var folded: UInt32?
    /// Drops counted from the listener's drop counter, not seen one by one
    /// (method `counter`: the per-SYN program was not attached yet).
    public var countedDrops: UInt32?
    /// Why the client was not looked up, when it was not.
    public var clientLookup: String?
    /// The listener (`ListenerInfo.json`).
    public var listener: JSONValue?
    /// The listener's recent accept() failure (errno name) and its open-file limit.
    public var acceptErrno: String?
    public var nofileLimit: UInt64?
    /// accept_queue_full: what the listener's threads were doing (`ProcessRunState.json`).
    public var listenerState: JSONValue?
    /// accept_queue_full: the CPU limit over the listener and its throttling (`CPUThrottle.json`).
    public var cpuThrottle: JSONValue?
    /// no_route_back: the lookup of the SYN-ACK's route back to the client,
    /// replayed in the listener's namespace (`routeJSON`), or why it is missing.
    public var routeBack: JSONValue?
    public var routeUnavailable: String?
    /// syn_queue_full from the SYN backlog's reserve: net.ipv4.tcp_max_syn_backlog of the listener's namespace.
    public var maxSynBacklog: Int64?

    public init() {}

    public static let layout: [EvidenceField<OverflowEvidence>] = [
        .string(.stage, \.stage), .int(.acceptQueue, \.acceptQueue), .int(.maxBacklog, \.maxBacklog),
        .int(.synQueue, \.synQueue), .int(.somaxconn, \.somaxconn), .int(.listenerDrops, \.listenerDrops),
        .string(.method, \.method), .flag(.tcpAbortOnOverflow, \.tcpAbortOnOverflow, default: false),
        .int(.folded, \.folded), .int(.countedDrops, \.countedDrops), .string(.clientLookup, \.clientLookup), .value(.listener, \.listener),
        .string(.acceptErrno, \.acceptErrno), .int(.nofileLimit, \.nofileLimit), .value(.listenerState, \.listenerState),
        .value(.cpuThrottle, \.cpuThrottle), .value(.routeBack, \.routeBack), .string(.routeUnavailable, \.routeUnavailable),
        .int(.maxSynBacklog, \.maxSynBacklog),
    ]
}

extension Record {
    /// The typed evidence of an `accept_queue_full` or `syn_queue_full` record; nil for any other reason.
    public var overflowEvidence: OverflowEvidence? { evidence(as: OverflowEvidence.self) }
}
