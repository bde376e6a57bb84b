import CSynsightABI
import SynsightBase

extension EventDecoder {
    /// The firewall records (bpf/firewall.bpf.h); `raw` is already checked
    /// for size and ABI version by `decode`.
    static func decodeFirewall(kind: UInt8, _ raw: UnsafeRawBufferPointer) throws(DecodeError) -> KernelEvent {
        switch UInt32(kind) {
        case SYN_EV_FW_DROP.rawValue:
            let e = raw.loadUnaligned(as: syn_ev_fw_drop.self)
            let t = try tuple(e.t)
            let flags = Int32(e.flags)
            let hasTask = flags & SYN_FW_F_TASK != 0
            let icmp = flags & SYN_FW_F_ICMP != 0
            return .firewallDrop(FirewallDrop(
                ts: e.hdr.ts_ns, family: t.family, local: t.local, remote: t.remote, netns: e.netns,
                mark: e.mark, ifindex: e.ifindex, tcpFlags: e.tcp_flags,
                hook: FirewallHook(rawValue: e.hook) ?? .unknown,
                skbAddr: e.skbaddr, location: e.location,
                hasSocket: flags & SYN_FW_F_SK != 0,
                client: hasTask ? task(e.task) : nil,
                processContext: hasTask && flags & SYN_FW_F_PROC_CTX != 0,
                ctState: ConntrackState(rawValue: e.ct_state) ?? .unknown,
                ctCount: !icmp && flags & SYN_FW_F_CT_COUNT != 0 ? e.ct_count : nil,
                ifname: withUnsafeBytes(of: e.ifname) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) },
                reasonCode: e.reason, handshakeShape: flags & SYN_FW_F_HANDSHAKE != 0,
                icmpCode: icmp ? UInt8(truncatingIfNeeded: e.ct_count) : nil, isn: e.isn))
        case SYN_EV_FW_ICMP.rawValue:
            let e = raw.loadUnaligned(as: syn_ev_fw_icmp.self)
            let t = try tuple(e.t)
            return .firewallICMP(FirewallICMP(
                ts: e.hdr.ts_ns, family: t.family, local: t.local, remote: t.remote, netns: e.netns,
                skbAddr: e.skbaddr, type: e.type, code: e.code, tcpFlags: e.tcp_flags))
        case SYN_EV_FW_SOFT_ERROR.rawValue:
            // The caller's connect() failed as surely as with a hard error.
            return .connectError(try connectError(raw.loadUnaligned(as: syn_ev_connect_error.self)))
        default:
            let e = raw.loadUnaligned(as: syn_ev_fw_syn_retrans.self)
            let t = try tuple(e.t)
            return .synRetransmit(SynRetransmit(
                ts: e.hdr.ts_ns, connectTs: e.connect_ts_ns, family: t.family,
                local: t.local, remote: t.remote, task: task(e.task), netns: e.netns))
        }
    }
}
