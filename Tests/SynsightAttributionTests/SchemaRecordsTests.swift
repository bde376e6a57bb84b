import Foundation
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// The attribution engine driven through every reason and every cause of
/// Cause.swift (synthetic events, no root), and each record it writes
/// validated against docs/schema/synsight-record-v1.schema.json with
/// check-jsonschema: the evidence shapes the schema requires are the ones the
/// code writes, including for causes the CI host's kernel cannot produce
/// (SELinux, trampoline-only hooks).
@Suite("every reason and cause the engine writes matches the JSON Schema")
struct SchemaRecordsTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardizedFileURL.path

    struct OneRule: FirewallRuleSource {
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            FirewallRuleLookup(candidates: [
                FirewallRule(table: "inet filter", chain: "input", handle: 7, text: "tcp dport 8080 drop", verdict: .drop, packets: 3),
                FirewallRule(table: "inet filter", chain: "input", handle: 9, text: "tcp dport 8080 reject", verdict: .reject("tcp-reset")),
            ])
        }
    }

    /// Docker's rule isolating a network, or closing an internal one.
    struct DockerNetworkDrop: FirewallRuleSource {
        var chain: String
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            FirewallRuleLookup(candidates: [
                FirewallRule(table: "ip filter", chain: chain, handle: 33, text: #"oifname "br-77cbccdf6295" drop"#, verdict: .drop,
                             iptables: true, owner: .docker),
            ])
        }
    }

    /// kube-router's reject (or drop) of what no NetworkPolicy selecting a pod allows.
    struct NetworkPolicyReject: FirewallRuleSource {
        var verdict: FirewallVerdict
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            FirewallRuleLookup(candidates: [
                FirewallRule(table: "ip filter", chain: "KUBE-POD-FW-4JXQGNVHCQ3Y2DIM", handle: 12,
                             text: "mark and 0x10000 != 0x10000 counter reject", verdict: verdict, iptables: true,
                             comment: "rule to REJECT traffic destined for POD name:web-1 namespace: shop", owner: .kubeRouter),
            ])
        }
    }

    /// A connlimit REJECT of iptables-nft, with the words iptables-save
    /// wrote, and an nft `limit rate over` drop.
    struct RateLimits: FirewallRuleSource {
        var reject: Bool
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            FirewallRuleLookup(candidates: [reject
                ? FirewallRule(table: "ip filter", chain: "INPUT", handle: 2, text: "tcp dport 8080 xt match connlimit reject with tcp reset",
                               verdict: .reject("tcp reset"), iptables: true,
                               saved: ["-A", "INPUT", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-m", "connlimit", "--connlimit-above", "2",
                                       "-j", "REJECT", "--reject-with", "tcp-reset"])
                : FirewallRule(table: "inet t", chain: "in", handle: 4, text: "tcp dport 8080 limit rate over 5/minute burst 3 packets drop",
                               verdict: .drop),
            ])
        }
    }

    /// fail2ban's iptables action: the jail's chain rejects the banned address.
    struct Fail2banBan: FirewallRuleSource {
        var verdict: FirewallVerdict
        func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
            FirewallRuleLookup(candidates: [
                FirewallRule(table: "ip filter", chain: "f2b-sshd", handle: 5, text: "ip saddr 127.0.0.1 counter reject",
                             verdict: verdict, iptables: true, owner: .fail2ban),
            ])
        }
    }

    /// Records for every reason and cause, from events as the decoder would deliver them.
    /// packet_dropped: a record of every cause family (a kernel reason name
    /// of each; openvswitch by its subsystem; other for a name no table has).
    static func packetDrops() -> [Record] {
        let e = engine()
        // conntrack_full comes from the firewall area's NETFILTER_DROP (ConntrackCoreTests).
        return DropCause.allCases.filter { $0 != .conntrackFull }.map { cause in
            let name: DropReasonName
            switch cause {
            case .openvswitch:
                name = DropReasonName(name: "openvswitch:last_action", code: 0x20001, subsystem: "openvswitch", known: true)
            case .other:
                name = DropReasonName(name: "a_future_reason", code: 999, subsystem: nil, known: true)
            default:
                name = DropReasonName(name: DropCause.reasons[cause]![0], code: 16, subsystem: nil, known: true)
            }
            let d = PacketDrop(ts: 1_000, family: .ipv4, local: Endpoint(addr: v4(198, 18, 40, 1), port: 8080),
                               remote: Endpoint(addr: v4(198, 18, 41, 2), port: 40000), netns: 77, reasonCode: UInt32(name.code),
                               location: 0xFFFF_FFFF_8100_0260, ifindex: 2, ifname: "veth-s1", tcpFlags: 0x02,
                               hook: .prerouting, client: TaskInfo(pid: 31, comm: "curl"))
            return e.dropRecord(d, reason: name, location: ("ip_rcv_finish_core", 0x260))
        }
    }

    /// A tc program of Cilium's and a cgroup program, one attach point unreadable.
    struct SomePrograms: BPFProgramSource {
        func programs(_ q: BPFProgramQuery) -> BPFProgramFindings {
            BPFProgramFindings(programs: [
                BPFProgramRef(id: 42, name: "cil_from_contai", type: "sched_cls", tag: "0123456789abcdef",
                              kind: q.tc ? .tcIngress : .cgroupIngress, target: q.tc ? q.ifname : "/system.slice/web.service",
                              tcPref: q.tc ? 49152 : nil, tcName: q.tc ? "bpf_lxc.o:[from-container]" : nil),
                BPFProgramRef(id: 43, name: "", type: "", tag: "", kind: .tcxIngress, target: q.ifname),
            ], unavailable: ["cannot read BPF program 43: EPERM (needs CAP_SYS_ADMIN)"])
        }
    }

    /// packet_dropped with the programs named: a tc drop and a socket-filter (cgroup ingress) drop.
    static func namedProgramDrops() -> [Record] {
        var e = engine()
        e.drops.programs = SomePrograms()
        return [("tc_ingress", UInt8(0x02)), ("socket_filter", 0x02), ("bpf_cgroup_egress", 0x12)].map { reason, flags in
            let d = PacketDrop(ts: 2_000, family: .ipv4, local: Endpoint(addr: v4(198, 18, 40, 1), port: 8080),
                               remote: Endpoint(addr: v4(198, 18, 41, 2), port: 40000), netns: 77, reasonCode: 16,
                               location: 0xFFFF_FFFF_8100_0260, ifindex: 2, ifname: "veth-s1", tcpFlags: flags,
                               hook: .prerouting, client: TaskInfo(pid: 31, comm: "curl"))
            let name = DropReasonName(name: reason, code: 16, subsystem: nil, known: true)
            return e.dropRecord(d, reason: name, location: ("tcf_classify", 0x60))
        }
    }

    static func records() -> [Record] {
        var out: [Record] = []
        let server = Endpoint(addr: v4(127, 0, 0, 1), port: 8080)
        let client = Endpoint(addr: v4(127, 0, 0, 1), port: 40000)

        // no_listener: never listened, closed, exited (signal and status), other address, family, other netns.
        var e = engine()
        out += e.ingest(rst(at: 1_000, to: server, from: client)) + e.ingest(connectFailure(at: 1_100, from: client, to: server))
        for (i, code) in [UInt32(9 | 0x80), 3 << 8, 0].enumerated() {
            let port = UInt16(9000 + i)
            let at = UInt64(10_000 * (i + 1))
            _ = e.ingest(.listen(listenerChange(at: at, on: Endpoint(addr: .any4, port: port), pid: 600 + UInt32(i), comm: "web", inode: 70 + UInt64(i))))
            _ = e.ingest(.listenClose(listenerChange(at: at + 1, on: Endpoint(addr: .any4, port: port), pid: 600 + UInt32(i), comm: "web", inode: 70 + UInt64(i))))
            if code != 0 { _ = e.ingest(exitEvent(at: at + 2, pid: 600 + UInt32(i), comm: "web", code: code)) }
            out += e.ingest(rst(at: at + 3, to: Endpoint(addr: v4(127, 0, 0, 1), port: port), from: client))
        }
        _ = e.ingest(.listen(listenerChange(at: 50_000, on: Endpoint(addr: v4(127, 0, 0, 2), port: 9100), pid: 700, comm: "lo2", inode: 80)))
        out += e.ingest(rst(at: 50_001, to: Endpoint(addr: v4(127, 0, 0, 1), port: 9100), from: client))
        _ = e.ingest(.listen(listenerChange(at: 50_002, on: Endpoint(addr: .any6, port: 9101), pid: 701, comm: "v6", inode: 81, ipv6Only: true)))
        out += e.ingest(rst(at: 50_003, to: Endpoint(addr: v4(127, 0, 0, 1), port: 9101), from: client))
        _ = e.ingest(.listen(listenerChange(at: 50_004, on: Endpoint(addr: .any4, port: 9102), pid: 702, comm: "ns", inode: 82, netns: otherNS)))
        out += e.ingest(rst(at: 50_005, to: Endpoint(addr: v4(127, 0, 0, 1), port: 9102), from: client))
        out += NATJoinTests.wrongPortBehindDNAT()
        out += Self.packetDrops()
        out += Self.namedProgramDrops()
        // The final ACK, and the RST and ICMP answering a SYN: packet_dropped and firewall_drop.
        for segment in [HandshakeSegment.ack, .rst, .icmp] {
            var a = AnswerDropTests.engine()
            out += a.ingest(.packetDrop(AnswerDropTests.drop(ts: 3_000, segment)))
        }
        out += AnswerDropTests.firewallRecords()
        out += DropRoutesTests.records()
        out += ConntrackDecisionTests.fullRecords() + ConntrackDecisionTests.invalidRecords()
        out += WorkloadIdentityTests.restartingRecords()
        out += WorkloadIdentityTests.relaunchedRecords()
        out += TimeoutCoreTests.unseenClientRecords()
        out += StartingWorkloadTests.records()
        out += DeviceBindingTests.records()
        out += CgroupProgramDenialTests.records()
        out += (try? BindAddressTests.records()) ?? []
        out += ListenerRunStateTests.records()
        out += ListenerThrottleTests.records()
        out += IPVSRefusalTests.records()
        out += DockerPortBindingTests.records()
        out += PodmanPortBindingTests.records()
        out += FirewallOwnerTests.serviceWithoutEndpointsRecords(errno: 111) + FirewallOwnerTests.serviceWithoutEndpointsRecords(errno: 110)
        out += FirewallOwnerTests.noLocalEndpointsRecords(errno: 110) + FirewallOwnerTests.noLocalEndpointsRecords(errno: 111)

        // accept_queue_full, syn_queue_full (every stage), fd_exhausted (EMFILE, ENFILE, and as the overflow's cause).
        for stage in OverflowStage.allCases {
            out += e.ingest(.listenOverflow(ListenOverflow(
                ts: 60_000 + UInt64(stage.rawValue), family: .ipv4, local: server, remote: client,
                client: TaskInfo(pid: 777, comm: "curl"), listenerInode: 90, netns: hostNS, listenerPID: 800,
                acceptQueue: 2, maxBacklog: 1, suppressed: stage == .synCookie ? 4 : 0, stage: stage)))
        }
        // no_route_back: a SYN left unanswered, each cause from the route back (FakeRoutes: 203.0.113.1-4 fail).
        e.drops.routes = FakeRoutes()
        for last: UInt8 in 1...4 {
            out += e.ingest(.listenOverflow(ListenOverflow(
                ts: 60_050 + UInt64(last), family: .ipv4, local: server, remote: Endpoint(addr: v4(203, 0, 113, last), port: 40_000),
                listenerInode: 90, netns: hostNS, listenerPID: 800, acceptQueue: 0, maxBacklog: 128, stage: .synUnanswered)))
        }
        e.drops.routes = nil
        // Drops counted from the listener's counter before consume_skb was armed: no client, no remote.
        for stage in [OverflowStage.synAcceptQueue, .synQueueDrop] {
            out += e.ingest(.listenOverflow(ListenOverflow(
                ts: 60_100 + UInt64(stage.rawValue), family: .ipv4, local: server, remote: Endpoint(addr: v4(0, 0, 0, 0), port: 0),
                listenerInode: 90, netns: hostNS, listenerPID: 800, acceptQueue: 2, maxBacklog: 1,
                stage: stage, method: .counter, counted: 3)))
        }
        for errno: Int32 in [24, 23] {
            out += e.ingest(.acceptError(AcceptError(ts: 70_000, task: TaskInfo(pid: 800, comm: "srv"), listenerInode: 90,
                                                     netns: hostNS, errno: errno, nofileLimit: 64, port: 8080)))
        }
        out += e.ingest(.listenOverflow(ListenOverflow(ts: 70_001, family: .ipv4, local: server, remote: client,
                                                       clientNotLookedUp: true, listenerInode: 90, netns: hostNS,
                                                       listenerPID: 800, acceptQueue: 2, maxBacklog: 1, stage: .synAcceptQueue)))

        // connect() failures nothing on this host explains: every errno, and reset_by_peer.
        for (i, errno) in [Int32(110), 113, 101, 104, 5].enumerated() {
            out += e.ingest(connectFailure(at: 80_000 + UInt64(i), from: Endpoint(addr: v4(10, 0, 0, 1), port: 41000 + UInt16(i)),
                                           to: Endpoint(addr: v4(10, 0, 0, 2), port: 443), errno: errno))
        }
        out += e.finish()  // connection_refused (the client waited for a server-side RST that never came)
        _ = e.ingest(connectFailure(at: 90_000, from: Endpoint(addr: v4(10, 0, 0, 1), port: 42000), to: Endpoint(addr: v4(10, 0, 0, 2), port: 443)))
        out += e.finish()
        // rejected_with_icmp: refused, and no TCP segment ever came back.
        _ = e.ingest(connectFailure(at: 95_000, from: Endpoint(addr: v4(10, 0, 0, 1), port: 42001), to: Endpoint(addr: v4(10, 0, 0, 2), port: 443),
                                    segmentsIn: 0))
        out += e.finish()

        // Socket calls: address_in_use (holder and none, bind and listen), ephemeral ports (bind, connect),
        // address_not_available (bind, 4-tuple), privileged_port (seen, inferred), lsm_denied (each cause).
        let fake = FakeHolders()
        fake.result = [PortHolder(pid: 900, comm: "old", state: "TIME_WAIT", family: .ipv4, local: server,
                                  remote: client, inode: 5, reusePort: false)]
        var s = sysEngine(fake)
        let avc = AVCDenial(requested: 0x100000, denied: 0x100000, audited: 0x100000, result: -13, tclass: "tcp_socket",
                            scontext: "system_u:system_r:httpd_t:s0", tcontext: "system_u:object_r:http_port_t:s0")
        let calls: [KernelEvent] = [
            call(errno: 98), call(.listen, errno: 98, local: Endpoint(addr: v4(127, 0, 0, 1), port: 8081)),
            call(errno: 98, local: Endpoint(addr: .any4, port: 0)),
            call(.connect, errno: 99, local: Endpoint(addr: .any4, port: 0), remote: server),
            call(errno: 99, local: Endpoint(addr: v4(192, 0, 2, 1), port: 8080)),
            call(.connect, errno: 99, local: Endpoint(addr: v4(127, 0, 0, 1), port: 5000), remote: server),
            call(errno: 13, local: Endpoint(addr: .any4, port: 80), cap: .denied),
            call(errno: 13, local: Endpoint(addr: .any4, port: 80), landlocked: true),
            call(.connect, errno: 13, remote: server, landlocked: true),
            call(errno: 13, local: Endpoint(addr: .any4, port: 8080)),
            call(errno: 1, local: Endpoint(addr: .any4, port: 8080)),
            call(errno: 13, local: Endpoint(addr: .any4, port: 80), avc: avc),
            call(.connect, errno: 0, remote: server, avc: AVCDenial(requested: 0x400000, denied: 0x400000, audited: 0x400000,
                                                                   result: 0, tclass: "tcp_socket", scontext: "a:b:c_t:s0", tcontext: "a:b:d_t:s0")),
        ]
        for c in calls { out += s.ingest(c) }
        out += s.ingest(call(errno: 13, local: Endpoint(addr: .any4, port: 80), cap: .otherUserNamespace))
        // no_route: each cause from its replayed lookup, one with the routes changed since, one without a route reader.
        s.drops.routes = FakeRoutes()
        for (last, errno) in [(1, 101), (2, 113), (3, 13), (4, 22), (5, 101)] as [(UInt8, Int32)] {
            out += s.ingest(call(.connect, errno: errno, local: Endpoint(addr: .any4, port: 0),
                                 remote: Endpoint(addr: v4(203, 0, 113, last), port: 443)))
        }
        // Sockets bound to a device that is down, and to a VRF: bound_device, route_lookup's oif, mark, uid.
        for ifindex in [7, 8] as [UInt32] {
            out += s.ingest(call(.connect, errno: 101, local: Endpoint(addr: .any4, port: 0), remote: Endpoint(addr: v4(203, 0, 113, 1), port: 443),
                                 routing: SocketRouting(boundIfindex: ifindex, mark: 9, uid: 1000)))
        }
        // An IPv6 route through lo: loopback_route.
        s.drops.routes = NoRouteTests.loopbackRoutes
        out += s.ingest(.socketCall(SocketCallFailure(ts: 10_000, call: .connect, family: .ipv6, local: Endpoint(addr: .any6, port: 0),
                                                      remote: Endpoint(addr: IPAddress(high: 0x2001_0db8_0005_0000, low: 1), port: 443),
                                                      task: TaskInfo(pid: 500, uid: 1000, comm: "svc"), netns: hostNS, errno: 101)))
        // An IPv6 link-local destination without an interface: link_local_without_scope.
        s.drops.routes = NoRouteTests.linkLocalRoutes
        out += s.ingest(.socketCall(SocketCallFailure(ts: 10_500, call: .connect, family: .ipv6, local: Endpoint(addr: .any6, port: 0),
                                                      remote: Endpoint(addr: IPAddress(high: 0xfe80_0000_0000_0000, low: 1), port: 443),
                                                      task: TaskInfo(pid: 500, uid: 1000, comm: "svc"), netns: hostNS, errno: 22)))
        s.drops.routes = nil
        out += s.ingest(call(.connect, errno: 113, local: Endpoint(addr: .any4, port: 0), remote: Endpoint(addr: v4(203, 0, 113, 2), port: 443)))

        // Firewall: reject (client errno, ICMP), drop (retransmission), and a lookup with no rule source.
        var f = engine()
        f.firewall.rules = OneRule()
        let drop = { (ts: UInt64, port: UInt16, skb: UInt64) in
            KernelEvent.firewallDrop(FirewallDrop(ts: ts, family: .ipv4, local: Endpoint(addr: v4(127, 0, 0, 1), port: 8080),
                                                  remote: Endpoint(addr: v4(127, 0, 0, 1), port: port), netns: hostNS,
                                                  mark: 0x1140, skbAddr: skb, client: TaskInfo(pid: 777, comm: "curl"), processContext: true))
        }
        _ = f.ingest(drop(100_000, 43000, 1))
        out += f.ingest(connectFailure(at: 100_100, from: Endpoint(addr: v4(127, 0, 0, 1), port: 43000), to: server))
        _ = f.ingest(.firewallICMP(FirewallICMP(ts: 100_200, local: server, remote: Endpoint(addr: v4(127, 0, 0, 1), port: 43001),
                                                netns: hostNS, skbAddr: 2)))
        _ = f.ingest(drop(100_201, 43001, 2))
        _ = f.ingest(drop(100_300, 43002, 3))
        out += f.ingest(drop(1_100_300, 43002, 4))
        out += f.finish()
        var g = engine()
        _ = g.ingest(drop(200_000, 44000, 5))
        out += g.finish()
        // Docker's network isolation and internal network drops.
        for chain in ["DOCKER-ISOLATION-STAGE-2", "DOCKER-ISOLATION-STAGE-1"] {
            var d = engine()
            d.firewall.rules = DockerNetworkDrop(chain: chain)
            _ = d.ingest(drop(300_000, 45000, 6))
            out += d.finish()
        }
        // A rule source's reject (the client's ECONNREFUSED joins it) and its drop (a retransmitted SYN).
        func refused(by rules: any FirewallRuleSource, at ts: UInt64, port: UInt16, skb: UInt64, reject: Bool) -> [Record] {
            var e = engine()
            e.firewall.rules = rules
            _ = e.ingest(drop(ts, port, skb))
            let next = reject
                ? e.ingest(connectFailure(at: ts + 100, from: Endpoint(addr: v4(127, 0, 0, 1), port: port), to: server))
                : e.ingest(drop(ts + 1_000_000, port, skb + 100))
            return next + e.finish()
        }
        // kube-router's NetworkPolicy verdicts; a client past a connlimit (rate_limited, the iptables
        // rule as saved) and past an nft rate; fail2ban's bans.
        out += refused(by: NetworkPolicyReject(verdict: .reject("icmp port-unreachable")), at: 400_000, port: 46000, skb: 7, reject: true)
        out += refused(by: NetworkPolicyReject(verdict: .drop), at: 500_000, port: 47000, skb: 8, reject: false)
        out += refused(by: RateLimits(reject: true), at: 600_000, port: 48000, skb: 9, reject: true)
        out += refused(by: RateLimits(reject: false), at: 700_000, port: 49000, skb: 10, reject: false)
        out += refused(by: Fail2banBan(verdict: .reject("icmp port-unreachable")), at: 800_000, port: 48500, skb: 12, reject: true)
        out += refused(by: Fail2banBan(verdict: .drop), at: 900_000, port: 48600, skb: 13, reject: false)

        // connect_timeout: the DROP above explains 43002's timeout (dropped_on_host, the rule);
        // SYNs that left via a gateway (IPv4) or directly connected (IPv6): no_answer_past_host.
        _ = f.ingest(connectFailure(at: 1_200_000, from: Endpoint(addr: v4(127, 0, 0, 1), port: 43002),
                                    to: Endpoint(addr: v4(127, 0, 0, 1), port: 8080), errno: 110))
        out += f.finish()
        out += TimeoutCoreTests.pastHostRecords()
        out += AbandonedConnectTests.records() + FirewallAbandonFixture.records()
        out += ResetTTLTests.remoteRefusals()

        // lost and summary records, as the trace loop and the aggregator make them.
        out.append(Record(ts: 1, kind: .lost, evidence: [("where", .string("ring buffer full"))], hint: "h", count: 3))
        var agg = StormAggregator(perKeyPerWindow: 1)
        for r in out where r.reason == .noListener { _ = agg.add(r); _ = agg.add(r) }
        out += agg.finish()
        return out
    }

    @Test("every reason and every cause is produced, and every record validates")
    func engineRecordsValidate() throws {
        let recs = Self.records()
        for reason in Reason.allCases {
            #expect(recs.contains { $0.reason == reason }, "no record of \(reason.rawValue)")
            for cause in Cause.values(for: reason) {
                #expect(recs.contains { $0.reason == reason && $0.cause?.rawValue == cause }, "no record of \(reason.rawValue)/\(cause)")
            }
        }
        for kind in RecordKind.allCases { #expect(recs.contains { $0.kind == kind }, "no \(kind.rawValue) record") }

        let py = Self.repo + "/.venv-tests/bin/python"
        try #require(FileManager.default.isExecutableFile(atPath: py),
                     "\(py) is missing: run scripts/install-deps.sh (it installs check-jsonschema)")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-schema-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(recs.map { JSONLines.line($0) }.joined().utf8).write(to: file)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [py, Self.repo + "/scripts/check-records.py", file.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(out)")
    }
}

