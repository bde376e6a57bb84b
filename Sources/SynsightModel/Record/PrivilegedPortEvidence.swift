import SynsightBase
/// The evidence of `privileged_port`: bind() below
/// net.ipv4.ip_unprivileged_port_start without CAP_NET_BIND_SERVICE.
public struct PrivilegedPortEvidence: SocketCallEvidence {
    public static let reasons: Set<Reason> = [.privilegedPort]

    public var call: String?
    public var errno: String?
    public var socketProtocol: String?
    public var port: UInt16?
    /// The namespace's net.ipv4.ip_unprivileged_port_start, when readable.
    public var ipUnprivilegedPortStart: Int32?
    /// The capability that was missing (CAP_NET_BIND_SERVICE).
    public var capability: String?
    public var uid: UInt32?
    /// How the denial was established (`credentialsCheck`).
    public var check: String?
    /// What the kernel's capability check decides for the caller
    /// (`CapabilityCheck.text`): not in the effective set, or held only in
    /// the caller's own user namespace.
    public var capabilityCheck: String?

    /// The one way `check` is established: the caller's credentials, read at
    /// the failing bind()'s exit and judged as the kernel judges them.
    public static let credentialsCheck = "credentials at the failing bind(): CAP_NET_BIND_SERVICE over the socket's network namespace"

    public init() {}

    public static let layout: [EvidenceField<PrivilegedPortEvidence>] = callLayout + [
        .int(.port, \.port), .int(.ipUnprivilegedPortStart, \.ipUnprivilegedPortStart),
        .string(.capability, \.capability), .int(.uid, \.uid), .string(.check, \.check),
        .string(.capabilityCheck, \.capabilityCheck),
    ]
}

extension Record {
    /// The typed evidence of a `privileged_port` record; nil for any other reason.
    public var privilegedPortEvidence: PrivilegedPortEvidence? { evidence(as: PrivilegedPortEvidence.self) }
}
