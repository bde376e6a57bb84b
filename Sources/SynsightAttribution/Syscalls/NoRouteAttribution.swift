import SynsightBase
import SynsightModel
/// `no_route`: a connect() that failed at once because the routing table
/// has nothing for its destination (ENETUNREACH) or a route or policy rule
/// of type unreachable (EHOSTUNREACH), prohibit (EACCES) or blackhole
/// (EINVAL). The destination's lookup, replayed in the caller's namespace as
/// soon as the failure is decoded (`DropRouteSource.pin(connect:)`), is the
/// evidence, and decides EACCES and EINVAL: without a prohibit or blackhole
/// answer they are not the routes' (an LSM; a bad address).

extension AttributionEngine {
    mutating func noRoute(_ e: SocketCallFailure) -> Record? {
        guard let byErrno = Cause.NoRoute(errno: e.errno), let q = DropRouteQuery.of(connect: e) else { return nil }
        let found = drops.routes?.lookup(q)
        let byLookup = found?.route.flatMap(Self.noRouteCause)
        if byErrno == .prohibitRoute || byErrno == .blackholeRoute {
            guard byLookup == byErrno else { return nil }
        }
        let cause = byLookup ?? byErrno
        var r = baseRecord(e, kind: .connectFailure, reason: .noRoute)
        r.cause = .noRoute(cause)
        r.process = failing(e)
        r.client = failing(e)
        var ev = NoRouteEvidence(call: e)
        ev.destination = Record.endpoint(e.remote)
        ev.routeLookup = found?.route.map { Self.routeJSON($0, iifName: nil) }
        if let missing = found?.unavailable, !missing.isEmpty { ev.routeUnavailable = missing.joined(separator: "; ") }
        if drops.routes == nil { ev.routeUnavailable = "no route reader (the lookup was not replayed)" }
        r.evidence = ev.fields
        r.hint = noRouteSituation(e, family: q.lookup.family, cause: cause, lookup: found?.route)
            + Advice.for(reason: .noRoute, cause: r.cause, facts: Advice.Facts(address: e.remote.addr, family: q.lookup.family)).fix
        return r
    }

    /// The cause a replayed lookup gives: its failure's errno, or the type of
    /// the route it found; nil when it now finds a usable route.
    static func noRouteCause(_ r: RouteLookupResult) -> Cause.NoRoute? {
        switch r.answer {
        case .failed(let errno): return Cause.NoRoute(errno: errno)
        case .route(let route): return Cause.NoRoute(routeType: route.type)
        }
    }

    /// `family`: the destination's (an IPv4-mapped one on an IPv6 socket is IPv4).
    func noRouteSituation(_ e: SocketCallFailure, family: AddressFamily, cause: Cause.NoRoute,
                          lookup: RouteLookupResult?) -> String {
        var s: String
        switch cause {
        case .noMatchingRoute:
            s = "\(who(e)) could not connect to \(e.remote): network namespace \(e.netns) has no \(family == .ipv4 ? "IPv4" : "IPv6") route to \(e.remote.addr) (\(ErrnoName.name(e.errno)))"
        default:
            let article = cause == .unreachableRoute ? "an" : "a"
            s = "\(who(e)) could not connect to \(e.remote): \(article) \(cause.routeType) route or rule answers for \(e.remote.addr) (\(ErrnoName.name(e.errno)))"
        }
        if let route = lookup?.route, Cause.NoRoute(routeType: route.type) == nil {
            s += "; a route exists now (\(route.typeName), table \(route.table)): the routes changed since"
        }
        return s + ": "
    }
}
