import SynsightBase
/// The typed evidence of a reason: attribution fills the struct, readers
/// (explain, tests) read its properties, and `fields` encodes it to the
/// ordered JSON object the schema's `$defs/reason_<name>` describes. A
/// struct declares its fields once, in `layout` (contract order); reading
/// and writing come from there. A property left nil (or at its default) is
/// not written, and keys a struct does not know are skipped when reading
/// (fields added after attribution: NAT, proxy, summaries).
public protocol ReasonEvidence: Sendable, Hashable {
    /// The reasons whose records carry this evidence.
    static var reasons: Set<Reason> { get }
    /// Every field, in the order the record writes them.
    static var layout: [EvidenceField<Self>] { get }
    /// No field set.
    init()
}

extension ReasonEvidence {
    /// Reads the fields it knows from a record's evidence; others are ignored.
    public init(_ fields: [(String, JSONValue)]) {
        self.init()
        for (name, value) in fields {
            guard let key = EvidenceKey(rawValue: name), let field = Self.layout.first(where: { $0.key == key }) else { continue }
            field.read(&self, value)
        }
    }

    /// The evidence object's fields, in contract order.
    public var fields: [(String, JSONValue)] {
        Self.layout.compactMap { f in f.write(self).map { (f.key.rawValue, $0) } }
    }
}

extension Record {
    /// This record's evidence as `E`; nil when its reason does not carry `E`.
    public func evidence<E: ReasonEvidence>(as type: E.Type) -> E? {
        guard let reason, E.reasons.contains(reason) else { return nil }
        return E(evidence)
    }
}

extension Reason {
    /// The typed evidence of this reason (docs/architecture.md, "The record contract").
    public var evidenceType: (any ReasonEvidence.Type)? {
        switch self {
        case .noListener: return NoListenerEvidence.self
        case .acceptQueueFull, .synQueueFull, .noRouteBack: return OverflowEvidence.self
        case .fdExhausted: return FdExhaustedEvidence.self
        case .addressInUse: return AddressInUseEvidence.self
        case .privilegedPort: return PrivilegedPortEvidence.self
        case .addressNotAvailable: return AddressNotAvailableEvidence.self
        case .ephemeralPortsExhausted: return EphemeralPortsEvidence.self
        case .noRoute: return NoRouteEvidence.self
        case .lsmDenied: return LSMDeniedEvidence.self
        case .connectTimeout: return ConnectTimeoutEvidence.self
        case .resetByPeer, .unknown: return ClientFailureEvidence.self
        case .firewallReject, .firewallDrop: return FirewallEvidence.self
        case .packetDropped: return PacketDropEvidence.self
        }
    }
}
