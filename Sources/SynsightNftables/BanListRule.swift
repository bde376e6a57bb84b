import SynsightModel

/// A reject or drop of an intrusion-prevention tool that banned the
/// client's address after failures it counted (fail2ban, sshguard,
/// CrowdSec): the rule is the tool's, the ban is what to lift — when it is
/// wrong (a shared NAT address, a monitoring or CI host, a user who mistyped
/// a password once too often).
///
/// Recognised by the names the tools give their chains, tables and sets:
/// - fail2ban: iptables actions' chain `f2b-<jail>` (a rule per banned
///   address), ipset actions' set `f2b-<jail>` (`-m set --match-set`),
///   nftables actions' sets `addr-set-<jail>` / `addr6-set-<jail>` in
///   table `f2b-table`;
/// - sshguard: table or chain `sshguard` (set `attackers`), ipsets
///   `sshguard4` / `sshguard6`;
/// - CrowdSec's firewall bouncer: sets and ipsets named `crowdsec-*` /
///   `crowdsec6-*`, tables `crowdsec` / `crowdsec6`.
public struct BanListRule: Sendable, Hashable {
    public enum Tool: String, Sendable, Hashable {
        case fail2ban, sshguard, crowdsec
    }

    public var tool: Tool
    /// fail2ban's jail ("sshd"), else the set the address is in; nil when
    /// the rule does not say.
    public var list: String?

    public var cause: FirewallCause { .addressBanned }

    /// `list` is kept only when it is a name a shell command can carry as is
    /// (letters, digits, `_ - . :`): the fix pastes it into one.
    public init(tool: Tool, list: String? = nil) {
        self.tool = tool
        self.list = list.flatMap { l in
            !l.isEmpty && l.utf8.allSatisfy { $0 < 0x80 && (Character(UnicodeScalar($0)).isLetter || Character(UnicodeScalar($0)).isNumber || "_-.:".utf8.contains($0)) } ? l : nil
        }
    }

    public init?(_ rule: FirewallRule) {
        guard rule.verdict != .policyDrop else { return nil }
        let set = Self.setName(rule)
        let table = rule.table.split(separator: " ").last.map(String.init) ?? rule.table
        if let jail = set.flatMap(Self.fail2banJail) {
            self.init(tool: .fail2ban, list: jail)
        } else if rule.chain.hasPrefix("f2b-"), rule.chain != "f2b-chain" {
            self.init(tool: .fail2ban, list: String(rule.chain.dropFirst(4)))
        } else if table == "sshguard" || rule.chain == "sshguard" || set == "sshguard4" || set == "sshguard6" {
            self.init(tool: .sshguard, list: set)
        } else if table == "crowdsec" || table == "crowdsec6" || set.map({ $0.hasPrefix("crowdsec") }) == true {
            self.init(tool: .crowdsec, list: set)
        } else {
            return nil
        }
    }

    /// The jail of a fail2ban set: `addr-set-<jail>`, `addr6-set-<jail>` (nftables actions), `f2b-<jail>` (ipset actions).
    static func fail2banJail(_ set: String) -> String? {
        for prefix in ["addr-set-", "addr6-set-", "f2b-"] where set.hasPrefix(prefix) && set.count > prefix.count {
            return String(set.dropFirst(prefix.count))
        }
        return nil
    }

    /// The set the rule tests the address against: nft's `@name`, or
    /// iptables' `-m set --match-set NAME`.
    public static func setName(_ rule: FirewallRule) -> String? {
        if let saved = rule.saved, let set = IptablesSave.option("--match-set", in: saved) { return set }
        let words = rule.text.split(separator: " ")
        return words.first { $0.hasPrefix("@") && $0.count > 1 }.map { String($0.dropFirst()) }
    }

    /// The one address a per-address ban rule refuses (fail2ban's iptables
    /// actions: `-s 203.0.113.4/32`, nft `ip saddr 203.0.113.4`); nil for a
    /// rule that tests a set.
    public static func bannedSource(_ rule: FirewallRule) -> String? {
        if let saved = rule.saved {
            guard let i = saved.indices.dropLast().first(where: { saved[$0] == "-s" || saved[$0] == "--source" }),
                  i == 0 || saved[i - 1] != "!" else { return nil }
            let source = saved[i + 1]
            return source.hasSuffix("/32") || source.hasSuffix("/128") ? String(source.prefix { $0 != "/" }) : source
        }
        let words = rule.text.split(separator: " ").map(String.init)
        guard let i = words.indices.dropLast().first(where: { (words[$0] == "ip" || words[$0] == "ip6") && words[$0 + 1] == "saddr" }),
              i + 2 < words.count, !words[i + 2].hasPrefix("@"), !words[i + 2].hasPrefix("!"), !words[i + 2].hasPrefix("{") else { return nil }
        return words[i + 2]
    }

    /// The tool's name as the hint says it ("fail2ban's jail sshd").
    public var who: String {
        switch tool {
        case .fail2ban: return list.map { "fail2ban's jail \($0)" } ?? "fail2ban"
        case .sshguard: return "sshguard"
        case .crowdsec: return "CrowdSec"
        }
    }
}

extension Advice.Facts {
    /// address_banned's facts: the tool, its list, and the banned client.
    public mutating func banned(_ b: BanListRule, client: IPAddress?) {
        bannedBy = b.tool.rawValue
        banList = b.list
        clientAddress = client
    }
}
