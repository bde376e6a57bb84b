import SynsightBase
import SynsightModel
import SynsightNftables

/// The ruleset fixture was recorded with `nft -j list ruleset` / `nft -a list
/// ruleset` in a scratch namespace holding native nft rules, a base chain with
/// `policy drop`, and iptables-nft REJECT/DROP rules.
package enum FirewallFixture {
    package static let json = #"""
{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "filter", "handle": 1}}, {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": "inet", "table": "filter", "name": "output", "handle": 2, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 3, "comment": "x", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9110}}, {"counter": {"packets": 0, "bytes": 0}}, {"reject": {"type": "tcp reset"}}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9111}}, {"reject": {"type": "icmpx", "expr": "port-unreachable"}}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [9112, 9113]}}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 7, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9115}}, {"reject": {"type": "icmpv6", "expr": "port-unreachable"}}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"range": [9120, 9130]}}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "output", "handle": 9, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9140}}, {"drop": null}]}}, {"table": {"family": "ip", "name": "strict", "handle": 2}}, {"chain": {"family": "ip", "table": "strict", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 10, "policy": "drop"}}, {"rule": {"family": "ip", "table": "strict", "chain": "input", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}, {"table": {"family": "ip", "name": "filter", "handle": 3}}, {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9200}}, {"counter": {"packets": 0, "bytes": 0}}, {"xt": {"type": "target", "name": "REJECT"}}]}}, {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9201}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}]}
"""#
    package static let text = #"""
table inet filter { # handle 1
	chain input { # handle 1
		type filter hook input priority filter; policy accept;
		tcp dport 9110 counter packets 0 bytes 0 reject with tcp reset comment "x" # handle 3
		tcp dport 9111 reject # handle 4
		ip saddr 10.0.0.0/8 tcp dport { 9112, 9113 } drop # handle 6
		ip6 daddr ::1 tcp dport 9115 reject with icmpv6 port-unreachable # handle 7
		tcp dport 9120-9130 counter packets 0 bytes 0 drop # handle 8
	}

	chain output { # handle 2
		type filter hook output priority filter; policy accept;
		tcp dport 9140 drop # handle 9
	}
}
table ip strict { # handle 2
	chain input { # handle 1
		type filter hook input priority filter + 10; policy drop;
		tcp dport 22 accept # handle 2
	}
}
table ip filter { # handle 3
	chain INPUT { # handle 1
		type filter hook input priority filter; policy accept;
		tcp dport 9200 counter packets 0 bytes 0 reject with tcp reset # handle 2
		tcp dport 9201 counter packets 0 bytes 0 drop # handle 3
	}
}

"""#
}

package let fwServer = Endpoint(addr: IPAddress(v4: 198, 18, 7, 1), port: 9110)
package let fwClient = Endpoint(addr: IPAddress(v4: 198, 18, 7, 2), port: 40000)

package func fwDrop(ts: UInt64, port: UInt16 = 9110, skb: UInt64 = 0xAA, client: TaskInfo? = nil, flags: UInt8 = 0x02,
            hook: FirewallHook = .input, isn: UInt32 = 0x5EED) -> FirewallDrop {
    FirewallDrop(ts: ts, family: .ipv4, local: Endpoint(addr: fwServer.addr, port: port), remote: fwClient, netns: 7,
                 tcpFlags: flags, hook: hook, skbAddr: skb, client: client, processContext: client != nil, isn: isn)
}

package func fwConnectError(ts: UInt64, port: UInt16 = 9110, errno: Int32) -> ConnectError {
    ConnectError(ts: ts, connectTs: ts - 1000, family: .ipv4, local: fwClient, remote: Endpoint(addr: fwServer.addr, port: port),
                 task: TaskInfo(pid: 4242, comm: "curl"), netns: 8, errno: errno)
}

package struct FixtureRules: FirewallRuleSource {
    package init() {}
    package let ruleset = NftRuleset(json: FirewallFixture.json, text: FirewallFixture.text)!
    package func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
        FirewallRuleLookup(candidates: ruleset.candidates(for: packet))
    }
}
