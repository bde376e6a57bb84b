import SynsightBase
import SynsightModel
import SynsightNftables
/// Handshake segments dropped by the kernel for any reason the other areas
/// do not own (`drop` / `packet_dropped`): the kernel's reason, named from
/// the running kernel's BTF, decides the cause (DropCause); the interface,
/// namespace, location and the processes on either side are the evidence.
/// The segments: a SYN, a SYN-ACK, the handshake's final ACK, and the RST or
/// ICMP error answering a SYN (BPF sends the last three only with a reason
/// of `DropCause.answerFailures`). All are shown from the SYN's view: `local`
/// is the server end, `remote` the client.
///
/// A dropped SYN is retransmitted (1 s, 3 s, 7 s, ...): one record per
/// connection attempt and segment, the first drop; the local client's later
/// ETIMEDOUT is the same failure and is not reported again. An ACK dropped
/// by a policy that drops the whole connection is reported once per 4-tuple.

/// The engine's drop state (one stored property of `AttributionEngine`).
public struct DropState {
    /// This kernel's reason names (empty: every reason is reported by number).
    public var reasons = DropReasonNames()
    /// Drop locations to symbols; nil: locations stay addresses.
    public var symbols: (any KernelSymbolizer)?
    /// The tc/tcx/cgroup programs at a BPF drop's attach points (DropPrograms.swift); nil: not looked up.
    public var programs: (any BPFProgramSource)?
    /// The route state of rp_filter and no-route drops (DropRoutes.swift); nil: not read.
    public var routes: (any DropRouteSource)?
    /// Attempts already reported, by 4-tuple and segment.
    var decided = ReportedAttempts<DecidedKey>()

    /// A SYN and the RST answering it (or the ACK after its SYN-ACK) are
    /// different drops of one attempt: each is reported once.
    struct DecidedKey: Hashable {
        var key: JoinKey
        var segment: HandshakeSegment
    }
    /// First drops of a family that healthy handshakes also produce now and
    /// then, waiting for a second drop of the same attempt.
    var unconfirmed: [JoinKey: ReportedAttempts<JoinKey>.Entry] = [:]

    /// TCP's own rejections (`tcp_state`) also hit a healthy handshake: a
    /// duplicate SYN-ACK reaching a client already ESTABLISHED, a
    /// retransmitted SYN crossing the handshake's ACK. A failing attempt
    /// retransmits and is dropped again: these are reported at the second drop.
    static let confirmedByRepeat: Set<DropCause> = [.tcpState]


    public init(reasons: DropReasonNames = DropReasonNames(), symbols: (any KernelSymbolizer)? = nil,
                programs: (any BPFProgramSource)? = nil, routes: (any DropRouteSource)? = nil) {
        self.reasons = reasons
        self.symbols = symbols
        self.programs = programs
        self.routes = routes
    }

    /// Drops that are not a failure of the connection attempt although
    /// kfree_skb reports them, each with why:
    /// - a retransmitted SYN reaching a server's pending request socket is
    ///   freed by tcp_v{4,6}_rcv with the default NOT_SPECIFIED after the
    ///   SYN-ACK is sent again (tcp_check_req), on every kernel with reasons;
    /// - a frame for another host's MAC address (OTHERHOST) or a unicast
    ///   packet in an L2 multicast/broadcast frame: every port of a bridge
    ///   that floods a frame drops its copy, the right one takes it.
    static let benign: [(reason: String, functions: Set<String>?, synOnly: Bool)] = [
        ("not_specified", ["tcp_v4_rcv", "tcp_v6_rcv"], true),
        ("otherhost", nil, false),
        ("unicast_in_l2_multicast", nil, false),
    ]

    func isBenign(_ d: PacketDrop, reason: DropReasonName, function: String?) -> Bool {
        Self.benign.contains { b in
            guard b.reason == reason.name, !b.synOnly || d.kind == .syn else { return false }
            guard let functions = b.functions else { return true }
            return function.map(functions.contains) ?? false
        }
    }
}

extension AttributionEngine {
    mutating func ingestDrop(_ d: PacketDrop) -> [Record] {
        let reason = drops.reasons.name(d.reasonCode)
        let location = drops.symbols?.symbolize(d.location)
        if drops.isBenign(d, reason: reason, function: location?.name) { return [] }
        // A local client's SYN that found no neighbour: its connect() fails
        // with EHOSTUNREACH, reported as connect_failure/host_unreachable.
        if d.hasSocket, DropCause.of(reason) == .neighbourFailed { return [] }
        let key = JoinKey(client: d.clientEnd, server: d.server)
        let dedupKey = DropState.DecidedKey(key: key, segment: d.kind)
        if drops.decided.contains(dedupKey, isn: d.isn, at: d.ts) { return [] }
        var repeated = false
        if DropState.confirmedByRepeat.contains(DropCause.of(reason)) {
            // Confirmed by a retransmission: the same attempt dropped again.
            guard let first = drops.unconfirmed.removeValue(forKey: key), ReportedAttempts<JoinKey>.sameAttempt(first.isn, d.isn),
                  first.ts &+ ReportedAttempts<JoinKey>.ttl > d.ts else {
                if drops.unconfirmed.count >= ReportedAttempts<JoinKey>.defaultCapacity { drops.unconfirmed.removeAll() }
                drops.unconfirmed[key] = .init(ts: d.ts, isn: d.isn)
                return []
            }
            repeated = true
        }
        drops.decided.insert(dedupKey, isn: d.isn, ts: d.ts, now: d.ts)
        var record = dropRecord(d, reason: reason, location: location)
        if repeated, var ev = record.packetDropEvidence {
            ev.drops = 2
            record.evidence = ev.fields
        }
        return [record]
    }

