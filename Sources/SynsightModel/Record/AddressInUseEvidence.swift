import SynsightBase
/// The evidence of `address_in_use`: the failed call and who holds the port.
public struct AddressInUseEvidence: SocketCallEvidence {
    public static let reasons: Set<Reason> = [.addressInUse]

    public var call: String?
    public var errno: String?
    public var socketProtocol: String?
    /// The address and port asked for (endpoint object).
    public var requested: JSONValue?
    /// bind or listen: where it failed.
    public var failedIn: String?
    /// The socket best explaining the conflict (`PortHolder` object).
    public var holder: JSONValue?
    /// How many sockets hold the port, when more than one.
    public var holders: Int?

    public init() {}

    public static let layout: [EvidenceField<AddressInUseEvidence>] = callLayout + [
        .value(.requested, \.requested), .string(.failedIn, \.failedIn), .value(.holder, \.holder), .int(.holders, \.holders),
    ]
}

extension Record {
    /// The typed evidence of an `address_in_use` record; nil for any other reason.
    public var addressInUseEvidence: AddressInUseEvidence? { evidence(as: AddressInUseEvidence.self) }
}
