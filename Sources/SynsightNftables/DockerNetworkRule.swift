import SynsightModel

/// A drop rule Docker writes to keep its networks apart, recognised from its
/// chain and the bridge it names: DOCKER-ISOLATION-STAGE-2's
/// `-o <bridge> -j DROP` (reached from STAGE-1 for traffic leaving another
/// bridge) isolates user-defined networks from one another; an internal
/// network's (`docker network create --internal`) drops are in
/// DOCKER-ISOLATION-STAGE-1 (Docker 20.10 to 27) or DOCKER-INTERNAL (28+).
/// Deleting them does not last: Docker writes them again.
public struct DockerNetworkRule: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case isolation
        case internalNetwork
    }

    public var kind: Kind
    /// The bridge the rule names (`br-<network id>`, `docker0`, or a name
    /// set with com.docker.network.bridge.name); nil when it names none.
    public var bridge: String?

    public init(kind: Kind, bridge: String?) {
        self.kind = kind
        self.bridge = bridge
    }

    public init?(_ rule: FirewallRule) {
        guard rule.owner == .docker, rule.verdict == .drop else { return nil }
        switch rule.chain {
        case "DOCKER-ISOLATION-STAGE-2":
            self.init(kind: .isolation, bridge: Self.device(rule.text, nft: "oifname", iptables: "-o"))
        case "DOCKER-ISOLATION-STAGE-1", "DOCKER-INTERNAL":
            self.init(kind: .internalNetwork, bridge: Self.device(rule.text, nft: "oifname", iptables: "-o")
                        ?? Self.device(rule.text, nft: "iifname", iptables: "-i"))
        default:
            return nil
        }
    }

    public var cause: FirewallCause { kind == .isolation ? .networkIsolation : .internalNetwork }

    /// The network as `docker network` commands take it: its id prefix
    /// from `br-<id>`, `bridge` for docker0; nil for a bridge named otherwise.
    public var network: String? {
        guard let bridge else { return nil }
        if bridge == "docker0" { return "bridge" }
        guard bridge.hasPrefix("br-"), bridge.count == 15,
              bridge.dropFirst(3).allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        return String(bridge.dropFirst(3))
    }

    /// The device after `oifname "X"` (nft) or `-o X` (iptables-legacy's
    /// text); a negated match (`oifname != "X"`, `! -o X`) names none.
    static func device(_ text: String, nft: String, iptables: String) -> String? {
        let words = text.split(separator: " ").map(String.init)
        for (i, w) in words.enumerated() where (w == nft || w == iptables) && i + 1 < words.count {
            if words[i + 1] == "!=" || (i > 0 && words[i - 1] == "!") { continue }
            let name = words[i + 1].filter { $0 != "\"" }
            if !name.isEmpty { return name }
        }
        return nil
    }
}