    /// A local client's ETIMEDOUT (or the unreachable error an ICMP sent by
    /// the dropping router gave it) after its SYN was dropped on this host:
    /// already reported by the drop.
    func dropExplains(_ ce: ConnectError) -> Bool {
        guard [110, 113, 101].contains(ce.errno) else { return false }
        let key = JoinKey(client: ce.local, server: ce.remote)
        // The drops that leave a client waiting: its SYN, the SYN-ACK, the answer that would have refused it.
        return [HandshakeSegment.syn, .synAck, .rst, .icmp].contains { segment in
            drops.decided.reported(DropState.DecidedKey(key: key, segment: segment), before: ce.ts)
        }
    }

    func dropRecord(_ d: PacketDrop, reason: DropReasonName, location: (name: String, offset: UInt64)?) -> Record {
        let cause = DropCause.of(reason, family: d.family, function: location?.name)
        let port = d.server.port
        var record = Record(ts: clock.epoch(d.ts), kind: .drop, reason: .packetDropped, cause: .packetDropped(cause),
                            port: port, family: d.family, netns: d.netns, local: d.server, remote: d.clientEnd)
        if let c = d.client { record.client = processRef(c) }
        if let l = serverListener(port: port, netns: d.netns, family: d.family, server: d.server.addr,
                                  fromServer: d.kind.fromService, direction: d.direction) {
            record.process = l.process
        }
        var ev = PacketDropEvidence()
        ev.dropReason = reason.name
        ev.dropReasonCode = Int64(d.reasonCode)
        ev.dropReasonSubsystem = reason.subsystem
        ev.location = Self.locationText(location, address: d.location)
        ev.segment = d.kind.rawValue
        ev.icmp = d.icmpCode.map { .object([("type", .int(d.family == .ipv4 ? 3 : 1)), ("code", .int(Int64($0)))]) }
        ev.direction = d.direction
        ev.interface = d.ifname.isEmpty ? nil : d.ifname
        ev.ifindex = d.ifindex == 0 ? nil : d.ifindex
        ev.stackHook = d.hook.name
        ev.sysctl = cause.sysctl(family: d.family, interface: d.ifname)
        ev.attachPoint = DropCause.attachPoint(reason)
        let named = dropProgramEvidence(d, reason: reason, function: location?.name, record: record, into: &ev)
        let routed = dropRouteEvidence(d, cause: cause, port: port, into: &ev)
        ev.hook = "tp_btf/kfree_skb"
        record.evidence = ev.fields
        record.hint = named ?? routed ?? cause.hint(d, reason: reason, port: port)
        if let consequence = d.kind.consequence, let hint = record.hint {
            record.hint = "the \(d.segment) of \(d.clientEnd) was dropped (\(consequence)); " + hint
        }
        return record
    }

    /// A drop location as evidence: symbol+offset, else the address; nil without one.
    static func locationText(_ symbol: (name: String, offset: UInt64)?, address: UInt64) -> String? {
        if let symbol { return symbol.offset == 0 ? symbol.name : "\(symbol.name)+0x\(String(symbol.offset, radix: 16))" }
        return address == 0 ? nil : "0x" + String(address, radix: 16)
    }

    /// The listener at the handshake's server end, when that end is in the
    /// drop's namespace: a segment for the server that was arriving, or one
    /// the server sent that was leaving. A forwarded segment's server is
    /// elsewhere; so is, unless its address is loopback or one of the
    /// namespace's, the server of a SYN leaving or a SYN-ACK arriving (a
    /// local listener on the same port and a wildcard address is not it).
    func serverListener(port: UInt16, netns: UInt32, family: AddressFamily, server: IPAddress,
                        fromServer: Bool, direction: String) -> ListenerInfo? {
        if direction == "forward" { return nil }
        if fromServer == (direction == "ingress"),
           !server.isLoopback, resolver?.isLocalAddress(server, netns: netns) != true { return nil }
        return localListener(port: port, netns: netns, family: family, addr: server)
    }

    /// The listener of the handshake in the drop's namespace (a SYN's
    /// destination, a SYN-ACK's sender), if it is there.
    func localListener(port: UInt16, netns: UInt32, family: AddressFamily, addr: IPAddress) -> ListenerInfo? {
        (byPort[port] ?? []).compactMap { listeners[$0] }
            .filter { $0.netns == netns && $0.accepts(family: family, addr: addr) }
            .min { $0.socketInode < $1.socketInode }
    }
}
