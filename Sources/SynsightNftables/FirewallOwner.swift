import SynsightBase
import SynsightModel
/// The tool that manages a firewall chain or table, recognised from the
/// names it gives them, and what that means for the fix (a rule such a tool
/// manages comes back when deleted by hand).
public enum FirewallOwner: String, Sendable, Hashable, CaseIterable {
    case kubeProxy = "kube-proxy"
    /// kube-router's NetworkPolicy controller (built into k3s): its chains
    /// start with KUBE- too, but they enforce NetworkPolicies, not Services.
    case kubeRouter = "kube-router"
    case docker
    case ufw
    case firewalld
    case calico
    case cilium
    case fail2ban
    case sshguard
    case crowdsec
    case libvirt
    /// Podman's netavark backend: iptables chains NETAVARK_* / NETAVARK-*,
    /// or its nftables table `inet netavark`.
    case netavark
    /// CNI plugins (bridge, portmap, firewall): Podman's CNI backend, a
    /// Kubernetes node's hostPorts under containerd or CRI-O.
    case cni

    /// From the table ("inet firewalld", "ip kube-proxy") and chain names.
    public static func recognise(table: String, chain: String) -> FirewallOwner? {
        let tableName = table.split(separator: " ").last.map(String.init) ?? table
        switch tableName {
        case "kube-proxy": return .kubeProxy
        case "firewalld": return .firewalld
        case "calico": return .calico
        case "kube-router-filter-ipv4", "kube-router-filter-ipv6": return .kubeRouter
        case "sshguard": return .sshguard
        case "crowdsec", "crowdsec6": return .crowdsec
        case "netavark": return .netavark
        default: break
        }
        if kubeRouterChainPrefixes.contains(where: chain.hasPrefix) { return .kubeRouter }
        if chain.hasPrefix("KUBE-") { return .kubeProxy }
        if chain == "DOCKER" || chain.hasPrefix("DOCKER-") { return .docker }
        if chain.hasPrefix("ufw-") || chain.hasPrefix("ufw6-") { return .ufw }
        if chain.hasPrefix("cali-") { return .calico }
        if chain.hasPrefix("CILIUM_") || chain.hasPrefix("cilium-") { return .cilium }
        if chain.hasPrefix("f2b-") { return .fail2ban }
        if chain == "sshguard" { return .sshguard }
        if chain.hasPrefix("CROWDSEC") || chain.hasPrefix("crowdsec") { return .crowdsec }
        if chain.hasPrefix("LIBVIRT_") { return .libvirt }
        if chain.hasPrefix("NETAVARK") { return .netavark }
        if chain.hasPrefix("CNI-") { return .cni }
        // firewalld's iptables backend.
        if ["INPUT_direct", "OUTPUT_direct", "FORWARD_direct", "INPUT_ZONES", "FORWARD_IN_ZONES", "FORWARD_OUT_ZONES"].contains(chain)
            || chain.hasPrefix("IN_") || chain.hasPrefix("FWDI_") || chain.hasPrefix("FWDO_") || chain.hasPrefix("FWD_") {
            return .firewalld
        }
        return nil
    }

    /// kube-router's chains: its top-level ones, one per NetworkPolicy, one per pod it guards.
    static let kubeRouterChainPrefixes = ["KUBE-ROUTER-", "KUBE-NWPLCY-", "KUBE-POD-FW-"]

