import SynsightBase
import SynsightModel
/// Naming the actor of a reverse-path-filter or no-route drop (issue 17):
/// the route state a `DropRouteSource` read in the drop's namespace when the
/// drop was decoded, as evidence — `rp_filter` (the two sysctls, the
/// effective value, the mode and the decision), `route_back` (the route to
/// the SYN's source, versus the interface it came in on), `route_lookup`
/// (the lookup that failed, replayed), and `route_unavailable` saying why
/// any of it is missing — and a hint that names the interface the route
/// back leaves by, or the lookup that fails.

/// Why strict or loose reverse-path filtering refused the packet, from the
/// settings and the route back as read (after the drop: a changed setting
/// or route is said, never hidden).
enum RPFilterDecision: Equatable {
    /// Strict mode, and the route back leaves by another interface.
    case otherInterface(String)
    /// No route back at all (either mode drops).
    case noRouteBack(String)
    /// The settings or routes read now would not drop it.
    case changedSince(String)
    /// Not enough was read to decide.
    case unknown

    static func of(_ s: RPFilterSysctls?, route: RouteLookupResult?, arrivedOn: String) -> RPFilterDecision {
        guard let s, let route else { return .unknown }
        let to = "\(route.request.dst)"
        if s.effective == 0 {
            return .changedSince("rp_filter is 0 (off) now (all \(s.all), \(arrivedOn) \(s.device)): it was changed since the drop")
        }
        guard let r = route.route else {
            return .noRouteBack("\(s.mode): no route back to \(to) (the lookup answers \(route.result))")
        }
        let by = route.oifName ?? r.oif.map { "ifindex \($0)" } ?? "no interface"
        if s.effective >= 2 {
            return .changedSince("loose: a route back to \(to) exists now (by \(by)): the routes changed since the drop")
        }
        if by == arrivedOn {
            return .changedSince("strict: the route back to \(to) leaves by \(arrivedOn), where the SYN arrived, now: the routes changed since the drop")
        }
        return .otherInterface("strict: the route back to \(to) leaves by \(by), not by \(arrivedOn) where the packet arrived")
    }

    var text: String? {
        switch self {
        case .otherInterface(let t), .noRouteBack(let t), .changedSince(let t): return t
        case .unknown: return nil
        }
    }
}

extension AttributionEngine {
    /// Evidence (into `ev`) and hint from the drop's route state (nothing
    /// for other causes, or when no source is set).
    func dropRouteEvidence(_ d: PacketDrop, cause: DropCause, port: UInt16, into ev: inout PacketDropEvidence) -> String? {
        guard let source = drops.routes, let q = DropRouteQuery.of(d, cause: cause) else { return nil }
        let found = source.lookup(q)
        var hint: String?
        switch q.purpose {
        case .reversePath:
            let decision = RPFilterDecision.of(found.rpFilter, route: found.route, arrivedOn: d.ifname)
            ev.rpFilter = found.rpFilter.map { Self.rpFilterJSON($0, decision: decision) }
            ev.routeBack = found.route.map { Self.routeJSON($0, iifName: nil) }
            hint = Self.rpFilterHint(d, decision: decision, sysctls: found.rpFilter, route: found.route)
        case .forward:
            if let r = found.route {
                ev.routeLookup = Self.routeJSON(r, iifName: r.request.iif == nil ? nil : d.ifname)
                hint = Self.noRouteHint(d, route: r, port: port)
            }
        case .localAddress, .routeBack:
            break  // a bind()'s or a listener's query (BindAddressAttribution.swift, NoRouteBack.swift), never a drop's
        }
        if !found.unavailable.isEmpty { ev.routeUnavailable = found.unavailable.joined(separator: "; ") }
        return hint
    }

    static func rpFilterJSON(_ s: RPFilterSysctls, decision: RPFilterDecision) -> JSONValue {
        var o: [(String, JSONValue)] = [("all", .int(Int64(s.all))), ("device", .int(Int64(s.device))),
                                        ("effective", .int(Int64(s.effective))), ("mode", .string(s.mode))]
        if let t = decision.text { o.append(("decision", .string(t))) }
        return .object(o)
    }

