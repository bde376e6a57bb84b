import SynsightBase
import SynsightModel
import SynsightNftables
/// Which nftables rules of a namespace would drop or reject TCP traffic of
/// one port, for `explain`. Unlike `NftRuleset.candidates(for:)` (one real
/// packet, every field known), there is no packet here: the port is known,
/// the clients' addresses and interfaces are not. So every match is
/// evaluated three ways — fits, does not fit, or "depends" (a condition the
/// answer keeps) — and each rule gets a confidence.

/// One rule (or base-chain policy) that would drop or reject traffic of the port.
public struct PortRuleMatch: Sendable, Hashable {
    /// Which packets of the port's connections the rule stops.
    public enum Direction: String, Sendable, Hashable {
        /// SYNs arriving for the port (prerouting, input, forward; dport).
        case inbound
        /// The listener's answers leaving (output, postrouting; sport).
        case reply
        /// Clients in this namespace connecting to the port (output, postrouting; dport).
        case outbound
    }

    public enum Confidence: String, Sendable, Hashable, Comparable {
        /// Every match is understood and none depends on the client.
        case certain
        /// It applies to some clients only (addresses, interfaces, rate, an earlier conditional accept).
        case conditional
        /// Matches not understood, a catch-all rule, a chain policy, or only reached by a jump.
        case possible
        /// An earlier rule of the same chain accepts all of this traffic first.
        case shadowed

        package var rank: Int {
            switch self {
            case .certain: return 0
            case .conditional: return 1
            case .possible: return 2
            case .shadowed: return 3
            }
        }

        public static func < (a: Confidence, b: Confidence) -> Bool { a.rank < b.rank }
    }

    public var rule: FirewallRule
    /// The base chain's hook; nil for a regular chain (reached by jump).
    public var hook: String?
    public var direction: Direction
    public var confidence: Confidence
    /// What else must hold for the rule to apply, as nft prints it.
    public var conditions: [String]
    public var families: [AddressFamily]
    /// Did the rule name the port (dport/sport), or catch every port?
    public var portSpecific: Bool
    /// The earlier accept rule that takes the traffic first (confidence `shadowed`).
    public var shadowedBy: Int?
    /// The rule sees only traffic routed through the namespace: its chain is
    /// on the forward hook, or a regular chain only forward chains jump to.
    /// Connections to a listener of the namespace never pass it.
    public var forwardedOnly: Bool

    /// The condition a forward-hook rule carries.
    public static let forwardedCondition = "only traffic forwarded through this namespace"

    public init(rule: FirewallRule, hook: String?, direction: Direction, confidence: Confidence,
                conditions: [String] = [], families: [AddressFamily] = [.ipv4, .ipv6],
                portSpecific: Bool = true, shadowedBy: Int? = nil, forwardedOnly: Bool = false) {
        self.rule = rule
        self.hook = hook
        self.direction = direction
        self.confidence = confidence
        self.conditions = conditions
        self.families = families
        self.portSpecific = portSpecific
        self.shadowedBy = shadowedBy
        self.forwardedOnly = forwardedOnly
    }

    /// "nft rule inet filter input handle 7" / "iptables rule ip filter INPUT handle 2" / "chain policy ...".
    public var name: String {
        if rule.verdict == .policyDrop { return "policy drop of chain \(rule.table) \(rule.chain)" }
        if rule.legacy { return "rule \(rule.table) \(rule.chain) number \(rule.handle.map(String.init) ?? "?")" }
        return "\(rule.iptables ? "iptables" : "nft") rule \(rule.table) \(rule.chain) handle \(rule.handle.map(String.init) ?? "?")"
    }

    public var verb: String { rule.verdict.isReject ? "rejects" : "drops" }

    /// A reply rule that stops only the RSTs refusing connections (`tcp flags & rst == rst`):
    /// it matters where nothing listens, turning refusals into timeouts.
    public var refusalsOnly: Bool { direction == .reply && conditions.contains(PortMatch.refusalRSTsOnly) }
}

/// How one match of a rule relates to the port's traffic.
enum PortMatchResult: Equatable {
    case yes
    case no
    /// Holds for some clients only; the text says which.
    case depends(String)
    /// Not understood (text for the answer).
    case unknown(String)
}

