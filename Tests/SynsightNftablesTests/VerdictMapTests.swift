import Testing
@testable import SynsightModel
@testable import SynsightNftables

/// Verdict maps (NftVerdictMap): kube-proxy's nftables mode, as
/// `nft -j list ruleset` lists it (captured from nft 1.0.6 on this host),
/// matched against packets. The end-to-end KubeProxyRuleTests load the same
/// shape into a real namespace.
@Suite("nftables verdict maps")
struct VerdictMapTests {
    static let json = """
        {"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
         {"table": {"family": "ip", "name": "kube-proxy", "handle": 1}},
         {"map": {"family": "ip", "name": "no-endpoint-services", "table": "kube-proxy",
                  "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 4, "map": "verdict",
                  "elem": [[{"elem": {"val": {"concat": ["198.18.9.1", "tcp", 8080]}, "comment": "shop/api:http"}},
                            {"goto": {"target": "reject-chain"}}],
                           [{"elem": {"val": {"concat": ["198.18.9.1", "tcp", 8081]}, "comment": "shop/web:http"}}, {"drop": null}],
                           [{"concat": ["198.18.9.1", "tcp", 8082]}, {"accept": null}]]}},
         {"chain": {"family": "ip", "table": "kube-proxy", "name": "filter-input", "handle": 1, "type": "filter",
                    "hook": "input", "prio": -110, "policy": "accept"}},
         {"chain": {"family": "ip", "table": "kube-proxy", "name": "service-endpoints-check", "handle": 2}},
         {"chain": {"family": "ip", "table": "kube-proxy", "name": "reject-chain", "handle": 3}},
         {"rule": {"family": "ip", "table": "kube-proxy", "chain": "service-endpoints-check", "handle": 6,
                   "expr": [{"vmap": {"key": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"meta": {"key": "l4proto"}},
                                                         {"payload": {"protocol": "th", "field": "dport"}}]},
                                      "data": "@no-endpoint-services"}}]}},
         {"rule": {"family": "ip", "table": "kube-proxy", "chain": "reject-chain", "handle": 7, "expr": [{"reject": null}]}}]}
        """

    static func best(port: UInt16) -> FirewallRule? {
        let rs = NftRuleset(json: json)!
        let p = FirewallPacket(netns: 1, family: .ipv4, local: Endpoint(addr: IPAddress(v4: 198, 18, 9, 1), port: port),
                               remote: Endpoint(addr: IPAddress(v4: 198, 18, 9, 2), port: 40000), hook: .input)
        return rs.candidates(for: p).first
    }

    @Test("the selected element decides: goto reject-chain is that chain's reject, drop is drop; its comment names the Service")
    func elements() throws {
        let rejected = try #require(Self.best(port: 8080))
        #expect(rejected.verdict.isReject && rejected.element?.verdict == "goto reject-chain" && rejected.comment == "shop/api:http")
        #expect(rejected.element?.key == "198.18.9.1 . tcp . 8080" && rejected.element?.map == "no-endpoint-services")
        #expect(FirewallOwner.kubeProxyNoEndpoints(rejected)?.service == "shop/api:http")
        #expect(FirewallOwner.kubeProxyNoEndpoints(rejected)?.localOnly == false)
        let dropped = try #require(Self.best(port: 8081))
        #expect(dropped.verdict == .drop && FirewallOwner.kubeProxyNoEndpoints(dropped)?.localOnly == true)
    }

    @Test("no element selected, or one that accepts: the map decides nothing, only the reject chain's own rule is left")
    func noElement() {
        for port: UInt16 in [8082, 9999] {
            let best = Self.best(port: port)
            #expect(best?.element == nil && best?.chain == "reject-chain", "port \(port): \(String(describing: best))")
        }
    }
}
