import CSynsightABI
import SynsightBase

/// A RST that refused a local connect(), read in tcp_reset
/// (SYN_EV_CONNECT_RESET, bpf/resets.bpf.h): its TTL (IPv4) or hop limit
/// (IPv6), and what the same peer's SYN-ACKs arrived with while the baseline
/// program was attached. Joined with the client's ECONNREFUSED by 4-tuple
/// (ResetTTLAttribution.swift). `local` is the client end.
public struct ConnectReset: Sendable, Hashable {
    public var ts: UInt64
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint
    public var netns: UInt32
    /// The RST's TTL or hop limit; nil when the kernel could not read it.
    public var ttl: UInt8?
    /// The peer's SYN-ACKs measured before this RST; nil: none yet.
    public var baseline: PeerTTLBaseline?
    public var hook: ResetTTLHook

    public init(ts: UInt64, family: AddressFamily, local: Endpoint, remote: Endpoint, netns: UInt32,
                ttl: UInt8?, baseline: PeerTTLBaseline?, hook: ResetTTLHook) {
        self.ts = ts
        self.family = family
        self.local = local
        self.remote = remote
        self.netns = netns
        self.ttl = ttl
        self.baseline = baseline
        self.hook = hook
    }
}

/// What a peer's SYN-ACKs arrived with (IPv4 TTL or IPv6 hop limit).
public struct PeerTTLBaseline: Sendable, Hashable {
    public var ttlMin: UInt8
    public var ttlMax: UInt8
    public var ttlLast: UInt8
    /// SYN-ACKs measured.
    public var packets: UInt32
    /// CLOCK_BOOTTIME of the latest one.
    public var lastTs: UInt64

    public init(ttlMin: UInt8, ttlMax: UInt8, ttlLast: UInt8, packets: UInt32, lastTs: UInt64) {
        self.ttlMin = ttlMin
        self.ttlMax = ttlMax
        self.ttlLast = ttlLast
        self.packets = packets
        self.lastTs = lastTs
    }
}

/// The kernel hook that read the RST (evidence `reset.hook`).
public enum ResetTTLHook: UInt8, Sendable, Hashable {
    case fentry = 1
    case kprobe = 2

    public var name: String {
        switch self {
        case .fentry: return "fentry/tcp_reset"
        case .kprobe: return "kprobe/tcp_reset"
        }
    }
}

extension EventDecoder {
    /// SYN_EV_CONNECT_RESET; `raw` is already checked for size and ABI version by `decode`.
    static func decodeConnectReset(_ raw: UnsafeRawBufferPointer) throws(DecodeError) -> KernelEvent {
        let e = raw.loadUnaligned(as: syn_ev_connect_reset.self)
        let t = try tuple(e.t)
        guard let hook = ResetTTLHook(rawValue: e.source) else { throw .unknownHook(e.source) }
        let baseline = e.baseline_packets == 0 ? nil
            : PeerTTLBaseline(ttlMin: e.baseline_min, ttlMax: e.baseline_max, ttlLast: e.baseline_last,
                              packets: e.baseline_packets, lastTs: e.baseline_last_ns)
        return .connectReset(ConnectReset(ts: e.hdr.ts_ns, family: t.family, local: t.local, remote: t.remote,
                                          netns: e.netns, ttl: e.ttl == 0 ? nil : e.ttl, baseline: baseline, hook: hook))
    }
}