extension NftRuleset {
    /// Every rule and base-chain drop policy that would drop or reject TCP
    /// traffic of `port`, in ruleset order, best-established first within a chain.
    public func portMatches(port: UInt16) -> [PortRuleMatch] {
        var out: [PortRuleMatch] = []
        let baseChains = chains.filter { !NftRuleset.addressFamilies($0.family).isEmpty }
        let reaching = hooksReaching()
        var index = ChainIndex(self)
        for chain in baseChains {
            let hook = chain.hook
            let directions: [PortRuleMatch.Direction]
            switch hook {
            case "prerouting", "input", "forward", nil: directions = [.inbound]
            case "output", "postrouting": directions = [.outbound, .reply]
            default: continue
            }
            let via = reaching[NftRuleset.chainKey(chain.family, chain.table, chain.name)] ?? []
            let forwardedOnly = hook == "forward" || (hook == nil && via == ["forward"])
            var entry: ChainReach = .unknown
            if hook == nil {
                entry = inboundReach(chain, port: port, index: &index)
                if case .unreachable = entry { continue }  // no jump sends the port's traffic there
            }
            let chainRules = index.rules[NftRuleset.chainKey(chain.family, chain.table, chain.name)] ?? []
            for dir in directions {
                out += evaluate(chain: chain, rules: chainRules, port: port, direction: dir, forwardedOnly: forwardedOnly, entry: entry)
            }
        }
        return out
    }

    static func chainKey(_ family: String, _ table: String, _ chain: String) -> String { "\(family) \(table) \(chain)" }

    /// For each regular chain, the hooks of the base chains that reach it by
    /// jump or goto, directly or through other regular chains.
    func hooksReaching() -> [String: Set<String>] {
        var targets: [String: Set<String>] = [:]  // chain -> chains it jumps to
        for r in rules {
            for x in r.expr {
                guard let t = (x["jump"] ?? x["goto"])?["target"]?.stringValue else { continue }
                targets[Self.chainKey(r.family, r.table, r.chain), default: []].insert(Self.chainKey(r.family, r.table, t))
            }
        }
        var reached: [String: Set<String>] = [:]
        for base in chains {
            guard let hook = base.hook else { continue }
            var todo = Array(targets[Self.chainKey(base.family, base.table, base.name)] ?? [])
            var seen = Set<String>()
            while let c = todo.popLast() {
                guard seen.insert(c).inserted else { continue }
                reached[c, default: []].insert(hook)
                todo += targets[c] ?? []
            }
        }
        return reached
    }

    /// Handles of the rules that DNAT TCP connections to `port` (in any chain
    /// of an ip, ip6 or inet table): such connections may be routed on to
    /// another address, through the forward hook. Empty when none does.
    public func dnatRules(port: UInt16) -> [Int] {
        rules.filter { r in
            let families = NftRuleset.addressFamilies(r.family)
            guard !families.isEmpty else { return false }
            let dnat = r.expr.contains { x in
                x["dnat"] != nil || (x["xt"]?["type"]?.stringValue == "target" && x["xt"]?["name"]?.stringValue == "DNAT")
            }
            return dnat && evaluate(rule: r, port: port, direction: .inbound, families: families) != nil
        }.map(\.handle)
    }

    struct Evaluated {
        var rule: Rule
        package var result: PortMatchResult   // .yes, .depends (conditions joined), .unknown
        var conditions: [String]
        package var unknown: [String]
        var portSpecific: Bool
        var families: Set<AddressFamily>
        /// drop/reject/accept, or nil (jump, goto, no verdict).
        package var verdict: FirewallVerdict?
        package var accepts: Bool
        var jumps: Bool
        package var packets: UInt64?
    }

