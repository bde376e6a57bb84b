import SynsightModel

/// A reject or drop that applies only past a limit: the client opened more
/// connections, or more new ones per second, than the rule allows. The
/// rule is doing what it was written for; whether the client should be
/// over it is the question (many users behind one NAT address, a
/// connection pool, a load balancer or health checker, an automation tool
/// opening SSH sessions in a loop).
///
/// Recognised:
/// - nftables: `ct count over N`, `limit rate over R/unit`, alone or per
///   key in a meter or a dynamic set (`meter m { ip saddr ct count over 4 }`,
///   `add @s { ip saddr limit rate over 10/minute }`), from the rule's text
///   as nft prints it;
/// - iptables (iptables-nft, whose nft text shows only `xt match NAME`, or
///   iptables-legacy): `-m connlimit --connlimit-above`, `-m hashlimit
///   --hashlimit-above`, `-m recent --update|--rcheck --hitcount`, from the
///   rule as iptables-save wrote it (without it, the match's name only);
/// - ufw's `limit` rules: the REJECT of its `ufw-user-limit` chain, which
///   ufw jumps to after 6 new connections from one address within 30 s.
public struct RateLimitRule: Sendable, Hashable {
    /// The limiting match, as the rule is written ("ct count over 2",
    /// "-m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr").
    public var limit: String
    /// What the limit is counted per ("ip saddr", "source address"); nil: for
    /// every client together, or not known.
    public var per: String?

    public var cause: FirewallCause { .rateLimited }

    /// "past its limit (ct count over 2, counted per ip saddr)": when the rule applies.
    public var condition: String { "past its limit (\(limit)\(per.map { ", counted per \($0)" } ?? ""))" }

    public init(limit: String, per: String? = nil) {
        self.limit = limit
        self.per = per
    }

    public init?(_ rule: FirewallRule) {
        guard rule.verdict != .policyDrop else { return nil }
        if rule.chain == "ufw-user-limit" || rule.chain == "ufw6-user-limit" {
            self.init(limit: "ufw limit: more than 6 new connections within 30 s", per: "source address")
        } else if let saved = rule.saved, let found = Self.iptables(saved) {
            self = found
        } else if let found = Self.nft(rule.text) {
            self = found
        } else if let name = Self.xtMatchNames.first(where: { rule.text.contains("xt match \($0)") }) {
            // iptables-nft without iptables-save: the match's options are not known.
            self.init(limit: "-m \(name)")
        } else {
            return nil
        }
    }

    /// The iptables matches that limit (their names as nft prints them: `xt match NAME`).
    public static let xtMatchNames = ["connlimit", "hashlimit", "recent"]

    /// The iptables match that limits, from the saved rule's words.
    static func iptables(_ words: [String]) -> RateLimitRule? {
        for name in xtMatchNames {
            guard let options = module(name, in: words) else { continue }
            let has = { (o: String) in options.contains(o) }
            let limit = (["-m", name] + options).joined(separator: " ")
            switch name {
            case "connlimit" where has("--connlimit-above"):
                let global = IptablesSave.option("--connlimit-mask", in: options) == "0"
                return RateLimitRule(limit: limit, per: global ? nil : has("--connlimit-daddr") ? "destination address" : "source address")
            case "hashlimit" where has("--hashlimit-above"):
                let mode = IptablesSave.option("--hashlimit-mode", in: options) ?? ""
                return RateLimitRule(limit: limit, per: mode.contains("srcip") ? "source address" : mode.contains("dstip") ? "destination address" : nil)
            case "recent" where has("--hitcount") && (has("--update") || has("--rcheck")):
                return RateLimitRule(limit: limit, per: has("--rdest") ? "destination address" : "source address")
            default:
                continue
            }
        }
        return nil
    }

    /// The options of `-m name` up to the next module, target or goto.
    static func module(_ name: String, in words: [String]) -> [String]? {
        guard let m = words.indices.dropLast().first(where: { words[$0] == "-m" && words[$0 + 1] == name }) else { return nil }
        let rest = words[(m + 2)...]
        let end = rest.firstIndex { ["-m", "--match", "-j", "--jump", "-g", "--goto"].contains($0) } ?? words.endIndex
        return Array(words[(m + 2)..<end])
    }


    /// nft's `ct count over N` or `limit rate over R/unit [burst B packets]`,
    /// with the key of the meter or set it is counted per.
    static func nft(_ text: String) -> RateLimitRule? {
        let words = text.split(separator: " ").map(String.init)
        for i in words.indices {
            var end: Int
            if words[i] == "ct", i + 3 < words.count, words[i + 1] == "count", words[i + 2] == "over" {
                end = i + 4
            } else if words[i] == "limit", i + 3 < words.count, words[i + 1] == "rate", words[i + 2] == "over" {
                end = i + 4
                // "10 mbytes/second": a byte rate's unit is its own word.
                if end < words.count, words[end].contains("/"), !words[end - 1].contains("/") { end += 1 }
                if end + 2 < words.count, words[end] == "burst" { end += 3 }
            } else {
                continue
            }
            return RateLimitRule(limit: words[i..<end].joined(separator: " "), per: key(words, before: i))
        }
        return nil
    }

    /// The key of `meter NAME [size N] { KEY STMT }` or `add|update @set { KEY STMT }`
    /// whose statement starts at `index`.
    static func key(_ words: [String], before index: Int) -> String? {
        guard let open = words[..<index].lastIndex(of: "{"), !words[open..<index].contains("}"), open + 1 < index else { return nil }
        return words[(open + 1)..<index].joined(separator: " ")
    }
}

extension Advice.Facts {
    /// rate_limited's facts: the limit, what it counts per, and the client to exempt.
    public mutating func rateLimited(_ l: RateLimitRule, client: IPAddress?) {
        rateLimit = l.limit
        rateLimitPer = l.per
        clientAddress = client
    }
}
