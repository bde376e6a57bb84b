import SynsightBase
import SynsightModel
/// Naming the firewall rule behind a drop, without changing the ruleset:
/// the ruleset of the packet's network namespace (as `nft -j list ruleset`
/// prints it, and `nft -a list ruleset` for the rule text) is matched against the packet.
/// Fetching is behind `FirewallRuleSource` (implemented in SynsightKernel);
/// parsing and matching are here, pure and testable on recorded rulesets.

/// The packet a rule is looked up for.
public struct FirewallPacket: Sendable, Hashable {
    public var netns: UInt32
    public var family: AddressFamily
    /// Destination (the service) and source of the dropped packet.
    public var local: Endpoint
    public var remote: Endpoint
    public var hook: FirewallHook
    public var mark: UInt32
    public var isSyn: Bool
    /// The TCP segment's flags (what `tcp flags` tested); nil: not known, or not TCP.
    public var tcpFlags: UInt8?
    /// The packet's conntrack state at the drop (what `ct state` tested); unknown: not read.
    public var ctState: ConntrackState
    /// An ICMP (v4) / ICMPv6 error, not TCP: `local` and `remote` are its
    /// destination and source taken from the TCP segment it quotes (the
    /// answered SYN's client and server); its TCP ports match nothing.
    public var icmp: Bool

    public init(netns: UInt32, family: AddressFamily, local: Endpoint, remote: Endpoint,
                hook: FirewallHook, mark: UInt32 = 0, isSyn: Bool = true, ctState: ConntrackState = .unknown,
                icmp: Bool = false, tcpFlags: UInt8? = nil) {
        self.tcpFlags = tcpFlags
        self.ctState = ctState
        self.icmp = icmp
        self.netns = netns
        self.family = family
        self.local = local
        self.remote = remote
        self.hook = hook
        self.mark = mark
        self.isSyn = isSyn
    }
}

/// What a rule does to the packet.
public enum FirewallVerdict: Sendable, Hashable {
    /// REJECT; the reply kind ("tcp-reset", "icmp port-unreachable", ...).
    case reject(String)
    case drop
    /// A base chain's `policy drop`.
    case policyDrop

    public var isReject: Bool { if case .reject = self { return true } else { return false } }
}

/// One rule that may have dropped the packet.
public struct FirewallRule: Sendable, Hashable {
    /// "inet filter", "ip filter" (iptables-nft), ...
    public var table: String
    public var chain: String
    /// nil for a chain policy.
    public var handle: Int?
    /// The rule as `nft list ruleset` prints it, counters removed.
    public var text: String
    public var verdict: FirewallVerdict
    /// Packets counted by the rule's counter, if it has one.
    public var packets: UInt64?
    /// Every match of the rule was understood (and fits the packet).
    public var exact: Bool
    /// iptables-nft manages the table (use iptables, not nft, to change it).
    public var iptables: Bool
    /// An iptables-legacy rule (table "iptables-legacy filter", ...): change
    /// it with iptables-legacy; `handle` is its position in the chain.
    public var legacy: Bool
    /// The rule's comment (nft `comment`, iptables `-m comment --comment`). Untrusted.
    public var comment: String?
    /// The tool managing the chain or table, when its names say so.
    public var owner: FirewallOwner?
    /// The packet's conntrack state that a `ct state` match of the rule
    /// matched (the kernel's, read at the drop); nil: the rule tests none, or it was not known.
    public var ctStateMatched: ConntrackState?
    /// The verdict map element that decided (a `vmap @map` rule): `comment` is then the element's.
    public var element: NftVerdictMap.ElementRef?
    /// An iptables rule as iptables-save wrote it, in words ("-A", chain,
    /// options): what nft cannot print of an iptables-nft rule (`xt match`
    /// options), and what `iptables -D` takes. nil for a native nft rule, or
    /// when iptables-save could not be run.
    public var saved: [String]?

    /// An iptables-nft rule as iptables-save writes it, quoted for the shell
    /// (nil for an iptables-legacy rule: its `text` is that line already).
    public var iptablesRule: String? { legacy ? nil : saved.map { $0.map(ShellWord.quoted).joined(separator: " ") } }

    /// The rule as the tool that manages it writes it: what a hint quotes.
    public var shownText: String { iptablesRule ?? text }

