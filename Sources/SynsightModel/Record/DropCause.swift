import SynsightBase
/// The causes of `packet_dropped`: one family per group of kernel drop
/// reasons, defined once here with the reasons (by normalised BTF name, never
/// by number: the numbering changes between kernels) and the advice.

public enum DropCause: String, Sendable, Hashable, CaseIterable {
    case rpFilter = "rp_filter"
    case noRoute = "no_route"
    case neighbourFailed = "neighbour_failed"
    case bpfProgram = "bpf_program"
    case xfrmPolicy = "xfrm_policy"
    case socketFilter = "socket_filter"
    case martianSource = "martian_source"
    case badDestination = "bad_destination"
    /// A packet to forward arrived on an interface that does not forward
    /// (IPv4: ip_error's IP_INADDRERRORS, set only when the input device's
    /// forwarding is off; IPv6: ip6_forward's, with all.forwarding off):
    /// the containers, VMs or namespaces behind it reach nothing beyond.
    case forwardingDisabled = "forwarding_disabled"
    case checksum
    case tcpMD5 = "tcp_md5"
    case tcpAO = "tcp_ao"
    case minTTL = "min_ttl"
    case securityHook = "security_hook"
    case ipv6Disabled = "ipv6_disabled"
    case malformed
    case queueFull = "queue_full"
    case tcpState = "tcp_state"
    /// conntrack could not create an entry: the namespace's table held
    /// nf_conntrack_max entries (a NETFILTER_DROP by nf_conntrack_in, no rule;
    /// decided by the firewall area from the table's use at the drop).
    case conntrackFull = "conntrack_full"
    case openvswitch
    case unspecified
    case other

    /// Kernel reasons (normalised names) of each family. A name this table
    /// lacks (a newer kernel's) falls to `other`, reported with its name.
    package static let reasons: [DropCause: [String]] = [
        .rpFilter: ["ip_rpfilter"],
        .noRoute: ["ip_outnoroutes", "ip_innoroutes"],
        .neighbourFailed: ["neigh_createfail", "neigh_failed", "neigh_queuefull", "neigh_dead", "neigh_hh_fillfail"],
        .bpfProgram: ["tc_ingress", "tc_egress", "bpf_cgroup_egress", "xdp", "tc_cookie_error",
                      "tc_chain_notfound", "tc_reclassify_loop"],
        .xfrmPolicy: ["xfrm_policy"],
        .socketFilter: ["socket_filter"],
        .martianSource: ["ip_invalid_source", "ip_local_source", "ip_localnet", "mac_invalid_source"],
        .badDestination: ["ip_invalid_dest"],
        .forwardingDisabled: ["ip_inaddrerrors"],
        .checksum: ["tcp_csum", "ip_csum", "skb_csum", "icmp_csum"],
        .tcpMD5: ["tcp_md5notfound", "tcp_md5unexpected", "tcp_md5failure"],
        .tcpAO: ["tcp_auth_hdr", "tcp_aonotfound", "tcp_aounexpected", "tcp_aokeynotfound", "tcp_aofailure"],
        .minTTL: ["tcp_minttl"],
        .securityHook: ["security_hook"],
        .ipv6Disabled: ["ipv6disabled"],
        .malformed: ["pkt_too_small", "ip_inhdr", "hdr_trunc", "ip_noproto", "ipv6_bad_exthdr", "invalid_proto",
                     "unhandled_proto", "dev_hdr", "pkt_too_big"],
        .queueFull: ["qdisc_drop", "qdisc_overlimit", "qdisc_congested", "cake_flood", "fq_band_limit",
                     "fq_horizon_limit", "fq_flow_limit", "cpu_backlog", "full_ring", "nomem", "proto_mem",
                     "socket_rcvbuff", "socket_backlog", "dualpi2_step_drop", "pfmemalloc", "dev_ready"],
        .tcpState: ["tcp_flags", "tcp_invalid_syn", "tcp_rfc7323_paws", "tcp_rfc7323_paws_ack", "tcp_rfc7323_tw_paws",
                    "tcp_rfc7323_tsecr", "tcp_old_sequence", "tcp_invalid_sequence", "tcp_invalid_end_sequence",
                    "tcp_invalid_ack_sequence", "tcp_reset", "tcp_close", "tcp_fastopen", "tcp_old_ack",
                    "tcp_too_old_ack", "tcp_ack_unsent_data", "tcp_zerowindow", "tcp_overwindow", "socket_close"],
        .unspecified: ["not_specified"],
    ]