@Suite("the contract's catalogues cover what the engine writes")
struct ContractCatalogueTests {
    @Test("every top-level evidence key the engine writes is an EvidenceKey")
    func evidenceKeysAreCatalogued() {
        let known = Set(EvidenceKey.allCases.map(\.rawValue))
        for r in SchemaRecordsTests.records() {
            for (key, _) in r.evidence {
                #expect(known.contains(key), "\(r.kind.rawValue)/\(r.reason?.rawValue ?? "-"): evidence key '\(key)' is not in EvidenceKey")
            }
        }
    }

    @Test("no_listener evidence read into NoListenerEvidence encodes back to the same fields, in order")
    func noListenerEvidenceRoundTrips() {
        let records = SchemaRecordsTests.records().filter { $0.reason == .noListener && $0.kind != .summary }
        #expect(records.count >= Cause.NoListener.allCases.count)
        for r in records {
            let typed = NoListenerEvidence(r.evidence)
            let known = Set(typed.fields.map(\.0))
            #expect(JSONValue.object(typed.fields) == .object(r.evidence.filter { known.contains($0.0) }), "\(r.cause?.rawValue ?? "-")")
            #expect(r.evidence.count - typed.fields.count <= 1, "only a NAT or proxy field is added after attribution: \(r.evidence.map(\.0))")
        }
    }