    /// " (handle 7)", " (rule 3)" for an iptables-legacy rule (its position); "" for a chain policy.
    public var handleLabel: String { handle.map { " (\(IptablesLegacy.handleWord(legacy: legacy)) \($0))" } ?? "" }

    public init(table: String, chain: String, handle: Int?, text: String, verdict: FirewallVerdict,
                packets: UInt64? = nil, exact: Bool = true, iptables: Bool = false,
                comment: String? = nil, owner: FirewallOwner? = nil, ctStateMatched: ConntrackState? = nil,
                legacy: Bool = false, saved: [String]? = nil) {
        self.saved = saved
        self.legacy = legacy
        self.ctStateMatched = ctStateMatched
        self.comment = comment
        self.owner = owner
        self.table = table
        self.chain = chain
        self.handle = handle
        self.text = text
        self.verdict = verdict
        self.packets = packets
        self.exact = exact
        self.iptables = iptables
    }
}

/// The answer of a rule lookup: the best candidates first.
public struct FirewallRuleLookup: Sendable, Hashable {
    public var candidates: [FirewallRule]
    /// "ruleset_match" (plus "+counter" when a counter moved for the chosen
    /// rule), or "ruleset_unavailable".
    public var method: String
    /// Why the ruleset could not be read (the namespace was gone, the read
    /// was too slow, ...); nil when it was read.
    public var unavailable: String?
    /// The namespace's IPVS virtual service the packet was sent to, if any
    /// (IPVS drops what it cannot schedule, with no rule to name).
    public var ipvs: IPVSService?

    public init(candidates: [FirewallRule], method: String = "ruleset_match", unavailable: String? = nil,
                ipvs: IPVSService? = nil) {
        self.candidates = candidates
        self.method = method
        self.unavailable = unavailable
        self.ipvs = ipvs
    }
}

/// Finds the rules of a packet's network namespace that may have dropped it.
public protocol FirewallRuleSource {
    /// Called when a drop in `netns` is first seen (on the ring-buffer
    /// thread: must not block): capture what may vanish before the lookup.
    func pin(netns: UInt32)
    func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup?
}

extension FirewallRuleSource {
    public func pin(netns: UInt32) {}
}

/// A parsed nftables ruleset (native nft and iptables-nft alike).
public struct NftRuleset: Sendable {
    public struct Chain: Sendable, Hashable {
        public var family: String
        public var table: String
        public var name: String
        public var hook: String?
        public var policy: String?
    }

    public struct Rule: Sendable {
        public var family: String
        public var table: String
        public var chain: String
        public var handle: Int
        public var comment: String?
        public var expr: [JSONValue]
        /// An iptables rule's words as iptables-save wrote them (FirewallRule.saved).
        public var saved: [String]?

        public init(family: String, table: String, chain: String, handle: Int, comment: String?, expr: [JSONValue],
                    saved: [String]? = nil) {
            self.family = family
            self.table = table
            self.chain = chain
            self.handle = handle
            self.comment = comment
            self.expr = expr
            self.saved = saved
        }
    }

    /// Set with the ruleset (read-only after: `chainIndex` follows it).
    public private(set) var chains: [Chain] = []
    /// "family table name" -> position in `chains`: a kube-proxy ruleset has
    /// thousands of chains, looked up once per rule per packet.
    var chainIndex: [String: Int] = [:]
    public var rules: [Rule] = []
    /// Rule text by "family table chain handle", from `nft -a list ruleset`.
    public var texts: [String: String] = [:]
    /// iptables-legacy tables that exist but could not be read (why), so
    /// that "no rule" is not claimed for them.
    public var legacyUnread: [String] = []
    /// The namespace's IPVS virtual services (/proc/net/ip_vs), read with the ruleset.
    public var ipvs: [IPVSService] = []
    /// Verdict maps by "family table name" (kube-proxy's nftables mode decides by their elements).
    public var maps: [String: NftVerdictMap] = [:]
    /// Named sets' elements by "family table name": `ip saddr @banned` is
    /// decided by them (fail2ban's, sshguard's and CrowdSec's bans, firewalld's ipsets).
    public var sets: [String: [JSONValue]] = [:]

    public init() {}

    /// The IPVS service a TCP packet to `destination` is for.
    public func ipvsService(to destination: Endpoint) -> IPVSService? {
        ipvs.first { $0.serves(tcp: destination) }
    }

