import SynsightBase
/// Every `cause` value of the JSON Lines contract (schema v1), per reason: the
/// one place a cause is spelled. Attribution writes `Cause.<Reason>.<case>.rawValue`;
/// docs/schema/synsight-record-v1.schema.json lists the same values, and
/// `SchemaContractTests` fails when the two differ, so a new cause is added
/// here and in the schema together.
public enum Cause {
    /// Finer causes of `no_listener`.
    public typealias NoListener = NoListenerCause

    /// `firewall_reject` / `firewall_drop`, when the rule says more (FirewallModel.swift).
    public typealias Firewall = FirewallCause

    /// `packet_dropped`: the family of the kernel's drop reason (DropCause.swift).
    public typealias PacketDropped = DropCause

    /// `accept_queue_full`: who is not taking connections off the queue.
    public enum AcceptQueueFull: String, Sendable, Hashable, CaseIterable {
        case listenerNotAccepting = "listener_not_accepting"
        /// accept() on the listener fails with EMFILE/ENFILE.
        case fdExhausted = "fd_exhausted"
        /// Every thread of the listening process is stopped (SIGSTOP, a debugger).
        case listenerStopped = "listener_stopped"
        /// No thread of it can run: blocked in the kernel (uninterruptible
        /// sleep: a hung NFS mount, a stuck disk, a kernel lock).
        case listenerBlocked = "listener_blocked"
        /// Its cgroup (or an ancestor) is at its CPU limit: the kernel
        /// throttles it for the rest of each period (CFS bandwidth control).
        case listenerThrottled = "listener_throttled"
    }

    /// `syn_queue_full`: whether the kernel fell back to syncookies.
    public enum SynQueueFull: String, Sendable, Hashable, CaseIterable {
        case syncookiesOff = "syncookies_off"
        case syncookiesSent = "syncookies_sent"
    }

    /// `fd_exhausted`: the errno accept() failed with, in lower case.
    public enum FdExhausted: String, Sendable, Hashable, CaseIterable {
        case emfile
        case enfile

        /// From a positive errno (24 EMFILE, 23 ENFILE); nil for any other.
        public init?(errno: Int32) {
            switch errno {
            case 24: self = .emfile
            case 23: self = .enfile
            default: return nil
            }
        }
    }

    /// `address_not_available`: set only when connect() reuses a fixed local port.
    public enum AddressNotAvailable: String, Sendable, Hashable, CaseIterable {
        case fourTupleInUse = "four_tuple_in_use"
        /// bind(): the address is on no interface of the namespace.
        case notConfigured = "not_configured"
        /// bind(): the address is there now: it was added after the call
        /// (the service started before its address).
        case configuredSince = "configured_since"
        /// bind(): an IPv6 address whose duplicate address detection has
        /// not finished (or cannot start: no carrier).
        case tentative
        /// bind(): an IPv6 address another host on the link answered for.
        case duplicateAddress = "duplicate_address"
    }

    /// `lsm_denied`: which security module refused.
    public enum LSMDenied: String, Sendable, Hashable, CaseIterable {
        case selinux
        case landlock
        case otherLSM = "other_lsm"
        /// A cgroup BPF program on the caller's cgroup (bind4/6, post_bind4/6,
        /// connect4/6): systemd's SocketBindDeny=, a policy agent.
        case cgroupBPF = "cgroup_bpf"
    }

    /// `reset_by_peer`: a connection reset right after setup.
    public enum ResetByPeer: String, Sendable, Hashable, CaseIterable {
        case resetAfterSetup = "reset_after_setup"
    }

    /// `connect_timeout`: where a local client's unanswered SYNs went (TimeoutAttribution.swift).
    public enum ConnectTimeout: String, Sendable, Hashable, CaseIterable {
        /// Its SYNs (or the SYN-ACKs coming back) were dropped on this host;
        /// the evidence names the drop (rule, drop reason, location).
        case droppedOnHost = "dropped_on_host"
        /// Its SYNs left this host (egress interface, next hop, retransmissions)
        /// and nothing came back: the problem is past this host.
        case noAnswerPastHost = "no_answer_past_host"
    }

    /// `unknown`: a local connect() failure nothing on this host explains, by errno.
    public enum Unknown: String, Sendable, Hashable, CaseIterable {
        case connectionRefused = "connection_refused"
        /// Refused by an ICMP port unreachable, not a reset (no TCP segment
        /// came back): a firewall's reject on the path or at the peer; a TCP
        /// stack answers a closed port with a reset.
        case rejectedWithICMP = "rejected_with_icmp"
        /// Refused by a RST whose TTL says it came from another distance than
        /// the peer's own packets: a likely middlebox (ResetTTLAttribution.swift).
        case injectedResetSuspected = "injected_reset_suspected"
        case timedOut = "timed_out"
        case hostUnreachable = "host_unreachable"
        case networkUnreachable = "network_unreachable"
        case connectError = "connect_error"
    }

