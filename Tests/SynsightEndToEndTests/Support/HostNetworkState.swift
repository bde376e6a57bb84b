import Foundation

/// The parts of the host's network a Docker daemon with its own iptables
/// rules changes: the iptables rules (iptables-nft and iptables-legacy), the
/// nftables ruleset, the links it creates (docker0, veths) and the sysctls it
/// writes. Captured before such a daemon starts and compared after it is
/// stopped: a test that leaves the host changed fails.
struct HostNetworkState {
    /// `iptables-save` of both variants, without comments and counters.
    var iptables: [String: String]
    var nftRuleset: String
    var nftTables: Set<String>
    var links: Set<String>
    var sysctls: [String: String]

    /// Sysctls dockerd writes (ip_forward unless --ip-forward=false, bridge
    /// netfilter when it enables iptables).
    static let watchedSysctls = ["net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding",
                                 "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"]
    /// Link names only a container runtime creates on the host.
    static let runtimeLinkPrefixes = ["docker", "veth", "br-"]

    static func capture() -> HostNetworkState {
        var iptables: [String: String] = [:]
        for variant in DockerFirewall.variants().map({ $0 + "-save" }) {
            let out = (try? sh([variant], allowFailure: true)) ?? ""
            iptables[variant] = out.split(separator: "\n")
                .filter { !$0.hasPrefix("#") }
                .map { $0.replacingOccurrences(of: #"\[\d+:\d+\]"#, with: "", options: .regularExpression) }
                .joined(separator: "\n")
        }
        let tables = ((try? sh(["nft", "list", "tables"], allowFailure: true)) ?? "")
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let links = ((try? sh(["ip", "-o", "link", "show"], allowFailure: true)) ?? "")
            .split(separator: "\n").compactMap { line -> String? in
                // "3: docker0: <...>" or "7: vethab@if6: <...>"
                let f = line.split(separator: ":")
                guard f.count > 1 else { return nil }
                return String(f[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first ?? "")
            }
        var sysctls: [String: String] = [:]
        for key in watchedSysctls {
            sysctls[key] = (try? String(contentsOfFile: "/proc/sys/" + key, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return HostNetworkState(iptables: iptables,
                                nftRuleset: (try? sh(["nft", "list", "ruleset"], allowFailure: true)) ?? "",
                                nftTables: Set(tables), links: Set(links), sysctls: sysctls)
    }

    /// What changed from `before` to self, one line each; empty when nothing did.
    func changes(since before: HostNetworkState) -> [String] {
        var out: [String] = []
        for (variant, rules) in iptables where before.iptables[variant] != rules {
            out.append("\(variant) differs:\n\(rules)\n--- before:\n\(before.iptables[variant] ?? "")")
        }
        if nftRuleset != before.nftRuleset {
            out.append("nft list ruleset differs:\n\(nftRuleset)\n--- before:\n\(before.nftRuleset)")
        }
        let added = links.subtracting(before.links)
            .filter { l in Self.runtimeLinkPrefixes.contains { l.hasPrefix($0) } }
        if !added.isEmpty { out.append("links left on the host: \(added.sorted())") }
        for (key, value) in sysctls where before.sysctls[key] != value {
            out.append("sysctl \(key) is \(value), was \(before.sysctls[key] ?? "absent")")
        }
        return out
    }

    /// Writes back the watched sysctls that differ from this snapshot.
    func restoreSysctls() {
        let now = Self.capture().sysctls
        for (key, value) in sysctls where now[key] != value {
            try? value.write(toFile: "/proc/sys/" + key, atomically: false, encoding: .utf8)
        }
    }
}

/// Removes what dockerd's iptables management leaves after it stops: its
/// rules in the built-in chains (jumps to DOCKER*, rules on its bridge),
/// its DOCKER, DOCKER-USER and DOCKER-ISOLATION-STAGE-* chains in the filter
/// and nat tables, for iptables-nft and iptables-legacy (whichever holds
/// them), and the nft tables iptables-nft created that did not exist before.
/// With `chainPrefix` "CNI-", what CNI's plugins leave (Podman's networks).
enum DockerFirewall {
    /// iptables-nft, and iptables-legacy only where the legacy tables are
    /// loaded: iptables-legacy-save would otherwise load the ip_tables module.
    static func variants() -> [String] {
        ["iptables-nft"] + (FileManager.default.fileExists(atPath: "/proc/net/ip_tables_names") ? ["iptables-legacy"] : [])
    }

    static func remove(bridge: String, tablesBefore: Set<String>, chainPrefix: String = "DOCKER") {
        for variant in variants() {
            // Read through -save first: listing a legacy table with -S would create it.
            let save = (try? sh([variant + "-save"], allowFailure: true)) ?? ""
            guard save.contains(chainPrefix) || save.contains(bridge) else { continue }
            for table in ["nat", "filter"] where save.contains("*\(table)") {
                removeRules(variant, table, bridge: bridge, chainPrefix: chainPrefix)
            }
        }
        for table in ["ip nat", "ip filter", "ip6 nat", "ip6 filter"] where !tablesBefore.contains("table " + table) {
            let listed = (try? sh(["nft", "list", "table"] + table.split(separator: " ").map(String.init),
                                  allowFailure: true)) ?? ""
            // Only tables that hold nothing but empty chains (what iptables-nft creates).
            let rules = listed.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("table") && !$0.hasPrefix("chain") && !$0.hasPrefix("type") && $0 != "}" }
            if !listed.isEmpty && rules.isEmpty {
                _ = try? sh(["nft", "delete", "table"] + table.split(separator: " ").map(String.init), allowFailure: true)
            }
        }
    }

    static func removeRules(_ iptables: String, _ table: String, bridge: String, chainPrefix: String) {
        let spec = ((try? sh([iptables, "-w", "-t", table, "-S"], allowFailure: true)) ?? "").split(separator: "\n")
        let dockerChains = spec.filter { $0.hasPrefix("-N " + chainPrefix) }.map { String($0.dropFirst(3)) }
        // Rules in the other chains that jump to Docker's chains or name its bridge.
        for rule in spec where rule.hasPrefix("-A ") {
            let words = Self.words(rule)
            guard words.count > 2, !dockerChains.contains(words[1]) else { continue }
            let jumpsToDocker = words.contains { dockerChains.contains($0) }
            guard jumpsToDocker || words.contains(bridge) else { continue }
            _ = try? sh([iptables, "-w", "-t", table, "-D"] + words.dropFirst(), allowFailure: true)
        }
        for chain in dockerChains { _ = try? sh([iptables, "-w", "-t", table, "-F", chain], allowFailure: true) }
        // Chains that jump to each other (CNI's) are deleted once none refers to another.
        for chain in dockerChains { _ = try? sh([iptables, "-w", "-t", table, "-X", chain], allowFailure: true) }
    }

    /// The words of one `iptables -S` line, a quoted comment one word (without its quotes).
    static func words(_ line: Substring) -> [String] {
        var out: [String] = [], word = "", quoted = false, escaped = false, any = false
        for c in line {
            if escaped { word.append(c); escaped = false; continue }
            if quoted && c == "\\" { escaped = true; continue }
            if c == "\"" { quoted.toggle(); any = true; continue }
            if c == " " && !quoted {
                if any || !word.isEmpty { out.append(word) }
                word = ""; any = false
                continue
            }
            word.append(c)
        }
        if any || !word.isEmpty { out.append(word) }
        return out
    }
}
