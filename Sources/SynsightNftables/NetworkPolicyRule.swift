import SynsightModel

/// The reject or drop of a Kubernetes NetworkPolicy enforcer: what no
/// policy selecting a pod allows. The rule is not the fault: the policies are.
///
/// kube-router (the controller k3s runs built in) gives each pod a
/// NetworkPolicy selects a chain (`KUBE-POD-FW-<hash>`) that runs the packet
/// through the chains of the policies selecting it (`KUBE-NWPLCY-<hash>`,
/// which mark what they allow) and rejects what none marked; the comment
/// names the pod: "rule to REJECT traffic destined for POD name:web-1
/// namespace: shop" (iptables mode, every release so far; the same text
/// serves the pod's egress policies) or "shop/web-1 reject" (the newer
/// comment format, and its nftables mode).
///
/// Calico (iptables dataplane) ends a local pod's chains, `cali-tw-<its
/// host-side interface>` (to the pod) and `cali-fw-<interface>` (from it),
/// with "Drop if no policies passed packet" (or "Drop if no profiles
/// matched"); a policy's own deny rules are in `cali-pi-*` / `cali-po-*`
/// (profiles: `cali-pri-*` / `cali-pro-*`). Its comments name no pod: the
/// interface does, and the record's listener or client is that pod.
public struct NetworkPolicyRule: Sendable, Hashable {
    /// Which of the pod's policies decided: those for traffic to it
    /// (ingress) or from it (egress); nil when the rule does not say.
    public enum Direction: String, Sendable, Hashable {
        case toPod
        case fromPod
    }

    public var enforcer: FirewallOwner
    /// The pod whose NetworkPolicies allow no such connection, as
    /// "namespace/name", when the rule's comment names it.
    public var pod: String?
    public var direction: Direction?
    /// The pod's host-side interface, when the chain is named after it (Calico).
    public var interface: String?

    public init(enforcer: FirewallOwner, pod: String? = nil, direction: Direction? = nil, interface: String? = nil) {
        self.enforcer = enforcer
        self.pod = pod
        self.direction = direction
        self.interface = interface
    }

    public init?(_ rule: FirewallRule) {
        guard rule.verdict != .policyDrop, rule.ctStateMatched != .invalid else { return nil }
        switch rule.owner {
        case .kubeRouter?:
            if let pod = Self.pod(comment: rule.comment) {
                self.init(enforcer: .kubeRouter, pod: pod)
            } else if rule.chain.hasPrefix("KUBE-POD-FW-") {
                self.init(enforcer: .kubeRouter)
            } else {
                return nil
            }
        case .calico?:
            guard let (direction, interface) = Self.calicoChain(rule.chain) else { return nil }
            self.init(enforcer: .calico, direction: direction, interface: interface)
        default:
            return nil
        }
    }

    /// A Calico chain that holds policy verdicts: its direction, and the
    /// interface a workload endpoint's chain is named after.
    static func calicoChain(_ chain: String) -> (Direction, String?)? {
        for (prefix, direction, named) in [("cali-tw-", Direction.toPod, true), ("cali-fw-", .fromPod, true),
                                           ("cali-pi-", .toPod, false), ("cali-pri-", .toPod, false),
                                           ("cali-po-", .fromPod, false), ("cali-pro-", .fromPod, false)]
        where chain.hasPrefix(prefix) {
            let rest = String(chain.dropFirst(prefix.count))
            return (direction, named && !rest.isEmpty ? rest : nil)
        }
        return nil
    }

    /// "namespace/name" from either of kube-router's comment formats; nil for another comment.
    static func pod(comment: String?) -> String? {
        guard let comment else { return nil }
        let legacy = "rule to REJECT traffic destined for POD name:"
        if comment.hasPrefix(legacy) {
            // "<pod> namespace: <ns>" (Kubernetes names hold no spaces).
            let words = comment.dropFirst(legacy.count).split(separator: " ")
            guard words.count == 3, words[1] == "namespace:" else { return nil }
            return valid(String(words[2]), String(words[0]))
        }
        let words = comment.split(separator: " ")
        guard words.count == 2, words[1] == "reject" else { return nil }
        let parts = words[0].split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        return valid(String(parts[0]), String(parts[1]))
    }

    /// Kubernetes names: lower-case letters, digits, '-' and '.'.
    static func valid(_ namespace: String, _ name: String) -> String? {
        let ok: (String) -> Bool = { s in
            !s.isEmpty && s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2E }
        }
        return ok(namespace) && ok(name) ? "\(namespace)/\(name)" : nil
    }

    public var cause: FirewallCause { .networkPolicy }

    /// The enforcer as its users write it.
    public var enforcerName: String { enforcer == .calico ? "Calico" : enforcer.rawValue }
}

extension Advice.Facts {
    /// network_policy's facts: the enforcer, whose policies decided (the
    /// pod's egress ones for a rule on traffic from it), and the pod: the
    /// rule's, else `pod` (found another way).
    public mutating func networkPolicy(_ p: NetworkPolicyRule, pod: String? = nil) {
        policyPod = p.pod ?? pod
        policyEnforcer = p.enforcerName
        policyEgress = p.direction == .fromPod
    }
}