    /// `entry`: how the port's traffic reaches a regular chain (ChainEntry.swift).
    package func evaluate(chain: Chain, rules chainRules: [Rule], port: UInt16,
                  direction: PortRuleMatch.Direction, forwardedOnly: Bool = false, entry: ChainReach = .unknown) -> [PortRuleMatch] {
        var out: [PortRuleMatch] = []
        var acceptedBefore: [(handle: Int, conditions: [String], certain: Bool)] = []
        var jumpedBefore: [Int] = []
        let chainFamilies = NftRuleset.addressFamilies(chain.family)
        let legacy = IptablesLegacy.isLegacy(chain.family)
        let ruleWord = IptablesLegacy.handleWord(legacy: legacy)

        func confidence(base: PortRuleMatch.Confidence, conditions: inout [String]) -> (PortRuleMatch.Confidence, Int?) {
            if let full = acceptedBefore.first(where: { $0.certain }) { return (.shadowed, full.handle) }
            var c = base
            for a in acceptedBefore {
                conditions.append("not accepted earlier by \(ruleWord) \(a.handle) (\(a.conditions.joined(separator: " ")))")
                if c == .certain { c = .conditional }
            }
            if !jumpedBefore.isEmpty {
                conditions.append("not decided earlier in a chain jumped to by \(ruleWord) \(jumpedBefore.map(String.init).joined(separator: ", "))")
                if c == .certain { c = .conditional }
            }
            return (c, nil)
        }

        for r in chainRules {
            guard let e = evaluate(rule: r, port: port, direction: direction, families: chainFamilies) else { continue }
            if e.accepts {
                acceptedBefore.append((r.handle, e.conditions + e.unknown, e.conditions.isEmpty && e.unknown.isEmpty))
                continue
            }
            if e.jumps { jumpedBefore.append(r.handle); continue }
            guard let verdict = e.verdict else { continue }
            let text = texts[NftRuleset.key(r.family, r.table, r.chain, r.handle)]
                ?? (r.comment.map { "... comment \"\($0)\"" } ?? "\(ruleWord) \(r.handle)")
            var rule = FirewallRule(table: "\(r.family) \(r.table)", chain: r.chain, handle: r.handle, text: text,
                                    verdict: verdict, packets: e.packets, iptables: isIptables(r.family, r.table), comment: r.comment,
                                    owner: FirewallOwner.recognise(table: "\(r.family) \(r.table)", chain: r.chain), legacy: legacy,
                                    saved: r.saved)
            var conditions = e.conditions, unknown = e.unknown
            // A limit applies to some clients only: a condition, said as the rule writes it.
            if let limit = RateLimitRule(rule) {
                conditions.removeAll { $0 == "rate limit" }
                unknown.removeAll { u in RateLimitRule.xtMatchNames.contains { u == "iptables match \($0)" } }
                conditions.append(limit.condition)
            }
            rule.exact = unknown.isEmpty
            var portSpecific = e.portSpecific
            if chain.hook == nil {
                if case .via(let into) = entry {
                    conditions = into.conditions + conditions
                    portSpecific = portSpecific || into.portSpecific
                } else {
                    conditions.append("only when another chain jumps to \(chain.name)")
                }
            }
            if forwardedOnly { conditions.append(PortRuleMatch.forwardedCondition) }
            var base: PortRuleMatch.Confidence = .certain
            if !unknown.isEmpty { base = .possible; conditions += unknown.map { "\($0) (not evaluated)" } }
            else if !conditions.isEmpty { base = .conditional }
            if !portSpecific && base == .certain { base = .possible }
            let (c, shadow) = confidence(base: base, conditions: &conditions)
            out.append(PortRuleMatch(rule: rule, hook: chain.hook, direction: direction, confidence: c,
                                     conditions: conditions, families: e.families.sorted { $0.rawValue < $1.rawValue },
                                     portSpecific: portSpecific, shadowedBy: shadow, forwardedOnly: forwardedOnly))
        }
        if chain.policy == "drop", chain.hook != nil {
            var conditions: [String] = []
            // A policy applies to what no rule accepted: certain only when nothing could have.
            var (c, shadow) = confidence(base: .certain, conditions: &conditions)
            if forwardedOnly {
                conditions.append(PortRuleMatch.forwardedCondition)
                if c == .certain { c = .conditional }
            }
            let rule = FirewallRule(table: "\(chain.family) \(chain.table)", chain: chain.name, handle: nil,
                                    text: "policy drop", verdict: .policyDrop, exact: false,
                                    iptables: isIptables(chain.family, chain.table), legacy: legacy)
            out.append(PortRuleMatch(rule: rule, hook: chain.hook, direction: direction, confidence: c,
                                     conditions: conditions, families: chainFamilies.sorted { $0.rawValue < $1.rawValue },
                                     portSpecific: false, shadowedBy: shadow, forwardedOnly: forwardedOnly))
        }
        return out
    }

