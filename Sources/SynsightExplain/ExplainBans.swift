import SynsightBase
import SynsightModel
import SynsightNftables

/// fail2ban's iptables actions write a rule per banned address in the
/// jail's chain (`-A f2b-sshd -s 203.0.113.4/32 -j REJECT`): a busy jail has
/// hundreds. They are one ban list, so explain says it once: the tool, the
/// jail, how many addresses, the first of them, and how to lift a ban. A
/// ban that tests a set (fail2ban's nftables actions, sshguard, CrowdSec)
/// is one rule already: its finding counts the set's addresses.
extension Analysis {
    /// How many banned addresses a folded finding lists (its count says the rest).
    static let bannedShown = 20

    /// A rule per banned address, as fail2ban's iptables actions write them.
    struct BanRule {
        var match: PortRuleMatch
        var ban: BanListRule
        var address: String
    }

    /// The findings of the ban rules that fold (two or more of one tool's
    /// list in one chain), and the matches left to report one by one.
    func foldedBans(_ matches: [PortRuleMatch], ns: ExplainNamespace, listening: Bool,
                    sets: [String: [JSONValue]]) -> (findings: [Finding], rest: [PortRuleMatch]) {
        var groups: [String: [BanRule]] = [:]
        var order: [String] = []
        var rest: [PortRuleMatch] = []
        var findings: [Finding] = []
        for m in matches {
            guard m.confidence != .shadowed, case .banned(let ban)? = RuleVerdict(m.rule) else {
                rest.append(m)
                continue
            }
            guard let address = BanListRule.bannedSource(m.rule) else {
                findings.append(setBanFinding(m, ns: ns, listening: listening, sets: sets))
                continue
            }
            let key = "\(ban.tool.rawValue) \(ban.list ?? "") \(m.rule.table) \(m.rule.chain) \(m.rule.verdict.isReject) \(m.direction.rawValue)"
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(BanRule(match: m, ban: ban, address: address))
        }
        for key in order {
            guard let group = groups[key] else { continue }
            if group.count == 1 { rest.append(group[0].match); continue }
            findings.append(banFinding(group, ns: ns, listening: listening))
        }
        return (findings, rest)
    }

    /// A ban rule that tests a set: the rule's finding, with the set's addresses when the ruleset lists them.
    func setBanFinding(_ m: PortRuleMatch, ns: ExplainNamespace, listening: Bool, sets: [String: [JSONValue]]) -> Finding {
        var f = ruleFinding(m, ns: ns, listening: listening)
        guard let name = BanListRule.setName(m.rule), let elems = sets["\(m.rule.table) \(name)"] else { return f }
        let addresses = elems.compactMap { NftMatch.elementValue($0).stringValue }
        f.message += " (set \(name): \(addresses.count) banned addresses" + (addresses.isEmpty ? ")" : ": "
            + addresses.prefix(Self.bannedShown).joined(separator: ", ") + (addresses.count > Self.bannedShown ? ", ..." : "") + ")")
        Self.addBanned(&f, addresses, count: elems.count)
        return f
    }

    /// One finding for a ban list's rules: the first rule's severity, cause and fix.
    func banFinding(_ group: [BanRule], ns: ExplainNamespace, listening: Bool) -> Finding {
        let first = group[0].match
        var f = ruleFinding(first, ns: ns, listening: listening)
        let addresses = group.map(\.address)
        let shown = addresses.prefix(Self.bannedShown).joined(separator: ", ")
        let more = addresses.count > Self.bannedShown ? ", and \(addresses.count - Self.bannedShown) more" : ""
        let handles = group.compactMap(\.match.rule.handle)
        let word = IptablesLegacy.handleWord(legacy: first.rule.legacy)
        f.message = "\(group[0].ban.who) \(first.verb) tcp dport \(port) from \(addresses.count) banned addresses in \(ns.label) "
            + "(table \(first.rule.table) chain \(first.rule.chain), \(word)s \(handles.map(String.init).joined(separator: ", "))): \(shown)\(more)"
        Self.addBanned(&f, addresses, count: addresses.count)
        return f
    }

    /// `banned_count` and the first `bannedShown` of `banned_addresses`.
    static func addBanned(_ f: inout Finding, _ addresses: [String], count: Int) {
        f.evidence.append(("banned_count", .int(Int64(count))))
        f.evidence.append(("banned_addresses", .array(addresses.prefix(bannedShown).map { .string($0) })))
    }
}
