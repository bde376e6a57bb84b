import SynsightBase
/// The evidence of `ephemeral_ports_exhausted`: bind(port 0) (`requested`) or
/// connect() (`destination`) found no free local port, and the namespace's
/// net.ipv4.ip_local_port_range.
public struct EphemeralPortsEvidence: SocketCallEvidence {
    public static let reasons: Set<Reason> = [.ephemeralPortsExhausted]

    public var call: String?
    public var errno: String?
    public var socketProtocol: String?
    /// bind(): the endpoint asked for; connect(): the destination (endpoint objects).
    public var requested: JSONValue?
    public var destination: JSONValue?
    /// The range as the sysctl reads ("32768 60999") and how many ports it holds.
    public var ipLocalPortRange: String?
    public var portsInRange: Int?

    public init() {}

    public static let layout: [EvidenceField<EphemeralPortsEvidence>] = callLayout + [
        .value(.requested, \.requested), .value(.destination, \.destination),
        .string(.ipLocalPortRange, \.ipLocalPortRange), .int(.portsInRange, \.portsInRange),
    ]

    /// Sets the range fields from the sysctl's value (nothing if unreadable).
    public mutating func setRange(_ range: ClosedRange<UInt16>?) {
        guard let range else { return }
        ipLocalPortRange = "\(range.lowerBound) \(range.upperBound)"
        portsInRange = range.count
    }
}

extension Record {
    /// The typed evidence of an `ephemeral_ports_exhausted` record; nil for any other reason.
    public var ephemeralPortsEvidence: EphemeralPortsEvidence? { evidence(as: EphemeralPortsEvidence.self) }
}
