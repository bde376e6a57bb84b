import SynsightBase
/// The evidence of `no_route`: connect()'s destination, and its route
/// lookup replayed in the caller's network namespace (what `ip route get`
/// answers: the same shape as a no-route drop's `route_lookup`), or why it
/// could not be made.
public struct NoRouteEvidence: SocketCallEvidence {
    public static let reasons: Set<Reason> = [.noRoute]

    public var call: String?
    public var errno: String?
    public var socketProtocol: String?
    /// The address and port connect() was given (an endpoint object).
    public var destination: JSONValue?
    /// {destination, result, errno | interface, next_hop, table, type, ...}.
    public var routeLookup: JSONValue?
    public var routeUnavailable: String?
    /// The device the socket is bound to (SO_BINDTODEVICE), with its state.
    public var boundDevice: JSONValue?

    public init() {}

    public static let layout: [EvidenceField<NoRouteEvidence>] = callLayout + [
        .value(.destination, \.destination), .value(.routeLookup, \.routeLookup),
        .string(.routeUnavailable, \.routeUnavailable), .value(.boundDevice, \.boundDevice),
    ]
}

extension Record {
    /// The typed evidence of a `no_route` record; nil for any other reason.
    public var noRouteEvidence: NoRouteEvidence? { evidence(as: NoRouteEvidence.self) }
}
