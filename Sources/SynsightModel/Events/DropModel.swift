import SynsightBase
/// Handshake segments the kernel dropped for a reason other than a firewall
/// verdict, a missing socket or a full queue (bpf/drops.bpf.h), in Swift
/// terms. The kernel's reason is a number of the running kernel's
/// `enum skb_drop_reason`; `DropReasonNames` names it.

/// A handshake segment freed by kfree_skb: a SYN or SYN-ACK, the
/// handshake's final ACK, a RST answering a SYN, or an ICMP error quoting a
/// SYN. `local` is the packet's destination, `remote` its source (as the ABI
/// sends it); for an ICMP error, the quoted SYN's (local = the server).
public struct PacketDrop: Sendable, Hashable {
    public var ts: UInt64
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint
    public var netns: UInt32
    /// The kernel's `enum skb_drop_reason` value (subsystem in bits 16..31 since 6.4).
    public var reasonCode: UInt32
    /// The kernel address that freed the packet (kfree_skb's `location`).
    public var location: UInt64
    public var ifindex: UInt32
    /// skb->dev->name at the drop; empty without a device. Untrusted (escaped on output).
    public var ifname: String
    public var tcpFlags: UInt8
    public var hook: FirewallHook
    /// skb->sk was set: the packet was generated on this host.
    public var hasSocket: Bool
    /// The local connect() caller, found by its socket or by 4-tuple.
    public var client: TaskInfo?
    /// An ICMP destination unreachable quoting the SYN (`tcpFlags` are the SYN's): its code.
    public var icmpCode: UInt8?
    /// The attempt's client ISN, as `FirewallDrop.isn`.
    public var isn: UInt32

    public init(ts: UInt64, family: AddressFamily, local: Endpoint, remote: Endpoint, netns: UInt32,
                reasonCode: UInt32, location: UInt64 = 0, ifindex: UInt32 = 0, ifname: String = "",
                tcpFlags: UInt8 = 0x02, hook: FirewallHook = .prerouting, hasSocket: Bool = false,
                client: TaskInfo? = nil, icmpCode: UInt8? = nil, isn: UInt32 = 0) {
        self.ts = ts
        self.family = family
        self.local = local
        self.remote = remote
        self.netns = netns
        self.reasonCode = reasonCode
        self.location = location
        self.ifindex = ifindex
        self.ifname = ifname
        self.tcpFlags = tcpFlags
        self.hook = hook
        self.hasSocket = hasSocket
        self.client = client
        self.icmpCode = icmpCode
        self.isn = isn
    }

    public var isSynAck: Bool { icmpCode == nil && tcpFlags & 0x12 == 0x12 }
    /// Which handshake segment this is.
    public var kind: HandshakeSegment { HandshakeSegment(tcpFlags: tcpFlags, icmp: icmpCode != nil) ?? .syn }
    /// The server end (a SYN's, ACK's or ICMP's quoted destination, a
    /// SYN-ACK's or RST's source) and the client end.
    public var server: Endpoint { kind.fromService ? remote : local }
    public var clientEnd: Endpoint { kind.fromService ? local : remote }
    public var segment: String { kind.text }

    /// Which way the packet was going on this host when it was dropped.
    public var direction: String {
        if hasSocket { return "egress" }
        switch hook {
        case .forward: return "forward"
        case .output, .postrouting: return "egress"
        default: return "ingress"
        }
    }
}

/// The handshake segments a drop record names (evidence `segment`).
public enum HandshakeSegment: String, Sendable, Hashable, CaseIterable {
    case syn
    case synAck = "syn_ack"
    /// The handshake's final ACK (client to server; an ACK without SYN/RST/FIN or payload).
    case ack
    /// A RST|ACK answering a SYN (a refusal).
    case rst
    /// An ICMP destination unreachable answering a SYN.
    case icmp

    /// From a segment's TCP flags (an ICMP's: the quoted SYN's); nil: not a handshake segment's flags.
    public init?(tcpFlags f: UInt8, icmp: Bool = false) {
        if icmp { self = .icmp; return }
        switch f & 0x17 {
        case 0x02: self = .syn
        case 0x12: self = .synAck
        case 0x10: self = .ack
        case 0x14: self = .rst
        default: return nil
        }
    }

    /// Sent by the service's side (a SYN-ACK, a RST): its destination is the client.
    public var fromService: Bool { self == .synAck || self == .rst }
    /// Answers the client's SYN with a refusal (the client would fail fast).
    public var isRefusal: Bool { self == .rst || self == .icmp }
    /// What the drop does to the connection, for the hint; nil for a SYN or
    /// SYN-ACK (the client times out, as every drop's hint already says).
    public var consequence: String? {
        switch self {
        case .syn, .synAck: return nil
        case .ack:
            return "the client believes it is connected, while the server keeps the request in its SYN queue and "
                + "retransmits the SYN-ACK; the client's first data is dropped or reset, or the server gives up on the request"
        case .rst, .icmp:
            return "the client never learns it was refused: it retransmits its SYN until connect() times out, "
                + "instead of failing at once"
        }
    }