    /// Adds the iptables-legacy tables of `save` (`iptables-legacy-save -c`,
    /// or ip6tables' for IPv6), which nft does not list.
    public mutating func addIptablesLegacy(save: String, family: AddressFamily) {
        let legacy = IptablesLegacy.parse(save, family: family)
        chains += legacy.chains
        chainIndex = Self.index(chains)
        rules += legacy.rules
        texts.merge(legacy.texts) { _, new in new }
    }

    /// Parses `nft -j list ruleset` and, optionally, `nft -a list ruleset`.
    public init?(json: String, text: String? = nil) {
        guard let root = JSONReader.parse(json), case .array(let items)? = root["nftables"] else { return nil }
        for item in items {
            if let c = item["chain"] {
                chains.append(Chain(family: c["family"]?.stringValue ?? "", table: c["table"]?.stringValue ?? "",
                                    name: c["name"]?.stringValue ?? "", hook: c["hook"]?.stringValue,
                                    policy: c["policy"]?.stringValue))
            } else if let m = item["map"], let map = NftVerdictMap(json: m) {
                maps[map.id] = map
            } else if let s = item["set"], let family = s["family"]?.stringValue, let table = s["table"]?.stringValue,
                      let name = s["name"]?.stringValue {
                if case .array(let elems)? = s["elem"] { sets["\(family) \(table) \(name)"] = elems } else { sets["\(family) \(table) \(name)"] = [] }
            } else if let r = item["rule"] {
                var expr: [JSONValue] = []
                if case .array(let e)? = r["expr"] { expr = e }
                rules.append(Rule(family: r["family"]?.stringValue ?? "", table: r["table"]?.stringValue ?? "",
                                  chain: r["chain"]?.stringValue ?? "", handle: Int(r["handle"]?.intValue ?? -1),
                                  comment: r["comment"]?.stringValue, expr: expr))
            }
        }
        if let text { texts = NftRuleset.ruleTexts(text) }
        chainIndex = Self.index(chains)
    }

    /// Rules in tables iptables-nft manages, whose text nft prints only in
    /// part (an `xt match` without its options, a `-m comment` without its
    /// text) and which `iptables -D` deletes by their iptables-save words.
    public var hasIptablesNftRules: Bool {
        rules.contains { ($0.family == "ip" || $0.family == "ip6") && isIptables($0.family, $0.table) }
    }

    /// Takes iptables-nft rules as `iptables-save` (or `ip6tables-save` for
    /// `family` "ip6") wrote them, and their comments: the n-th rule of a
    /// chain in nft's listing is the n-th `-A` of that chain. A chain whose
    /// rule count differs between the two (a rule added or deleted between
    /// the listing and the save: fail2ban banning meanwhile) is left as nft
    /// listed it, rather than given another rule's words.
    public mutating func attachIptablesSave(_ text: String, family: String) {
        let saved = IptablesSave.rules(text)
        guard !saved.isEmpty else { return }
        var listed: [String: Int] = [:]
        for r in rules where r.family == family { listed[r.table + " " + r.chain, default: 0] += 1 }
        var position: [String: Int] = [:]
        for i in rules.indices where rules[i].family == family {
            let key = rules[i].table + " " + rules[i].chain
            position[key, default: 0] += 1
            guard saved[key]?.count == listed[key], let words = saved[key]?[position[key]!] else { continue }
            rules[i].saved = words
            if rules[i].comment == nil { rules[i].comment = IptablesSave.comment(words) }
        }
    }

    package static func key(_ family: String, _ table: String, _ chain: String, _ handle: Int) -> String {
        "\(family) \(table) \(chain) \(handle)"
    }

