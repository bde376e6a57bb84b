@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution
import SynsightTestSupport
import Testing

/// kube-router's NetworkPolicy rejects (k3s runs it built in), as
/// iptables-nft lists them and with both comment formats it writes.
@Suite("kube-router's NetworkPolicy rejects")
struct NetworkPolicyRuleTests {
    func rule(_ chain: String, comment: String?, verdict: FirewallVerdict = .reject("icmp port-unreachable"),
              table: String = "ip filter", ctState: ConntrackState? = nil) -> FirewallRule {
        FirewallRule(table: table, chain: chain, handle: 9, text: "mark and 0x10000 != 0x10000 counter reject", verdict: verdict,
                     iptables: true, comment: comment, owner: FirewallOwner.recognise(table: table, chain: chain),
                     ctStateMatched: ctState)
    }

    @Test("the pod from the iptables comment and from the newer namespace/name format")
    func podFromComment() throws {
        let old = try #require(NetworkPolicyRule(rule("KUBE-POD-FW-4JXQGNVHCQ3Y2DIM",
                                                      comment: "rule to REJECT traffic destined for POD name:web-7d9f-x2 namespace: shop")))
        #expect(old.pod == "shop/web-7d9f-x2" && old.cause == .networkPolicy)
        let spaced = NetworkPolicyRule(rule("KUBE-POD-FW-A", comment: "rule to REJECT traffic destined for POD name: db-0 namespace: data"))
        #expect(spaced?.pod == "data/db-0")
        let newer = NetworkPolicyRule(rule("KUBE-POD-FW-A", comment: "shop/web-1 reject", table: "ip kube-router-filter-ipv4"))
        #expect(newer?.pod == "shop/web-1")
    }

    @Test("a pod chain's reject with a comment it cannot read still is network_policy, without a pod; other rules are not")
    func whatIsNot() {
        #expect(NetworkPolicyRule(rule("KUBE-POD-FW-A", comment: nil)) == NetworkPolicyRule(enforcer: .kubeRouter))
        #expect(NetworkPolicyRule(rule("KUBE-POD-FW-A", comment: "shop/web 1 reject"))?.pod == nil)
        // kube-router's drop of invalid conntrack state is conntrack_invalid's.
        #expect(NetworkPolicyRule(rule("KUBE-NWPLCY-COMMON", comment: "rule to drop invalid state for pod", verdict: .drop,
                                       ctState: .invalid)) == nil)
        #expect(NetworkPolicyRule(rule("KUBE-POD-FW-A", comment: nil, verdict: .drop, ctState: .invalid)) == nil)
        // The same comment on a chain kube-router does not own: not its rule.
        #expect(NetworkPolicyRule(rule("INPUT", comment: "shop/web-1 reject")) == nil)
        // Names Kubernetes would refuse (an escape, upper case) are not taken for a pod.
        #expect(NetworkPolicyRule.pod(comment: "rule to REJECT traffic destined for POD name:Web\u{1b}[2J namespace: shop") == nil)
    }

    @Test("Calico's end-of-tier and end-of-profile drops and a policy's deny: the direction, and the interface a workload chain names")
    func calico() throws {
        let tw = try #require(NetworkPolicyRule(rule("cali-tw-cali95aa86cbb2a", comment: "Drop if no policies passed packet", verdict: .drop)))
        #expect(tw == NetworkPolicyRule(enforcer: .calico, direction: .toPod, interface: "cali95aa86cbb2a"))
        let fw = NetworkPolicyRule(rule("cali-fw-cali0ef24b1", comment: "Drop if no profiles matched", verdict: .drop))
        #expect(fw?.direction == .fromPod && fw?.interface == "cali0ef24b1")
        // Calico configured to reject (DropActionOverride / ACTION=REJECT).
        #expect(NetworkPolicyRule(rule("cali-pi-_tTE-E7yY40ogArNVgKt", comment: nil))?.direction == .toPod)
        #expect(NetworkPolicyRule(rule("cali-po-_kGm", comment: nil, verdict: .drop))?.interface == nil)
        // Calico's other chains (its INPUT hooks, failsafes, the host endpoint's) are not a pod's policies.
        #expect(NetworkPolicyRule(rule("cali-INPUT", comment: nil, verdict: .drop)) == nil)
        #expect(NetworkPolicyRule(rule("cali-tw-cali95aa86cbb2a", comment: nil, verdict: .drop, ctState: .invalid)) == nil)
    }

    @Test("the fix is the pod's NetworkPolicies, with its namespace and the port; never the rule")
    func advice() {
        var f = Advice.Facts(port: 8080)
        f.policyPod = "shop/web-1"
        let a = Advice.for(reason: .firewallReject, cause: .firewall(.networkPolicy), facts: f)
        #expect(a.fix.contains("selects pod web-1 in namespace shop") && a.fix.contains("kubectl get networkpolicy -n shop"))
        #expect(a.fix.contains("port 8080") && !a.fix.contains("delete"))
        #expect(a.steps.contains { $0.contains("kubectl describe networkpolicy -n shop") })
        f.policyEnforcer = "kube-router"
        #expect(Advice.for(reason: .firewallReject, cause: .firewall(.networkPolicy), facts: f).fix
            .contains("kube-router writes its rules again"))
        f.policyEnforcer = "Calico"
        f.policyEgress = true
        let egress = Advice.for(reason: .firewallDrop, cause: .firewall(.networkPolicy), facts: f)
        #expect(egress.fix.contains("allow the server in an egress rule of a NetworkPolicy that selects pod web-1 in namespace shop"))
        #expect(egress.steps.contains { $0.contains("globalnetworkpolicies.crd.projectcalico.org") })
        let unknown = Advice.for(reason: .firewallDrop, cause: .firewall(.networkPolicy), facts: Advice.Facts(port: 80)).fix
        #expect(unknown.contains("namespace <namespace>"))
    }
}