    /// For people: "SYN", "SYN-ACK", "handshake's final ACK", ...
    public var text: String {
        switch self {
        case .syn: return "SYN"
        case .synAck: return "SYN-ACK"
        case .ack: return "handshake's final ACK"
        case .rst: return "RST answering the SYN"
        case .icmp: return "ICMP error answering the SYN"
        }
    }
}

/// A drop reason as this kernel names it.
public struct DropReasonName: Sendable, Hashable {
    /// Normalised: `SKB_DROP_REASON_IP_RPFILTER` -> `ip_rpfilter`; a
    /// subsystem's reason is `<subsystem>:<name>`; `unknown` when the kernel's
    /// BTF has no name for the value.
    public var name: String
    public var code: UInt32
    /// The 6.4+ subsystem (bits 16..31), by name (`openvswitch`), nil for core reasons.
    public var subsystem: String?
    public var known: Bool
}

/// The running kernel's drop-reason names, read from its BTF at start-up
/// (SynsightKernel.KernelDropReasons); built from plain (name, value) lists
/// so tests can give a synthetic kernel.
public struct DropReasonNames: Sendable {
    var core: [UInt32: String] = [:]
    var subsystems: [UInt32: String] = [:]
    package var subsystemReasons: [UInt32: String] = [:]

    /// `core`: `enum skb_drop_reason`; `subsystems`: `enum
    /// skb_drop_reason_subsys`; `subsystemReasons`: the subsystems' own enums
    /// (e.g. `enum ovs_drop_reason`), full values (subsystem << 16 | n).
    public init(core: [(String, Int64)] = [], subsystems: [(String, Int64)] = [],
                subsystemReasons: [(String, Int64)] = []) {
        for (n, v) in core where v >= 0 && v <= Int64(UInt32.max) {
            let name = Self.normalize(n, prefixes: ["SKB_DROP_REASON_", "SKB_"])
            // Markers, not reasons: the enum's bound and the subsystem mask.
            if name == "max" || name == "subsys_mask" { continue }
            self.core[UInt32(v)] = name
        }
        for (n, v) in subsystems where v > 0 && v < 0x10000 {
            let name = Self.normalize(n, prefixes: ["SKB_DROP_REASON_SUBSYS_"])
            if name == "num" { continue }
            self.subsystems[UInt32(v)] = name
        }
        // A subsystem enum's names share a prefix (OVS_DROP_, RX_DROP_U_): drop it.
        let bySub = Dictionary(grouping: subsystemReasons.filter { $0.1 > 0xFFFF && $0.1 <= Int64(UInt32.max) }) { $0.1 >> 16 }
        for (_, all) in bySub {
            // The subsystem's base value (__OVS_DROP_REASON = subsys << 16) is a marker.
            let list = all.filter { $0.1 & 0xFFFF != 0 }
            let prefix = Self.commonPrefix(list.map(\.0))
            for (n, v) in list {
                self.subsystemReasons[UInt32(v)] = Self.normalize(n, prefixes: [prefix])
            }
        }
    }

    /// Named values of the core enum (markers excluded).
    public var count: Int { core.count }
    public var subsystemCount: Int { subsystems.count }
    /// The 6.4+ subsystems by name, in id order.
    public var subsystemNames: [String] { subsystems.sorted { $0.key < $1.key }.map(\.value) }
    /// Reasons named by the subsystems' own enums (their modules loaded).
    public var subsystemReasonCount: Int { subsystemReasons.count }
    public var isEmpty: Bool { core.isEmpty }

    public func name(_ code: UInt32) -> DropReasonName {
        let sub = code >> 16
        if sub == 0 {
            if let n = core[code] { return DropReasonName(name: n, code: code, subsystem: nil, known: true) }
            return DropReasonName(name: "unknown", code: code, subsystem: nil, known: false)
        }
        let subName = subsystems[sub] ?? "subsystem_\(sub)"
        if let n = subsystemReasons[code] {
            return DropReasonName(name: "\(subName):\(n)", code: code, subsystem: subName, known: true)
        }
        return DropReasonName(name: "\(subName):unknown", code: code, subsystem: subName, known: false)
    }

    static func normalize(_ kernelName: String, prefixes: [String]) -> String {
        var s = Substring(kernelName)
        for p in prefixes where !p.isEmpty && s.hasPrefix(p) {
            s = s.dropFirst(p.count)
            break
        }
        return s.lowercased()
    }

    /// The longest prefix ending in "_" shared by all names ("" for one name).
    static func commonPrefix(_ names: [String]) -> String {
        guard names.count > 1, var prefix = names.first.map(Array.init) else { return "" }
        for n in names.dropFirst() {
            let a = Array(n)
            var i = 0
            while i < prefix.count, i < a.count, prefix[i] == a[i] { i += 1 }
            prefix = Array(prefix[0..<i])
        }
        guard let last = prefix.lastIndex(of: "_") else { return "" }
        return String(prefix[...last])
    }
}

/// Kernel addresses to symbols (`tcp_v4_rcv+0x3a1`), for drop locations.
public protocol KernelSymbolizer {
    /// nil when the address is not in the table (or addresses are hidden).
    func symbolize(_ address: UInt64) -> (name: String, offset: UInt64)?
}
