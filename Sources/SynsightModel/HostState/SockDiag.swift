import SynsightBase
/// The inet_diag (sock_diag netlink) messages `explain` uses to list a
/// port's sockets: request building and response parsing, pure bytes in and
/// out so both are tested without a kernel. The socket itself lives in
/// SynsightKernel. Layouts are from include/uapi/linux/inet_diag.h and
/// netlink.h; they are uapi (never change), and Swift's Glibc does not
/// import them, hence the constants here.
///
/// Why sock_diag rather than /proc/net/tcp: for a LISTEN socket it gives the
/// accept-queue length *and* the listen() backlog (idiag_rqueue/wqueue;
/// /proc only has the former), IPV6_V6ONLY (INET_DIAG_SKV6ONLY; /proc has
/// nothing), the listener's drop counter (SK_MEMINFO_DROPS), and the request
/// sockets of the SYN queue (state TCP_NEW_SYN_RECV).
public enum SockDiag {
    public static let netlinkSockDiag: Int32 = 4      // NETLINK_SOCK_DIAG
    static let sockDiagByFamily: UInt16 = 20          // SOCK_DIAG_BY_FAMILY
    static let nlmsgError: UInt16 = 2                 // NLMSG_ERROR
    static let nlmsgDone: UInt16 = 3                  // NLMSG_DONE
    static let flagsDumpRequest: UInt16 = 0x0001 | 0x0300  // NLM_F_REQUEST | NLM_F_DUMP
    static let headerSize = 16                        // struct nlmsghdr
    static let requestSize = 56                       // struct inet_diag_req_v2
    static let messageSize = 72                       // struct inet_diag_msg

    /// Kernel TCP states (include/net/tcp_states.h).
    public static let stateEstablished: UInt8 = 1
    public static let stateSynSent: UInt8 = 2
    public static let stateSynRecv: UInt8 = 3
    public static let stateTimeWait: UInt8 = 6
    public static let stateListen: UInt8 = 10
    public static let stateNewSynRecv: UInt8 = 12

    /// Attribute types (enum in inet_diag.h).
    static let attrSkMemInfo: UInt16 = 7              // INET_DIAG_SKMEMINFO: u32[SK_MEMINFO_VARS]
    static let attrSkV6Only: UInt16 = 11              // INET_DIAG_SKV6ONLY: u8
    static let skMemInfoDrops = 8                     // SK_MEMINFO_DROPS

    /// INET_DIAG_REQ_BYTECODE, and the filter op comparing the remote port (INET_DIAG_BC_D_EQ, 4.16+).
    static let attrReqBytecode: UInt16 = 1
    static let bcDestinationEquals: UInt8 = 12
    static let bytecodeAttrSize = 4 + 8                // struct nlattr + two struct inet_diag_bc_op

    /// A dump request for TCP sockets of `family` in the given states (a
    /// bit per TCP state), asking for SKMEMINFO (the drop counter). With
    /// `remotePort`, the kernel returns only sockets connected (or
    /// connecting) to that port: a filter program of one comparison, so a
    /// busy host's established sockets are not all copied out.
    public static func dumpRequest(family: AddressFamily, states: [UInt8], seq: UInt32, remotePort: UInt16? = nil) -> [UInt8] {
        var out: [UInt8] = []
        let size = headerSize + requestSize + (remotePort == nil ? 0 : bytecodeAttrSize)
        out.reserveCapacity(size)
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        // struct nlmsghdr (host byte order; every Linux target Swift runs on is little-endian)
        u32(UInt32(size))
        u16(sockDiagByFamily)
        u16(flagsDumpRequest)
        u32(seq)
        u32(0)
        // struct inet_diag_req_v2
        out.append(family == .ipv4 ? 2 : 10)          // sdiag_family
        out.append(6)                                  // sdiag_protocol: IPPROTO_TCP
        out.append(UInt8(1 << (attrSkMemInfo - 1)))    // idiag_ext
        out.append(0)                                  // pad
        u32(states.reduce(UInt32(0)) { $0 | (1 << UInt32($1)) })  // idiag_states
        out.append(contentsOf: [UInt8](repeating: 0, count: 48))  // struct inet_diag_sockid: no filter
        if let remotePort {
            u16(UInt16(bytecodeAttrSize))              // struct nlattr: nla_len, nla_type
            u16(attrReqBytecode)
            // {code, yes, no}: a match jumps to the program's end (8 bytes: accept),
            // a mismatch past it (12: reject); the operand's port rides in `no`.
            out.append(bcDestinationEquals)
            out.append(8)
            u16(12)
            out.append(0)
            out.append(0)
            u16(remotePort)
        }
        return out
    }

    /// One socket of a dump.
    public struct Socket: Sendable, Hashable {
        public var family: AddressFamily
        /// TCP state; request sockets (SYN queue) are reported as SYN_RECV.
        public var state: UInt8
        public var local: Endpoint
        public var remote: Endpoint
        /// LISTEN: accept-queue length (sk_ack_backlog) and the backlog (sk_max_ack_backlog).
        public var rqueue: UInt32
        public var wqueue: UInt32
        public var uid: UInt32
        /// 0 for request sockets.
        public var inode: UInt64
        public var ipv6Only: Bool?
        public var drops: UInt32?
        /// idiag_if: the device the socket is bound to (SO_BINDTODEVICE),
        /// nameless until named in its namespace (PortState.portSockets).
        public var boundDevice: NetDevice?
        /// idiag_retrans: a connecting socket's SYN retransmissions so far
        /// (icsk_retransmits while its retransmission timer runs).
        public var retransmits: UInt8 = 0

