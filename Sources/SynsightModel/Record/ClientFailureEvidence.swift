import SynsightBase
/// The evidence of a local connect() that failed and that no server-side
/// event on this host explains: `reset_by_peer` and `unknown`
/// (`$defs/evidence_client_failure`). ClientFailure.swift fills it;
/// ResetTTLAttribution.swift adds `reset` to a refusal whose RST was read.
public struct ClientFailureEvidence: ReasonEvidence {
    public static let reasons: Set<Reason> = [.resetByPeer, .unknown]

    /// The connect()'s error (`ErrnoName`); nil when its application gave up
    /// on it unanswered (`abandonedBy`): no error was reported.
    public var errno: String?
    /// As in `ConnectTimeoutEvidence`: who gave up on the unanswered connect().
    public var abandonedBy: String?
    /// The process that closed it, when not the client itself.
    public var closedBy: JSONValue?
    /// false when synsight did not see the connect() (ConnectError.task
    /// nil): no process, no `afterMs`.
    public var clientSeen = true
    /// Milliseconds from connect() to the error.
    public var afterMs: Int64?
    /// The kernel hook that saw the error (`ClientErrorHook`).
    public var hook: String?
    /// `established`: a reset after setup.
    public var state: String?
    public static let established = "established"
    /// The refusing RST's TTL against the peer's (`ResetTTLEvidence.json`).
    public var reset: JSONValue?
    /// ECONNREFUSED: what answered the SYN, `tcp_reset` or `icmp` (no TCP
    /// segment came back: an ICMP port unreachable, a firewall's reject).
    public var refusedBy: String?
    public static let refusedByReset = "tcp_reset"
    public static let refusedByICMP = "icmp"

    public init() {}

    public static let layout: [EvidenceField<ClientFailureEvidence>] = [
        .string(.errno, \.errno), .string(.abandonedBy, \.abandonedBy), .value(.closedBy, \.closedBy),
        .int(.afterMs, \.afterMs), .string(.hook, \.hook), .string(.state, \.state),
        .value(.reset, \.reset), .string(.refusedBy, \.refusedBy), .flag(.clientSeen, \.clientSeen, default: true),
    ]
}

extension Record {
    /// The typed evidence of a `reset_by_peer` or `unknown` record; nil for any other reason.
    public var clientFailureEvidence: ClientFailureEvidence? { evidence(as: ClientFailureEvidence.self) }
}
