import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

extension KernelFeatures {
    /// Optional programs of the firewall area, by program name, with their
    /// probe (its kfree_skb and inet_sk_error_report handlers run in the
    /// shared-hook programs: Tracer.sharedHookPrograms).
    var firewallOptionalPrograms: [String: ProbeResult] {
        [
            "fw_icmp_send": firewallICMPProbe,
            "fw_syn_retransmit": firewallRetransmitProbe,
        ]
    }

    /// tp_btf/kfree_skb with reason NETFILTER_DROP (5.18, 2df3041ba3be; 5.15.58 backport).
    public var firewallDropProbe: ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        let rc = syn_probe_tp_btf("kfree_skb")
        guard rc == 0 else { return Self.failedProbe("tp_btf/kfree_skb", rc, "tp_btf/kfree_skb: \(ErrnoName.name(-rc))") }
        return syn_btf_enum_has("skb_drop_reason", "SKB_DROP_REASON_NETFILTER_DROP") == 1
            ? .supported("kfree_skb carries drop reason NETFILTER_DROP (5.18+)")
            : .unsupported("kfree_skb has no NETFILTER_DROP reason before 5.18 (commit 2df3041ba3be)")
    }

    /// tp_btf/icmp_send (6.10, db3efdcf70c7; backported to 6.6.81 and 6.1).
    public var firewallICMPProbe: ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        let rc = syn_probe_tp_btf("icmp_send")
        if rc == 0 { return .supported("tp_btf/icmp_send loads: IPv4 REJECT with ICMP is seen") }
        return Self.failedProbe("tp_btf/icmp_send", rc, "tp_btf/icmp_send: \(ErrnoName.name(-rc))" + (rc == -ENOENT ? " (tracepoint added in 6.10, commit db3efdcf70c7)" : ""))
    }

    /// tp_btf/tcp_retransmit_skb: a local client's retransmitted SYN.
    public var firewallRetransmitProbe: ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        let rc = syn_probe_tp_btf("tcp_retransmit_skb")
        if rc == 0 { return .supported("tp_btf/tcp_retransmit_skb loads") }
        return Self.failedProbe("tp_btf/tcp_retransmit_skb", rc, "tp_btf/tcp_retransmit_skb: \(ErrnoName.name(-rc))")
    }

    /// tp_btf/inet_sk_error_report (5.14, e6a3e4434000): an ICMP error queued on a connecting socket.
    public var firewallSoftErrorProbe: ProbeResult {
        guard btf.isSupported else { return .unsupported("no kernel BTF") }
        let rc = syn_probe_tp_btf("inet_sk_error_report")
        if rc == 0 { return .supported("tp_btf/inet_sk_error_report loads") }
        return Self.failedProbe("tp_btf/inet_sk_error_report", rc, "tp_btf/inet_sk_error_report: \(ErrnoName.name(-rc))" + (rc == -ENOENT ? " (added in 5.14)" : ""))
    }
}