    /// The families whose reasons make a dropped handshake ACK, or a dropped
    /// RST or ICMP answering a SYN, a failure (bpf/drops.bpf.h,
    /// `answer_drop_reason`; the loader sets their values in
    /// `syn_config.answer_drop_reasons`). Left out: what healthy
    /// connections free pure ACKs with (`tcp_state`: TCP_CLOSE, old or
    /// out-of-window ACKs; `unspecified`), congestion (`queue_full`),
    /// `neighbour_failed` (the SYN just went the same way), `malformed`,
    /// bridge flooding (OTHERHOST, not in a family) and reasons this version
    /// does not know (`other`, `openvswitch`). Netfilter's drops of any of
    /// them are the firewall's, always.
    public static let answerFailures: Set<DropCause> = [
        .rpFilter, .noRoute, .bpfProgram, .xfrmPolicy, .socketFilter, .martianSource, .badDestination,
        .forwardingDisabled, .checksum, .tcpMD5, .tcpAO, .minTTL, .securityHook, .ipv6Disabled,
    ]

    /// The kernel's reason for a netfilter drop (a rule's, or conntrack's own: `conntrack_full`).
    public static let netfilterDrop = "netfilter_drop"

    static let byReason: [String: DropCause] = {
        var m: [String: DropCause] = [:]
        for (cause, names) in reasons { for n in names { m[n] = cause } }
        return m
    }()

    /// The family of a named reason.
    public static func of(_ reason: DropReasonName) -> DropCause {
        if let sub = reason.subsystem { return sub == "openvswitch" ? .openvswitch : .other }
        return byReason[reason.name] ?? .other
    }

    /// The family of one drop, where the reason alone does not say: IPv6
    /// also gives IP_INADDRERRORS for a destination it cannot take (an
    /// unspecified one, a multicast group not joined); only ip6_forward's
    /// is forwarding switched off (`function`: the dropping function, nil
    /// when not symbolized).
    public static func of(_ reason: DropReasonName, family: AddressFamily, function: String?) -> DropCause {
        let cause = of(reason)
        if cause == .forwardingDisabled, family == .ipv6, function != "ip6_forward" { return .badDestination }
        return cause
    }

    /// Where each BPF-hook reason was dropped (evidence `attach_point`).
    static let attachPoints: [String: String] = [
        "tc_ingress": "tc ingress", "tc_egress": "tc egress", "bpf_cgroup_egress": "cgroup egress",
        "xdp": "xdp", "tc_cookie_error": "tc", "tc_chain_notfound": "tc", "tc_reclassify_loop": "tc",
    ]

    public static func attachPoint(_ reason: DropReasonName) -> String? { attachPoints[reason.name] }

    /// The sysctl that governs a cause on an interface, when there is one.
    public func sysctl(family: AddressFamily, interface: String) -> String? {
        let dev = interface.isEmpty ? "all" : interface
        switch self {
        case .rpFilter: return family == .ipv4 ? "net.ipv4.conf.\(dev).rp_filter" : nil
        case .ipv6Disabled: return "net.ipv6.conf.\(dev).disable_ipv6"
        case .forwardingDisabled: return family == .ipv4 ? "net.ipv4.conf.\(dev).forwarding" : "net.ipv6.conf.all.forwarding"
        case .conntrackFull: return "net.netfilter.nf_conntrack_max"
        default: return nil
        }
    }

