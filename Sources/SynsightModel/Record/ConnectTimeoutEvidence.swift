import SynsightBase
/// The evidence of `connect_timeout` (`$defs/reason_connect_timeout`): the
/// local connect() that timed out (or that its application gave up on,
/// unanswered), the route its SYNs left by (read at the outcome,
/// bpf/timeouts.bpf.h), and the drop record of this host that named the
/// same attempt before it (TimeoutAttribution.swift).
public struct ConnectTimeoutEvidence: ReasonEvidence {
    public static let reasons: Set<Reason> = [.connectTimeout]

    /// ETIMEDOUT; nil when the application gave up (`abandonedBy`): no error was reported.
    public var errno: String?
    /// `ConnectAbandoned.By`: the application closed the socket while it
    /// was still connecting, or its process exited.
    public var abandonedBy: String?
    /// The process that closed it, when not the client itself.
    public var closedBy: JSONValue?
    /// false when synsight did not see the connect() (ConnectError.task
    /// nil): no process, no `afterMs`.
    public var clientSeen = true
    /// Milliseconds from connect() to the timeout (or to the close: the application's own timeout).
    public var afterMs: Int64?
    /// The kernel hook that saw the error (`ClientErrorHook`).
    public var hook: String?
    /// SYNs sent again after the first.
    public var synRetransmits: UInt32?
    /// The route's device, its index and next hop.
    public var egressInterface: String?
    public var ifindex: UInt32?
    public var nextHop: String?
    /// "socket" or "last_retransmit".
    public var routeFrom: String?
    /// The drop record (reason, cause, netns, ts, and the drop's own
    /// evidence fields that say what dropped it), kept as that record wrote them.
    public var drop: JSONValue?

    public init() {}

    public static let layout: [EvidenceField<ConnectTimeoutEvidence>] = [
        .string(.errno, \.errno), .string(.abandonedBy, \.abandonedBy), .value(.closedBy, \.closedBy),
        .int(.afterMs, \.afterMs), .string(.hook, \.hook),
        .int(.synRetransmits, \.synRetransmits), .string(.egressInterface, \.egressInterface),
        .int(.ifindex, \.ifindex), .string(.nextHop, \.nextHop), .string(.routeFrom, \.routeFrom),
        .value(.drop, \.drop), .flag(.clientSeen, \.clientSeen, default: true),
    ]
}

extension Record {
    /// The typed evidence of a `connect_timeout` record; nil for any other reason.
    public var connectTimeoutEvidence: ConnectTimeoutEvidence? { evidence(as: ConnectTimeoutEvidence.self) }
}
