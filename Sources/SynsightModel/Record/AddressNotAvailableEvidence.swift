import SynsightBase
/// The evidence of `address_not_available`: bind() to an address not on this
/// host (`addr`, `requested`, `ipNonlocalBind`), or, cause
/// `four_tuple_in_use`, connect() from a fixed port whose connection to the
/// destination exists (`destination`, `bound`).
public struct AddressNotAvailableEvidence: SocketCallEvidence {
    public static let reasons: Set<Reason> = [.addressNotAvailable]

    public var call: String?
    public var errno: String?
    public var socketProtocol: String?
    /// four_tuple_in_use: where connect() went, and the socket's bound end (endpoint objects).
    public var destination: JSONValue?
    public var bound: JSONValue?
    /// bind(): the address asked for, the endpoint, and net.ipv4.ip_nonlocal_bind.
    public var addr: String?
    public var requested: JSONValue?
    public var ipNonlocalBind: Bool?

    public init() {}

    public static let layout: [EvidenceField<AddressNotAvailableEvidence>] = callLayout + [
        .value(.destination, \.destination), .value(.bound, \.bound),
        .string(.addr, \.addr), .value(.requested, \.requested), .bool(.ipNonlocalBind, \.ipNonlocalBind),
    ]
}

extension Record {
    /// The typed evidence of an `address_not_available` record; nil for any other reason.
    public var addressNotAvailableEvidence: AddressNotAvailableEvidence? { evidence(as: AddressNotAvailableEvidence.self) }
}
