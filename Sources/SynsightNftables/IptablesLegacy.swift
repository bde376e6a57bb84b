import SynsightBase
import SynsightModel

/// iptables-legacy rules: x_tables, not nf_tables, so `nft list ruleset`
/// does not show them, yet their REJECT and DROP end in the same
/// NETFILTER_DROP. Parsed from `iptables-legacy-save -c` (or
/// `ip6tables-legacy-save -c`) into NftRuleset's model: each rule's matches
/// become the nft JSON expressions nft prints for the same rule made with
/// iptables-nft, so one matcher serves trace, record and explain.
///
/// A legacy table is listed under a family of its own ("iptables-legacy",
/// "ip6tables-legacy": table "iptables-legacy filter"), never mixed with an
/// iptables-nft table of the same name; a rule's handle is its position in
/// its chain (what `iptables-legacy -L --line-numbers` shows and `-D CHAIN N`
/// deletes).
public enum IptablesLegacy {
    /// The family a legacy table of `family` is listed under.
    public static func family(_ family: AddressFamily) -> String {
        family == .ipv6 ? "ip6tables-legacy" : "iptables-legacy"
    }

    /// The address family of a legacy family name; nil for any other family.
    public static func addressFamily(_ nftFamily: String) -> AddressFamily? {
        switch nftFamily {
        case "iptables-legacy": return .ipv4
        case "ip6tables-legacy": return .ipv6
        default: return nil
        }
    }

    /// Is `nftFamily` one of the legacy families?
    public static func isLegacy(_ nftFamily: String) -> Bool { addressFamily(nftFamily) != nil }

    /// What a rule's handle is called: its position in the chain for a legacy rule.
    public static func handleWord(legacy: Bool) -> String { legacy ? "rule" : "handle" }

    /// The tables of one save text: chains, rules and each rule's text (the
    /// saved line, counters removed), keyed like NftRuleset.texts.
    public static func parse(_ text: String, family: AddressFamily)
        -> (chains: [NftRuleset.Chain], rules: [NftRuleset.Rule], texts: [String: String]) {
        let fam = Self.family(family)
        var chains: [NftRuleset.Chain] = [], rules: [NftRuleset.Rule] = [], texts: [String: String] = [:]
        var table = ""
        // A rule's position in its chain, and the user chains (declared before
        // the rules: a kube-proxy table has thousands), of the current table.
        var position: [String: Int] = [:]
        var userChains = Set<String>()
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: " \t\r")
            if line.hasPrefix("*") {
                table = String(line.dropFirst())
                position.removeAll()
                userChains.removeAll()
                continue
            }
            if line.hasPrefix(":") {
                let words = line.dropFirst().split(separator: " ").map(String.init)
                guard let name = words.first else { continue }
                let policy = words.count > 1 && words[1] != "-" ? words[1].lowercased() : nil
                chains.append(NftRuleset.Chain(family: fam, table: table, name: name,
                                               hook: policy == nil ? nil : name.lowercased(), policy: policy))
                if policy == nil { userChains.insert(name) }
                continue
            }
            let (packets, body) = counters(line)
            guard body.hasPrefix("-A ") else { continue }
            let words = IptablesSave.tokens(Substring(body))
            guard words.count >= 2 else { continue }
            let chain = words[1]
            position[chain, default: 0] += 1
            var parser = RuleWords(words: Array(words.dropFirst(2)), family: family, userChains: userChains)
            var rule = parser.parse()
            if let packets {
                rule.expr.insert(JSONValue.object([("counter", .object([("packets", .int(packets)), ("bytes", .int(0))]))]), at: 0)
            }
            let handle = position[chain]!
            rules.append(NftRuleset.Rule(family: fam, table: table, chain: chain, handle: handle,
                                         comment: rule.comment, expr: rule.expr, saved: words))
            texts[NftRuleset.key(fam, table, chain, handle)] = body
        }
        return (chains, rules, texts)
    }

    /// "[12:720] -A INPUT ..." -> (12, "-A INPUT ..."); a line without counters as is.
    static func counters(_ line: String) -> (Int64?, String) {
        guard line.hasPrefix("["), let close = line.firstIndex(of: "]") else { return (nil, line) }
        let pair = line[line.index(after: line.startIndex)..<close].split(separator: ":")
        let rest = line[line.index(after: close)...].trimmingCharacters(in: " ")
        return (pair.first.flatMap { Int64($0) }, rest)
    }
}