    /// Rule lines of `nft -a list ruleset` ("... # handle 7"), counters removed.
    static func ruleTexts(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        var family = "", table = "", chain = ""
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: " \t")
            let words = line.split(separator: " ").map(String.init)
            if words.first == "table", words.count >= 3 {
                family = words[1]; table = words[2]; continue
            }
            if words.first == "chain", words.count >= 2 { chain = words[1]; continue }
            guard let r = line.firstRange(of: " # handle "), let handle = Int(line[r.upperBound...]) else { continue }
            var body = String(line[..<r.lowerBound])
            body = stripCounters(body)
            out[key(family, table, chain, handle)] = body
        }
        return out
    }

    /// "counter packets 3 bytes 180 " -> "" (values change with every packet).
    static func stripCounters(_ s: String) -> String {
        var words = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        var i = 0
        while i < words.count {
            if words[i] == "counter", i + 4 < words.count, words[i + 1] == "packets", words[i + 3] == "bytes" {
                words.removeSubrange(i...(i + 4))
            } else {
                i += 1
            }
        }
        return words.joined(separator: " ")
    }

    package func chain(_ family: String, _ table: String, _ name: String) -> Chain? {
        chainIndex["\(family) \(table) \(name)"].map { chains[$0] }
    }

    /// A match against a named set (`"right": "@name"`) with the set's
    /// elements in its place; as is when the set is not known.
    func resolvingSet(_ m: JSONValue, family: String, table: String) -> JSONValue {
        guard case .object(var fields) = m, let i = fields.firstIndex(where: { key, _ in key == "right" }),
              let name = fields[i].1.stringValue, name.hasPrefix("@"),
              let elems = sets["\(family) \(table) \(name.dropFirst())"] else { return m }
        fields[i].1 = .object([("set", .array(elems))])
        return .object(fields)
    }

    static func index(_ chains: [Chain]) -> [String: Int] {
        var out: [String: Int] = [:]
        for (i, c) in chains.enumerated() where out["\(c.family) \(c.table) \(c.name)"] == nil {
            out["\(c.family) \(c.table) \(c.name)"] = i
        }
        return out
    }

    /// Rules (and base-chain drop policies) that may have dropped `p`: exact
    /// matches first, then rules with matches not understood, then policies.
    public func candidates(for p: FirewallPacket) -> [FirewallRule] {
        var exact: [FirewallRule] = [], loose: [FirewallRule] = [], policies: [FirewallRule] = []
        var mapped: [FirewallRule] = []
        for r in rules {
            guard familyFits(r.family, p.family), let c = chain(r.family, r.table, r.chain), hookFits(c.hook, p.hook) else { continue }
            var unknown = false
            var verdict: FirewallVerdict?
            var packets: UInt64?
            var fits = true
            var ctMatched: ConntrackState?
            var element: NftVerdictMap.ElementRef?
            for e in r.expr {
                if let m = e["match"] {
                    switch NftMatch.evaluate(resolvingSet(m, family: r.family, table: r.table), p) {
                    case .no: fits = false
                    case .unknown: unknown = true
                    case .yes: if NftMatch.isCtState(m), p.ctState != .unknown { ctMatched = p.ctState }
                    }
                    if !fits { break }
                } else if let c = e["counter"] {
                    packets = c["packets"]?.intValue.map { UInt64(max(0, $0)) }
                } else if e["drop"] != nil {
                    verdict = .drop; break
                } else if let rj = e["reject"] {
                    verdict = .reject(rejectWith(rj, family: r.family)); break
                } else if let vm = e["vmap"] {
                    // The element the packet selects decides; none: the rule goes on without a verdict.
                    if let hit = vmapVerdict(vm, family: r.family, table: r.table, p) { (verdict, element) = hit }
                    break
                } else if let xt = e["xt"] {
                    let name = xt["name"]?.stringValue ?? ""
                    if xt["type"]?.stringValue == "target" {
                        if name == "REJECT" { verdict = .reject(xtRejectWith(r)) } else if name == "DROP" { verdict = .drop }
                        break
                    }
                    if name == "conntrack" || name == "state" {
                        // iptables' -m conntrack --ctstate / -m state --state: nft prints them translated.
                        switch NftMatch.xtCtState(texts[NftRuleset.key(r.family, r.table, r.chain, r.handle)] ?? "", p) {
                        case .no: fits = false
                        case .unknown: unknown = true
                        case .yes: if p.ctState != .unknown { ctMatched = p.ctState }
                        }
                        if !fits { break }
                    } else if name != "comment" {
                        // A comment matches every packet; other xt matches are not evaluated here.
                        unknown = true
                    }
                } else if e["accept"] != nil || e["jump"] != nil || e["goto"] != nil || e["return"] != nil || e["queue"] != nil {
                    break
                }
            }
            guard fits, let verdict else { continue }
            let text = texts[NftRuleset.key(r.family, r.table, r.chain, r.handle)]
                ?? (r.comment.map { "... comment \"\($0)\"" } ?? "handle \(r.handle)")
            let rule = FirewallRule(table: "\(r.family) \(r.table)", chain: r.chain, handle: r.handle, text: text,
                                    verdict: verdict, packets: packets, exact: !unknown,
                                    iptables: isIptables(r.family, r.table), comment: r.comment,
                                    owner: FirewallOwner.recognise(table: "\(r.family) \(r.table)", chain: r.chain),
                                    ctStateMatched: ctMatched, legacy: IptablesLegacy.isLegacy(r.family), saved: r.saved)
            if let element {
                // The element that decided is the most specific evidence there is.
                var rule = rule
                rule.element = element
                rule.comment = element.comment
                rule.text += " (element \(element.key)\(element.comment.map { " comment \"\($0)\"" } ?? ""): \(element.verdict))"
                mapped.append(rule)
            } else if unknown { loose.append(rule) } else { exact.append(rule) }
        }
        for c in chains where c.policy == "drop" && c.hook != nil && familyFits(c.family, p.family) && hookFits(c.hook, p.hook) {
            policies.append(FirewallRule(table: "\(c.family) \(c.table)", chain: c.name, handle: nil,
                                         text: "policy drop", verdict: .policyDrop, exact: false,
                                         iptables: isIptables(c.family, c.table),
                                         owner: FirewallOwner.recognise(table: "\(c.family) \(c.table)", chain: c.name),
                                         legacy: IptablesLegacy.isLegacy(c.family)))
        }
        return mapped + exact + loose + policies
    }

    package func isIptables(_ family: String, _ table: String) -> Bool {
        if IptablesLegacy.isLegacy(family) { return true }
        return (family == "ip" || family == "ip6") && ["filter", "raw", "mangle", "nat", "security"].contains(table)
            && chains.contains { $0.family == family && $0.table == table && $0.name == $0.name.uppercased() && $0.hook != nil }
    }

    /// The address families a table of `family` sees: inet both, ip and
    /// iptables-legacy IPv4, ip6 and ip6tables-legacy IPv6; none for the
    /// others (arp, bridge, netdev).
    package static func addressFamilies(_ family: String) -> Set<AddressFamily> {
        switch family {
        case "inet": return [.ipv4, .ipv6]
        case "ip": return [.ipv4]
        case "ip6": return [.ipv6]
        default: return IptablesLegacy.addressFamily(family).map { [$0] } ?? []
        }
    }

    func familyFits(_ f: String, _ pf: AddressFamily) -> Bool {
        Self.addressFamilies(f).contains(pf)
    }

    /// A rule in a non-base chain (reached by jump) fits any hook.
    func hookFits(_ chainHook: String?, _ h: FirewallHook) -> Bool {
        guard let chainHook, let name = h.name else { return true }
        if chainHook == name { return true }
        // "input" from the skb can not tell INPUT from an early PREROUTING drop
        // after routing; FORWARD is told apart for IPv4 only.
        if h == .input && chainHook == "forward" { return true }
        return false
    }

    package func rejectWith(_ rj: JSONValue, family: String) -> String {
        let type = rj["type"]?.stringValue
        let expr = rj["expr"]?.stringValue
        if type == "tcp reset" { return "tcp-reset" }
        let families = Self.addressFamilies(family)
        let t = type ?? (families == [.ipv4] ? "icmp" : families == [.ipv6] ? "icmpv6" : "icmpx")
        return "\(t) \(expr ?? "port-unreachable")"
    }

    /// iptables' REJECT shows as an xt target in JSON; its options are in the
    /// text nft prints ("reject with tcp reset", "reject with icmp host-prohibited").
    package func xtRejectWith(_ r: Rule) -> String {
        let text = texts[NftRuleset.key(r.family, r.table, r.chain, r.handle)] ?? ""
        if text.contains("reject with tcp reset") { return "tcp-reset" }
        if let range = text.firstRange(of: "reject with ") {
            let rest = text[range.upperBound...].split(separator: " ").prefix(2).joined(separator: " ")
            if rest.hasPrefix("icmp") { return rest }
        }
        return Self.addressFamilies(r.family) == [.ipv6] ? "icmpv6 port-unreachable" : "icmp port-unreachable"
    }
}

