import CSynsightABI

/// A socket's routing keys at a failed connect(), as tcp_v4_connect and
/// tcp_v6_connect hand them to the route lookup (`flowi4_oif`,
/// `flowi4_mark`, `flowi4_uid`): the lookup that refused the connect is
/// replayed with them, so a socket bound to a device (SO_BINDTODEVICE,
/// `curl --interface`, `ip vrf exec`), marked (SO_MARK: policy routing by
/// fwmark, as WireGuard's and Tailscale's rules route) or owned by a user
/// that `ip rule uidrange` routes is judged by its own routes, not root's.
public struct SocketRouting: Sendable, Hashable {
    /// SO_BINDTODEVICE's ifindex (in the socket's namespace); 0: not bound.
    public var boundIfindex: UInt32
    /// SO_MARK; 0: none.
    public var mark: UInt32
    /// The socket's owner (sk_uid, in the initial user namespace).
    public var uid: UInt32

    public init(boundIfindex: UInt32 = 0, mark: UInt32 = 0, uid: UInt32 = 0) {
        self.boundIfindex = boundIfindex
        self.mark = mark
        self.uid = uid
    }

    /// From the event; nil when the kernel side could not read the socket.
    /// (A listener's keys, on overflow records, are always read.)
    static func of(_ e: syn_ev_sockcall) -> SocketRouting? {
        e.sk_uid == SYN_UID_UNKNOWN ? nil : SocketRouting(boundIfindex: e.bound_ifindex, mark: e.mark, uid: e.sk_uid)
    }
}

extension RouteGet.Request {
    /// The lookup a socket with these keys makes: bound to its device, with
    /// its mark, as its owner.
    mutating func apply(_ k: SocketRouting) {
        oif = k.boundIfindex == 0 ? nil : k.boundIfindex
        mark = k.mark == 0 ? nil : k.mark
        uid = k.uid
    }
}