    /// `no_route`: what the destination's route lookup gave, and the errno
    /// connect() returned for it (fib_props: unreachable EHOSTUNREACH,
    /// prohibit EACCES, blackhole EINVAL; no route at all ENETUNREACH).
    public enum NoRoute: String, Sendable, Hashable, CaseIterable {
        case noMatchingRoute = "no_matching_route"
        case unreachableRoute = "unreachable_route"
        case prohibitRoute = "prohibit_route"
        case blackholeRoute = "blackhole_route"
        /// ENETUNREACH for a socket bound to a device (SO_BINDTODEVICE)
        /// that is down: the kernel refuses the lookup before any route.
        case boundDeviceDown = "bound_device_down"
        /// ENETUNREACH from an IPv6 route through `lo` (`ip -6 route add
        /// <prefix> dev lo`) to addresses that are not local: the kernel
        /// turns it into a reject route, though `ip -6 route` shows it as
        /// an ordinary one.
        case loopbackRoute = "loopback_route"
        /// EINVAL for an IPv6 link-local destination (fe80::/10) named
        /// without an interface: no scope id in the address, and the socket
        /// not bound to a device. The kernel cannot tell which link is meant.
        case linkLocalWithoutScope = "link_local_without_scope"

        public init?(errno: Int32) {
            switch errno {
            case 101: self = .noMatchingRoute
            case 113: self = .unreachableRoute
            case 13: self = .prohibitRoute
            case 22: self = .blackholeRoute
            default: return nil
            }
        }

        /// The route type (enum rtm_type) that gives this cause; nil for no route.
        public init?(routeType: UInt8) {
            switch routeType {
            case 6: self = .blackholeRoute
            case 7: self = .unreachableRoute
            case 8: self = .prohibitRoute
            default: return nil
            }
        }

        /// `no_route_back`'s causes: what the lookup back to the client gave
        /// (a socket bound to a device, an IPv6 route through lo: not there).
        public static let routeBackCauses: [NoRoute] = [.noMatchingRoute, .unreachableRoute, .prohibitRoute, .blackholeRoute]

        /// The cause a replayed lookup gives: its failure's errno, or the type
        /// of the route it found (an IPv6 route through lo rejects too); nil
        /// when it finds a usable route.
        public static func of(_ r: RouteLookupResult) -> NoRoute? {
            switch r.answer {
            case .failed(let errno): return NoRoute(errno: errno)
            case .route(let route): return r.isLoopbackReject ? .loopbackRoute : NoRoute(routeType: route.type)
            }
        }

        /// The route type as `ip route` names it ("" for no route at all).
        public var routeType: String {
            switch self {
            case .noMatchingRoute, .boundDeviceDown, .loopbackRoute, .linkLocalWithoutScope: return ""
            case .unreachableRoute: return "unreachable"
            case .prohibitRoute: return "prohibit"
            case .blackholeRoute: return "blackhole"
            }
        }
    }

    /// The causes a record of `reason` may carry; empty: it carries none.
    /// Exhaustive, so a new `Reason` does not compile until it is decided here.
    public static func values(for reason: Reason) -> [String] {
        switch reason {
        case .noListener: return NoListener.allCases.map(\.rawValue)
        case .acceptQueueFull: return AcceptQueueFull.allCases.map(\.rawValue)
        case .synQueueFull: return SynQueueFull.allCases.map(\.rawValue)
        case .fdExhausted: return FdExhausted.allCases.map(\.rawValue)
        case .addressNotAvailable: return AddressNotAvailable.allCases.map(\.rawValue)
        case .lsmDenied: return LSMDenied.allCases.map(\.rawValue)
        case .resetByPeer: return ResetByPeer.allCases.map(\.rawValue)
        case .connectTimeout: return ConnectTimeout.allCases.map(\.rawValue)
        case .noRoute: return NoRoute.allCases.map(\.rawValue)
        // The lookup back to the client: its failure or the reject route it found.
        case .noRouteBack: return NoRoute.routeBackCauses.map(\.rawValue)
        case .unknown: return Unknown.allCases.map(\.rawValue)
        case .packetDropped: return PacketDropped.allCases.map(\.rawValue)
        case .firewallDrop: return Firewall.allCases.map(\.rawValue)
        // Docker's rules keeping networks apart drop (DockerNetworkRule).
        case .firewallReject: return Firewall.allCases.filter { $0 != .networkIsolation && $0 != .internalNetwork }.map(\.rawValue)
        case .addressInUse, .privilegedPort, .ephemeralPortsExhausted:
            return []
        }
    }
}
