import SynsightBase
/// The rtnetlink exchange of `ip route get`: one RTM_GETROUTE request, one
/// RTM_NEWROUTE answer (or an NLMSG_ERROR with the lookup's errno). Request
/// building and answer parsing, pure bytes in and out, tested from captured
/// answers without a kernel; the socket lives in SynsightKernel
/// (RouteReader). Written by hand like TCFilterDump and SockDiag: one request
/// and a handful of attributes of a stable uapi (include/uapi/linux/
/// rtnetlink.h), where libmnl or a netlink package would be a dependency (and
/// a C shim) for forty lines.
public enum RouteGet {
    static let rtmNewRoute: UInt16 = 24               // RTM_NEWROUTE
    static let rtmGetRoute: UInt16 = 26               // RTM_GETROUTE
    static let nlmsgError: UInt16 = 2
    static let flagsRequest: UInt16 = 0x0001          // NLM_F_REQUEST
    static let headerSize = 16                        // struct nlmsghdr
    static let rtmsgSize = 12                         // struct rtmsg
    /// RTM_F_LOOKUP_TABLE: the answer names the table the lookup matched in.
    static let flagLookupTable: UInt32 = 0x1000

    /// Attributes (enum rtattr_type_t).
    static let rtaDst: UInt16 = 1
    static let rtaSrc: UInt16 = 2
    static let rtaIIF: UInt16 = 3
    static let rtaOIF: UInt16 = 4
    static let rtaGateway: UInt16 = 5
    static let rtaPrefSrc: UInt16 = 7
    static let rtaTable: UInt16 = 15
    static let rtaMark: UInt16 = 16
    static let rtaUID: UInt16 = 25
    static let rtaIPProto: UInt16 = 27
    static let rtaSport: UInt16 = 28
    static let rtaDport: UInt16 = 29
    static let ipprotoTCP: UInt8 = 6

    static let afInet: UInt8 = 2
    static let afInet6: UInt8 = 10

    /// One lookup: an output lookup (what a local socket sending to `dst`
    /// gets) without `iif`, an input lookup (a packet arriving on `iif`, as
    /// forwarding decides it) with it. An output lookup for a socket also
    /// carries the socket's keys, as its connect() passed them: the device
    /// it is bound to (`oif`), its mark, its owner (without `uid` the
    /// kernel looks up as the asking process: root), and the TCP ports
    /// (policy rules can match `ipproto`, `sport`, `dport`).
    public struct Request: Sendable, Hashable {
        public var family: AddressFamily
        public var dst: IPAddress
        public var src: IPAddress?
        public var iif: UInt32?
        public var oif: UInt32?
        public var mark: UInt32?
        public var uid: UInt32?
        /// A TCP lookup to this port (and from `tcpSport` when the socket
        /// has one): what connect() asks.
        public var tcpDport: UInt16?
        public var tcpSport: UInt16?

        public init(family: AddressFamily, dst: IPAddress, src: IPAddress? = nil, iif: UInt32? = nil,
                    oif: UInt32? = nil, mark: UInt32? = nil, uid: UInt32? = nil) {
            self.family = family
            self.dst = dst
            self.src = src
            self.iif = iif
            self.oif = oif
            self.mark = mark
            self.uid = uid
        }
    }

    /// The route the kernel chose (rtmsg and its attributes).
    public struct Route: Sendable, Hashable {
        /// enum rtm_type value (1 unicast, 2 local, 6 blackhole, 7 unreachable, 8 prohibit, ...).
        public var type: UInt8
        public var table: UInt32
        public var oif: UInt32?
        public var gateway: IPAddress?
        public var prefSrc: IPAddress?

        public init(type: UInt8, table: UInt32, oif: UInt32? = nil, gateway: IPAddress? = nil, prefSrc: IPAddress? = nil) {
            self.type = type
            self.table = table
            self.oif = oif
            self.gateway = gateway
            self.prefSrc = prefSrc
        }

        /// The type's name as `ip route` prints it.
        public var typeName: String {
            let names: [UInt8: String] = [1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
                                          6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"]
            return names[type] ?? "type \(type)"
        }
    }

    public enum Answer: Sendable, Hashable {
        case route(Route)
        /// The lookup failed with this errno (positive): ENETUNREACH no
        /// route, EHOSTUNREACH an unreachable route, EACCES a prohibit route,
        /// EINVAL a blackhole route or a source the kernel refuses (martian,
        /// or refused by rp_filter in an input lookup).
        case failed(Int32)
    }

