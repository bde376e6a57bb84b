import SynsightBase
/// The evidence of a `firewall_reject` / `firewall_drop` record
/// (`$defs/reason_firewall`): how the verdict was reached, what the kernel
/// saw of the packet, and the rule. FirewallAttribution.swift fills it.
public struct FirewallEvidence: ReasonEvidence {
    public static let reasons: Set<Reason> = [.firewallReject, .firewallDrop]

    /// How reject was told from drop (`FirewallMethod`).
    public var method: String?
    /// The client's connect() errno, when it decided.
    public var clientErrno: Int64?
    /// The netfilter hook of the drop (prerouting, input, output, ...).
    public var chainHook: String?
    /// What the client was sent (`tcp-reset`, `icmp port-unreachable`, ...).
    public var rejectWith: String?
    /// The ICMP error sent: {type, code}.
    public var icmp: JSONValue?
    public var mark: UInt32?
    /// The conntrack state the kernel gave the packet (`ConntrackState`).
    public var ctState: String?
    /// Dropped segments of this attempt.
    public var drops: Int64?
    /// false: not a SYN (then `tcpFlags` says what it was).
    public var syn: Bool?
    public var tcpFlags: Int64?
    /// The handshake segment dropped (`HandshakeSegment`: syn, syn_ack, ack,
    /// rst, icmp); absent for other TCP (data, FIN, another RST).
    public var segment: String?
    /// true: sent from a socket of this namespace.
    public var localSocket: Bool?
    /// How the client was found (`process`, `joined`).
    public var clientContext: String?
    /// The rule: table, chain, handle, text, comment, owner, counter.
    public var table: String?
    public var chain: String?
    public var handle: Int64?
    public var rule: String?
    public var ruleComment: String?
    public var ruleOwner: String?
    /// kube-proxy's Service without endpoints (`ns/svc:port`).
    public var service: String?
    /// network_policy: the pod whose NetworkPolicies allow no such
    /// connection (`namespace/name`), from the enforcer's rule comment.
    public var policyPod: String?
    /// rate_limited: the limiting match as the rule writes it ("ct count
    /// over 2", "-m connlimit --connlimit-above 2 ..."), and what it is
    /// counted per ("ip saddr", "source address"), when it says.
    public var rateLimit: String?
    public var rateLimitPer: String?
    /// address_banned: the tool (fail2ban, sshguard, crowdsec), and its
    /// jail or the set holding the address.
    public var bannedBy: String?
    public var banList: String?
    /// The rule as iptables-save writes it (iptables-nft: nft prints its
    /// `xt match`es without their options).
    public var iptablesRule: String?
    /// network_isolation, internal_network: the Docker network the rule
    /// keeps apart, as `docker network` takes it (an id prefix, `bridge`),
    /// and its bridge device.
    public var dockerNetwork: String?
    /// Its name, from the configs of the containers attached to it.
    public var dockerNetworkName: String?
    public var bridge: String?
    public var rulePackets: Int64?
    /// How the rule was found (`ruleset_match`, `no_match`, `ruleset_unavailable`, ...).
    public var ruleMethod: String?
    /// Other rules that match the packet as well, as {table, chain, handle, rule, rule_comment}.
    public var candidates: [JSONValue]?
    public var rulesetError: String?
    /// The IPVS virtual service the SYN was for, when IPVS refused it: service, scheduler, destinations.
    public var ipvs: JSONValue?
    public var hook: String?

    public init() {}

    public static let layout: [EvidenceField<FirewallEvidence>] = [
        .string(.method, \.method), .int(.clientErrno, \.clientErrno), .string(.chainHook, \.chainHook),
        .string(.rejectWith, \.rejectWith), .value(.icmp, \.icmp), .int(.mark, \.mark), .string(.ctState, \.ctState),
        .int(.drops, \.drops), .bool(.syn, \.syn), .int(.tcpFlags, \.tcpFlags), .string(.segment, \.segment), .bool(.localSocket, \.localSocket),
        .string(.clientContext, \.clientContext), .string(.table, \.table), .string(.chain, \.chain),
        .int(.handle, \.handle), .string(.rule, \.rule), .string(.ruleComment, \.ruleComment),
        .string(.ruleOwner, \.ruleOwner), .string(.iptablesRule, \.iptablesRule), .string(.service, \.service),
        .string(.policyPod, \.policyPod), .string(.rateLimit, \.rateLimit), .string(.rateLimitPer, \.rateLimitPer),
        .string(.bannedBy, \.bannedBy), .string(.banList, \.banList),
        .string(.dockerNetwork, \.dockerNetwork),
        .string(.dockerNetworkName, \.dockerNetworkName), .string(.bridge, \.bridge),
        .int(.rulePackets, \.rulePackets),
        .string(.ruleMethod, \.ruleMethod), .array(.candidates, \.candidates), .string(.rulesetError, \.rulesetError),
        .value(.ipvs, \.ipvs), .string(.hook, \.hook),
    ]
}

extension Record {
    /// The typed evidence of a `firewall_reject` / `firewall_drop` record; nil for any other reason.
    public var firewallEvidence: FirewallEvidence? { evidence(as: FirewallEvidence.self) }
}