/// Evaluation of one nft `match` expression against a packet.
package enum NftMatch {
    package enum Result { case yes, no, unknown }

    /// A packet field's value, for comparison.
    package enum Value {
        case int(Int64)
        case addr(IPAddress)
        case proto(Int64)
    }

    package static func evaluate(_ m: JSONValue, _ p: FirewallPacket) -> Result {
        guard let left = m["left"], let right = m["right"] else { return .unknown }
        let op = m["op"]?.stringValue ?? "=="
        let value: Value
        if TCPFlagsMatch.isFlags(m) {
            if p.icmp { return op == "!=" ? .yes : .no }
            guard let flags = p.tcpFlags, let r = TCPFlagsMatch.passes(m, flags: flags) else { return .unknown }
            return r ? .yes : .no
        }
        if let pl = left["payload"] {
            let proto = pl["protocol"]?.stringValue ?? ""
            let field = pl["field"]?.stringValue ?? ""
            let l4: Int64 = p.icmp ? (p.family == .ipv4 ? 1 : 58) : 6
            switch (proto, field) {
            case ("tcp", _) where p.icmp, ("th", _) where p.icmp:
                return op == "!=" ? .yes : .no
            case ("icmp", _) where p.icmp && p.family == .ipv4, ("icmpv6", _) where p.icmp && p.family == .ipv6:
                return .unknown
            case ("tcp", "dport"), ("th", "dport"): value = .int(Int64(p.local.port))
            case ("tcp", "sport"), ("th", "sport"): value = .int(Int64(p.remote.port))
            case ("udp", _), ("sctp", _), ("dccp", _), ("udplite", _), ("icmp", _), ("icmpv6", _):
                return op == "!=" ? .yes : .no
            case ("ip", "saddr"), ("ip", "daddr"):
                guard p.family == .ipv4 else { return .no }
                value = .addr(field == "saddr" ? p.remote.addr : p.local.addr)
            case ("ip6", "saddr"), ("ip6", "daddr"):
                guard p.family == .ipv6 else { return .no }
                value = .addr(field == "saddr" ? p.remote.addr : p.local.addr)
            case ("ip", "protocol"):
                guard p.family == .ipv4 else { return .no }
                value = .proto(l4)
            case ("ip6", "nexthdr"):
                guard p.family == .ipv6 else { return .no }
                value = .proto(l4)
            default: return .unknown
            }
        } else if let meta = left["meta"] {
            switch meta["key"]?.stringValue ?? "" {
            case "l4proto": value = .proto(p.icmp ? (p.family == .ipv4 ? 1 : 58) : 6)
            case "nfproto": value = .proto(p.family == .ipv4 ? 2 : 10)
            case "mark": value = .int(Int64(p.mark))
            default: return .unknown  // iifname, oifname, skuid, ...
            }
        } else if isCtState(m) {
            // The state the kernel gave the packet (read at the drop); without
            // it, a SYN is taken to be new and anything else is not known.
            let state = p.ctState.name ?? (p.isSyn ? "new" : nil)
            guard let state else { return .unknown }
            let states = strings(right)
            guard !states.isEmpty else { return .unknown }
            let has = states.contains(state)
            if op == "!=" { return has ? .no : .yes }
            return has ? .yes : .no
        } else {
            return .unknown
        }
        guard let r = compare(value, right) else { return .unknown }
        switch op {
        case "==", "in": return r ? .yes : .no
        case "!=": return r ? .no : .yes
        default: return .unknown
        }
    }

    /// An iptables conntrack/state match, from the rule's text as nft prints
    /// it ("ct state invalid", "ct state != established,related"): only a
    /// match on the state alone, against a state the kernel gave.
    package static func xtCtState(_ text: String, _ p: FirewallPacket) -> Result {
        let words = text.split(separator: " ").map(String.init)
        let ct = words.indices.filter { words[$0] == "ct" }
        guard ct.count == 1, let i = ct.first, i + 2 < words.count, words[i + 1] == "state",
              let state = p.ctState.name else { return .unknown }
        let negated = words[i + 2] == "!="
        let list = negated ? (i + 3 < words.count ? words[i + 3] : "") : words[i + 2]
        let states = list.split(separator: ",").map(String.init)
        guard !states.isEmpty else { return .unknown }
        return states.contains(state) != negated ? .yes : .no
    }

    /// A `ct state` match.
    package static func isCtState(_ m: JSONValue) -> Bool {
        m["left"]?["ct"]?["key"]?.stringValue == "state"
    }

    package static func strings(_ v: JSONValue) -> [String] {
        if let s = v.stringValue { return [s] }
        if case .array(let a) = v { return a.compactMap(\.stringValue) }
        if let set = v["set"], case .array(let a) = set { return a.compactMap(\.stringValue) }
        return []
    }

    /// A set element's value: as is, or unwrapped from the object nft writes
    /// for an element with a timeout ({"elem": {"val": ..., "timeout": ..., "expires": ...}}).
    package static func elementValue(_ e: JSONValue) -> JSONValue { e["elem"]?["val"] ?? e }

    /// Does `value` equal / fall in `element` (a match's right side, or one element of a set)? nil when it is not understood.
    package static func compare(_ value: Value, _ element: JSONValue) -> Bool? {
        let right = elementValue(element)
        if case .object(let f) = right, f.first?.0 == "set", case .array(let items) = f[0].1 {
            var unknown = false
            for item in items {
                switch compare(value, item) {
                case true?: return true
                case nil: unknown = true
                default: break
                }
            }
            return unknown ? nil : false
        }
        if case .array(let items) = right {  // anonymous set in some nft versions
            return compare(value, .object([("set", .array(items))]))
        }
        switch value {
        case .int(let v):
            if let i = right.intValue { return i == v }
            if case .array(let r)? = right["range"], r.count == 2, let lo = r[0].intValue, let hi = r[1].intValue {
                return lo <= v && v <= hi
            }
            if let s = right.stringValue, let i = Int64(s) { return i == v }
            return nil
        case .proto(let v):
            if let i = right.intValue { return i == v }
            if let s = right.stringValue {
                switch s {
                case "tcp": return v == 6
                case "icmp": return v == 1
                case "icmpv6", "ipv6-icmp": return v == 58
                case "ipv4": return v == 2
                case "ipv6": return v == 10
                default: return false
                }
            }
            return nil
        case .addr(let a):
            if let s = right.stringValue { return IPAddress.parse(s).map { $0 == a } }
            if let pre = right["prefix"], let s = pre["addr"]?.stringValue, let len = pre["len"]?.intValue,
               let base = IPAddress.parse(s) {
                return a.inPrefix(base, length: Int(len) + (base.isV4Mapped ? 96 : 0))
            }
            if case .array(let r)? = right["range"], r.count == 2, let lo = r[0].stringValue.flatMap(IPAddress.parse),
               let hi = r[1].stringValue.flatMap(IPAddress.parse) {
                return (lo.high, lo.low) <= (a.high, a.low) && (a.high, a.low) <= (hi.high, hi.low)
            }
            return nil
        }
    }
}

