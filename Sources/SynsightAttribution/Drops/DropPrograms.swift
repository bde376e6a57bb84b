import SynsightBase
import SynsightModel
/// Naming the BPF program behind a `packet_dropped` record (issue 17: "name
/// the actor"): which attach points could have dropped the packet, from the
/// kernel's reason and the function that freed it; the programs found there
/// (a `BPFProgramSource`, read on the pipeline thread) as evidence
/// `bpf_programs`, or `bpf_programs_unavailable` saying why none could be
/// read; and a hint that names the program and how to inspect or detach it.

/// The attach points behind a drop.
struct DropProgramSite: Equatable {
    /// The interface's tc / tcx programs.
    var tc: Bool
    /// The cgroup inet programs of the socket's owner.
    var cgroup: Bool
    var ingress: Bool
    /// The interface's XDP programs (a generic-mode XDP_DROP frees the skb).
    var xdp = false

    /// Reasons of each site (normalised BTF names, see DropCause.reasons).
    static let tcReasons: Set<String> = ["tc_ingress", "tc_egress", "tc_cookie_error", "tc_chain_notfound", "tc_reclassify_loop"]
    /// bpf_cgroup_egress: an egress program said drop (ip_finish_output);
    /// socket_filter: tcp_filter() refused the segment, which runs the
    /// receiving socket's cgroup ingress programs (sk_filter_trim_cap).
    static let cgroupReasons: [String: Bool] = ["bpf_cgroup_egress": false, "socket_filter": true]
    /// Kernels that drop without a reason (not_specified) there: the freeing function says which hook.
    static let tcFunctions: Set<String> = ["tcf_classify", "tc_run", "sch_handle_ingress", "sch_handle_egress", "tcx_run"]
    static let cgroupFunctions: Set<String> = ["sk_filter_trim_cap", "__cgroup_bpf_run_filter_skb"]
    /// XDP_DROP of a packet that was an skb: kfree_skb without a reason in
    /// do_xdp_generic (generic XDP, 6.18) and in veth_xdp_rcv_skb (native XDP
    /// on a veth, the container-side case; measured on 6.18). A native XDP
    /// drop on a physical NIC happens before any skb exists: no drop event.
    static let xdpFunctions: Set<String> = ["do_xdp_generic", "netif_receive_generic_xdp", "bpf_prog_run_generic_xdp",
                                            "veth_xdp_rcv_skb"]

    static func of(_ d: PacketDrop, reason: DropReasonName, function: String?) -> DropProgramSite? {
        let ingress = d.direction != "egress"
        if tcReasons.contains(reason.name) {
            let dir = reason.name == "tc_ingress" ? true : reason.name == "tc_egress" ? false : ingress
            return DropProgramSite(tc: true, cgroup: false, ingress: dir)
        }
        if let dir = cgroupReasons[reason.name] { return DropProgramSite(tc: false, cgroup: true, ingress: dir) }
        if reason.name == "xdp" { return DropProgramSite(tc: false, cgroup: false, ingress: true, xdp: true) }
        guard !reason.known || DropCause.of(reason) == .unspecified || DropCause.of(reason) == .other,
              let function else { return nil }
        if tcFunctions.contains(function) { return DropProgramSite(tc: true, cgroup: false, ingress: ingress) }
        if cgroupFunctions.contains(function) { return DropProgramSite(tc: false, cgroup: true, ingress: ingress) }
        if xdpFunctions.contains(function) { return DropProgramSite(tc: false, cgroup: false, ingress: true, xdp: true) }
        return nil
    }

    /// The socket a cgroup program ran for: the receiver on ingress (a SYN's
    /// listener, a SYN-ACK's client), the sender on egress.
    func socketOwner(_ d: PacketDrop, listener: UInt32?, client: UInt32?) -> UInt32? {
        ingress == !d.kind.fromService ? listener : client
    }
}

