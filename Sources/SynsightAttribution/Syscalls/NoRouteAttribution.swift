import SynsightBase
import SynsightModel
/// `no_route`: a connect() that failed at once because the routing table
/// has nothing for its destination (ENETUNREACH) or a route or policy rule
/// of type unreachable (EHOSTUNREACH), prohibit (EACCES) or blackhole
/// (EINVAL). The destination's lookup, replayed in the caller's namespace as
/// soon as the failure is decoded (`DropRouteSource.pin(connect:)`), is the
/// evidence, and decides EACCES and EINVAL: without a prohibit or blackhole
/// answer they are not the routes' (an LSM; a bad address), except EINVAL for
/// an IPv6 link-local destination named without an interface.

extension AttributionEngine {
    mutating func noRoute(_ e: SocketCallFailure) -> Record? {
        guard let byErrno = Cause.NoRoute(errno: e.errno), let q = DropRouteQuery.of(connect: e) else { return nil }
        let found = drops.routes?.lookup(q)
        let device = found?.boundDevice
        let byLookup = found?.route.flatMap(Cause.NoRoute.of)
        let linkLocal = byErrno == .blackholeRoute && e.remote.addr.isLinkLocalV6 && device == nil && q.lookup.oif == nil
        if (byErrno == .prohibitRoute || byErrno == .blackholeRoute) && !linkLocal {
            guard byLookup == byErrno else { return nil }
        }
        var cause = linkLocal ? .linkLocalWithoutScope : byLookup ?? byErrno
        if cause == .noMatchingRoute, device?.up == false { cause = .boundDeviceDown }
        var r = baseRecord(e, kind: .connectFailure, reason: .noRoute)
        r.cause = .noRoute(cause)
        r.process = failing(e)
        r.client = failing(e)
        var ev = NoRouteEvidence(call: e)
        ev.destination = Record.endpoint(e.remote)
        ev.routeLookup = found?.route.map { Self.routeJSON($0, iifName: nil, oifName: device?.reference) }
        ev.boundDevice = device?.json
        if let missing = found?.unavailable, !missing.isEmpty { ev.routeUnavailable = missing.joined(separator: "; ") }
        if drops.routes == nil { ev.routeUnavailable = "no route reader (the lookup was not replayed)" }
        r.evidence = ev.fields
        var facts = Advice.Facts(address: e.remote.addr, family: q.lookup.family)
        facts.boundDevice = device
        // A Docker, Podman or nerdctl container: its network's fix (`network connect`).
        if let c = r.process?.workload?.container, device == nil, let runtime = c.runtime,
           [.docker, .podman, .containerd].contains(runtime) {
            facts.clientContainer = c.name ?? c.shortID
            facts.containerRuntime = runtime
        }
        facts.routeGetKeys = Self.routeGetKeys(q.lookup, device: device)
        r.hint = noRouteSituation(e, family: q.lookup.family, cause: cause, lookup: found?.route, device: device)
            + Advice.for(reason: .noRoute, cause: r.cause, facts: facts).fix
        return r
    }

    /// The socket's lookup keys as `ip route get` takes them; the uid only
    /// when it is not root's (the command's own).
    static func routeGetKeys(_ q: RouteGet.Request, device: NetDevice?) -> String {
        var s = ""
        if let oif = q.oif { s += " oif \(device?.name ?? "<ifindex \(oif)>")" }
        if let mark = q.mark { s += " mark 0x\(String(mark, radix: 16))" }
        if let uid = q.uid, uid != 0 { s += " uid \(uid)" }
        return s
    }

    /// `family`: the destination's (an IPv4-mapped one on an IPv6 socket is IPv4).
    func noRouteSituation(_ e: SocketCallFailure, family: AddressFamily, cause: Cause.NoRoute,
                          lookup: RouteLookupResult?, device: NetDevice?) -> String {
        var s: String
        let fam = family == .ipv4 ? "IPv4" : "IPv6"
        switch cause {
        case .boundDeviceDown:
            s = "\(who(e)) could not connect to \(e.remote): its socket is bound to \(device?.label ?? "a device") (SO_BINDTODEVICE), which is down (\(ErrnoName.name(e.errno)))"
        case .noMatchingRoute:
            if let device {
                let table = device.isVRF ? "VRF \(device.reference)'s table has" : "\(device.reference) (or the VRF it belongs to) has"
                s = "\(who(e)) could not connect to \(e.remote): its socket is bound to \(device.label) (SO_BINDTODEVICE), and \(table) no \(fam) route to \(e.remote.addr) (\(ErrnoName.name(e.errno)))"
            } else {
                s = "\(who(e)) could not connect to \(e.remote): network namespace \(e.netns) has no \(fam) route to \(e.remote.addr) (\(ErrnoName.name(e.errno)))"
            }
        case .linkLocalWithoutScope:
            s = "\(who(e)) could not connect to \(e.remote): \(e.remote.addr) is an IPv6 link-local address, and the connect() named "
                + "no interface (no scope id, no SO_BINDTODEVICE), so the kernel cannot tell which link it is on (\(ErrnoName.name(e.errno)))"
        case .loopbackRoute:
            s = "\(who(e)) could not connect to \(e.remote): network namespace \(e.netns) routes \(e.remote.addr) through lo, "
                + "which IPv6 makes a reject route for an address that is not local (\(ErrnoName.name(e.errno)))"
        default:
            let article = cause == .unreachableRoute ? "an" : "a"
            s = "\(who(e)) could not connect to \(e.remote): \(article) \(cause.routeType) route or rule answers for \(e.remote.addr) (\(ErrnoName.name(e.errno)))"
        }
        if let lookup, let route = lookup.route, Cause.NoRoute(routeType: route.type) == nil, !lookup.isLoopbackReject,
           cause != .linkLocalWithoutScope {
            s += "; a route exists now (\(route.typeName), table \(route.table)): the routes changed since"
        }
        return s + ": "
    }
}