    public static func request(_ r: Request, seq: UInt32) -> [UInt8] {
        var attrs: [UInt8] = []
        func u16(_ v: UInt16, _ out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u32(_ v: UInt32, _ out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func attr(_ type: UInt16, _ payload: [UInt8]) {
            u16(UInt16(4 + payload.count), &attrs)
            u16(type, &attrs)
            attrs += payload
            while attrs.count % 4 != 0 { attrs.append(0) }
        }
        let v4 = r.family == .ipv4
        attr(rtaDst, addressBytes(r.dst, v4: v4))
        if let src = r.src { attr(rtaSrc, addressBytes(src, v4: v4)) }
        func attr32(_ type: UInt16, _ v: UInt32?) {
            guard let v else { return }
            var b: [UInt8] = []
            u32(v, &b)
            attr(type, b)
        }
        attr32(rtaIIF, r.iif)
        attr32(rtaOIF, r.oif)
        attr32(rtaMark, r.mark)
        attr32(rtaUID, r.uid)
        if let dport = r.tcpDport {
            attr(rtaIPProto, [ipprotoTCP])
            if let sport = r.tcpSport, sport != 0 { attr(rtaSport, [UInt8(sport >> 8), UInt8(sport & 0xff)]) }
            attr(rtaDport, [UInt8(dport >> 8), UInt8(dport & 0xff)])
        }
        var out: [UInt8] = []
        u32(UInt32(headerSize + rtmsgSize + attrs.count), &out)
        u16(rtmGetRoute, &out)
        u16(flagsRequest, &out)
        u32(seq, &out)
        u32(0, &out)
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
        let bits: UInt8 = v4 ? 32 : 128
        out += [v4 ? afInet : afInet6, bits, r.src == nil ? 0 : bits, 0, 0, 0, 0, 0]
        u32(flagLookupTable, &out)
        return out + attrs
    }

    /// Parses one recv(): the answer to request `seq`, or nil when the
    /// buffer holds no message of it (read again).
    public static func parse(_ buf: UnsafeRawBufferPointer, seq: UInt32) -> Answer? {
        var off = 0
        while off + headerSize <= buf.count {
            let len = Int(u32(buf, off))
            let type = u16(buf, off + 4)
            guard len >= headerSize, off + len <= buf.count else { return .failed(71) }  // EPROTO
            if u32(buf, off + 8) == seq {
                switch type {
                case nlmsgError:
                    let e = off + headerSize + 4 <= buf.count ? Int32(bitPattern: u32(buf, off + headerSize)) : -71
                    return .failed(e == 0 ? 71 : -e)
                case rtmNewRoute where len >= headerSize + rtmsgSize:
                    return .route(route(buf, at: off + headerSize, end: off + len))
                default: break
                }
            }
            off += (len + 3) & ~3
        }
        return nil
    }

    static func route(_ buf: UnsafeRawBufferPointer, at start: Int, end: Int) -> Route {
        let v4 = buf[start] == afInet
        var r = Route(type: buf[start + 7], table: UInt32(buf[start + 4]))
        for (type, range) in TCFilterDump.attributes(buf, start + rtmsgSize, end) {
            switch type {
            case rtaOIF where range.count >= 4: r.oif = u32(buf, range.lowerBound)
            case rtaTable where range.count >= 4: r.table = u32(buf, range.lowerBound)
            case rtaGateway: r.gateway = address(buf, range, v4: v4)
            case rtaPrefSrc: r.prefSrc = address(buf, range, v4: v4)
            default: break
            }
        }
        return r
    }

    static func address(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>, v4: Bool) -> IPAddress? {
        if v4, r.count >= 4 {
            return IPAddress(v4: buf[r.lowerBound], buf[r.lowerBound + 1], buf[r.lowerBound + 2], buf[r.lowerBound + 3])
        }
        if !v4, r.count >= 16 { return IPAddress(bytes: Array(buf[r.lowerBound..<(r.lowerBound + 16)])) }
        return nil
    }

    static func addressBytes(_ a: IPAddress, v4: Bool) -> [UInt8] {
        var b: [UInt8] = []
        withUnsafeBytes(of: a.high.bigEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: a.low.bigEndian) { b.append(contentsOf: $0) }
        return v4 ? Array(b[12..<16]) : b
    }

    static func u16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { TCFilterDump.u16(b, o) }
    static func u32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 { TCFilterDump.u32(b, o) }
}
