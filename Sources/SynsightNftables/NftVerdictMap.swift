import SynsightBase
import SynsightModel

/// A verdict map of an nftables ruleset (`map NAME { type K : verdict;
/// elements = { k comment "…" : drop, … } }`), as `nft -j list ruleset`
/// lists it. A `vmap @NAME` rule decides by the element the packet selects:
/// kube-proxy's nftables mode keeps its Services without endpoints as
/// elements of `no-endpoint-services` and `no-endpoint-nodeports` (comment
/// "ns/svc:port"; `goto reject-chain` when the Service has no endpoint, `drop`
/// when a Local traffic policy finds none on this node).
public struct NftVerdictMap: Sendable {
    public struct Element: Sendable {
        /// The key's values: addresses and protocol names as strings, ports as integers.
        public var key: [JSONValue]
        public var comment: String?
        public var verdict: JSONValue

        /// The element's verdict is `drop`.
        public var drops: Bool { verdict["drop"] != nil }
    }

    /// The element that decided a packet, as a record names it.
    public struct ElementRef: Sendable, Hashable {
        public var map: String
        /// "10.96.0.10 . tcp . 80", as nft prints the key.
        public var key: String
        /// The element's comment. Untrusted.
        public var comment: String?
        /// "drop", "goto reject-chain".
        public var verdict: String
    }

    public var family: String
    public var table: String
    public var name: String
    public var elements: [Element]

    /// "family table name", as `NftRuleset.maps` is keyed.
    public var id: String { "\(family) \(table) \(name)" }

    /// A `map` item of the JSON listing; nil for one that does not map to verdicts.
    init?(json m: JSONValue) {
        guard m["map"]?.stringValue == "verdict", let family = m["family"]?.stringValue, let table = m["table"]?.stringValue,
              let name = m["name"]?.stringValue else { return nil }
        self.family = family
        self.table = table
        self.name = name
        var elements: [Element] = []
        if case .array(let items)? = m["elem"] {
            for item in items {
                // [key, verdict]; a key with a comment is {"elem": {"val": key, "comment": "…"}}.
                guard case .array(let pair) = item, pair.count == 2 else { continue }
                var key = pair[0], comment: String?
                if let wrapped = key["elem"], let val = wrapped["val"] {
                    comment = wrapped["comment"]?.stringValue
                    key = val
                }
                let values: [JSONValue]
                if case .array(let parts)? = key["concat"] { values = parts } else { values = [key] }
                elements.append(Element(key: values, comment: comment, verdict: pair[1]))
            }
        }
        self.elements = elements
    }

    /// The element whose key is `values` (what the packet gives for the map's key).
    func element(for values: [JSONValue]) -> Element? {
        elements.first { e in
            e.key.count == values.count && zip(e.key, values).allSatisfy(Self.sameValue)
        }
    }

    /// Addresses compare as addresses ("10.0.0.1" in any spelling); ports
    /// and protocol names as given. A prefix or range element never matches
    /// here (kube-proxy writes single values).
    static func sameValue(_ pair: (JSONValue, JSONValue)) -> Bool {
        switch pair {
        case (.int(let a), .int(let b)): return a == b
        case (.string(let a), .string(let b)):
            if let x = IPAddress.parse(a), let y = IPAddress.parse(b) { return x == y }
            return a == b
        default: return false
        }
    }

    /// What the packet gives for one selector of a map key: its destination
    /// or source address or port, or its layer-4 protocol (always TCP here);
    /// nil for a selector not understood.
    static func value(_ selector: JSONValue, _ p: FirewallPacket) -> JSONValue? {
        if let payload = selector["payload"], let field = payload["field"]?.stringValue {
            switch (payload["protocol"]?.stringValue, field) {
            case ("ip", "daddr"), ("ip6", "daddr"): return .string("\(p.local.addr)")
            case ("ip", "saddr"), ("ip6", "saddr"): return .string("\(p.remote.addr)")
            case ("th", "dport"), ("tcp", "dport"): return .int(Int64(p.local.port))
            case ("th", "sport"), ("tcp", "sport"): return .int(Int64(p.remote.port))
            default: return nil
            }
        }
        if selector["meta"]?["key"]?.stringValue == "l4proto" { return .string("tcp") }
        return nil
    }

    /// "10.96.0.10 . tcp . 80".
    public static func keyText(_ values: [JSONValue]) -> String {
        values.map { v in v.stringValue ?? v.intValue.map(String.init) ?? "?" }.joined(separator: " . ")
    }
}

extension NftRuleset {
    /// The verdict a `vmap` statement gives `p`, and the element that gave
    /// it: `drop`, or a goto/jump to a chain whose rule rejects or drops.
    /// nil when no element is selected, a selector is not understood, or the
    /// element accepts.
    func vmapVerdict(_ vmap: JSONValue, family: String, table: String, _ p: FirewallPacket)
        -> (FirewallVerdict, NftVerdictMap.ElementRef)? {
        guard let data = vmap["data"]?.stringValue, data.hasPrefix("@"),
              let map = maps["\(family) \(table) \(data.dropFirst())"], let keyExpr = vmap["key"] else { return nil }
        let selectors: [JSONValue]
        if case .array(let parts)? = keyExpr["concat"] { selectors = parts } else { selectors = [keyExpr] }
        let values = selectors.compactMap { NftVerdictMap.value($0, p) }
        guard values.count == selectors.count, let e = map.element(for: values) else { return nil }
        let verdict: FirewallVerdict
        let said: String
        if e.drops {
            (verdict, said) = (.drop, "drop")
        } else if let target = (e.verdict["goto"] ?? e.verdict["jump"])?["target"]?.stringValue,
                  let v = firstVerdict(family: family, table: table, chain: target) {
            (verdict, said) = (v, "\(e.verdict["goto"] != nil ? "goto" : "jump") \(target)")
        } else {
            return nil
        }
        return (verdict, NftVerdictMap.ElementRef(map: map.name, key: NftVerdictMap.keyText(e.key), comment: e.comment, verdict: said))
    }

    /// The first reject or drop of a chain (kube-proxy's `reject-chain` is one `reject`).
    func firstVerdict(family: String, table: String, chain: String) -> FirewallVerdict? {
        for r in rules where r.family == family && r.table == table && r.chain == chain {
            for e in r.expr {
                if let rj = e["reject"] { return .reject(rejectWith(rj, family: family)) }
                if e["drop"] != nil { return .drop }
            }
        }
        return nil
    }
}
