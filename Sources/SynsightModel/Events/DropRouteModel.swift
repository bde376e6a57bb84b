import SynsightBase
/// The routing state behind a reverse-path-filter or no-route drop (issue
/// 17: "for rp_filter, the interface and the sysctl; for no route, the route
/// lookup that failed"), read in the drop's network namespace by a
/// `DropRouteSource` (SynsightKernel.RouteReader) the moment the drop is
/// decoded: the namespace may vanish before the record is decided.

/// What to read for one drop. Hashable: the key the lookup is started
/// under (ring-buffer thread) and asked for (pipeline thread).
public struct DropRouteQuery: Sendable, Hashable {
    public enum Purpose: String, Sendable, Hashable {
        /// rp_filter: its sysctls for `ifname`, and the route back to the packet's source.
        case reversePath
        /// no_route: the lookup the kernel made for the packet, replayed.
        case forward
        /// no_route_back: a listener's SYN-ACK's lookup back to the client,
        /// from the SYN's destination; made again without that source when
        /// the kernel refuses it (EINVAL is a blackhole route, or a source
        /// that is not local: told apart by `withoutSource`).
        case routeBack
        /// address_not_available: the namespace's addresses of the bind()'s
        /// family (`lookup.dst` is the address asked for), no route lookup.
        case localAddress
    }

    public var purpose: Purpose
    public var netns: UInt32
    /// The interface the packet was on (rp_filter: the sysctl's device).
    public var ifname: String
    public var lookup: RouteGet.Request

    public init(purpose: Purpose, netns: UInt32, ifname: String, lookup: RouteGet.Request) {
        self.purpose = purpose
        self.netns = netns
        self.ifname = ifname
        self.lookup = lookup
    }

    /// The lookup behind a connect() that failed with a routing errno
    /// (ENETUNREACH, EHOSTUNREACH, EACCES from a prohibit route, EINVAL from
    /// a blackhole): the output lookup to its destination, replayed in the
    /// caller's namespace with the socket's keys (its device, mark, owner,
    /// ports: `SocketRouting`) and its bound source; nil for any other failure.
    public static func of(connect e: SocketCallFailure) -> DropRouteQuery? {
        guard e.call == .connect, Cause.NoRoute(errno: e.errno) != nil else { return nil }
        let family: AddressFamily = e.family == .ipv4 || e.remote.addr.isV4Mapped ? .ipv4 : .ipv6
        var lookup = RouteGet.Request(family: family, dst: e.remote.addr)
        if !e.local.addr.isUnspecified { lookup.src = e.local.addr }
        if let k = e.routing { lookup.apply(k) }
        lookup.tcpDport = e.remote.port
        lookup.tcpSport = e.local.port == 0 ? nil : e.local.port
        return DropRouteQuery(purpose: .forward, netns: e.netns, ifname: "", lookup: lookup)
    }

    /// A bind() refused with EADDRNOTAVAIL: the caller's namespace's
    /// addresses, read when the failure is decoded (IPv6 duplicate address
    /// detection finishes a second later; a floating address comes and goes).
    public static func of(bind e: SocketCallFailure) -> DropRouteQuery? {
        guard e.call == .bind, e.errno == 99 else { return nil }
        let family: AddressFamily = e.family == .ipv4 || e.local.addr.isV4Mapped ? .ipv4 : .ipv6
        return DropRouteQuery(purpose: .localAddress, netns: e.netns, ifname: "",
                              lookup: RouteGet.Request(family: family, dst: e.local.addr))
    }

    /// A SYN a listener dropped with neither queue full: its SYN-ACK's
    /// lookup back to the client (tcp_v{4,6}_route_req), replayed in the
    /// listener's namespace from the address the SYN was sent to; nil for
    /// any other overflow, and for one counted without its SYN.
    public static func of(routeBack o: ListenOverflow) -> DropRouteQuery? {
        guard o.stage == .synUnanswered, o.method != .counter, !o.remote.addr.isUnspecified else { return nil }
        var lookup = RouteGet.Request(family: o.family, dst: o.remote.addr, src: o.local.addr)
        lookup.tcpDport = o.remote.port
        lookup.tcpSport = o.local.port
        lookup.apply(o.routing)
        return DropRouteQuery(purpose: .routeBack, netns: o.netns, ifname: "", lookup: lookup)
    }

