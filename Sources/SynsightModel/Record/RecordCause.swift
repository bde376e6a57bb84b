import SynsightBase
/// A record's `cause`, typed: one of the per-reason cause enums of
/// `Cause` (Cause.swift, the one place a cause is spelled), or a cause this
/// version does not know (`other`, read from a newer recording and kept as
/// written). Encodes to exactly the enum's raw value, so the JSON is the same
/// string it always was.
public enum RecordCause: Sendable, Hashable, CustomStringConvertible {
    case noListener(Cause.NoListener)
    case acceptQueueFull(Cause.AcceptQueueFull)
    case synQueueFull(Cause.SynQueueFull)
    case fdExhausted(Cause.FdExhausted)
    case addressNotAvailable(Cause.AddressNotAvailable)
    case lsmDenied(Cause.LSMDenied)
    case resetByPeer(Cause.ResetByPeer)
    case unknown(Cause.Unknown)
    case packetDropped(Cause.PacketDropped)
    case connectTimeout(Cause.ConnectTimeout)
    case noRoute(Cause.NoRoute)
    /// `firewall_reject` and `firewall_drop`.
    case firewall(Cause.Firewall)
    /// A cause read from a file that this version's enums lack (or one under
    /// a reason that has no such cause): kept, never rejected.
    case other(String)

    /// The JSON string (schema v1 `cause`).
    public var rawValue: String {
        switch self {
        case .noListener(let c): return c.rawValue
        case .acceptQueueFull(let c): return c.rawValue
        case .synQueueFull(let c): return c.rawValue
        case .fdExhausted(let c): return c.rawValue
        case .addressNotAvailable(let c): return c.rawValue
        case .lsmDenied(let c): return c.rawValue
        case .resetByPeer(let c): return c.rawValue
        case .unknown(let c): return c.rawValue
        case .packetDropped(let c): return c.rawValue
        case .connectTimeout(let c): return c.rawValue
        case .noRoute(let c): return c.rawValue
        case .firewall(let c): return c.rawValue
        case .other(let s): return s
        }
    }

    public var description: String { rawValue }

    /// The cause `raw` of a record with `reason`, as read from a file: the
    /// reason's enum case when it has one, else `.other(raw)`.
    public init(reason: Reason?, rawValue raw: String) {
        func typed<C: RawRepresentable<String>>(_ type: C.Type, _ wrap: (C) -> RecordCause) -> RecordCause {
            C(rawValue: raw).map(wrap) ?? .other(raw)
        }
        switch reason {
        case .noListener?: self = typed(Cause.NoListener.self, RecordCause.noListener)
        case .acceptQueueFull?: self = typed(Cause.AcceptQueueFull.self, RecordCause.acceptQueueFull)
        case .synQueueFull?: self = typed(Cause.SynQueueFull.self, RecordCause.synQueueFull)
        case .fdExhausted?: self = typed(Cause.FdExhausted.self, RecordCause.fdExhausted)
        case .addressNotAvailable?: self = typed(Cause.AddressNotAvailable.self, RecordCause.addressNotAvailable)
        case .lsmDenied?: self = typed(Cause.LSMDenied.self, RecordCause.lsmDenied)
        case .resetByPeer?: self = typed(Cause.ResetByPeer.self, RecordCause.resetByPeer)
        case .unknown?: self = typed(Cause.Unknown.self, RecordCause.unknown)
        case .packetDropped?: self = typed(Cause.PacketDropped.self, RecordCause.packetDropped)
        case .connectTimeout?: self = typed(Cause.ConnectTimeout.self, RecordCause.connectTimeout)
        case .noRoute?, .noRouteBack?: self = typed(Cause.NoRoute.self, RecordCause.noRoute)
        case .firewallReject?, .firewallDrop?: self = typed(Cause.Firewall.self, RecordCause.firewall)
        case .addressInUse?, .privilegedPort?, .ephemeralPortsExhausted?, nil: self = .other(raw)
        }
    }
}

/// A record's `reason` as read from a file: one this version knows, or a
/// newer one kept by name (never rejected).
public enum ReasonValue: Sendable, Hashable, CustomStringConvertible {
    case known(Reason)
    case other(String)

    public init(rawValue: String) {
        self = Reason(rawValue: rawValue).map(ReasonValue.known) ?? .other(rawValue)
    }

    public var rawValue: String {
        switch self {
        case .known(let r): return r.rawValue
        case .other(let s): return s
        }
    }

    /// The reason, when this version knows it.
    public var known: Reason? { if case .known(let r) = self { return r } else { return nil } }

    public var description: String { rawValue }
}
