@testable import SynsightModel
@testable import SynsightNftables
import Testing

/// Docker's rules keeping its networks apart, as iptables-nft lists them
/// (`nft list ruleset`, captured from Docker 20.10 on Debian 12) and as
/// iptables-legacy-save writes them.
@Suite("Docker's network isolation rules")
struct DockerNetworkRuleTests {
    func rule(_ chain: String, _ text: String, verdict: FirewallVerdict = .drop, legacy: Bool = false) -> FirewallRule {
        FirewallRule(table: legacy ? "iptables-legacy filter" : "ip filter", chain: chain, handle: 3, text: text, verdict: verdict,
                     iptables: true, owner: FirewallOwner.recognise(table: "ip filter", chain: chain), legacy: legacy)
    }

    @Test("STAGE-2's drop into a bridge is isolation, naming the network by its bridge's id; docker0 is network bridge")
    func isolation() throws {
        let r = try #require(DockerNetworkRule(rule("DOCKER-ISOLATION-STAGE-2", #"oifname "br-77cbccdf6295" drop"#)))
        #expect(r.kind == .isolation && r.bridge == "br-77cbccdf6295" && r.network == "77cbccdf6295" && r.cause == .networkIsolation)
        #expect(DockerNetworkRule(rule("DOCKER-ISOLATION-STAGE-2", #"oifname "docker0" drop"#))?.network == "bridge")
        let legacy = try #require(DockerNetworkRule(rule("DOCKER-ISOLATION-STAGE-2", "-o br-0123456789ab -j DROP", legacy: true)))
        #expect(legacy.network == "0123456789ab")
        // A bridge named by com.docker.network.bridge.name: no id to take.
        #expect(DockerNetworkRule(rule("DOCKER-ISOLATION-STAGE-2", #"oifname "backend0" drop"#))?.network == nil)
    }

    @Test("an internal network's drops (STAGE-1 before Docker 28, DOCKER-INTERNAL after): the bridge out of or into it, never a negated one")
    func internalNetwork() throws {
        let into = try #require(DockerNetworkRule(rule("DOCKER-ISOLATION-STAGE-1", #"ip saddr != 198.19.235.0/24 oifname "br-aaaaaaaaaaaa" drop"#)))
        #expect(into.kind == .internalNetwork && into.bridge == "br-aaaaaaaaaaaa" && into.cause == .internalNetwork)
        let out = try #require(DockerNetworkRule(rule("DOCKER-ISOLATION-STAGE-1", #"iifname "br-aaaaaaaaaaaa" ip daddr != 198.19.235.0/24 drop"#)))
        #expect(out.bridge == "br-aaaaaaaaaaaa")
        #expect(DockerNetworkRule(rule("DOCKER-INTERNAL", #"iifname "br-bbbbbbbbbbbb" oifname != "br-bbbbbbbbbbbb" drop"#))?.bridge == "br-bbbbbbbbbbbb")
        #expect(DockerNetworkRule(rule("DOCKER-ISOLATION-STAGE-1", "! -o docker0 -i br-cccccccccccc -j DROP", legacy: true))?.bridge == "br-cccccccccccc")
    }

    @Test("not Docker's isolation: another chain, a jump, a chain Docker does not own")
    func others() {
        #expect(DockerNetworkRule(rule("DOCKER-USER", #"oifname "br-77cbccdf6295" drop"#)) == nil)
        #expect(DockerNetworkRule(rule("DOCKER-ISOLATION-STAGE-2", #"oifname "br-77cbccdf6295" drop"#, verdict: .reject("icmp"))) == nil)
        var foreign = rule("DOCKER-ISOLATION-STAGE-2", #"oifname "br-77cbccdf6295" drop"#)
        foreign.owner = nil
        #expect(DockerNetworkRule(foreign) == nil)
    }

    @Test("a container's networks from its config.v2.json (NetworkSettings.Networks): id -> name")
    func networksOfConfig() {
        let config = #"{"Name":"/web","NetworkSettings":{"Networks":{"back":{"NetworkID":"77cbccdf6295aa","IPAddress":"198.19.237.10"},"#
            + #""front":{"NetworkID":"f837317ae2e2bb"},"none":{"NetworkID":""}}}}"#
        #expect(WorkloadNames.dockerNetworks(configJSON: Array(config.utf8)) == ["77cbccdf6295aa": "back", "f837317ae2e2bb": "front"])
        #expect(WorkloadNames.dockerNetworks(configJSON: Array("{}".utf8)).isEmpty)
    }

    @Test("every network in libnetwork's store (local-kv.db): id -> name, from BoltDB pages, an old copy in a free page included")
    func networksOfStore() {
        func network(_ id: String, _ name: String) -> [UInt8] {
            Array((#"{"addrSpace":"LocalDefault","attachable":false,"created":"2026-12-07T07:00:00Z","enableIPv6":false,"#
                + #""generic":{"com.docker.network.generic":{"com.docker.network.bridge.name":"br-x"}},"id":"\#(id)","#
                + #""internal":false,"ipamType":"default","name":"\#(name)","networkType":"bridge","scope":"local"}"#).utf8)
        }
        let page: [UInt8] = [0x02, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x00] + Array(repeating: 0, count: 8)
        let key = Array("docker/network/v1.0/network/77cbccdf6295aa/".utf8)
        var db = page + key + network("77cbccdf6295aa", "empty") + page + Array(#"{"BridgeName":"br-77cbccdf6295"}"#.utf8)
        db += page + network("f837317ae2e2bb", "front") + page + network("f837317ae2e2bb", "front")
        db += Array(#"{"addrSpace":"cut"#.utf8) + [0x00, 0x01]  // a copy cut by a page boundary
        #expect(WorkloadNames.dockerNetworks(localKV: db) == ["77cbccdf6295aa": "empty", "f837317ae2e2bb": "front"])
        #expect(WorkloadNames.dockerNetworks(localKV: page).isEmpty)
    }

    @Test("the fix is Docker's: docker network connect for isolation, --internal for an internal network; never deleting the rule")
    func advice() {
        var f = Advice.Facts(port: 80)
        f.dockerNetwork = "77cbccdf6295"
        f.clientContainer = "web"
        let iso = Advice.for(reason: .firewallDrop, cause: .firewall(.networkIsolation), facts: f).fix
        #expect(iso.contains("docker network connect 77cbccdf6295 web") && iso.contains("networks:") && !iso.contains("delete it ("))
        let internalFix = Advice.for(reason: .firewallDrop, cause: .firewall(.internalNetwork), facts: f).fix
        #expect(internalFix.contains("network 77cbccdf6295 is internal") && internalFix.contains("--internal"))
    }
}
