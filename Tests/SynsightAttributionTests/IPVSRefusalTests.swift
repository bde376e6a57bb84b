@testable import SynsightModel
@testable import SynsightAttribution
@testable import SynsightNftables
import Testing
import SynsightTestSupport

/// A SYN IPVS refused (NETFILTER_DROP with no rule; FirewallAttribution.swift):
/// a virtual service without a schedulable real server is
/// `ipvs_no_destination`, named with its servers; one with servers is named
/// without that cause; a matching rule still wins over IPVS.
@Suite("firewall: IPVS virtual services")
struct IPVSRefusalTests {
    /// The namespace's ruleset has no rule for the port, or `rule`; its IPVS table is `services`.
    struct Table: FirewallRuleSource {
        var services: [IPVSService]
        var rule: FirewallRule?
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            var rs = NftRuleset()
            rs.ipvs = services
            return FirewallRuleLookup(candidates: rule.map { [$0] } ?? [], ipvs: rs.ipvsService(to: packet.local))
        }
    }

    static let vip = Endpoint(addr: fwServer.addr, port: 9110)

    /// `errno`: the client's connect() error (111 refused: the ICMP came; 110
    /// timed out: it was rate-limited away and the SYNs were only dropped).
    static func refused(_ services: [IPVSService], rule: FirewallRule? = nil, errno: Int32 = 111) -> [Record] {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.firewall.rules = Table(services: services, rule: rule)
        var out = e.ingest(.firewallDrop(fwDrop(ts: 1_000)))
        out += e.ingest(.connectError(fwConnectError(ts: 2_000, errno: errno)))
        return out + e.finish()
    }

    static func service(weights: [Int]) -> IPVSService {
        IPVSService(proto: "TCP", endpoint: vip, scheduler: "rr", destinations: weights.enumerated().map { i, w in
            .init(endpoint: Endpoint(addr: v4(10, 244, 1, UInt8(5 + i)), port: 8080), forward: "Masq", weight: w, active: 0, inactive: 0)
        })
    }

    /// One record of the cause (SchemaRecordsTests validates it).
    static func records() -> [Record] { refused([service(weights: [])]) + refused([service(weights: [])], errno: 110) }

    @Test("no real server, or every one at weight 0: ipvs_no_destination, the service in the evidence, ipvsadm and kubectl in the fix")
    func noDestination() throws {
        let r = try single(Self.refused([Self.service(weights: [])]))
        #expect(r.reason == .firewallReject && r.cause?.rawValue == "ipvs_no_destination")
        #expect(r.evidence("rule_method")?.stringValue == "ipvs_service")
        #expect(r.evidence("ipvs")?["service"]?.stringValue == "TCP \(Self.vip)")
        let hint = try #require(r.hint)
        #expect(hint.contains("IPVS virtual service TCP \(Self.vip) in network namespace 7 (scheduler rr) has no real server, so IPVS answers"), "\(hint)")
        #expect(hint.contains("ipvsadm -Ln -t \(Self.vip)") && hint.contains("grep \(Self.vip.addr)"), "\(hint)")
        let quiesced = try single(Self.refused([Self.service(weights: [0, 0])]))
        #expect(quiesced.cause?.rawValue == "ipvs_no_destination")
        guard case .array(let servers)? = quiesced.evidence("ipvs")?["destinations"] else { Issue.record("no destinations"); return }
        #expect(servers.count == 2 && servers[1]["weight"]?.intValue == 0)
        #expect(quiesced.hint?.contains("no real server with weight > 0 (2 quiesced at weight 0)") == true, "\(quiesced.hint ?? "")")
        // The client's timeout is a connect_timeout record of its own (dropped_on_host).
        let timedOut = try single(Self.refused([Self.service(weights: [])], errno: 110).filter { $0.reason == .firewallDrop })
        #expect(timedOut.reason == .firewallDrop && timedOut.cause?.rawValue == "ipvs_no_destination")
        #expect(timedOut.hint?.contains("so IPVS drops its SYNs") == true, "\(timedOut.hint ?? "")")
    }

    @Test("servers with weight: IPVS named without the cause; a service on another port, or a matching rule: not IPVS")
    func notTheCause() throws {
        let busy = try single(Self.refused([Self.service(weights: [1])]))
        #expect(busy.cause == nil && busy.evidence("ipvs") != nil)
        #expect(busy.hint?.contains("1 real server with weight > 0") == true, "\(busy.hint ?? "")")
        var other = Self.service(weights: [])
        other.endpoint.port = 9111
        let elsewhere = try single(Self.refused([other]))
        #expect(elsewhere.cause == nil && elsewhere.evidence("ipvs") == nil)
        let rule = FirewallRule(table: "inet filter", chain: "input", handle: 4, text: "tcp dport 9110 reject", verdict: .reject("tcp-reset"))
        let ruled = try single(Self.refused([Self.service(weights: [])], rule: rule))
        #expect(ruled.cause == nil && ruled.evidence("rule")?.stringValue == "tcp dport 9110 reject" && ruled.evidence("ipvs") == nil)
    }

    @Test("/proc/net/ip_vs: IPv4 (%08X of the host-order address), IPv6, real servers, firewall-mark services left out")
    func parse() throws {
        let text = """
            IP Virtual Server version 1.2.1 (size=4096)
            Prot LocalAddress:Port Scheduler Flags
              -> RemoteAddress:Port Forward Weight ActiveConn InActConn
            TCP  0A60000A:0050 rr
              -> 0AF40105:1F90      Masq    1      2          3
              -> 0AF40106:1F90      Masq    0      0          0
            UDP  0A60000A:0035 rr
            FWM  00000001 wlc
              -> 0AF40107:0050      Route   1      0          0
            TCP  [fd00:96::a]:01BB sh
            """
        let s = IPVSService.parse(text)
        #expect(s.count == 3)
        #expect(s[0].label == "TCP 10.96.0.10:80" && s[0].scheduler == "rr" && s[0].destinations.count == 2 && s[0].usable.count == 1)
        #expect(s[0].destinations[0].endpoint == Endpoint(addr: v4(10, 244, 1, 5), port: 8080) && s[0].destinations[0].inactive == 3)
        #expect(s[1].proto == "UDP" && s[1].destinations.isEmpty)
        #expect(s[2].label == "TCP [fd00:96::a]:443" && s[2].destinations.isEmpty)
        #expect(s[0].serves(tcp: Endpoint(addr: v4(10, 96, 0, 10), port: 80)) && !s[1].serves(tcp: Endpoint(addr: v4(10, 96, 0, 10), port: 53)))
    }
}
