import CSynsightABI
import SynsightBase

extension EventDecoder {
    /// SYN_EV_PKT_DROP (bpf/drops.bpf.h); `raw` is already checked for size
    /// and ABI version by `decode`.
    static func decodePacketDrop(_ raw: UnsafeRawBufferPointer) throws(DecodeError) -> KernelEvent {
        let e = raw.loadUnaligned(as: syn_ev_pkt_drop.self)
        let t = try tuple(e.t)
        let flags = Int32(e.flags)
        let ifname = withUnsafeBytes(of: e.ifname) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return .packetDrop(PacketDrop(
            ts: e.hdr.ts_ns, family: t.family, local: t.local, remote: t.remote, netns: e.netns,
            reasonCode: e.reason, location: e.location, ifindex: e.ifindex, ifname: ifname,
            tcpFlags: e.tcp_flags, hook: FirewallHook(rawValue: e.hook) ?? .unknown,
            hasSocket: flags & SYN_FW_F_SK != 0,
            client: flags & SYN_FW_F_TASK != 0 ? task(e.task) : nil,
            icmpCode: flags & SYN_FW_F_ICMP != 0 ? e.icmp_code : nil, isn: e.isn))
    }
}
