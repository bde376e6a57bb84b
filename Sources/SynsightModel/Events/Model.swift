import SynsightBase
/// The event model: what the kernel reports, in Swift terms. Pure values, no
/// kernel access; built by `EventDecoder` from the records defined in
/// bpf/synsight_abi.h, or directly by tests.

public enum AddressFamily: String, Sendable, Hashable, Codable {
    case ipv4
    case ipv6

    /// From the kernel's AF_INET (2) / AF_INET6 (10).
    public init?(kernel value: UInt16) {
        switch value {
        case 2: self = .ipv4
        case 10: self = .ipv6
        default: return nil
        }
    }
}

/// A 16-byte address; IPv4 is held IPv4-mapped (::ffff:a.b.c.d) as the ABI sends it.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64  // bytes 0..7, big-endian
    public var low: UInt64   // bytes 8..15, big-endian

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "IPAddress needs 16 bytes")
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { l = l << 8 | UInt64(bytes[i]) }
        high = h
        low = l
    }

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// IPv4 from four octets, stored mapped.
    public init(v4 a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        high = 0
        low = 0x0000_FFFF_0000_0000 | UInt64(a) << 24 | UInt64(b) << 16 | UInt64(c) << 8 | UInt64(d)
    }

    public static let any6 = IPAddress(high: 0, low: 0)
    public static let any4 = IPAddress(v4: 0, 0, 0, 0)

    public var isV4Mapped: Bool { high == 0 && (low >> 32) == 0xFFFF }
    /// IPv6 link-local unicast (fe80::/10): meaningful only with an interface.
    public var isLinkLocalV6: Bool { high >> 54 == 0x3FA }
    public var isUnspecified: Bool { (high == 0 && low == 0) || (isV4Mapped && low & 0xFFFF_FFFF == 0) }
    public var isLoopback: Bool {
        if isV4Mapped { return (low >> 24) & 0xFF == 127 }
        return high == 0 && low == 1
    }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 { out[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i))) }
        for i in 0..<8 { out[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i))) }
        return out
    }

    /// IPv4-mapped addresses print as IPv4 (the JSON contract says so);
    /// IPv6 in RFC 5952 form (longest zero run compressed, lower case).
    public var description: String {
        if isV4Mapped {
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        }
        var groups = [UInt16](repeating: 0, count: 8)
        for i in 0..<4 { groups[i] = UInt16(truncatingIfNeeded: high >> (48 - 16 * UInt64(i))) }
        for i in 0..<4 { groups[4 + i] = UInt16(truncatingIfNeeded: low >> (48 - 16 * UInt64(i))) }
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        func hex(_ g: UInt16) -> String { String(g, radix: 16) }
        if bestStart < 0 { return groups.map(hex).joined(separator: ":") }
        let head = groups[0..<bestStart].map(hex).joined(separator: ":")
        let tail = groups[(bestStart + bestLen)...].map(hex).joined(separator: ":")
        return head + "::" + tail
    }
}

public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var addr: IPAddress
    public var port: UInt16

    public init(addr: IPAddress, port: UInt16) {
        self.addr = addr
        self.port = port
    }

    public var description: String {
        addr.isV4Mapped ? "\(addr):\(port)" : "[\(addr)]:\(port)"
    }
}

/// The current task of a process-context kernel event.
public struct TaskInfo: Hashable, Sendable {
    public var pid: UInt32
    public var tid: UInt32
    public var uid: UInt32
    public var cgroupID: UInt64
    /// The kernel's comm: up to 15 bytes, not necessarily UTF-8. Escaped on output.
    public var comm: String

    public init(pid: UInt32, tid: UInt32 = 0, uid: UInt32 = 0, cgroupID: UInt64 = 0, comm: String) {
        self.pid = pid
        self.tid = tid == 0 ? pid : tid
        self.uid = uid
        self.cgroupID = cgroupID
        self.comm = comm
    }
}

/// Which kernel hook reported a no-socket RST.
public enum ResetHook: UInt8, Sendable, CaseIterable {
    case tcpSendReset = 1
    case kfreeSkb = 2
    case fentry = 3
    case kprobe = 4

    public var name: String {
        switch self {
        case .tcpSendReset: return "tp_btf/tcp_send_reset"
        case .kfreeSkb: return "tp_btf/kfree_skb"
        case .fentry: return "fentry/tcp_v{4,6}_send_reset"
        case .kprobe: return "kprobe/tcp_v{4,6}_send_reset"
        }
    }
}

/// A SYN that matched no socket and was answered with RST. Softirq context:
/// carries no process. `local` is where the SYN was sent, `remote` its sender.
public struct NoSocketReset: Sendable, Hashable {
    public var ts: UInt64
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint
    public var netns: UInt32
    public var hook: ResetHook
    public var tcpFlags: UInt8
    /// Where the client sent the SYN before DNAT (conntrack's original
    /// destination), when it differs from `local`; nil without NAT.
    public var originalDestination: Endpoint?
    /// The SYN's sequence number: a retransmitted SYN, whose first RST was
    /// lost or dropped, repeats it (FirewallDrop.isn); 0: not known.
    public var isn: UInt32
    /// The device the SYN came in on (an L3 slave's own device when it came
    /// through a VRF) and that VRF; nil when not known (or, for the VRF, none).
    public var inDevice: NetDevice?
    public var inVRF: NetDevice?

    public init(ts: UInt64, family: AddressFamily, local: Endpoint, remote: Endpoint,
                netns: UInt32, hook: ResetHook = .tcpSendReset, tcpFlags: UInt8 = 0x02,
                originalDestination: Endpoint? = nil, isn: UInt32 = 0,
                inDevice: NetDevice? = nil, inVRF: NetDevice? = nil) {
        self.inDevice = inDevice
        self.inVRF = inVRF
        self.originalDestination = originalDestination
        self.isn = isn
        self.ts = ts
        self.family = family
        self.local = local
        self.remote = remote
        self.netns = netns
        self.hook = hook
        self.tcpFlags = tcpFlags
    }
}