    /// A lookup as `ip route get` would show it: what was asked, what came back.
    /// `oifName`: the device the lookup was bound to (a socket's SO_BINDTODEVICE).
    static func routeJSON(_ r: RouteLookupResult, iifName: String?, oifName: String? = nil) -> JSONValue {
        var o: [(String, JSONValue)] = [("destination", .string("\(r.request.dst)"))]
        if let src = r.request.src, !r.withoutSource { o.append(("source", .string("\(src)"))) }
        if let iifName, !iifName.isEmpty { o.append(("iif", .string(iifName))) }
        if let oif = r.request.oif { o.append(("oif", .string(oifName ?? "\(oif)"))) }
        if let mark = r.request.mark { o.append(("mark", .int(Int64(mark)))) }
        if let uid = r.request.uid { o.append(("uid", .int(Int64(uid)))) }
        o.append(("result", .string(r.result)))
        switch r.answer {
        case .failed(let e):
            o.append(("errno", .string(ErrnoName.name(e))))
        case .route(let route):
            if let name = r.oifName { o.append(("interface", .string(name))) }
            if let oif = route.oif { o.append(("ifindex", .int(Int64(oif)))) }
            o.append(("next_hop", .string(route.gateway.map { "\($0)" } ?? ConnectTimeoutRoute.Egress.directlyConnected)))
            o.append(("table", .int(Int64(route.table))))
            o.append(("type", .string(route.typeName)))
            if let p = route.prefSrc { o.append(("prefsrc", .string("\(p)"))) }
        }
        return .object(o)
    }

    /// Names the interface the route back leaves by (or that there is none).
    static func rpFilterHint(_ d: PacketDrop, decision: RPFilterDecision, sysctls: RPFilterSysctls?,
                             route: RouteLookupResult?) -> String? {
        let dev = d.ifname.isEmpty ? "an interface" : d.ifname
        let src = "\(d.remote.addr)"
        let sysctl = DropCause.rpFilter.sysctl(family: d.family, interface: d.ifname) ?? "rp_filter"
        let all = sysctls.map { "; the larger of it and net.ipv4.conf.all.rp_filter, now \($0.all), applies" } ?? ""
        let head = "reverse-path filter on \(dev) (network namespace \(d.netns)) dropped the \(d.segment) from \(src)"
        switch decision {
        case .otherInterface:
            let via = route?.route?.gateway.map { " via \($0)" } ?? ""
            let by = route?.oifName ?? "another interface"
            return "\(head): the route back to \(src) leaves by \(by)\(via), not \(dev); "
                + "set \(sysctl)=2 (loose\(all)), or route \(src) back through \(dev)"
        case .noRouteBack:
            return "\(head): there is no route back to \(src) (\(route?.result ?? "no_route")); add one (through \(dev)) in that namespace"
        case .changedSince, .unknown:
            return nil
        }
    }

    /// Names the lookup that fails (`ip route get` with the same arguments).
    static func noRouteHint(_ d: PacketDrop, route: RouteLookupResult, port: UInt16) -> String? {
        let dst = "\(route.request.dst)"
        var ask = "ip route get \(dst)"
        if let src = route.request.src { ask += " from \(src)" }
        if route.request.iif != nil, !d.ifname.isEmpty { ask += " iif \(d.ifname)" }
        let what = "the kernel dropped the \(d.segment) \(d.remote) -> \(d.local) (port \(port))"
            + (d.ifname.isEmpty ? "" : " on \(d.ifname)") + " (network namespace \(d.netns))"
        if route.isLoopbackReject {
            // The fix is connect()'s for the same route (Advice, loopback_route).
            let fix = Advice.for(reason: .noRoute, cause: .noRoute(.loopbackRoute),
                                 facts: Advice.Facts(address: route.request.dst, family: route.request.family)).fix
            return "\(what): `\(ask)` in that namespace answers a route through lo, which IPv6 makes a reject route "
                + "for an address that is not local: " + fix
        }
        guard case .failed(let e) = route.answer else {
            let by = route.oifName.map { " by \($0)" } ?? ""
            return "\(what): no route to \(dst) then; `\(ask)` finds one now\(by): the route was added since the drop"
        }
        return "\(what): no route to \(dst) — `\(ask)` in that namespace answers \(route.result) (\(ErrnoName.name(e))); "
            + "add a route for \(dst) there (or fix the sender's route that points here)"
    }
}