extension IPAddress {
    /// Parses dotted IPv4 (stored mapped) or RFC 4291 IPv6 text.
    package static func parse(_ s: String) -> IPAddress? {
        if !s.contains(":") {
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var o: [UInt8] = []
            for p in parts { guard let v = UInt8(p) else { return nil }; o.append(v) }
            return IPAddress(v4: o[0], o[1], o[2], o[3])
        }
        var head: [UInt16] = [], tail: [UInt16] = []
        let halves = s.components(separatedByString: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ t: String) -> [UInt16]? {
            if t.isEmpty { return [] }
            var out: [UInt16] = []
            for g in t.split(separator: ":", omittingEmptySubsequences: false) {
                if g.contains("."), let v4 = parse(String(g)) {
                    out.append(UInt16(truncatingIfNeeded: v4.low >> 16)); out.append(UInt16(truncatingIfNeeded: v4.low))
                } else {
                    guard let v = UInt16(g, radix: 16) else { return nil }
                    out.append(v)
                }
            }
            return out
        }
        guard let h = groups(halves[0]) else { return nil }
        head = h
        if halves.count == 2 { guard let t = groups(halves[1]) else { return nil }; tail = t }
        let missing = 8 - head.count - tail.count
        guard missing >= 0, halves.count == 2 || missing == 0 else { return nil }
        let all = head + [UInt16](repeating: 0, count: halves.count == 2 ? missing : 0) + tail
        var bytes: [UInt8] = []
        for g in all { bytes.append(UInt8(g >> 8)); bytes.append(UInt8(g & 0xFF)) }
        return IPAddress(bytes: bytes)
    }

    func inPrefix(_ base: IPAddress, length: Int) -> Bool {
        let len = max(0, min(128, length))
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? ~0 : ~0 << UInt64(64 - bits) }
        let mh = mask(len), ml = mask(len - 64)
        return high & mh == base.high & mh && low & ml == base.low & ml
    }
}

extension String {
    func components(separatedByString sep: String) -> [String] {
        var out: [String] = []
        var rest = Substring(self)
        while let r = rest.firstRange(of: sep) {
            out.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        out.append(String(rest))
        return out
    }
}
