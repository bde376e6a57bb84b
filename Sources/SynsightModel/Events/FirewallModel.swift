import SynsightBase
/// Firewall events: what the kernel reports about netfilter REJECT/DROP
/// verdicts (bpf/firewall.bpf.h), in Swift terms.

/// Where in netfilter a packet was dropped, as far as the skb tells.
public enum FirewallHook: UInt8, Sendable, Hashable {
    case unknown = 0
    case prerouting = 1
    case input = 2
    case forward = 3
    case output = 4
    case postrouting = 5

    /// The nft base-chain hook name ("input", "output", ...); nil if unknown.
    public var name: String? {
        switch self {
        case .unknown: return nil
        case .prerouting: return "prerouting"
        case .input: return "input"
        case .forward: return "forward"
        case .output: return "output"
        case .postrouting: return "postrouting"
        }
    }
}

/// The conntrack state the kernel had given a packet when it was dropped
/// (skb->_nfct; bpf/conntrack.bpf.h), as nft's `ct state` names it.
public enum ConntrackState: UInt8, Sendable, Hashable {
    /// conntrack's types are not in the kernel's BTF: not read.
    case unknown = 0
    /// No entry: `ct state invalid`, or conntrack could not create one (table full).
    case invalid = 1
    case new = 2
    case established = 3
    case related = 4
    /// Exempted from tracking (`notrack`).
    case untracked = 5

    /// The `ct state` keyword ("invalid", "new", ...); nil when unknown.
    public var name: String? {
        switch self {
        case .unknown: return nil
        case .invalid: return "invalid"
        case .new: return "new"
        case .established: return "established"
        case .related: return "related"
        case .untracked: return "untracked"
        }
    }
}

/// A TCP packet freed with reason NETFILTER_DROP: a REJECT or DROP verdict.
/// `local` is the packet's destination (the service), `remote` its source.
public struct FirewallDrop: Sendable, Hashable {
    public var ts: UInt64
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint
    public var netns: UInt32
    public var mark: UInt32
    public var ifindex: UInt32
    public var tcpFlags: UInt8
    public var hook: FirewallHook
    public var skbAddr: UInt64
    public var location: UInt64
    /// skb->sk was set: the packet was generated on this host (OUTPUT path).
    public var hasSocket: Bool
    /// The connect() caller of skb->sk (captured in process context at connect()).
    public var client: TaskInfo?
    /// The drop ran in the client's own context (the first SYN, inside connect()).
    public var processContext: Bool
    /// The packet's conntrack state at the drop.
    public var ctState: ConntrackState
    /// The conntrack entries of its namespace at the drop (read when it had no entry); nil: not read.
    public var ctCount: UInt32?

    /// No conntrack entry for the packet, and none at all in its namespace
    /// (the count read at the drop is 0): conntrack is not tracking that
    /// namespace — no rule or NAT there asks it to; a SYN it tracks has an
    /// entry of its own from the `raw` priority on. nft's `ct state` would
    /// say "invalid", which is no finding about the connection then.
    public var conntrackIdle: Bool { ctState == .invalid && ctCount == 0 }
    /// skb->dev's name, empty without a device.
    public var ifname: String
    /// The kernel's drop reason (NETFILTER_DROP in this kernel's numbering); 0: not given.
    public var reasonCode: UInt32
    /// The segment had a handshake segment's shape (SYN_FW_F_HANDSHAKE: a
    /// payload-free ACK, a RST|ACK with sequence 0, ...); false: other TCP.
    public var handshakeShape: Bool
    /// An ICMP destination unreachable quoting a SYN (`tcpFlags`, `local`
    /// and `remote` are the SYN's): its code.
    public var icmpCode: UInt8?
    /// The attempt's client ISN (bpf/skb.bpf.h, seg_isn): the same for a
    /// retransmission, another for a new attempt reusing the 4-tuple.
    public var isn: UInt32

    public init(ts: UInt64, family: AddressFamily, local: Endpoint, remote: Endpoint, netns: UInt32,
                mark: UInt32 = 0, ifindex: UInt32 = 0, tcpFlags: UInt8 = 0x02, hook: FirewallHook = .input,
                skbAddr: UInt64 = 0, location: UInt64 = 0, hasSocket: Bool = false,
                client: TaskInfo? = nil, processContext: Bool = false,
                ctState: ConntrackState = .unknown, ctCount: UInt32? = nil, ifname: String = "", reasonCode: UInt32 = 0,
                handshakeShape: Bool = true, icmpCode: UInt8? = nil, isn: UInt32 = 0) {
        self.ts = ts
        self.family = family
        self.local = local
        self.remote = remote
        self.netns = netns
        self.mark = mark
        self.ifindex = ifindex
        self.tcpFlags = tcpFlags
        self.hook = hook
        self.skbAddr = skbAddr
        self.location = location
        self.hasSocket = hasSocket
        self.client = client
        self.processContext = processContext
        self.ctState = ctState
        self.ctCount = ctCount
        self.ifname = ifname
        self.reasonCode = reasonCode
        self.handshakeShape = handshakeShape
        self.icmpCode = icmpCode
        self.isn = isn
    }

    /// A connection attempt: SYN without ACK (an ICMP quoting one is not).
    public var isSyn: Bool { icmpCode == nil && tcpFlags & 0x02 != 0 && tcpFlags & 0x10 == 0 }