    /// What a failed socket call wants read: its route, or its namespace's addresses.
    public static func of(call e: SocketCallFailure) -> DropRouteQuery? { of(connect: e) ?? of(bind: e) }

    /// The query for a drop of `cause`; nil for causes without route state.
    ///
    /// rp_filter (IPv4 only, like the sysctl): the kernel's check
    /// (fib_validate_source) looks up the packet's source with its
    /// destination as source address, and strict mode wants the answer to
    /// leave by the interface the packet came in on: an output lookup to the
    /// source, from the destination. no_route: a packet that arrived on an
    /// interface (forwarded, or to this host) is looked up as input on it,
    /// from its source; one this host sent, as output.
    public static func of(_ d: PacketDrop, cause: DropCause) -> DropRouteQuery? {
        switch cause {
        case .rpFilter:
            guard d.family == .ipv4 else { return nil }
            return DropRouteQuery(purpose: .reversePath, netns: d.netns, ifname: d.ifname,
                                  lookup: RouteGet.Request(family: d.family, dst: d.remote.addr, src: d.local.addr))
        case .noRoute:
            let input = d.direction != "egress" && d.ifindex != 0
            return DropRouteQuery(purpose: .forward, netns: d.netns, ifname: d.ifname,
                                  lookup: RouteGet.Request(family: d.family, dst: d.local.addr, src: d.remote.addr,
                                                           iif: input ? d.ifindex : nil))
        default:
            return nil
        }
    }
}

/// One lookup as made and answered; `oifName` is the answer's interface,
/// named in the drop's namespace.
public struct RouteLookupResult: Sendable, Hashable {
    public var request: RouteGet.Request
    public var answer: RouteGet.Answer
    public var oifName: String?
    /// rp_filter: the destination is not this namespace's address (a
    /// forwarded packet): the lookup was made without it as source.
    public var withoutSource: Bool

    public init(request: RouteGet.Request, answer: RouteGet.Answer, oifName: String? = nil, withoutSource: Bool = false) {
        self.request = request
        self.answer = answer
        self.oifName = oifName
        self.withoutSource = withoutSource
    }

    /// The route found, if any.
    public var route: RouteGet.Route? { if case .route(let r) = answer { return r } else { return nil } }

    /// An IPv6 unicast route through the loopback device (ifindex 1 in every
    /// namespace) to an address that is not local: the kernel makes it a
    /// reject route (`fib6_is_reject`), so packets and connect()s to it fail
    /// with ENETUNREACH, yet `ip -6 route get` answers it as a plain
    /// `unicast … dev lo`: a lookup that "finds a route" here found none.
    public var isLoopbackReject: Bool {
        guard let r = route, request.family == .ipv6, !request.dst.isLoopback else { return false }
        return r.type == 1 && r.oif == 1
    }

    /// What the lookup gave, in one word: `route`, or why it failed.
    public var result: String {
        switch answer {
        case .route: return "route"
        case .failed(let e): return Self.failures[e] ?? "error"
        }
    }

    /// The errno each kind of failed lookup returns (fib_props, ip_route_input_slow):
    /// EINVAL is a blackhole route, or a source the kernel refuses (martian,
    /// or the reverse-path filter of an input lookup).
    static let failures: [Int32: String] = [101: "no_route", 113: "unreachable", 13: "prohibit", 22: "invalid"]
}

/// The listener namespace's SYN backlog settings, read with the route back
/// of an unanswered SYN: without syncookies (`tcp_syncookies` 0) the kernel
/// keeps the last quarter of `tcp_max_syn_backlog` for clients it has
/// talked to before (tcp_conn_request: a SYN from an unproven peer is dropped,
/// unanswered, once fewer than max/4 request slots are left).
public struct SynBacklogSysctls: Sendable, Hashable {
    public var syncookies: Int
    public var maxSynBacklog: Int

    public init(syncookies: Int, maxSynBacklog: Int) {
        self.syncookies = syncookies
        self.maxSynBacklog = maxSynBacklog
    }