        public init(family: AddressFamily, state: UInt8, local: Endpoint, remote: Endpoint, rqueue: UInt32 = 0,
                    wqueue: UInt32 = 0, uid: UInt32 = 0, inode: UInt64, ipv6Only: Bool? = nil, drops: UInt32? = nil) {
            self.family = family
            self.state = state
            self.local = local
            self.remote = remote
            self.rqueue = rqueue
            self.wqueue = wqueue
            self.uid = uid
            self.inode = inode
            self.ipv6Only = ipv6Only
            self.drops = drops
        }
    }

    public enum ParseOutcome: Sendable, Hashable {
        /// More datagrams follow.
        case more
        /// NLMSG_DONE seen: the dump is complete.
        case done
        /// NLMSG_ERROR with this (positive) errno.
        case failed(Int32)
    }

    /// Parses one received datagram (several netlink messages), appending
    /// its sockets to `into`. Malformed messages end the datagram; their
    /// bytes never index out of range.
    public static func parse(_ bytes: [UInt8], into: inout [Socket]) -> ParseOutcome {
        bytes.withUnsafeBytes { parse($0, into: &into) }
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, into: inout [Socket]) -> ParseOutcome {
        var off = 0
        while off + headerSize <= bytes.count {
            let len = Int(u32(bytes, off))
            let type = u16(bytes, off + 4)
            guard len >= headerSize, off + len <= bytes.count else { return .more }
            switch type {
            case nlmsgDone:
                return .done
            case nlmsgError:
                let code = len >= headerSize + 4 ? Int32(bitPattern: u32(bytes, off + headerSize)) : -1
                return code == 0 ? .done : .failed(-code)
            case sockDiagByFamily:
                if let s = socket(bytes, from: off + headerSize, end: off + len) { into.append(s) }
            default:
                break
            }
            off += (len + 3) & ~3
        }
        return .more
    }

    package static func socket(_ b: UnsafeRawBufferPointer, from start: Int, end: Int) -> Socket? {
        guard end - start >= messageSize, let family = AddressFamily(kernel: UInt16(b[start])) else { return nil }
        let state = b[start + 1]
        // struct inet_diag_sockid: sport, dport (big-endian), src[16], dst[16], if, cookie[2]
        let id = start + 4
        let sport = UInt16(b[id]) << 8 | UInt16(b[id + 1])
        let dport = UInt16(b[id + 2]) << 8 | UInt16(b[id + 3])
        func addr(_ at: Int) -> IPAddress {
            family == .ipv4 ? IPAddress(v4: b[at], b[at + 1], b[at + 2], b[at + 3]) : IPAddress(bytes: Array(b[at..<(at + 16)]))
        }
        let local = Endpoint(addr: addr(id + 4), port: sport)
        let remote = Endpoint(addr: addr(id + 20), port: dport)
        let tail = start + 52  // idiag_expires, rqueue, wqueue, uid, inode
        var s = Socket(family: family, state: state, local: local, remote: remote,
                       rqueue: u32(b, tail + 4), wqueue: u32(b, tail + 8), uid: u32(b, tail + 12),
                       inode: UInt64(u32(b, tail + 16)))
        let ifindex = u32(b, id + 36)
        if ifindex != 0 { s.boundDevice = NetDevice(ifindex: ifindex, name: nil) }
        s.retransmits = b[start + 3]
        // Attributes (struct rtattr: len, type; 4-byte aligned).
        var a = start + messageSize
        while a + 4 <= end {
            let alen = Int(u16(b, a)), atype = u16(b, a + 2)
            guard alen >= 4, a + alen <= end else { break }
            let payload = a + 4, plen = alen - 4
            if atype == attrSkV6Only, plen >= 1 {
                s.ipv6Only = b[payload] != 0
            } else if atype == attrSkMemInfo, plen >= 4 * (skMemInfoDrops + 1) {
                s.drops = u32(b, payload + 4 * skMemInfoDrops)
            }
            a += (alen + 3) & ~3
        }
        return s
    }

    static func u16(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
}

/// Small /proc text formats `explain` reads: /proc/<pid>/limits and
/// /proc/<pid>/net/netstat.
public enum ProcText {
    /// RLIMIT_NOFILE from /proc/<pid>/limits ("Max open files  1024  524288  files").
    /// nil values mean "unlimited".
    public static func openFileLimits(_ text: String) -> (soft: UInt64?, hard: UInt64?)? {
        for line in text.split(separator: "\n") where line.hasPrefix("Max open files") {
            let f = line.dropFirst("Max open files".count).split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 2 else { return nil }
            func value(_ s: Substring) -> UInt64?? { s == "unlimited" ? .some(nil) : UInt64(s).map { .some($0) } }
            guard let soft = value(f[0]), let hard = value(f[1]) else { return nil }
            return (soft, hard)
        }
        return nil
    }

    /// The counters of one group ("TcpExt") of /proc/net/netstat: a header
    /// line of names followed by a line of values with the same prefix.
    public static func netstat(_ text: String, group: String = "TcpExt") -> [String: UInt64] {
        let prefix = group + ":"
        let lines = text.split(separator: "\n").filter { $0.hasPrefix(prefix) }
        guard lines.count >= 2 else { return [:] }
        let names = lines[0].split(separator: " ").dropFirst()
        let values = lines[1].split(separator: " ").dropFirst()
        var out: [String: UInt64] = [:]
        for (n, v) in zip(names, values) {
            if let v = UInt64(v) { out[String(n)] = v }
        }
        return out
    }
}
