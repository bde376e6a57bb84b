import SynsightModel

/// What a refusing rule's own names and matches say beyond the rule: a
/// NetworkPolicy enforcer's verdict, a ban of an intrusion-prevention tool,
/// or a limit the client went over — decided in that order, in one place
/// for trace, record and explain (a rule matched on the packet's invalid
/// conntrack state is none of them: `conntrack_invalid`).
public enum RuleVerdict: Sendable, Hashable {
    case networkPolicy(NetworkPolicyRule)
    case banned(BanListRule)
    case rateLimited(RateLimitRule)

    public init?(_ rule: FirewallRule) {
        if let p = NetworkPolicyRule(rule) {
            self = .networkPolicy(p)
        } else if rule.ctStateMatched == .invalid {
            return nil
        } else if let b = BanListRule(rule) {
            self = .banned(b)
        } else if let l = RateLimitRule(rule) {
            self = .rateLimited(l)
        } else {
            return nil
        }
    }

    public var cause: FirewallCause {
        switch self {
        case .networkPolicy(let p): return p.cause
        case .banned(let b): return b.cause
        case .rateLimited(let l): return l.cause
        }
    }

    /// The evidence it adds, in the order records and explain write it.
    public var evidence: [(EvidenceKey, String)] {
        switch self {
        case .networkPolicy(let p): return p.pod.map { [(.policyPod, $0)] } ?? []
        case .banned(let b): return [(.bannedBy, b.tool.rawValue)] + (b.list.map { [(.banList, $0)] } ?? [])
        case .rateLimited(let l): return [(.rateLimit, l.limit)] + (l.per.map { [(.rateLimitPer, $0)] } ?? [])
        }
    }

    /// The facts its advice needs: `pod`, a NetworkPolicy's pod found
    /// another way; `client`, the refused address, when known.
    public func facts(_ f: inout Advice.Facts, pod: String? = nil, client: IPAddress? = nil) {
        switch self {
        case .networkPolicy(let p): f.networkPolicy(p, pod: pod)
        case .banned(let b): f.banned(b, client: client)
        case .rateLimited(let l): f.rateLimited(l, client: client)
        }
    }
}