    /// The SYN queue length from which the kernel refuses unproven peers
    /// (`max - len < max >> 2`, so `len >= max - max/4 + 1`); nil with syncookies on.
    public var reserveStart: Int? {
        syncookies == 0 && maxSynBacklog > 0 ? maxSynBacklog - (maxSynBacklog >> 2) + 1 : nil
    }

    /// The kernel's test, with the listener's SYN queue length.
    public func reserveRefuses(synQueue: UInt32) -> Bool {
        reserveStart.map { Int(synQueue) >= $0 } ?? false
    }
}

/// The reverse-path filter's settings in the drop's namespace: the kernel
/// applies the larger of `all` and the device's (IN_DEV_MAXCONF).
public struct RPFilterSysctls: Sendable, Hashable {
    public var all: Int
    public var device: Int

    public init(all: Int, device: Int) {
        self.all = all
        self.device = device
    }

    public var effective: Int { max(all, device) }

    /// 0 off, 1 strict (RFC 3704), 2 loose.
    public var mode: String {
        switch effective {
        case 0: return "off"
        case 1: return "strict"
        default: return "loose"
        }
    }
}

/// What was read for one drop, and what could not be (each as one sentence).
public struct DropRouteFindings: Sendable, Hashable {
    public var rpFilter: RPFilterSysctls?
    public var route: RouteLookupResult?
    /// localAddress: the namespace's addresses of the family.
    public var addresses: [LocalAddress]?
    /// A lookup with `oif` (a socket bound to a device): that device, named
    /// with its state; without a name when no device has the index now.
    public var boundDevice: NetDevice?
    /// routeBack: the namespace's syncookies and SYN backlog (nil: not read).
    public var synBacklog: SynBacklogSysctls?
    public var unavailable: [String]

    public init(rpFilter: RPFilterSysctls? = nil, route: RouteLookupResult? = nil, addresses: [LocalAddress]? = nil,
                boundDevice: NetDevice? = nil, synBacklog: SynBacklogSysctls? = nil, unavailable: [String] = []) {
        self.synBacklog = synBacklog
        self.addresses = addresses
        self.boundDevice = boundDevice
        self.rpFilter = rpFilter
        self.route = route
        self.unavailable = unavailable
    }
}

extension DropRouteSource {
    public func pin(call: SocketCallFailure) {}
    public func pin(overflow: ListenOverflow) {}
}

/// Reads the route state of drops and of failed connect()s (SynsightKernel implements it).
public protocol DropRouteSource {
    /// A drop was decoded (ring-buffer thread: must not block): pin its
    /// namespace and start the read when the drop wants one.
    func pin(_ drop: PacketDrop)
    /// A socket call's failure was decoded (ring-buffer thread): start the
    /// lookup of a connect()'s destination when its errno may be the
    /// routes', the read of a bind()'s namespace's addresses on EADDRNOTAVAIL.
    func pin(call: SocketCallFailure)
    /// A listener's unanswered SYN was decoded (ring-buffer thread): start
    /// the lookup of the route back to its client.
    func pin(overflow: ListenOverflow)
    /// The findings of `query` (pipeline thread): waits a bounded time for
    /// a read in progress, starts one when none was pinned.
    func lookup(_ query: DropRouteQuery) -> DropRouteFindings
}

extension DropReasonNames {
    /// This kernel's values of the reasons of `causes` (core reasons).
    public func codes(of causes: Set<DropCause>) -> [UInt32: DropCause] {
        var out: [UInt32: DropCause] = [:]
        for (code, name) in core {
            let cause = DropCause.of(DropReasonName(name: name, code: code, subsystem: nil, known: true))
            if causes.contains(cause) { out[code] = cause }
        }
        return out
    }

    /// The names this kernel has, of those given.
    public func named(_ names: [String]) -> [String] {
        let have = Set(core.values)
        return names.filter(have.contains)
    }

    /// This kernel's core reason names no cause family lists (reported as `other`).
    public var unlisted: [String] {
        core.values.filter { DropCause.of(DropReasonName(name: $0, code: 0, subsystem: nil, known: true)) == .other }.sorted()
    }
}
