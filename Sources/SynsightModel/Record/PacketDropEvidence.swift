import SynsightBase
/// The evidence of a `packet_dropped` record (`$defs/reason_packet_dropped`):
/// the kernel's drop reason and where, the packet, and what named the actor
/// (BPF programs, the route state, conntrack's table). DropAttribution.swift
/// and ConntrackFull.swift fill it.
public struct PacketDropEvidence: ReasonEvidence {
    public static let reasons: Set<Reason> = [.packetDropped]

    /// The kernel's reason, named from its BTF, and its number there.
    public var dropReason: String?
    public var dropReasonCode: Int64?
    public var dropReasonSubsystem: String?
    /// Where it was dropped (symbol+offset, or an address).
    public var location: String?
    /// `HandshakeSegment`: `syn`, `syn_ack`, `ack` (the handshake's final
    /// ACK), `rst` or `icmp` (the answer to a SYN).
    public var segment: String?
    /// The dropped ICMP error ({type, code}), for segment `icmp`.
    public var icmp: JSONValue?
    public var direction: String?
    public var interface: String?
    public var ifindex: UInt32?
    /// Where in the stack (`SkbWhere`).
    public var stackHook: String?
    /// conntrack_full: the netfilter hook, the packet's state, the table's use and size.
    public var chainHook: String?
    public var ctState: String?
    public var conntrackCount: Int64?
    public var conntrackMax: Int64?
    /// The sysctl that governs the cause.
    public var sysctl: String?
    public var attachPoint: String?
    /// bpf_program: the programs at the attach point (`DropPrograms.programJSON`).
    public var bpfPrograms: [JSONValue]?
    public var bpfProgramsUnavailable: String?
    /// rp_filter / no_route: the settings and lookups read in the namespace (DropRoutes.swift).
    public var rpFilter: JSONValue?
    public var routeBack: JSONValue?
    public var routeLookup: JSONValue?
    public var routeUnavailable: String?
    /// Dropped segments of this attempt (set from 2).
    public var drops: Int64?
    public var clientContext: String?
    public var hook: String?

    public init() {}

    public static let layout: [EvidenceField<PacketDropEvidence>] = [
        .string(.dropReason, \.dropReason), .int(.dropReasonCode, \.dropReasonCode),
        .string(.dropReasonSubsystem, \.dropReasonSubsystem), .string(.location, \.location),
        .string(.segment, \.segment), .value(.icmp, \.icmp), .string(.direction, \.direction), .string(.interface, \.interface),
        .int(.ifindex, \.ifindex), .string(.stackHook, \.stackHook), .string(.chainHook, \.chainHook),
        .string(.ctState, \.ctState), .int(.conntrackCount, \.conntrackCount), .int(.conntrackMax, \.conntrackMax),
        .string(.sysctl, \.sysctl), .string(.attachPoint, \.attachPoint), .array(.bpfPrograms, \.bpfPrograms),
        .string(.bpfProgramsUnavailable, \.bpfProgramsUnavailable), .value(.rpFilter, \.rpFilter),
        .value(.routeBack, \.routeBack), .value(.routeLookup, \.routeLookup),
        .string(.routeUnavailable, \.routeUnavailable), .int(.drops, \.drops),
        .string(.clientContext, \.clientContext), .string(.hook, \.hook),
    ]
}

extension Record {
    /// The typed evidence of a `packet_dropped` record; nil for any other reason.
    public var packetDropEvidence: PacketDropEvidence? { evidence(as: PacketDropEvidence.self) }
}