/// One saved rule's words after `-A CHAIN`, turned into nft JSON expressions.
struct RuleWords {
    let words: [String]
    let family: AddressFamily
    let userChains: Set<String>
    var i = 0
    var expr: [JSONValue] = []
    var comment: String?
    /// The protocol `-p` named: the payload of `--dport` and `--sport`.
    var proto = "tcp"
    /// The latest `-m` is a match not understood: its options add nothing more.
    var moduleUnknown = false

    init(words: [String], family: AddressFamily, userChains: Set<String>) {
        self.words = words
        self.family = family
        self.userChains = userChains
    }

    mutating func parse() -> (expr: [JSONValue], comment: String?) {
        var negate = false
        while i < words.count {
            let w = next()
            if w == "!" { negate = true; continue }
            option(w, negate: negate)
            negate = false
        }
        return (expr, comment)
    }

    mutating func next() -> String {
        defer { i += 1 }
        return words[i]
    }

    /// The option's value; `--dport ! 80` (older iptables) negates it.
    mutating func value(_ negate: inout Bool) -> String {
        guard i < words.count else { return "" }
        if words[i] == "!" { negate.toggle(); i += 1 }
        return i < words.count ? next() : ""
    }

    mutating func option(_ w: String, negate n: Bool) {
        var negate = n
        switch w {
        case "-p", "--protocol":
            let named = value(&negate).lowercased()
            proto = ["6": "tcp", "17": "udp", "132": "sctp"][named] ?? named
            guard proto != "all", proto != "0" else { return }
            let right: JSONValue = Int64(proto).map { .int($0) } ?? .string(proto)
            match(.object([("meta", .object([("key", .string("l4proto"))]))]), right, negate)
        case "-s", "--source", "-d", "--destination":
            let field = w == "-s" || w == "--source" ? "saddr" : "daddr"
            match(payload(family == .ipv6 ? "ip6" : "ip", field), Self.address(value(&negate)), negate)
        case "-i", "--in-interface", "-o", "--out-interface":
            let key = w.hasPrefix("-i") || w == "--in-interface" ? "iifname" : "oifname"
            match(.object([("meta", .object([("key", .string(key))]))]), .string(value(&negate)), negate)
        case "--dport", "--destination-port", "--sport", "--source-port", "--dports", "--destination-ports",
             "--sports", "--source-ports":
            let field = w.hasPrefix("--d") ? "dport" : "sport"
            match(payload(proto, field), Self.ports(value(&negate)), negate)
        case "--syn":
            flags(mask: "FIN,SYN,RST,ACK", set: "SYN", negate)
        case "--tcp-flags":
            let mask = value(&negate)
            flags(mask: mask, set: i < words.count ? next() : "", negate)
        case "--ctstate", "--state":
            let states = value(&negate).lowercased().split(separator: ",").map { JSONValue.string(String($0)) }
            let right: JSONValue = states.count == 1 ? states[0] : .array(states)
            expr.append(.object([("match", .object([("op", .string(negate ? "!=" : "in")),
                                                    ("left", .object([("ct", .object([("key", .string("state"))]))])),
                                                    ("right", right)]))]))
        case "--comment":
            comment = i < words.count ? next() : nil
        case "-m", "--match":
            let module = i < words.count ? next() : ""
            moduleUnknown = !["tcp", "udp", "multiport", "conntrack", "state", "comment"].contains(module)
            if moduleUnknown { expr.append(xt("match", module)) }
        case "-j", "--jump", "-g", "--goto":
            target(i < words.count ? next() : "", goto: w == "-g" || w == "--goto")
        default:
            // An option of a match or target not understood (a match's makes
            // the rule inexact): its values are the words up to the next option.
            if w.hasPrefix("-"), !isTargetOption, !moduleUnknown {
                expr.append(xt("match", w))
            }
            while i < words.count, !words[i].hasPrefix("-"), words[i] != "!" { i += 1 }
        }
    }

    /// After `-j TARGET`, options are the target's (`--log-prefix`, `--reject-with`).
    var isTargetOption: Bool {
        expr.contains { $0["xt"]?["type"]?.stringValue == "target" || $0["reject"] != nil || $0["accept"] != nil
            || $0["drop"] != nil || $0["jump"] != nil || $0["goto"] != nil || $0["return"] != nil }
    }