/// A socket entering or leaving LISTEN, in the context of the task doing it.
public struct ListenerChange: Sendable, Hashable {
    public var ts: UInt64
    public var family: AddressFamily
    public var local: Endpoint
    public var task: TaskInfo
    public var socketInode: UInt64
    public var netns: UInt32
    public var ipv6Only: Bool
    /// sk_bound_dev_if (SO_BINDTODEVICE, `ip vrf exec`); nil: any device.
    public var boundDevice: NetDevice?

    public init(ts: UInt64, family: AddressFamily, local: Endpoint, task: TaskInfo,
                socketInode: UInt64, netns: UInt32, ipv6Only: Bool = false, boundDevice: NetDevice? = nil) {
        self.boundDevice = boundDevice
        self.ts = ts
        self.family = family
        self.local = local
        self.task = task
        self.socketInode = socketInode
        self.netns = netns
        self.ipv6Only = ipv6Only
    }
}

/// A process that had listened exited. `exitCode` is the kernel's
/// task->exit_code: status in bits 8..15, terminating signal in bits 0..6.
public struct ProcessExit: Sendable, Hashable {
    public var ts: UInt64
    public var task: TaskInfo
    public var exitCode: UInt32

    public init(ts: UInt64, task: TaskInfo, exitCode: UInt32) {
        self.ts = ts
        self.task = task
        self.exitCode = exitCode
    }

    public var signal: Int? { exitCode & 0x7F == 0 ? nil : Int(exitCode & 0x7F) }
    public var status: Int? { exitCode & 0x7F == 0 ? Int(exitCode >> 8 & 0xFF) : nil }
    public var coreDumped: Bool { exitCode & 0x80 != 0 }
}

/// A connecting socket left SYN_SENT with an error. The task was captured
/// at connect() time; `local` is the client end.
public struct ConnectError: Sendable, Hashable {
    public var ts: UInt64
    /// When connect() started; nil when it was not seen (with `task`).
    public var connectTs: UInt64?
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint
    /// nil when synsight did not see the connect(): it came before synsight
    /// started, or its connecting-socket entry was given up (more connect()s
    /// host-wide than the table holds) before a SYN retransmission kept a copy.
    public var task: TaskInfo?
    public var netns: UInt32
    /// Positive errno (111 ECONNREFUSED, 110 ETIMEDOUT, 113 EHOSTUNREACH, ...).
    public var errno: Int32
    /// TCP segments the socket received before the error; nil when not
    /// read. A connect() refused (ECONNREFUSED) with none was refused by an
    /// ICMP port unreachable, not by a reset: a firewall's reject.
    public var segmentsIn: UInt32?

    /// ECONNREFUSED by an ICMP error (no TCP segment ever arrived), not a reset.
    public var refusedByICMP: Bool { errno == 111 && segmentsIn == 0 }

    public init(ts: UInt64, connectTs: UInt64?, family: AddressFamily, local: Endpoint,
                remote: Endpoint, task: TaskInfo?, netns: UInt32, errno: Int32) {
        self.ts = ts
        self.connectTs = connectTs
        self.family = family
        self.local = local
        self.remote = remote
        self.task = task
        self.netns = netns
        self.errno = errno
    }

    /// "curl (pid 4410)", or what is known of a client whose connect() was not seen.
    public var clientLabel: String { task.map { "\($0.comm) (pid \($0.pid))" } ?? ConnectError.unseenClient }

    /// How a hint names a client whose connect() was not seen (evidence `client_seen: false` says why).
    public static let unseenClient = "an unseen client"

    /// Milliseconds from connect() to the error; nil when connect() was not seen.
    public var elapsedMs: Int64? {
        connectTs.map { ts >= $0 ? Int64((ts - $0) / 1_000_000) : 0 }
    }
}

public enum KernelEvent: Sendable, Hashable {
    case noSocketReset(NoSocketReset)
    case listen(ListenerChange)
    case listenClose(ListenerChange)
    case exit(ProcessExit)
    case connectError(ConnectError)
    case socketCall(SocketCallFailure)
    case listenOverflow(ListenOverflow)
    case acceptError(AcceptError)
    case firewallDrop(FirewallDrop)
    case firewallICMP(FirewallICMP)
    case synRetransmit(SynRetransmit)
    case packetDrop(PacketDrop)
    /// Where a timed-out connect()'s SYNs left (ConnectTimeout.swift).
    case connectTimeout(ConnectTimeoutRoute)
    /// A RST that refused a local connect(), with its TTL (ConnectReset.swift).
    case connectReset(ConnectReset)
    /// A connect() its application gave up on while unanswered (ConnectAbandoned.swift).
    case connectAbandoned(ConnectAbandoned)

    public var ts: UInt64 {
        switch self {
        case .noSocketReset(let e): return e.ts
        case .listen(let e), .listenClose(let e): return e.ts
        case .exit(let e): return e.ts
        case .connectError(let e): return e.ts
        case .socketCall(let e): return e.ts
        case .listenOverflow(let e): return e.ts
        case .acceptError(let e): return e.ts
        case .firewallDrop(let e): return e.ts
        case .firewallICMP(let e): return e.ts
        case .synRetransmit(let e): return e.ts
        case .packetDrop(let e): return e.ts
        case .connectTimeout(let e): return e.ts
        case .connectReset(let e): return e.ts
        case .connectAbandoned(let e): return e.attempt.ts
        }
    }
}