    /// nil when the rule can not apply to TCP traffic of the port in this direction.
    func evaluate(rule r: Rule, port: UInt16, direction: PortRuleMatch.Direction,
                  families chainFamilies: Set<AddressFamily>) -> Evaluated? {
        var e = Evaluated(rule: r, result: .yes, conditions: [], unknown: [], portSpecific: false,
                          families: chainFamilies, verdict: nil, accepts: false, jumps: false, packets: nil)
        for x in r.expr {
            if let m = x["match"] {
                switch PortMatch.evaluate(m, port: port, direction: direction, families: &e.families, portSpecific: &e.portSpecific) {
                case .no: return nil
                case .yes: break
                case .depends(let t): e.conditions.append(t)
                case .unknown(let t): e.unknown.append(t)
                }
                if e.families.isEmpty { return nil }
            } else if let c = x["counter"] {
                e.packets = c["packets"]?.intValue.map { UInt64(max(0, $0)) }
            } else if x["drop"] != nil {
                e.verdict = .drop; break
            } else if let rj = x["reject"] {
                e.verdict = .reject(rejectWith(rj, family: r.family)); break
            } else if let xt = x["xt"] {
                let name = xt["name"]?.stringValue ?? ""
                if xt["type"]?.stringValue == "target" {
                    if name == "REJECT" { e.verdict = .reject(xtRejectWith(r)) }
                    else if name == "DROP" { e.verdict = .drop }
                    else if name == "ACCEPT" { e.accepts = true }
                    break
                }
                // A comment matches every packet (as in the trace's matcher).
                if name != "comment" { e.unknown.append("iptables match \(name)") }
            } else if x["accept"] != nil {
                e.accepts = true; break
            } else if x["jump"] != nil || x["goto"] != nil {
                e.jumps = true; break
            } else if x["return"] != nil || x["queue"] != nil || x["continue"] != nil {
                return nil
            } else if x["limit"] != nil {
                e.conditions.append("rate limit")
            }
        }
        return e
    }
}

/// One nft `match` against the port's traffic (no concrete packet).
enum PortMatch {
    package static func evaluate(_ m: JSONValue, port: UInt16, direction: PortRuleMatch.Direction,
                         families: inout Set<AddressFamily>, portSpecific: inout Bool) -> PortMatchResult {
        guard let left = m["left"], let right = m["right"] else { return .unknown(render(m)) }
        let op = m["op"]?.stringValue ?? "=="
        func decided(_ r: Bool?) -> PortMatchResult {
            guard let r else { return .unknown(render(m)) }
            switch op {
            case "==", "in": return r ? .yes : .no
            case "!=": return r ? .no : .yes
            default: return .unknown(render(m))
            }
        }
        if TCPFlagsMatch.isFlags(m) { return flags(m, direction: direction) }
        if let pl = left["payload"] {
            let proto = pl["protocol"]?.stringValue ?? ""
            let field = pl["field"]?.stringValue ?? ""
            switch (proto, field) {
            case ("tcp", "dport"), ("th", "dport"), ("tcp", "sport"), ("th", "sport"):
                // The service port is the destination of inbound SYNs and of
                // local clients' SYNs, and the source of the listener's replies.
                let servicePort = (field == "dport") != (direction == .reply)
                if servicePort {
                    let r = decided(NftMatch.compare(.int(Int64(port)), right))
                    if r == .yes { portSpecific = true }
                    return r
                }
                // The other end's (ephemeral) port: one fixed value practically never
                // matches; a set or range may match some clients.
                if right.intValue != nil { return op == "!=" ? .yes : .no }
                return .depends(render(m))
            case ("udp", _), ("sctp", _), ("dccp", _), ("udplite", _), ("icmp", _), ("icmpv6", _):
                return op == "!=" ? .yes : .no
            case ("ip", _):
                families.remove(.ipv6)
                if field == "protocol" { return decided(NftMatch.compare(.proto(6), right)) }
                return .depends(render(m))
            case ("ip6", _):
                families.remove(.ipv4)
                if field == "nexthdr" { return decided(NftMatch.compare(.proto(6), right)) }
                return .depends(render(m))
            default:
                return .depends(render(m))
            }
        }
        if let meta = left["meta"] {
            switch meta["key"]?.stringValue ?? "" {
            case "l4proto": return decided(NftMatch.compare(.proto(6), right))
            case "nfproto":
                let v4 = NftMatch.compare(.proto(2), right), v6 = NftMatch.compare(.proto(10), right)
                guard let v4, let v6 else { return .unknown(render(m)) }
                let keep4 = op == "!=" ? !v4 : v4, keep6 = op == "!=" ? !v6 : v6
                if !keep4 { families.remove(.ipv4) }
                if !keep6 { families.remove(.ipv6) }
                return families.isEmpty ? .no : .yes
            default:
                return .depends(render(m))
            }
        }
        if let ct = left["ct"], ct["key"]?.stringValue == "state" {
            let states = NftMatch.strings(right)
            guard !states.isEmpty else { return .unknown(render(m)) }
            // A connection's first packet is `new`; the listener's SYN-ACK is `established`.
            let has = states.contains(direction == .reply ? "established" : "new")
            return op == "!=" ? (has ? .no : .yes) : (has ? .yes : .no)
        }
        return .depends(render(m))
    }

