import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// What bpf/firewall.bpf.h and the drop program need, probed once.
public struct FirewallProbes: Sendable {
    /// tp_btf/kfree_skb with reason NETFILTER_DROP (5.18, 2df3041ba3be; 5.15.58 backport).
    public var drop: ProbeResult = .unsupported("not probed")
    /// tp_btf/icmp_send (6.10, db3efdcf70c7; backported to 6.6.81 and 6.1).
    public var icmp: ProbeResult = .unsupported("not probed")
    /// tp_btf/tcp_retransmit_skb: a local client's retransmitted SYN.
    public var retransmit: ProbeResult = .unsupported("not probed")
    /// tp_btf/inet_sk_error_report (5.14, e6a3e4434000): an ICMP error queued on a connecting socket.
    public var softError: ProbeResult = .unsupported("not probed")
    /// conntrack's types in the kernel's BTF (vmlinux, or the nf_conntrack module's, loaded):
    /// bpf/conntrack.bpf.h reads a dropped packet's ct state and its namespace's table use.
    public var conntrack: ProbeResult = .unsupported("not probed")

    public init() {}

    var allResults: [ProbeResult] { [drop, icmp, retransmit, softError] }

    static func probe(btf: ProbeResult) -> FirewallProbes {
        var p = FirewallProbes()
        guard btf.isSupported else {
            p.drop = .unsupported("no kernel BTF")
            p.icmp = p.drop
            p.retransmit = p.drop
            p.softError = p.drop
            return p
        }
        let rc = ProgramProbe.tpBtf("kfree_skb")
        if rc != 0 {
            p.drop = KernelFeatures.failedProbe("tp_btf/kfree_skb", rc, "tp_btf/kfree_skb: \(ErrnoName.name(-rc))")
        } else {
            p.drop = syn_btf_enum_has("skb_drop_reason", "SKB_DROP_REASON_NETFILTER_DROP") == 1
                ? .supports("tp_btf/kfree_skb", "kfree_skb carries drop reason NETFILTER_DROP (5.18+)")
                : .unsupported("kfree_skb has no NETFILTER_DROP reason before 5.18 (commit 2df3041ba3be)")
        }
        p.icmp = tpBtf("icmp_send", "loads: IPv4 REJECT with ICMP is seen", enoent: " (tracepoint added in 6.10, commit db3efdcf70c7)")
        p.retransmit = tpBtf("tcp_retransmit_skb", "loads", enoent: "")
        p.softError = tpBtf("inet_sk_error_report", "loads", enoent: " (added in 5.14)")
        p.conntrack = conntrackBTF()
        return p
    }

    /// Where struct nf_conn and nf_conntrack_net are described: built in
    /// (vmlinux BTF) or the nf_conntrack module's BTF. CO-RE resolves them
    /// when synsight loads: a module loaded later is not seen until restart.
    static func conntrackBTF() -> ProbeResult {
        if syn_btf_has("struct", "nf_conn") == 1 && syn_btf_has("struct", "nf_conntrack_net") == 1 {
            return .supports("vmlinux BTF", "struct nf_conn, nf_conntrack_net in vmlinux BTF (nf_conntrack built in)")
        }
        if access("/sys/kernel/btf/nf_conntrack", R_OK) == 0 {
            return .supports("nf_conntrack BTF", "struct nf_conn, nf_conntrack_net in the nf_conntrack module's BTF")
        }
        return .unsupported("nf_conntrack is not loaded (no /sys/kernel/btf/nf_conntrack): ct state and table use are not read; "
            + "restart synsight after it is loaded")
    }

    /// tp_btf/`name`: supported with "tp_btf/name <loaded>", else why (`enoent`: what a missing tracepoint means).
    static func tpBtf(_ name: String, _ loaded: String, enoent: String) -> ProbeResult {
        let rc = ProgramProbe.tpBtf(name)
        if rc == 0 { return .supports("tp_btf/\(name)", "tp_btf/\(name) \(loaded)") }
        return KernelFeatures.failedProbe("tp_btf/\(name)", rc,
                                          "tp_btf/\(name): \(ErrnoName.name(-rc))" + (rc == -ENOENT ? enoent : ""))
    }
}

extension ReasonArea {
    /// NETFILTER_DROP from kfree_skb; ICMP rejects, retransmitted SYNs and
    /// soft errors where their tracepoints load.
    static func firewallPlan(_ f: KernelFeatures) -> AreaPlan {
        let p = f.firewall
        guard p.drop.isSupported else {
            return .cannotRun(CannotRun(needs: "tp_btf/kfree_skb with NETFILTER_DROP", probe: p.drop))
        }
        var programs: Set<BPFProgram> = [.onKfreeSkb]
        if p.icmp.isSupported { programs.insert(.fwIcmpSend) }
        if p.retransmit.isSupported { programs.insert(.fwSynRetransmit) }
        if p.softError.isSupported { programs.insert(.onSkErrorReport) }
        return .run(programs)
    }
}