extension AttributionEngine {
    /// Evidence (into `ev`) and hint naming the programs that could have
    /// dropped `d` (nothing when the drop was not at a BPF hook or no source is set).
    func dropProgramEvidence(_ d: PacketDrop, reason: DropReasonName, function: String?,
                             record: Record, into ev: inout PacketDropEvidence) -> String? {
        guard let source = drops.programs, let site = DropProgramSite.of(d, reason: reason, function: function) else {
            return nil
        }
        let owner = site.socketOwner(d, listener: record.process?.pid, client: record.client?.pid)
        let q = BPFProgramQuery(netns: d.netns, ifindex: d.ifindex, ifname: d.ifname, ingress: site.ingress,
                                tc: site.tc, cgroupOf: site.cgroup ? owner : nil, xdp: site.xdp)
        var found = source.programs(q)
        if (site.tc || site.xdp) && d.ifindex == 0 {
            found.unavailable.append("the drop has no interface: its tc and XDP programs cannot be read")
        }
        if site.cgroup && owner == nil {
            found.unavailable.append("the socket's owner is not known: its cgroup programs cannot be read")
        }
        ev.bpfPrograms = found.programs.map(Self.programJSON)
        if !found.unavailable.isEmpty { ev.bpfProgramsUnavailable = found.unavailable.joined(separator: "; ") }
        return Self.programHint(found.programs, d, port: d.server.port)
    }

    static func programJSON(_ p: BPFProgramRef) -> JSONValue {
        var o: [(String, JSONValue)] = [("id", .int(Int64(p.id)))]
        if !p.name.isEmpty { o.append(("name", .string(p.name))) }
        if !p.type.isEmpty { o.append(("type", .string(p.type))) }
        if !p.tag.isEmpty { o.append(("tag", .string(p.tag))) }
        o.append(("attach", .string(p.attach)))
        if let owner = p.owner { o.append(("owner", .string(owner.rawValue))) }
        if let n = p.tcName { o.append(("tc_name", .string(n))) }
        if let pref = p.tcPref { o.append(("tc_pref", .int(Int64(pref)))) }
        return .object(o)
    }

    /// "tc ingress program 42 "drop" on eth0 ... `bpftool prog show id 42`, `tc filter show dev eth0 ingress`".
    static func programHint(_ programs: [BPFProgramRef], _ d: PacketDrop, port: UInt16) -> String? {
        guard !programs.isEmpty else { return nil }
        let (inspect, detach) = programCommands(programs)
        return "\(programsNamed(programs)) (network namespace \(d.netns)) dropped the \(d.segment) to port \(port): "
            + "inspect it with \(inspect.joined(separator: ", ")); allow the port in the policy that loaded it, or detach it (\(detach.joined(separator: ", ")))"
    }

    /// "BPF program 42 "drop" (cilium) at tc ingress on eth0", or "one of the BPF programs ...".
    static func programsNamed(_ programs: [BPFProgramRef]) -> String {
        let named = programs.map { p in
            "\(p.id)" + (p.name.isEmpty ? "" : " \"\(p.name)\"") + (p.owner.map { " (\($0.rawValue))" } ?? "") + " at \(p.attach)"
        }
        return named.count == 1 ? "BPF program \(named[0])" : "one of the BPF programs \(named.joined(separator: ", "))"
    }

    /// The commands that show the programs and those that detach them, each once.
    static func programCommands(_ programs: [BPFProgramRef]) -> (inspect: [String], detach: [String]) {
        var inspect = programs.map { "`bpftool prog show id \($0.id)`" }
        var detach: [String] = []
        for p in programs {
            let dir = p.kind.isIngress ? "ingress" : "egress"
            switch p.kind {
            case .tcIngress, .tcEgress:
                inspect.append("`tc filter show dev \(p.target) \(dir)`")
                detach.append("`tc filter del dev \(p.target) \(dir)" + (p.tcPref.map { " pref \($0)`" } ?? "`"))
            case .tcxIngress, .tcxEgress:
                inspect.append("`bpftool net show dev \(p.target)`")
                detach.append("`bpftool net detach tcx_\(dir) dev \(p.target)`")
            case .xdpGeneric, .xdpDriver, .xdpOffload:
                inspect.append("`ip link show dev \(p.target)`")
                detach.append("`ip link set dev \(p.target) \(p.kind.rawValue) off`")
            case .cgroupIngress, .cgroupEgress, .cgroupBind4, .cgroupBind6, .cgroupPostBind4, .cgroupPostBind6,
                 .cgroupConnect4, .cgroupConnect6:
                let path = p.cgroupDir ?? "<cgroup2 mount>\(p.target)"
                inspect.append("`bpftool cgroup show \(path)`")
                detach.append("`bpftool cgroup detach \(path) \(p.kind.bpftoolAttachType ?? dir) id \(p.id)`")
            }
        }
        var seen = Set<String>()
        return (inspect.filter { seen.insert($0).inserted }, detach.filter { seen.insert($0).inserted })
    }
}
