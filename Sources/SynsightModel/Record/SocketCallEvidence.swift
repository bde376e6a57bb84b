import SynsightBase
/// The evidence every socket-call reason starts with (`$defs/evidence_call`):
/// which call failed, its errno name and the socket's protocol. The structs
/// of address_in_use, privileged_port, address_not_available,
/// ephemeral_ports_exhausted and lsm_denied adopt it and begin their layout
/// with `callLayout`.
public protocol SocketCallEvidence: ReasonEvidence {
    /// bind, listen or connect (`SocketCall.name`).
    var call: String? { get set }
    /// The errno name (`ErrnoName`).
    var errno: String? { get set }
    /// tcp or udp (`SocketCallFailure.protocolName`); written as `protocol`.
    var socketProtocol: String? { get set }
}

extension SocketCallEvidence {
    /// The three call fields, first in every socket-call reason's evidence.
    public static var callLayout: [EvidenceField<Self>] {
        [.string(.call, \.call), .string(.errno, \.errno), .string(.socketProtocol, \.socketProtocol)]
    }

    /// The call fields of `e`, nothing else set.
    public init(call e: SocketCallFailure) {
        self.init()
        call = e.call.name
        errno = ErrnoName.name(e.errno)
        socketProtocol = e.protocolName
    }
}