    /// The engine fills these structs: reading its evidence back gives every field, in order.
    static func typedFields<E: ReasonEvidence>(_: E.Type, _ r: Record) -> [(String, JSONValue)] {
        E(r.evidence).fields
    }

    @Test("the evidence of every reason with a typed struct reads into it and encodes back unchanged")
    func typedEvidenceRoundTrips() {
        let records = SchemaRecordsTests.records().filter { $0.kind != .summary }
        for reason in Reason.allCases where reason != .noListener {  // no_listener: above (NAT and proxy fields)
            guard let type = reason.evidenceType else { continue }
            let mine = records.filter { $0.reason == reason }
            #expect(!mine.isEmpty, "no record of \(reason.rawValue)")
            for r in mine {
                #expect(JSONValue.object(Self.typedFields(type, r)) == .object(r.evidence),
                        "\(reason.rawValue)/\(r.cause?.rawValue ?? "-"): \(r.evidence.map(\.0))")
            }
        }
    }

    @Test("every cause decodes back to its typed case under its reason")
    func causesRoundTrip() {
        for reason in Reason.allCases {
            for raw in Cause.values(for: reason) {
                let c = RecordCause(reason: reason, rawValue: raw)
                #expect(c.rawValue == raw)
                if case .other = c { Issue.record("\(reason.rawValue)/\(raw) decodes as .other") }
            }
        }
        #expect(RecordCause(reason: .noListener, rawValue: "a_cause_of_2030") == .other("a_cause_of_2030"))
        #expect(RecordCause(reason: nil, rawValue: "never_listened") == .other("never_listened"))
    }

    @Test("every reason and cause has advice of its own, with steps")
    func everyCauseHasAdvice() {
        for reason in Reason.allCases {
            let general = Advice.for(reason: reason, cause: nil)
            #expect(!general.fix.isEmpty && !general.steps.isEmpty, "\(reason.rawValue)")
            for raw in Cause.values(for: reason) {
                let a = Advice.for(reason: reason, cause: RecordCause(reason: reason, rawValue: raw))
                #expect(!a.fix.isEmpty && !a.steps.isEmpty, "\(reason.rawValue)/\(raw)")
            }
        }
    }
}
