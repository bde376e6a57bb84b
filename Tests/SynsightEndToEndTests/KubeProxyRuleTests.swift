import Foundation
import Testing

/// Firewall rules of tools, in a server namespace the test creates, reached
/// over a veth from a client namespace: a kube-proxy-shaped iptables-nft
/// rule (INPUT -> KUBE-SERVICES, a REJECT with kube-proxy's "has no
/// endpoints" comment) must carry the rule's comment, its owner, and name the
/// Service; kube-router's NetworkPolicy reject must name the pod and the
/// policies, not kube-proxy; an iptables-legacy rule (x_tables: `nft list ruleset` does not
/// show it) must be named from `iptables-legacy-save -c` in the packet's
/// namespace, with its position, comment and owner, and a fix using
/// iptables-legacy.
@Suite("tools' firewall rules (kube-proxy, kube-router, Calico, firewalld, iptables-legacy), end to end", .serialized, .enabled(if: Privileged.enabled))
struct KubeProxyRuleTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// A client of `pair` connects to `port` of the server namespace, whose
    /// firewall rejects it (or, `errno` ETIMEDOUT, drops it): the firewall
    /// record, and the client's (pid, errno).
    static func refusedByRule(_ pair: NetNSPair, port: Int, errno: Int32 = ECONNREFUSED) throws -> (JSONRecord, (pid: Int, errno: Int)) {
        let trace = try TraceSession([])
        let c = try Peer.connect(from: pair.client, addr: pair.serverAddr, port: port, timeout: 2)
        #expect(c.errno == Int(errno))
        let r = try #require(trace.waitForRecord(timeout: 8) {
            ($0.string("reason") ?? "").hasPrefix("firewall_") && $0.int("netns") == pair.server.inode && $0.int("port") == port
        }, "no firewall record; stderr: \(trace.stderr)")
        trace.stop()
        return (r, c)
    }

    @Test("kube-proxy no-endpoints reject: cause service_without_endpoints, the Service named from the rule's comment")
    func serviceWithoutEndpoints() throws {
        let pair = try NetNSPair(subnet: "198.18.7")
        defer { pair.remove() }
        let port = randomPort()
        let server = pair.server.name
        try sh(["ip", "netns", "exec", server, "iptables", "-N", "KUBE-SERVICES"])
        try sh(["ip", "netns", "exec", server, "iptables", "-A", "INPUT", "-j", "KUBE-SERVICES"])
        try sh(["ip", "netns", "exec", server, "iptables", "-A", "KUBE-SERVICES", "-p", "tcp", "--dport", String(port),
                "-m", "comment", "--comment", "shop/api:http has no endpoints",
                "-j", "REJECT", "--reject-with", "icmp-port-unreachable"])
        let (r, c) = try Self.refusedByRule(pair, port: port)
        #expect(r.string("kind") == "refusal")
        #expect(r.string("reason") == "firewall_reject")
        #expect(r.string("cause") == "service_without_endpoints", "record: \(r)")
        #expect(r.evidence["service"] as? String == "shop/api:http")
        #expect(r.evidence["rule_comment"] as? String == "shop/api:http has no endpoints")
        #expect(r.evidence["rule_owner"] as? String == "kube-proxy")
        #expect(r.evidence["table"] as? String == "ip filter")
        #expect(r.evidence["chain"] as? String == "KUBE-SERVICES")
        #expect(r.pid("client") == c.pid)
        #expect((r.string("hint") ?? "").contains("Service shop/api:http has no ready endpoints"))
        #expect(r.string("netns_name") == server)
    }

    @Test("kube-proxy's drop for a Local traffic policy on a node without endpoints: service_without_local_endpoints, the client times out")
    func serviceWithoutLocalEndpoints() throws {
        let pair = try NetNSPair(subnet: "198.18.7")
        defer { pair.remove() }
        let port = randomPort()
        let server = pair.server.name
        // As kube-proxy (1.26+) writes it for externalTrafficPolicy: Local on a node without a ready endpoint.
        try sh(["ip", "netns", "exec", server, "iptables", "-N", "KUBE-EXTERNAL-SERVICES"])
        try sh(["ip", "netns", "exec", server, "iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "NEW",
                "-j", "KUBE-EXTERNAL-SERVICES"])
        try sh(["ip", "netns", "exec", server, "iptables", "-A", "KUBE-EXTERNAL-SERVICES", "-p", "tcp",
                "-m", "comment", "--comment", "shop/web:http has no local endpoints",
                "-m", "addrtype", "--dst-type", "LOCAL", "-m", "tcp", "--dport", String(port), "-j", "DROP"])
        let (r, c) = try Self.refusedByRule(pair, port: port, errno: ETIMEDOUT)
        #expect(r.string("reason") == "firewall_drop")
        #expect(r.string("cause") == "service_without_local_endpoints", "record: \(r)")
        #expect(r.evidence["service"] as? String == "shop/web:http")
        #expect(r.evidence["rule_owner"] as? String == "kube-proxy")
        #expect(r.evidence["chain"] as? String == "KUBE-EXTERNAL-SERVICES")
        #expect(r.pid("client") == c.pid)
        #expect((r.string("hint") ?? "").contains("Service shop/web:http has no ready endpoint on this node and its traffic policy is Local"),
                "\(r.string("hint") ?? "")")
    }

    /// kube-proxy's nftables mode: Services without endpoints are elements
    /// of its `no-endpoint-services` verdict map (`goto reject-chain`; `drop`
    /// for a Local policy without local endpoints), looked up by one rule.
    @Test("kube-proxy nftables mode: the no-endpoint-services element that decided names the Service, reject and drop")
    func nftablesModeNoEndpoints() throws {
        let pair = try NetNSPair(subnet: "198.18.7")
        defer { pair.remove() }
        let port = randomPort()
        try pair.server.loadNft("""
            table ip kube-proxy {
              comment "rules for kube-proxy"
              map no-endpoint-services {
                type ipv4_addr . inet_proto . inet_service : verdict
                comment "vmap to drop or reject packets to services with no endpoints"
                elements = { \(pair.serverAddr) . tcp . \(port) comment "shop/api:http" : goto reject-chain,
                             \(pair.serverAddr) . tcp . \(port + 1) comment "shop/web:http" : drop }
              }
              chain filter-input { type filter hook input priority -110; policy accept;
                ct state new jump service-endpoints-check
              }
              chain service-endpoints-check {
                ip daddr . meta l4proto . th dport vmap @no-endpoint-services
              }
              chain reject-chain {
                comment "helper for @no-endpoint-services / @no-endpoint-nodeports"
                reject
              }
            }
            """)
        let (r, refused) = try Self.refusedByRule(pair, port: port)
        let (d, _) = try Self.refusedByRule(pair, port: port + 1, errno: ETIMEDOUT)
        #expect(r.string("reason") == "firewall_reject" && r.string("cause") == "service_without_endpoints", "record: \(r)")
        #expect(r.evidence["service"] as? String == "shop/api:http" && r.evidence["rule_owner"] as? String == "kube-proxy")
        #expect(r.evidence["chain"] as? String == "service-endpoints-check", "record: \(r)")
        #expect((r.evidence["rule"] as? String)?.contains("comment \"shop/api:http\": goto reject-chain") == true, "record: \(r)")
        #expect(r.pid("client") == refused.pid)
        #expect(d.string("reason") == "firewall_drop" && d.string("cause") == "service_without_local_endpoints", "record: \(d)")
        #expect(d.evidence["service"] as? String == "shop/web:http")
        #expect((d.string("hint") ?? "").contains("element \(pair.serverAddr) . tcp . \(port + 1) of map no-endpoint-services"),
                "\(d.string("hint") ?? "")")
    }

    /// kube-router's rules for pod shop/web-7d9f at address `pod`, as it
    /// writes them with iptables-nft: INPUT -> KUBE-ROUTER-INPUT -> the pod's
    /// chain, which runs its one policy's chain (allowing `allowed` to `port`)
    /// and rejects what that left unmarked. Returns the pod's chain.
    static func installKubeRouterPolicy(in ns: NetNS, pod: String, port: Int, allowed: String) throws -> String {
        let ipt = ["ip", "netns", "exec", ns.name, "iptables", "-w"]
        let (podChain, policyChain) = ("KUBE-POD-FW-\(randomTag().uppercased())", "KUBE-NWPLCY-\(randomTag().uppercased())")
        for chain in ["KUBE-ROUTER-INPUT", podChain, policyChain] { try sh(ipt + ["-N", chain]) }
        try sh(ipt + ["-A", "INPUT", "-m", "comment", "--comment", "kube-router netpol - 4IA2OSFRMVNDXBVV", "-j", "KUBE-ROUTER-INPUT"])
        try sh(ipt + ["-A", "KUBE-ROUTER-INPUT", "-d", pod, "-m", "comment", "--comment",
                      "rule to jump traffic destined to POD name:web-7d9f namespace: shop to chain \(podChain)", "-j", podChain])
        try sh(ipt + ["-A", podChain, "-m", "comment", "--comment", "rule for stateful firewall for pod",
                      "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"])
        try sh(ipt + ["-A", podChain, "-m", "comment", "--comment", "run through nw policy allow-frontend", "-j", policyChain])
        try sh(ipt + ["-A", policyChain, "-s", "\(allowed)/32", "-p", "tcp", "--dport", String(port),
                      "-j", "MARK", "--set-xmark", "0x10000/0x10000"])
        try sh(ipt + ["-A", podChain, "-m", "comment", "--comment", "rule to log dropped traffic POD name:web-7d9f namespace: shop",
                      "-m", "mark", "!", "--mark", "0x10000/0x10000", "-j", "NFLOG", "--nflog-group", "100"])
        try sh(ipt + ["-A", podChain, "-m", "comment", "--comment", "rule to REJECT traffic destined for POD name:web-7d9f namespace: shop",
                      "-m", "mark", "!", "--mark", "0x10000/0x10000", "-j", "REJECT"])
        try sh(ipt + ["-A", podChain, "-j", "MARK", "--set-mark", "0/0x10000"])
        return podChain
    }

    /// kube-router's NetworkPolicy enforcement (k3s), as it writes it with
    /// iptables-nft: INPUT -> KUBE-ROUTER-INPUT -> the pod's KUBE-POD-FW chain,
    /// which runs the policy chains (they mark what they allow) and rejects
    /// what is left unmarked. A client the policy allows is served; another
    /// is refused, and the record names the pod, not kube-proxy.
    @Test("kube-router's NetworkPolicy reject (k3s): cause network_policy, the pod named from the rule's comment, owner kube-router; an allowed client connects")
    func kubeRouterNetworkPolicy() throws {
        let pair = try NetNSPair(subnet: "198.18.9")
        defer { pair.remove() }
        let port = randomPort()
        let podChain = try Self.installKubeRouterPolicy(in: pair.server, pod: pair.serverAddr, port: port, allowed: "198.18.9.250")
        let listener = try Peer(listenIn: pair.server, addr: "0.0.0.0", port: port)
        let (r, c) = try Self.refusedByRule(pair, port: port)
        #expect(r.string("reason") == "firewall_reject" && r.string("cause") == "network_policy", "record: \(r)")
        #expect(r.evidence["policy_pod"] as? String == "shop/web-7d9f", "record: \(r)")
        #expect(r.evidence["rule_owner"] as? String == "kube-router", "record: \(r)")
        #expect(r.evidence["chain"] as? String == podChain && r.evidence["table"] as? String == "ip filter", "record: \(r)")
        #expect(r.pid("client") == c.pid && r.pid("process") == listener.pid, "record: \(r)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("pod shop/web-7d9f is selected by Kubernetes NetworkPolicies and none of them allows this connection"), "\(hint)")
        #expect(hint.contains("kubectl get networkpolicy -n shop") && !hint.contains("kube-proxy"), "\(hint)")
        // The policy's own address is allowed: the same rules let it connect.
        try sh(["ip", "-n", pair.server.name, "addr", "add", "198.18.9.250/32", "dev", "lo"])
        let allowed = try Peer.connect(from: pair.server, addr: pair.serverAddr, port: port, source: "198.18.9.250")
        #expect(allowed.errno == 0, "the allowed source was refused: errno \(allowed.errno)")
    }

    /// Calico's iptables dataplane ends a pod's chain cali-tw-<its interface>
    /// with a drop of what no policy passed, tagged with two comments.
    @Test("Calico's end-of-tier drop (two comments, one a cali: tag): cause network_policy, the pod's interface, owner calico, the client times out")
    func calicoEndOfTierDrop() throws {
        let pair = try NetNSPair(subnet: "198.18.10")
        defer { pair.remove() }
        let port = randomPort()
        let ipt = ["ip", "netns", "exec", pair.server.name, "iptables", "-w"]
        let chain = "cali-tw-\(pair.serverDev)"
        try sh(ipt + ["-N", chain])
        try sh(ipt + ["-A", "INPUT", "-p", "tcp", "--dport", String(port), "-j", chain])
        try sh(ipt + ["-A", chain, "-m", "comment", "--comment", "cali:FUDVBYh1Yr6tVRgq", "-m", "comment", "--comment",
                      "Drop if no policies passed packet", "-m", "mark", "--mark", "0x0/0x20000", "-j", "DROP"])
        let listener = try Peer(listenIn: pair.server, addr: "0.0.0.0", port: port)
        let (r, c) = try Self.refusedByRule(pair, port: port, errno: ETIMEDOUT)
        #expect(r.string("reason") == "firewall_drop" && r.string("cause") == "network_policy", "record: \(r)")
        #expect(r.evidence["rule_owner"] as? String == "calico" && r.evidence["chain"] as? String == chain, "record: \(r)")
        #expect(r.evidence["rule_comment"] as? String == "Drop if no policies passed packet", "record: \(r)")
        #expect(r.evidence["policy_pod"] == nil, "record: \(r)")
        #expect(r.pid("client") == c.pid && r.pid("process") == listener.pid, "record: \(r)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("the pod behind interface \(pair.serverDev) is selected by Kubernetes NetworkPolicies"), "\(hint)")
        #expect(hint.contains("Calico drops SYNs to port \(port) (the client times out)") && hint.contains("Calico writes its rules again"),
                "\(hint)")
    }

    /// firewalld (nftables backend) as it lays out a zone: the packet goes to
    /// its interface's zone chain, nothing there accepts the port, and
    /// filter_INPUT's final reject refuses it. The fix names the zone.
    @Test("firewalld's final reject after a zone allowed nothing: owner firewalld, the fix opens the port in the interface's zone")
    func firewalldZoneReject() throws {
        let pair = try NetNSPair(subnet: "198.18.11")
        defer { pair.remove() }
        let port = randomPort()
        try pair.server.loadNft("""
            table inet firewalld {
              chain filter_INPUT { type filter hook input priority filter + 10; policy accept;
                ct state { established, related } accept
                iifname "lo" accept
                ct state invalid drop
                jump filter_INPUT_ZONES
                reject with icmpx admin-prohibited
              }
              chain filter_INPUT_ZONES {
                iifname "\(pair.serverDev)" goto filter_IN_public
                goto filter_IN_public
              }
              chain filter_IN_public {
                jump filter_IN_public_pre
                jump filter_IN_public_deny
                jump filter_IN_public_allow
                meta l4proto { icmp, ipv6-icmp } accept
              }
              chain filter_IN_public_pre { }
              chain filter_IN_public_deny { }
              chain filter_IN_public_allow {
                tcp dport 22 ct state { new, untracked } accept
              }
            }
            """)
        let listener = try Peer(listenIn: pair.server, addr: "0.0.0.0", port: port)
        let (r, c) = try Self.refusedByRule(pair, port: port, errno: EHOSTUNREACH)
        #expect(r.string("reason") == "firewall_reject", "record: \(r)")
        #expect(r.evidence["rule_owner"] as? String == "firewalld" && r.evidence["chain"] as? String == "filter_INPUT", "record: \(r)")
        #expect(r.pid("client") == c.pid && r.pid("process") == listener.pid, "record: \(r)")
        let hint = r.string("hint") ?? ""
        #expect(hint.contains(#"`firewall-cmd --zone="$(firewall-cmd --get-zone-of-interface=\#(pair.serverDev))" --add-port=\#(port)/tcp`"#),
                "\(hint)")
    }

    @Test("a REJECT in a ufw-style user chain of iptables-legacy: table, chain, position, comment, owner, counter, fix")
    func rejectInUserChain() throws {
        let pair = try NetNSPair(subnet: "198.18.65")
        defer { pair.remove() }
        let port = randomPort()
        let server = pair.server.name
        let ipt = ["ip", "netns", "exec", server, "iptables-legacy", "-w"]
        try sh(ipt + ["-N", "ufw-user-input"])
        try sh(ipt + ["-A", "INPUT", "-j", "ufw-user-input"])
        // An unrelated rule first: the matching one is the chain's second.
        try sh(ipt + ["-A", "ufw-user-input", "-p", "tcp", "--dport", String(port &+ 1), "-j", "DROP"])
        try sh(ipt + ["-A", "ufw-user-input", "-p", "tcp", "--dport", String(port), "-m", "comment", "--comment",
                      "deny \"legacy\" api", "-j", "REJECT", "--reject-with", "tcp-reset"])
        let nft = try sh(["ip", "netns", "exec", server, "nft", "list", "ruleset"])
        #expect(!nft.contains("ufw-user-input"), "the rule must be invisible to nft: \(nft)")
        let (r, c) = try Self.refusedByRule(pair, port: port)
        #expect(r.string("reason") == "firewall_reject")
        #expect(r.evidence["table"] as? String == "iptables-legacy filter", "record: \(r)")
        #expect(r.evidence["chain"] as? String == "ufw-user-input")
        #expect(r.evidence["handle"] as? Int == 2)
        #expect(r.evidence["rule"] as? String == "-A ufw-user-input -p tcp -m tcp --dport \(port) -m comment --comment "
                + "\"deny \\\"legacy\\\" api\" -j REJECT --reject-with tcp-reset")
        #expect(r.evidence["rule_comment"] as? String == "deny \"legacy\" api")
        #expect(r.evidence["rule_owner"] as? String == "ufw")
        #expect(r.evidence["reject_with"] as? String == "tcp-reset")
        #expect((r.evidence["rule_packets"] as? Int ?? 0) >= 1)
        #expect(r.pid("client") == c.pid)
        #expect((r.string("hint") ?? "").contains("iptables-legacy -D ufw-user-input 2"), "hint: \(r.string("hint") ?? "")")
    }
}
