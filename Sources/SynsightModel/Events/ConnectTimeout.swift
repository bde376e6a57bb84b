import CSynsightABI
import SynsightBase

/// Where a local client's unanswered connect() sent its SYNs, read from the
/// socket when it timed out (SYN_EV_CONNECT_TIMEOUT, bpf/timeouts.bpf.h).
/// Joined with the client's ETIMEDOUT by 4-tuple and namespace
/// (TimeoutAttribution.swift). `local` is the client end.
public struct ConnectTimeoutRoute: Sendable, Hashable {
    public var ts: UInt64
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint
    public var netns: UInt32
    /// The route's egress device; nil when the socket had no route left.
    public var egress: Egress?
    /// SYNs sent again after the first (icsk_retransmits).
    public var synRetransmits: UInt32
    /// Read from the last retransmitted SYN: the socket's own route was
    /// reset on retransmission (IPv6).
    public var fromLastRetransmit: Bool

    public struct Egress: Sendable, Hashable {
        /// dst->dev->name: untrusted (escaped on output).
        public var ifname: String
        public var ifindex: UInt32
        /// nil: directly connected (the destination is the next hop).
        public var gateway: IPAddress?
        /// A loopback device: the SYNs never left the host (a local
        /// destination, or one a NAT rule sent elsewhere after routing).
        public var loopback: Bool

        public init(ifname: String, ifindex: UInt32, gateway: IPAddress? = nil, loopback: Bool = false) {
            self.ifname = ifname
            self.ifindex = ifindex
            self.gateway = gateway
            self.loopback = loopback
        }

        /// "198.18.0.1" or "directly connected".
        public var nextHop: String { gateway.map { "\($0)" } ?? Self.directlyConnected }
        public static let directlyConnected = "directly connected"
    }

    public init(ts: UInt64, family: AddressFamily, local: Endpoint, remote: Endpoint, netns: UInt32,
                egress: Egress?, synRetransmits: UInt32, fromLastRetransmit: Bool = false) {
        self.ts = ts
        self.family = family
        self.local = local
        self.remote = remote
        self.netns = netns
        self.egress = egress
        self.synRetransmits = synRetransmits
        self.fromLastRetransmit = fromLastRetransmit
    }
}

extension EventDecoder {
    /// SYN_EV_CONNECT_TIMEOUT; `raw` is already checked for size and ABI version by `decode`.
    static func decodeConnectTimeout(_ raw: UnsafeRawBufferPointer) throws(DecodeError) -> KernelEvent {
        let e = raw.loadUnaligned(as: syn_ev_connect_timeout.self)
        let t = try tuple(e.t)
        return .connectTimeout(route(e.route, ts: e.hdr.ts_ns, tuple: t, netns: e.netns, synRetransmits: e.syn_retransmits))
    }

    /// The route of a connecting socket's SYNs (struct syn_egress), as the records of its outcome carry it.
    static func route(_ r: syn_egress, ts: UInt64, tuple t: (family: AddressFamily, local: Endpoint, remote: Endpoint),
                      netns: UInt32, synRetransmits: UInt32) -> ConnectTimeoutRoute {
        let flags = Int32(r.flags)
        var egress: ConnectTimeoutRoute.Egress?
        if flags & SYN_TMO_F_ROUTE != 0 {
            egress = .init(ifname: NameBytes.string(cField: r.ifname), ifindex: r.ifindex,
                           gateway: flags & SYN_TMO_F_GATEWAY != 0 ? address(r.gateway) : nil,
                           loopback: flags & SYN_TMO_F_LOOPBACK != 0)
        }
        return ConnectTimeoutRoute(ts: ts, family: t.family, local: t.local, remote: t.remote, netns: netns,
                                   egress: egress, synRetransmits: synRetransmits,
                                   fromLastRetransmit: flags & SYN_TMO_F_STASHED != 0)
    }
}