    /// The condition a reply rule that stops only the RSTs refusing connections carries.
    static let refusalRSTsOnly = "only the RSTs refusing connections (nothing listening, a full queue with "
        + "tcp_abort_on_overflow): those clients time out instead of being refused"

    /// A `tcp flags` match, tested like a `ct state` one against the
    /// direction's handshake segment: the SYN (inbound, outbound) or the
    /// listener's SYN-ACK (reply). A reply rule that lets the SYN-ACK pass
    /// but stops the RST|ACK refusing a SYN (`tcp flags & rst == rst`, a
    /// "stealth" rule) turns refusals into timeouts.
    static func flags(_ m: JSONValue, direction: PortRuleMatch.Direction) -> PortMatchResult {
        let first: UInt8 = direction == .reply ? 0x12 : 0x02
        guard let hit = TCPFlagsMatch.passes(m, flags: first) else { return .unknown(render(m)) }
        if hit { return .yes }
        guard direction == .reply else { return .no }
        guard let rst = TCPFlagsMatch.passes(m, flags: 0x14) else { return .unknown(render(m)) }
        return rst ? .depends(refusalRSTsOnly) : .no
    }

    /// A match as nft prints it, roughly ("ip saddr 10.0.0.0/8", "iifname \"eth0\"").
    package static func render(_ m: JSONValue) -> String {
        let op = m["op"]?.stringValue ?? "=="
        let left = m["left"].map(renderOperand) ?? "?"
        let right = m["right"].map(renderOperand) ?? "?"
        return op == "==" || op == "in" ? "\(left) \(right)" : "\(left) \(op) \(right)"
    }

    static func renderOperand(_ v: JSONValue) -> String {
        if let s = v.stringValue { return s }
        if let i = v.intValue { return String(i) }
        if let pl = v["payload"] {
            return "\(pl["protocol"]?.stringValue ?? "?") \(pl["field"]?.stringValue ?? "?")"
        }
        if let meta = v["meta"] { return meta["key"]?.stringValue ?? "meta" }
        for op in ["&", "|"] {
            if case .array(let a)? = v[op], a.count == 2 { return "\(renderOperand(a[0])) \(op) \(renderOperand(a[1]))" }
        }
        if let ct = v["ct"] { return "ct \(ct["key"]?.stringValue ?? "?")" }
        if let p = v["prefix"] {
            return "\(p["addr"].map(renderOperand) ?? "?")/\(p["len"]?.intValue.map(String.init) ?? "?")"
        }
        if case .array(let r)? = v["range"], r.count == 2 { return "\(renderOperand(r[0]))-\(renderOperand(r[1]))" }
        if let set = v["set"], case .array(let items) = set { return "{ " + items.map(renderOperand).joined(separator: ", ") + " }" }
        if case .array(let items) = v { return "{ " + items.map(renderOperand).joined(separator: ", ") + " }" }
        if case .bool(let b) = v { return b ? "true" : "false" }
        return "…"
    }
}