    /// The fix in general terms, for the report's steps (the record's hint
    /// says it for the one drop: addresses, interface, namespace).
    public var remediation: String {
        switch self {
        case .rpFilter: return "Reverse-path filtering dropped the SYN: make the routes symmetric, or set rp_filter=2 (loose) on the interface in the evidence."
        case .noRoute: return "No route for the handshake: add the missing route in the namespace in the evidence (ip route get <addr>)."
        case .neighbourFailed: return "The next hop did not answer ARP/NDP: check that it is up and on that link (ip neigh)."
        case .bpfProgram: return "A tc, XDP or cgroup BPF program (a network-policy engine) dropped it: the evidence (bpf_programs) names it; inspect it (bpftool prog show id <id>, tc filter show, bpftool cgroup tree) and allow the port in its policy, or detach it."
        case .xfrmPolicy: return "An IPsec (XFRM) policy wants a transform the packet lacks: check ip xfrm policy and the tunnel."
        case .socketFilter: return "A socket filter on the listener rejected it: check the filter attached to the listening socket."
        case .martianSource: return "The source address is invalid on that interface (martian): fix the sender's address or the NAT in front of it."
        case .badDestination: return "The destination is not a valid unicast address here: fix the client's target address."
        case .forwardingDisabled: return "The host does not forward packets arriving on that interface: set net.ipv4.ip_forward=1 (net.ipv6.conf.all.forwarding=1), and find what turned it off (a sysctl.d file, a hardening script); Docker, libvirt and Kubernetes need it on."
        case .checksum: return "Bad checksums: check NIC offloads (ethtool -k) and the path for a corrupting middlebox."
        case .tcpMD5: return "TCP MD5 signatures differ: configure the same TCP_MD5SIG key on both ends."
        case .tcpAO: return "TCP-AO failed: configure matching TCP-AO keys on both ends."
        case .minTTL: return "The TTL is below the listener's IP_MINTTL: the peer is further away than allowed, or lower IP_MINTTL."
        case .securityHook: return "A security module's network hook refused it: read the LSM's audit log."
        case .ipv6Disabled: return "IPv6 is disabled on the interface: enable it (disable_ipv6=0) or connect over IPv4."
        case .malformed: return "The packets are malformed or truncated: capture them (tcpdump) and fix the sender."
        case .queueFull: return "A queue was full or memory short: check qdisc statistics (tc -s qdisc), netdev_max_backlog and memory pressure."
        case .tcpState: return "TCP rejected stale or out-of-window handshakes: look for a NAT reusing 4-tuples, or timestamp (PAWS) problems."
        case .openvswitch: return "Open vSwitch dropped it: check the bridge's flows (ovs-ofctl dump-flows)."
        case .conntrackFull: return "The conntrack table was full: raise net.netfilter.nf_conntrack_max (and the hash size, nf_conntrack_buckets), shorten the conntrack timeouts, and find who fills the table (conntrack -C, conntrack -L by source)."
        case .unspecified, .other: return "The kernel dropped the handshake: the evidence names the reason and the kernel function that dropped it."
        }
    }

