import SynsightBase
/// The evidence of `address_not_available`: bind() to an address not on this
/// host (`addr`, `requested`, `ipNonlocalBind`; the namespace's addresses
/// or the address's IPv6 DAD state: causes not_configured, configured_since,
/// tentative, duplicate_address), or, cause
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
    /// bind(): the address as configured (tentative, dadfailed), or the
    /// namespace's addresses of that family (at most `maxAddresses`), read
    /// when the failure was decoded (`LocalAddress.json`); why not, if not.
    public var configured: JSONValue?
    public var addresses: [JSONValue]?
    public var addressesUnavailable: String?
    /// not_configured in a namespace other than the host's: the address as
    /// the host's namespace has it (a container given its host's address).
    public var hostAddress: JSONValue?

    public static let maxAddresses = 16

    public init() {}

    public static let layout: [EvidenceField<AddressNotAvailableEvidence>] = callLayout + [
        .value(.destination, \.destination), .value(.bound, \.bound),
        .string(.addr, \.addr), .value(.requested, \.requested), .bool(.ipNonlocalBind, \.ipNonlocalBind),
        .value(.configured, \.configured), .array(.addresses, \.addresses), .string(.addressesUnavailable, \.addressesUnavailable),
        .value(.hostAddress, \.hostAddress),
    ]
}

extension Record {
    /// The typed evidence of an `address_not_available` record; nil for any other reason.
    public var addressNotAvailableEvidence: AddressNotAvailableEvidence? { evidence(as: AddressNotAvailableEvidence.self) }
}