    mutating func target(_ name: String, goto: Bool) {
        switch name {
        case "ACCEPT": expr.append(.object([("accept", .null)]))
        case "DROP": expr.append(.object([("drop", .null)]))
        case "RETURN": expr.append(.object([("return", .null)]))
        case "REJECT":
            var with = "icmp-port-unreachable"
            if let k = words.firstIndex(of: "--reject-with"), k + 1 < words.count { with = words[k + 1] }
            expr.append(.object([("reject", Self.reject(with, family: family))]))
        default:
            if userChains.contains(name) {
                expr.append(.object([(goto ? "goto" : "jump", .object([("target", .string(name))]))]))
            } else {
                expr.append(xt("target", name))
            }
        }
    }

    mutating func match(_ left: JSONValue, _ right: JSONValue, _ negate: Bool) {
        expr.append(.object([("match", .object([("op", .string(negate ? "!=" : "==")), ("left", left), ("right", right)]))]))
    }

    /// `--tcp-flags MASK SET` as nft prints it: `tcp flags & (mask) == set`.
    mutating func flags(mask: String, set: String, _ negate: Bool) {
        let left: JSONValue = .object([("&", .array([payload("tcp", "flags"), Self.flagList(mask)]))])
        match(left, Self.flagList(set), negate)
    }

    func payload(_ proto: String, _ field: String) -> JSONValue {
        .object([("payload", .object([("protocol", .string(proto)), ("field", .string(field))]))])
    }

    func xt(_ type: String, _ name: String) -> JSONValue {
        .object([("xt", .object([("type", .string(type)), ("name", .string(name))]))])
    }

    /// "SYN,ACK" -> ["syn", "ack"]; ALL and NONE as iptables means them.
    static func flagList(_ s: String) -> JSONValue {
        switch s.uppercased() {
        case "NONE": return .int(0)
        case "ALL": return .array(["fin", "syn", "rst", "psh", "ack", "urg"].map { .string($0) })
        default: return .array(s.lowercased().split(separator: ",").map { .string(String($0)) })
        }
    }

    /// "10.0.0.0/8" -> a prefix; a full-length one (as iptables-save writes a host) -> the address.
    static func address(_ s: String) -> JSONValue {
        let parts = s.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, let len = Int64(parts[1]) else { return .string(s) }
        if len == 32 && !s.contains(":") || len == 128 { return .string(parts[0]) }
        return .object([("prefix", .object([("addr", .string(parts[0])), ("len", .int(len))]))])
    }

    /// "80", "8000:8100", "80,443,8000:8100" (multiport) -> a value, a range or a set.
    static func ports(_ s: String) -> JSONValue {
        func one(_ p: Substring) -> JSONValue {
            let r = p.split(separator: ":", omittingEmptySubsequences: false)
            if r.count == 2 {
                return .object([("range", .array([.int(Int64(r[0]) ?? 0), .int(Int64(r[1]) ?? 65535)]))])
            }
            return Int64(p).map { .int($0) } ?? .string(String(p))
        }
        let items = s.split(separator: ",")
        return items.count == 1 ? one(items[0]) : .object([("set", .array(items.map(one)))])
    }

    /// `--reject-with` as nft's reject statement.
    static func reject(_ with: String, family: AddressFamily) -> JSONValue {
        if with == "tcp-reset" { return .object([("type", .string("tcp reset"))]) }
        let names: [String: String] = [
            "icmp-net-unreachable": "net-unreachable", "icmp-host-unreachable": "host-unreachable",
            "icmp-port-unreachable": "port-unreachable", "icmp-proto-unreachable": "prot-unreachable",
            "icmp-net-prohibited": "net-prohibited", "icmp-host-prohibited": "host-prohibited",
            "icmp-admin-prohibited": "admin-prohibited", "icmp6-no-route": "no-route", "no-route": "no-route",
            "icmp6-adm-prohibited": "admin-prohibited", "adm-prohibited": "admin-prohibited",
            "icmp6-addr-unreachable": "addr-unreachable", "addr-unreach": "addr-unreachable",
            "icmp6-port-unreachable": "port-unreachable", "port-unreach": "port-unreachable",
        ]
        return .object([("type", .string(family == .ipv6 ? "icmpv6" : "icmp")),
                        ("expr", .string(names[with] ?? with))])
    }
}