    /// The handshake segment this is; nil: other TCP (data, FIN, another RST).
    public var segment: HandshakeSegment? {
        if icmpCode != nil { return .icmp }
        return handshakeShape ? HandshakeSegment(tcpFlags: tcpFlags) : nil
    }

    /// Sent by the service: a SYN-ACK, or a RST answering a SYN.
    var fromService: Bool { segment?.fromService ?? (tcpFlags & 0x12 == 0x12) }

    /// The service port: the destination, except for what the service sends (a SYN-ACK, a SYN's RST).
    public var servicePort: UInt16 { fromService ? remote.port : local.port }
    /// The connection's two ends (for an ICMP, the quoted SYN's).
    public var serverEnd: Endpoint { fromService ? remote : local }
    public var clientEnd: Endpoint { fromService ? local : remote }

    /// Which way the packet was going on this host (as `PacketDrop.direction`).
    public var direction: String {
        if hasSocket { return "egress" }
        switch hook {
        case .forward: return "forward"
        case .output, .postrouting: return "egress"
        default: return "ingress"
        }
    }
}

/// An IPv4 ICMP error sent for a TCP packet (icmp:icmp_send). `local` is the
/// offending packet's destination.
public struct FirewallICMP: Sendable, Hashable {
    public var ts: UInt64
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint
    public var netns: UInt32
    public var skbAddr: UInt64
    public var type: UInt8
    public var code: UInt8
    public var tcpFlags: UInt8

    public init(ts: UInt64, family: AddressFamily = .ipv4, local: Endpoint, remote: Endpoint, netns: UInt32,
                skbAddr: UInt64, type: UInt8 = 3, code: UInt8 = 3, tcpFlags: UInt8 = 0x02) {
        self.ts = ts
        self.family = family
        self.local = local
        self.remote = remote
        self.netns = netns
        self.skbAddr = skbAddr
        self.type = type
        self.code = code
        self.tcpFlags = tcpFlags
    }

    /// The nft/iptables name of what the client was sent ("icmp port-unreachable").
    public var rejectWith: String {
        guard type == 3 else { return "icmp type \(type) code \(code)" }
        let names: [UInt8: String] = [0: "net-unreachable", 1: "host-unreachable", 2: "prot-unreachable",
                                      3: "port-unreachable", 9: "net-prohibited", 10: "host-prohibited",
                                      13: "admin-prohibited"]
        return "icmp " + (names[code] ?? "unreachable code \(code)")
    }
}

/// A local client retransmitted its SYN: the first one got no answer.
/// `local` is the client end.
public struct SynRetransmit: Sendable, Hashable {
    public var ts: UInt64
    public var connectTs: UInt64
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint
    public var task: TaskInfo
    public var netns: UInt32

    public init(ts: UInt64, connectTs: UInt64 = 0, family: AddressFamily, local: Endpoint, remote: Endpoint,
                task: TaskInfo, netns: UInt32) {
        self.ts = ts
        self.connectTs = connectTs
        self.family = family
        self.local = local
        self.remote = remote
        self.task = task
        self.netns = netns
    }
}

/// Finer causes of `firewall_reject` / `firewall_drop`, when the rule says more.
public enum FirewallCause: String, Sendable, Hashable, CaseIterable {
    /// kube-proxy rejects connections to a Service that has no ready endpoints.
    case serviceWithoutEndpoints = "service_without_endpoints"
    /// kube-proxy drops connections to a Service whose traffic policy is
    /// Local arriving at a node without a ready endpoint of it.
    case serviceWithoutLocalEndpoints = "service_without_local_endpoints"
    /// A `ct state invalid` rule dropped a packet conntrack had no entry for
    /// (asymmetric routing, mid-stream pickup, a NAT reusing tuples, window tracking).
    case conntrackInvalid = "conntrack_invalid"
    /// No rule: an IPVS virtual service with no real server it can schedule
    /// (none, or all at weight 0) answered the SYN with ICMP port unreachable
    /// (kube-proxy in IPVS mode: a Service without ready endpoints).
    case ipvsNoDestination = "ipvs_no_destination"
    /// Docker's rule isolating its networks from one another
    /// (DOCKER-ISOLATION-STAGE-2) dropped a container's SYN to another network.
    case networkIsolation = "network_isolation"
    /// Docker's rule keeping an internal network (`--internal`) closed
    /// dropped a SYN into or out of it.
    case internalNetwork = "internal_network"
    /// A Kubernetes NetworkPolicy enforcer's final reject (kube-router, k3s's
    /// built-in controller): a pod is selected by NetworkPolicies and none
    /// of them allows the connection.
    case networkPolicy = "network_policy"
    /// The rule applies past a limit (`ct count over`, `limit rate over`,
    /// connlimit, hashlimit, recent's hit count, ufw's `limit`): the client
    /// opened more connections, or new ones faster, than it allows.
    case rateLimited = "rate_limited"
    /// An intrusion-prevention tool (fail2ban, sshguard, CrowdSec) banned
    /// the client's address: its rule refuses everything from it.
    case addressBanned = "address_banned"
}

/// How a firewall verdict was reached (the record's `evidence.method`).
package enum FirewallMethod: String, CaseIterable {
    case clientErrno = "client_errno"
    case icmpSend = "icmp_send"
    case retransmission
    case singleDrop = "single_drop"
    /// A RST or ICMP error answering a SYN was dropped: a drop by nature (the client never sees the answer).
    case answerDropped = "answer_dropped"
}
