@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// Naming the BPF program behind a drop (DropPrograms.swift), on synthetic
/// drops and a recording program source: which attach points each kernel
/// reason or location leads to, whose cgroup is read, the evidence and the hint.
@Suite("drops: the BPF programs that dropped a handshake")
struct DropProgramsTests {
    /// Answers every query with the programs given, and remembers the queries.
    final class Recording: BPFProgramSource, @unchecked Sendable {
        var queries: [BPFProgramQuery] = []
        let answer: BPFProgramFindings
        init(_ answer: BPFProgramFindings) { self.answer = answer }
        func programs(_ q: BPFProgramQuery) -> BPFProgramFindings {
            queries.append(q)
            return answer
        }
    }

    static let tcProgram = BPFProgramRef(id: 42, name: "cil_from_contai", type: "sched_cls", tag: "0011223344556677",
                                         kind: .tcIngress, target: "veth-s1", tcPref: 49152, tcName: "bpf_lxc.o:[from-container]")

    func engine(_ source: Recording, reasons: [(String, Int64)]) -> AttributionEngine {
        var e = AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: 0))
        e.drops = DropState(reasons: DropReasonNames(core: reasons), symbols: DropAttributionTests.Symbols(), programs: source)
        return e
    }

    func drop(code: UInt32, flags: UInt8 = 0x02, hasSocket: Bool = false, location: UInt64 = 0xFFFF_FFFF_8100_0260) -> PacketDrop {
        let synack = flags & 0x12 == 0x12
        let (s, c) = (DropAttributionTests.server, DropAttributionTests.client)
        return PacketDrop(ts: 1_000, family: .ipv4, local: synack ? c : s, remote: synack ? s : c, netns: 77,
                          reasonCode: code, location: location, ifindex: 2, ifname: "veth-s1", tcpFlags: flags,
                          hook: hasSocket ? .output : .prerouting, hasSocket: hasSocket, client: TaskInfo(pid: 31, comm: "curl"))
    }

    func name(_ n: String, known: Bool = true) -> DropReasonName { DropReasonName(name: n, code: 1, subsystem: nil, known: known) }

    @Test("reasons and locations lead to the tc or cgroup attach points, in the packet's direction")
    func sites() {
        let syn = drop(code: 1), synAckOut = drop(code: 1, flags: 0x12, hasSocket: true)
        #expect(DropProgramSite.of(syn, reason: name("tc_ingress"), function: nil) == DropProgramSite(tc: true, cgroup: false, ingress: true))
        #expect(DropProgramSite.of(synAckOut, reason: name("tc_egress"), function: nil) == DropProgramSite(tc: true, cgroup: false, ingress: false))
        #expect(DropProgramSite.of(syn, reason: name("socket_filter"), function: nil) == DropProgramSite(tc: false, cgroup: true, ingress: true))
        #expect(DropProgramSite.of(synAckOut, reason: name("bpf_cgroup_egress"), function: nil) == DropProgramSite(tc: false, cgroup: true, ingress: false))
        // Kernels without a reason there: the freeing function.
        #expect(DropProgramSite.of(syn, reason: name("not_specified"), function: "tcf_classify") == DropProgramSite(tc: true, cgroup: false, ingress: true))
        #expect(DropProgramSite.of(syn, reason: name("not_specified"), function: "sk_filter_trim_cap") == DropProgramSite(tc: false, cgroup: true, ingress: true))
        #expect(DropProgramSite.of(syn, reason: name("xdp"), function: nil) == DropProgramSite(tc: false, cgroup: false, ingress: true, xdp: true))
        #expect(DropProgramSite.of(syn, reason: name("not_specified"), function: "do_xdp_generic") == DropProgramSite(tc: false, cgroup: false, ingress: true, xdp: true))
        #expect(DropProgramSite.of(syn, reason: name("not_specified"), function: "veth_xdp_rcv_skb") == DropProgramSite(tc: false, cgroup: false, ingress: true, xdp: true))
        #expect(DropProgramSite.of(syn, reason: name("not_specified"), function: "tcp_v4_rcv") == nil)
        #expect(DropProgramSite.of(syn, reason: name("ip_rpfilter"), function: "tcf_classify") == nil)
        // The receiving socket on ingress, the sending one on egress.
        let cg = DropProgramSite(tc: false, cgroup: true, ingress: true)
        #expect(cg.socketOwner(syn, listener: 7, client: 31) == 7)
        #expect(DropProgramSite(tc: false, cgroup: true, ingress: false).socketOwner(synAckOut, listener: 7, client: 31) == 7)
        #expect(DropProgramSite(tc: false, cgroup: true, ingress: false).socketOwner(syn, listener: 7, client: 31) == 31)
    }

    @Test("a tc drop names the program: id, name, type, tag, attach point, owner; the hint says how to inspect and detach it")
    func tcDropNamed() throws {
        let source = Recording(BPFProgramFindings(programs: [Self.tcProgram]))
        var e = engine(source, reasons: [("SKB_DROP_REASON_TC_INGRESS", 61)])
        let r = try single(e.ingest(.packetDrop(drop(code: 61))))
        #expect(r.cause?.rawValue == "bpf_program")
        #expect(source.queries == [BPFProgramQuery(netns: 77, ifindex: 2, ifname: "veth-s1", ingress: true, tc: true, cgroupOf: nil)])
        let programs = try #require(JSONValue.object(r.evidence)["bpf_programs"]?.items)
        #expect(programs.count == 1)
        let p = programs[0]
        #expect(p["id"]?.intValue == 42 && p["name"]?.stringValue == "cil_from_contai")
        #expect(p["type"]?.stringValue == "sched_cls" && p["tag"]?.stringValue == "0011223344556677")
        #expect(p["attach"]?.stringValue == "tc ingress on veth-s1" && p["owner"]?.stringValue == "cilium")
        #expect(p["tc_name"]?.stringValue == "bpf_lxc.o:[from-container]" && p["tc_pref"]?.intValue == 49152)
        #expect(JSONValue.object(r.evidence)["bpf_programs_unavailable"] == nil)
        let hint = try #require(r.hint)
        #expect(hint.contains("BPF program 42 \"cil_from_contai\" (cilium) at tc ingress on veth-s1"), "\(hint)")
        #expect(hint.contains("`bpftool prog show id 42`") && hint.contains("`tc filter show dev veth-s1 ingress`"), "\(hint)")
        #expect(hint.contains("`tc filter del dev veth-s1 ingress pref 49152`"), "\(hint)")
        // The evidence keeps its order: the programs before the hook.
        #expect(r.evidence.last?.0 == "hook")
    }

    @Test("a socket-filter drop reads the cgroup programs of the listener")
    func cgroupIngressOfListener() throws {
        let cg = BPFProgramRef(id: 9, name: "sd_fw_ingress", type: "cgroup_skb", tag: "aabbccddeeff0011",
                               kind: .cgroupIngress, target: "/system.slice/web.service",
                               cgroupDir: "/sys/fs/cgroup/system.slice/web.service")
        let source = Recording(BPFProgramFindings(programs: [cg]))
        var e = engine(source, reasons: [("SKB_DROP_REASON_SOCKET_FILTER", 5)])
        _ = e.ingest(.listen(listenerChange(at: 500, on: Endpoint(addr: .any4, port: 8080), pid: 700, comm: "web", inode: 80, netns: 77)))
        let r = try single(e.ingest(.packetDrop(drop(code: 5))))
        #expect(r.cause?.rawValue == "socket_filter" && r.process?.pid == 700)
        #expect(source.queries.first?.cgroupOf == 700 && source.queries.first?.tc == false && source.queries.first?.ingress == true)
        let p = try #require(JSONValue.object(r.evidence)["bpf_programs"]?.items?.first)
        #expect(p["attach"]?.stringValue == "cgroup inet ingress /system.slice/web.service" && p["owner"]?.stringValue == "systemd")
        #expect(r.hint?.contains("`bpftool cgroup detach /sys/fs/cgroup/system.slice/web.service ingress id 9`") == true, "\(r.hint ?? "")")
    }

    @Test("nothing readable: the evidence says why and the hint stays the cause's")
    func unavailable() throws {
        let source = Recording(BPFProgramFindings(unavailable: ["network namespace 77 is gone"]))
        var e = engine(source, reasons: [("SKB_DROP_REASON_SOCKET_FILTER", 5)])
        // No listener known: the cgroup's owner is unknown too.
        let r = try single(e.ingest(.packetDrop(drop(code: 5))))
        let ev = JSONValue.object(r.evidence)
        #expect(ev["bpf_programs"]?.items?.isEmpty == true)
        #expect(ev["bpf_programs_unavailable"]?.stringValue
                == "network namespace 77 is gone; the socket's owner is not known: its cgroup programs cannot be read")
        #expect(r.hint?.contains("socket filter") == true, "\(r.hint ?? "")")
    }

    @Test("drops not at a BPF hook read nothing")
    func notBPF() throws {
        let source = Recording(BPFProgramFindings(programs: [Self.tcProgram]))
        var e = engine(source, reasons: [("SKB_DROP_REASON_IP_RPFILTER", 16)])
        let r = try single(e.ingest(.packetDrop(drop(code: 16))))
        #expect(source.queries.isEmpty && JSONValue.object(r.evidence)["bpf_programs"] == nil)
    }

    @Test("the client's timeout that the drop explains carries the programs too (connect_timeout evidence.drop)")
    func timeoutNamesProgram() throws {
        let source = Recording(BPFProgramFindings(programs: [Self.tcProgram]))
        var e = engine(source, reasons: [("SKB_DROP_REASON_TC_INGRESS", 61)])
        let (s, c) = (DropAttributionTests.server, DropAttributionTests.client)
        _ = try single(e.ingest(.packetDrop(drop(code: 61))))
        _ = e.ingest(.connectTimeout(ConnectTimeoutRoute(ts: 3_000_000_000, family: .ipv4, local: c, remote: s, netns: hostNS,
                                                         egress: .init(ifname: "eth0", ifindex: 3), synRetransmits: 2,
                                                         fromLastRetransmit: false)))
        let r = try single(e.ingest(connectFailure(at: 3_000_000_100, from: c, to: s, pid: 31, errno: 110)))
        #expect(r.reason == .connectTimeout && r.cause?.rawValue == Cause.ConnectTimeout.droppedOnHost.rawValue)
        let programs = try #require(r.evidence("drop")?["bpf_programs"]?.items, "\(r.json)")
        #expect(programs.first?["id"]?.intValue == 42 && programs.first?["attach"]?.stringValue == "tc ingress on veth-s1")
    }

    @Test("owners are recognised by the names their programs carry")
    func owners() {
        #expect(BPFProgramOwner.of(names: ["cil_from_container"]) == .cilium)
        #expect(BPFProgramOwner.of(names: ["tail_handle_ipv4"]) == .cilium)
        #expect(BPFProgramOwner.of(names: ["", "bpf_lxc.o:[from-container]"]) == .cilium)
        #expect(BPFProgramOwner.of(names: ["calico_tc_main"]) == .calico)
        #expect(BPFProgramOwner.of(names: ["sd_fw_egress"]) == .systemd)
        #expect(BPFProgramOwner.of(names: ["synsight_e2e_dr", "drop.o:[tc]"]) == nil)
    }
}

extension JSONValue {
    /// An array's elements (tests only).
    var items: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
}
