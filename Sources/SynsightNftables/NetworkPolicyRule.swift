import SynsightModel

/// The final reject of kube-router's NetworkPolicy enforcement (the
/// controller k3s runs built in): each pod a NetworkPolicy selects gets a
/// chain (`KUBE-POD-FW-<hash>`) that runs the packet through the chains of
/// the policies selecting it (`KUBE-NWPLCY-<hash>`, which mark what they
/// allow) and rejects what none marked. The rule's comment names the pod:
/// "rule to REJECT traffic destined for POD name:web-1 namespace: shop"
/// (iptables mode, every release so far; the same text serves the pod's
/// egress policies) or "shop/web-1 reject" (the newer comment format, and
/// its nftables mode). The rule is not the fault: the policies are.
public struct NetworkPolicyRule: Sendable, Hashable {
    /// The pod whose NetworkPolicies allow no such connection, as
    /// "namespace/name"; nil when the comment does not say.
    public var pod: String?

    public init(pod: String?) {
        self.pod = pod
    }

    public init?(_ rule: FirewallRule) {
        guard rule.owner == .kubeRouter, rule.verdict != .policyDrop, rule.ctStateMatched != .invalid else { return nil }
        if let pod = Self.pod(comment: rule.comment) {
            self.init(pod: pod)
        } else if rule.chain.hasPrefix("KUBE-POD-FW-") {
            self.init(pod: nil)
        } else {
            return nil
        }
    }

    /// "namespace/name" from either comment format; nil for another comment.
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
}
