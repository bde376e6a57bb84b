import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel

/// Reads the route state behind rp_filter and no-route drops in the drop's
/// network namespace, on a NamespaceReader's thread (and, for a bind() that
/// failed with EADDRNOTAVAIL, the addresses of its namespace): the rp_filter sysctls
/// (`/proc/sys/net/ipv4/conf/{all,<dev>}/rp_filter`, which show the
/// namespace of the reading thread) and one RTM_GETROUTE exchange
/// (RouteGet), what `ip route get` does, in-process (no `ip` spawned).
///
/// `pin` runs on the ring-buffer thread for every decoded packet drop: a
/// dictionary probe for the reasons that want a lookup, then, for those,
/// NamespaceReader.want. `lookup` runs on the pipeline thread and waits at
/// most `timeoutNs`. The lookup is made at once, not when the record is
/// decided: a router namespace torn down right after the drop still gives
/// its answer. One lookup per query (the engine reports an attempt's first
/// drop only).
public final class RouteReader: DropRouteSource, @unchecked Sendable {
    /// Reason values (this kernel's) whose drops want a lookup.
    let codes: [UInt32: DropCause]
    let timeoutNs: UInt64
    let reader: NamespaceReader<DropRouteQuery, DropRouteFindings>
    public var ownNetns: UInt32? { reader.ownNetns }

    public init(reasons: DropReasonNames, timeoutMs: Int = 1000) {
        codes = reasons.codes(of: [.rpFilter, .noRoute])
        timeoutNs = UInt64(max(1, timeoutMs)) * 1_000_000
        let config = NamespaceReader<DropRouteQuery, DropRouteFindings>.Config(
            thread: "synsight-route", role: "the route reader", goneConsequence: "its routes and sysctls cannot be read")
        reader = NamespaceReader(config, netns: \.netns, read: Self.readHere,
                                 failed: { DropRouteFindings(unavailable: [$0]) })
    }

    public func pin(_ drop: PacketDrop) {
        guard let cause = codes[drop.reasonCode], let q = DropRouteQuery.of(drop, cause: cause) else { return }
        reader.want(q)
    }

    public func pin(call: SocketCallFailure) {
        guard let q = DropRouteQuery.of(call: call) else { return }
        reader.want(q)
    }

    public func pin(overflow: ListenOverflow) {
        guard let q = DropRouteQuery.of(routeBack: overflow) else { return }
        reader.want(q)
    }

    public func lookup(_ q: DropRouteQuery) -> DropRouteFindings {
        reader.answer(q, timeoutNs: timeoutNs) { queued in
            "the route lookup did not finish within \(timeoutNs / 1_000_000) ms"
                + " (\(queued) other lookup\(queued == 1 ? "" : "s") queued)"
        }
    }

    /// Stops the reader thread (a lookup in progress finishes first).
    public func stop() { reader.stop() }

    /// In the current thread's namespace.
    static func readHere(_ q: DropRouteQuery) -> DropRouteFindings {
        var out = DropRouteFindings()
        if q.purpose == .localAddress {
            switch LocalAddresses.here(family: q.lookup.family) {
            case .success(let found): out.addresses = found
            case .failure(let why): out.unavailable.append(why.description)
            }
            return out
        }
        if q.purpose == .reversePath {
            switch rpFilterSysctls(device: q.ifname) {
            case .success(let s): out.rpFilter = s
            case .failure(let why): out.unavailable.append(why.description)
            }
        }
        if q.purpose == .routeBack { out.synBacklog = synBacklogSysctls() }
        if let oif = q.lookup.oif {
            out.boundDevice = NetDeviceLookup.withState(oif) ?? NetDevice(ifindex: oif, name: nil)
        }
        switch RouteSocket.get(q.lookup) {
        case .success(var answer):
            // rp_filter's lookup is from the packet's destination; an output
            // lookup refuses a source that is not local (a forwarded packet's):
            // made again without it.
            var without = false
            if q.purpose == .reversePath || q.purpose == .routeBack, q.lookup.src != nil,
               case .failed(let e) = answer, e == ENETUNREACH || e == EINVAL {
                var plain = q.lookup
                plain.src = nil
                if case .success(let again) = RouteSocket.get(plain), case .route = again {
                    answer = again
                    without = true
                }
            }
            var result = RouteLookupResult(request: q.lookup, answer: answer, withoutSource: without)
            if case .route(let r) = answer, let oif = r.oif { result.oifName = NetDeviceLookup.name(oif) }
            out.route = result
        case .failure(let why):
            out.unavailable.append(why.description)
        }
        return out
    }

    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    /// tcp_syncookies and tcp_max_syn_backlog (the reading thread's namespace); nil when unreadable.
    static func synBacklogSysctls() -> SynBacklogSysctls? {
        func value(_ name: String) -> Int? {
            ProcFS.read("/proc/sys/net/ipv4/\(name)", limit: 64).flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } }
        }
        guard let cookies = value("tcp_syncookies"), let max = value("tcp_max_syn_backlog") else { return nil }
        return SynBacklogSysctls(syncookies: cookies, maxSynBacklog: max)
    }

    /// `all` and the device's rp_filter (the reading thread's namespace).
    static func rpFilterSysctls(device: String) -> Result<RPFilterSysctls, ReadError> {
        guard !device.isEmpty, !device.contains("/"), device != ".", device != ".." else {
            return .failure(ReadError(description: "the drop has no interface: its rp_filter sysctl cannot be read"))
        }
        func value(_ dev: String) -> Int? {
            ProcFS.read("/proc/sys/net/ipv4/conf/\(dev)/rp_filter", limit: 64)
                .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } }
        }
        guard let all = value("all") else {
            return .failure(ReadError(description: "cannot read net.ipv4.conf.all.rp_filter: \(ErrnoName.name(errno))"))
        }
        guard let dev = value(device) else {
            return .failure(ReadError(description: "cannot read net.ipv4.conf.\(device).rp_filter (the interface is gone?): \(ErrnoName.name(errno))"))
        }
        return .success(RPFilterSysctls(all: all, device: dev))
    }

}
