import SynsightBase
import SynsightModel
import SynsightNftables

/// A ruleset recorded with `nft -j list ruleset` / `nft -a list ruleset` in a
/// scratch namespace: a native `ct state invalid counter drop` and an
/// `established,related accept`, and iptables-nft `-m conntrack --ctstate
/// INVALID -j DROP` (an xt match in JSON, `ct state invalid` in the text).
package enum ConntrackFixture {
    package static let json = #"""
{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "filter", "handle": 1}}, {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 2, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"counter": {"packets": 4, "bytes": 240}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 3, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"table": {"family": "ip", "name": "filter", "handle": 2}}, {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 2, "expr": [{"xt": {"type": "match", "name": "conntrack"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}]}
"""#
    package static let text = #"""
table inet filter { # handle 1
	chain input { # handle 1
		type filter hook input priority filter; policy accept;
		ct state invalid counter packets 4 bytes 240 drop # handle 2
		ct state established,related accept # handle 3
	}
}
table ip filter { # handle 2
	chain INPUT { # handle 1
		type filter hook input priority filter; policy accept;
		ct state invalid counter packets 0 bytes 0 drop # handle 2
	}
}
"""#
}

package struct ConntrackRules: FirewallRuleSource {
    package init() {}
    package let ruleset = NftRuleset(json: ConntrackFixture.json, text: ConntrackFixture.text)!
    package func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
        FirewallRuleLookup(candidates: ruleset.candidates(for: packet))
    }
}

/// A fixed nf_conntrack_max.
package struct FixedConntrackLimit: ConntrackLimitSource {
    package let max: UInt32
    package init(max: UInt32) { self.max = max }
    package func limits() -> ConntrackLimits? { ConntrackLimits(max: max) }
}