/// The hint names the pod a Calico chain does not: the listener's for a
/// drop on the way to it, the local client's for one on the way out of it.
@Suite("network_policy: the pod from the listener's or the client's workload")
struct NetworkPolicyPodTests {
    struct Pods: ProcessResolver {
        func exe(pid: UInt32) -> String? { nil }
        func workload(pid: UInt32, cgroupID: UInt64) -> WorkloadIdentity? {
            let name = pid == 500 ? "web-1" : pid == 777 ? "client-1" : nil
            return name.map { WorkloadIdentity(cgroup: "/kubepods/pod\($0)", pod: PodRef(uid: "u-\($0)", namespace: "shop", name: $0)) }
        }
    }

    struct CalicoDrop: FirewallRuleSource {
        var chain: String
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            FirewallRuleLookup(candidates: [
                FirewallRule(table: "ip filter", chain: chain, handle: 5, text: "meta mark & 0x00020000 == 0x00000000 counter drop",
                             verdict: .drop, iptables: true, comment: "Drop if no policies passed packet", owner: .calico),
            ])
        }
    }

    func hint(chain: String) -> String? {
        var e = engine(resolver: Pods())
        e.firewall.rules = CalicoDrop(chain: chain)
        let server = Endpoint(addr: v4(10, 42, 0, 7), port: 8080)
        _ = e.ingest(.listen(listenerChange(at: 10, on: Endpoint(addr: v4(0, 0, 0, 0), port: 8080), pid: 500, comm: "web", inode: 11)))
        _ = e.ingest(.firewallDrop(FirewallDrop(ts: 1_000, family: .ipv4, local: server, remote: Endpoint(addr: v4(10, 42, 0, 9), port: 41000),
                                                netns: hostNS, hook: .input, skbAddr: 1, client: TaskInfo(pid: 777, comm: "curl"))))
        return e.finish().first { $0.reason == .firewallDrop }?.hint
    }

    @Test func ingressNamesTheListenersPod() {
        #expect(hint(chain: "cali-tw-cali95aa86cbb2a")?.contains("pod shop/web-1 is selected by Kubernetes NetworkPolicies") == true,
                "\(hint(chain: "cali-tw-cali95aa86cbb2a") ?? "")")
    }

    @Test func egressNamesTheClientsPod() {
        let h = hint(chain: "cali-fw-cali0ef24b1") ?? ""
        #expect(h.contains("the egress NetworkPolicies of pod shop/client-1 (the client) allow no such connection, so Calico drops"), "\(h)")
        #expect(h.contains("allow the server in an egress rule of a NetworkPolicy that selects pod client-1 in namespace shop"), "\(h)")
    }
}