    /// The fix, in one sentence. `d` is the drop, `reason` its kernel name,
    /// `port` the service port.
    public func hint(_ d: PacketDrop, reason: DropReasonName, port: UInt16) -> String {
        let seg = d.segment
        let src = d.remote.addr.description, dst = d.local.addr.description
        let dev = d.ifname.isEmpty ? "an interface" : d.ifname
        let ns = " (network namespace \(d.netns))"
        let what = "the kernel dropped the \(seg) \(d.remote) -> \(d.local) (port \(port)) on \(dev)\(ns)"
        switch self {
        case .rpFilter:
            let sysctl = sysctl(family: d.family, interface: d.ifname) ?? "rp_filter"
            return "reverse-path filter on \(dev)\(ns) dropped the \(seg) from \(src): the route back to \(src) leaves by another interface; "
                + "set \(sysctl)=2 (loose; the larger of it and net.ipv4.conf.all.rp_filter applies) or fix the asymmetric route"
        case .noRoute:
            return "\(what): no route to its destination \(dst); "
                + "add the route (`ip route get \(dst)` in that namespace shows the lookup that failed)"
        case .neighbourFailed:
            return "\(what): the next hop's link-layer address could not be resolved (ARP/NDP failed): check the next hop is up and on that link (`ip neigh`)"
        case .bpfProgram:
            let at = Self.attachPoints[reason.name] ?? "a BPF hook"
            return "a \(at) program or filter on \(dev)\(ns) dropped the \(seg) to port \(port) (a network-policy engine such as Cilium or Calico drops this way): "
                + "list it (`tc filter show dev \(dev) ingress`/`egress`, `bpftool net show`, `bpftool cgroup tree`) and allow the port or remove it"
        case .xfrmPolicy:
            return "\(what): an IPsec (XFRM) policy requires a transform the packet lacks: check `ip xfrm policy` and the tunnel's state"
        case .socketFilter:
            return "\(what): a socket filter (SO_ATTACH_FILTER / cgroup BPF ingress) on the receiving socket rejected it: check the listener's attached filter"
        case .martianSource:
            return "\(what): its source \(src) is invalid on \(dev) (martian: loopback, local or multicast source): fix the sender's address or NAT"
        case .badDestination:
            return "\(what): its destination \(dst) is not a valid unicast address here: check the client's target address"
        case .forwardingDisabled:
            let all = d.family == .ipv4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding"
            let sysctl = sysctl(family: d.family, interface: d.ifname) ?? all
            return "\(what): this host does not forward \(d.family == .ipv4 ? "IPv4" : "IPv6") arriving on \(dev) (\(sysctl) is 0), so what sits behind it "
                + "(containers, VMs, namespaces) cannot reach \(dst): set \(all)=1 (sysctl -w \(all)=1, and in /etc/sysctl.d to keep it) "
                + "and find what turned it off (Docker, libvirt and Kubernetes turn it on at start-up; a sysctl.d file or a script applied later turns it off)"
        case .checksum:
            return "\(what): bad checksum (a NIC offload, a broken middlebox or corrupted link): check `ethtool -k \(dev)` offloads and the path"
        case .tcpMD5:
            return "\(what): TCP MD5 signature (RFC 2385) missing, unexpected or wrong: configure the same TCP_MD5SIG key on both ends"
        case .tcpAO:
            return "\(what): TCP-AO authentication (RFC 5925) failed: configure matching TCP-AO keys on both ends"
        case .minTTL:
            return "\(what): its TTL/hop limit is below the listener's IP_MINTTL (GTSM): the peer is further away than allowed, or lower IP_MINTTL"
        case .securityHook:
            return "\(what): a security module's network hook (SELinux netlabel/secmark, …) refused it: check the LSM's audit log"
        case .ipv6Disabled:
            return "\(what): IPv6 is disabled on \(dev): set \(sysctl(family: d.family, interface: d.ifname) ?? "disable_ipv6")=0 or connect over IPv4"
        case .malformed:
            return "\(what): the packet was malformed or truncated: capture it (`tcpdump -i \(dev)`) and check the sender"
        case .queueFull:
            return "\(what): a queue was full or memory short (\(reason.name)): check `tc -s qdisc show dev \(dev)`, netdev_max_backlog and memory pressure"
        case .tcpState:
            return "\(what): TCP rejected the segment (\(reason.name)): a stale or out-of-window handshake, often a NAT reusing a 4-tuple or timestamps (PAWS)"
        case .conntrackFull:
            return "\(what): the conntrack table was full: " + remediation
        case .openvswitch:
            return "\(what): Open vSwitch dropped it (\(reason.name)): check the bridge's flows (`ovs-ofctl dump-flows`, `ovs-appctl dpctl/dump-flows`)"
        case .unspecified:
            return "\(what) without a reason: the location (evidence) names the code that dropped it"
        case .other:
            return "\(what) with reason \(reason.name): the location (evidence) names the code that dropped it"
        }
    }
}