    /// How to change what this tool manages, instead of editing its rules.
    /// `chain`: the rule's (firewalld names a zone's chains after it);
    /// `interface`: where the packet arrived (the zone of an interface).
    public func advice(port: UInt16, chain: String, interface: String?) -> String {
        guard self == .firewalld else { return advice(port: port) }
        let zone: String
        if let z = Self.firewalldZone(chain: chain) {
            zone = "--zone=\(z) "
        } else if let interface, !interface.isEmpty, interface.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x27 }) {
            zone = "--zone=\"$(firewall-cmd --get-zone-of-interface=\(interface))\" "
        } else {
            zone = ""
        }
        return "firewalld manages this table: `firewall-cmd \(zone)--add-port=\(port)/tcp` (with --permanent to keep it)"
    }

    /// The zone a firewalld chain belongs to: `filter_IN_<zone>[_allow|_deny|_pre|_post|_log]`
    /// (nftables backend), `IN_<zone>[...]` (iptables backend); nil for its shared chains.
    public static func firewalldZone(chain: String) -> String? {
        var name = Substring(chain)
        if name.hasPrefix("filter_") { name = name.dropFirst("filter_".count) }
        guard name.hasPrefix("IN_") else { return nil }
        name = name.dropFirst(3)
        for suffix in ["_allow", "_deny", "_pre", "_post", "_log"] where name.hasSuffix(suffix) {
            name = name.dropLast(suffix.count)
            break
        }
        guard !name.isEmpty, name != "ZONES",
              name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x5F || $0 == 0x2D })
        else { return nil }
        return String(name)
    }

    public func advice(port: UInt16) -> String {
        switch self {
        case .kubeProxy: return "kube-proxy rewrites these rules from the cluster's Services: fix the Service or its endpoints, not the rule"
        case .kubeRouter: return "kube-router (the NetworkPolicy controller, built into k3s) rewrites these rules from the cluster's NetworkPolicies: change the NetworkPolicy, not the rule"
        case .docker: return "Docker manages this chain: change the container's published ports, or add your own rule to DOCKER-USER"
        case .ufw: return "ufw manages this chain: `ufw allow \(port)/tcp` (or remove the deny rule with `ufw delete`)"
        case .firewalld: return advice(port: port, chain: "", interface: nil)  // the default zone
        case .calico: return "Calico manages this chain from its network policies: change the NetworkPolicy / GlobalNetworkPolicy"
        case .cilium: return "Cilium manages this chain: change the CiliumNetworkPolicy or Service"
        case .fail2ban: return "fail2ban banned the client: `fail2ban-client unban <address>` if the ban is wrong"
        case .sshguard: return "sshguard manages this table from the failures it counts: lift a wrong ban from its set, and whitelist the address"
        case .crowdsec: return "CrowdSec's firewall bouncer manages this table from its decisions: `cscli decisions list`, `cscli decisions delete --ip <address>`"
        case .libvirt: return "libvirt manages this chain for its virtual networks: change the network's definition (virsh net-edit)"
        case .netavark:
            return "Podman (netavark) writes these rules from its networks and containers: change the container's published ports "
                + "(podman run -p) or networks (podman network connect; a network created with isolate is kept apart by design), not the rule"
        case .cni:
            return "CNI plugins write these rules for containers' networks (Podman's CNI backend, a Kubernetes hostPort): change the "
                + "container's port mapping or network (or the pod's hostPort), not the rule"
        }
    }

    /// kube-proxy's comment on the reject for a Service without endpoints:
    /// "shop/api:http has no endpoints" -> "shop/api:http".
    public static func serviceWithoutEndpoints(comment: String?) -> String? {
        service(comment, suffix: " has no endpoints")
    }

    /// kube-proxy's comment on the drop for a Service whose traffic policy is
    /// Local (externalTrafficPolicy for NodePorts, load-balancer and external
    /// IPs; internalTrafficPolicy for its ClusterIP) on a node without a ready
    /// endpoint of it: "shop/web:http has no local endpoints" -> "shop/web:http".
    public static func serviceWithoutLocalEndpoints(comment: String?) -> String? {
        service(comment, suffix: " has no local endpoints")
    }

    /// The Service a kube-proxy rule refuses for want of endpoints, and
    /// whether only local ones are missing (a Local traffic policy): from an
    /// iptables rule's comment ("ns/svc:port has no endpoints", "… has no
    /// local endpoints"), or, in nftables mode, from the element of its
    /// `no-endpoint-services` / `no-endpoint-nodeports` map that decided
    /// (comment "ns/svc:port"; a goto to its reject chain: no endpoints;
    /// drop: no local endpoints).
    public static func kubeProxyNoEndpoints(_ rule: FirewallRule) -> (service: String, localOnly: Bool)? {
        guard rule.owner == .kubeProxy else { return nil }
        if let e = rule.element { return kubeProxyNoEndpoints(map: e.map, comment: e.comment, drops: e.verdict == "drop") }
        if let svc = serviceWithoutEndpoints(comment: rule.comment) { return (svc, false) }
        if let svc = serviceWithoutLocalEndpoints(comment: rule.comment) { return (svc, true) }
        return nil
    }

    /// An element of a kube-proxy (nftables mode) verdict map: one of its
    /// `no-endpoint-*` maps names a Service; `drops` (rather than going to
    /// its reject chain) when only local endpoints are missing.
    public static func kubeProxyNoEndpoints(map: String, comment: String?, drops: Bool) -> (service: String, localOnly: Bool)? {
        guard map.hasPrefix("no-endpoint-"), let svc = service(comment, suffix: "") else { return nil }
        return (svc, drops)
    }

    static func service(_ comment: String?, suffix: String) -> String? {
        guard let comment, comment.hasSuffix(suffix) else { return nil }
        let service = String(comment.dropLast(suffix.count))
        return service.isEmpty || service.contains(" ") ? nil : service
    }
}

/// `iptables-save` output: each rule's words, by "table chain" and
/// position (1-based, the order nft lists them in).
public enum IptablesSave {
    public static func rules(_ text: String) -> [String: [Int: [String]]] {
        var out: [String: [Int: [String]]] = [:]
        var table = ""
        var position: [String: Int] = [:]
        for raw in text.split(separator: "\n") {
            if raw.hasPrefix("*") { table = String(raw.dropFirst()); position.removeAll(); continue }
            guard raw.hasPrefix("-A ") else { continue }
            let words = tokens(raw)
            guard words.count >= 2 else { continue }
            let key = table + " " + words[1]
            position[key, default: 0] += 1
            out[key, default: [:]][position[key]!] = words
        }
        return out
    }

    /// The value of a saved rule's first `option` (`--connlimit-mask 32` -> "32").
    static func option(_ option: String, in words: [String]) -> String? {
        words.indices.dropLast().first { words[$0] == option }.map { words[$0 + 1] }
    }

    /// A rule's comment; of several, the ones that say something: Calico
    /// tags each rule "cali:<id>" and describes it in a second comment
    /// ("Drop if no policies passed packet").
    static func comment(_ words: [String]) -> String? {
        let all = words.indices.dropLast().filter { words[$0] == "--comment" }.map { words[$0 + 1] }
        let said = all.count > 1 ? all.filter { !$0.hasPrefix("cali:") } : all
        return said.isEmpty ? all.first : said.joined(separator: "; ")
    }

    /// Words of a saved rule; "..." quotes with \" and \\ escapes, as iptables-save writes them.
    static func tokens(_ line: Substring) -> [String] {
        var out: [String] = []
        var cur = ""
        var inQuotes = false, escaped = false, started = false
        for ch in line {
            if escaped { cur.append(ch); escaped = false; continue }
            if inQuotes {
                if ch == "\\" { escaped = true } else if ch == "\"" { inQuotes = false } else { cur.append(ch) }
                continue
            }
            if ch == "\"" { inQuotes = true; started = true; continue }
            if ch == " " || ch == "\t" {
                if started || !cur.isEmpty { out.append(cur) }
                cur = ""
                started = false
                continue
            }
            cur.append(ch)
        }
        if started || !cur.isEmpty { out.append(cur) }
        return out
    }
}
