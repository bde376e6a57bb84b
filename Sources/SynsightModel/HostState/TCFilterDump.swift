import SynsightBase
/// The rtnetlink messages that list an interface's tc filters (what `tc
/// filter show dev X ingress` asks): request building and response parsing,
/// pure bytes in and out, tested without a kernel. The socket lives in
/// SynsightKernel (BPFProgramReader). Written by hand, like SockDiag: one
/// request and a few attributes of a stable uapi (include/uapi/linux/
/// rtnetlink.h, pkt_sched.h, pkt_cls.h), where a netlink library would be a
/// dependency for twenty lines.
public enum TCFilterDump {
    public static let netlinkRoute: Int32 = 0         // NETLINK_ROUTE
    static let rtmNewTFilter: UInt16 = 44             // RTM_NEWTFILTER
    static let rtmGetTFilter: UInt16 = 46             // RTM_GETTFILTER
    static let nlmsgError: UInt16 = 2
    static let nlmsgDone: UInt16 = 3
    static let flagsDumpRequest: UInt16 = 0x0001 | 0x0300  // NLM_F_REQUEST | NLM_F_DUMP
    static let headerSize = 16                        // struct nlmsghdr
    static let tcmsgSize = 20                         // struct tcmsg

    /// Filter parents: clsact's ingress and egress (TC_H_MAKE(TC_H_CLSACT,
    /// TC_H_MIN_INGRESS/EGRESS)), and the classic ingress qdisc (ffff:).
    public static let parentClsactIngress: UInt32 = 0xFFFF_FFF2
    public static let parentClsactEgress: UInt32 = 0xFFFF_FFF3
    public static let parentIngressQdisc: UInt32 = 0xFFFF_0000

    /// Attributes: TCA_KIND, TCA_OPTIONS; inside a cls_bpf filter's options
    /// TCA_BPF_NAME, TCA_BPF_ID (pkt_cls.h).
    static let tcaKind: UInt16 = 1
    static let tcaOptions: UInt16 = 2
    static let tcaBPFName: UInt16 = 7
    static let tcaBPFID: UInt16 = 11

    /// One cls_bpf filter.
    public struct Filter: Sendable, Hashable {
        public var pref: UInt16
        public var progID: UInt32
        public var name: String?
    }

    public static func dumpRequest(ifindex: UInt32, parent: UInt32, seq: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        u32(UInt32(headerSize + tcmsgSize))
        u16(rtmGetTFilter)
        u16(flagsDumpRequest)
        u32(seq)
        u32(0)
        // struct tcmsg: family AF_UNSPEC, pads, ifindex, handle, parent, info
        out.append(contentsOf: [0, 0, 0, 0])
        u32(ifindex)
        u32(0)
        u32(parent)
        u32(0)
        return out
    }

    public enum Step: Equatable {
        case more
        case done
        /// The kernel answered with this errno (positive).
        case failed(Int32)
    }

    /// Parses one recv() of a dump into `found` (cls_bpf filters only: the
    /// chain's head messages and other classifiers carry no program id).
    public static func parse(_ buf: UnsafeRawBufferPointer, into found: inout [Filter]) -> Step {
        var off = 0
        while off + headerSize <= buf.count {
            let len = Int(u32(buf, off))
            let type = u16(buf, off + 4)
            guard len >= headerSize, off + len <= buf.count else { return .failed(71) }  // EPROTO
            switch type {
            case nlmsgDone: return .done
            case nlmsgError:
                let e = off + headerSize + 4 <= buf.count ? Int32(bitPattern: u32(buf, off + headerSize)) : -71
                return e == 0 ? .done : .failed(-e)
            case rtmNewTFilter where len >= headerSize + tcmsgSize:
                let info = u32(buf, off + headerSize + 16)
                if let f = filter(buf, from: off + headerSize + tcmsgSize, to: off + len, pref: UInt16(info >> 16)) {
                    found.append(f)
                }
            default: break
            }
            off += (len + 3) & ~3
        }
        return .more
    }

    static func filter(_ buf: UnsafeRawBufferPointer, from start: Int, to end: Int, pref: UInt16) -> Filter? {
        var kind: String?, options: Range<Int>?
        for (type, r) in attributes(buf, start, end) {
            if type == tcaKind { kind = string(buf, r) }
            if type == tcaOptions { options = r }
        }
        guard kind == "bpf", let options else { return nil }
        var id: UInt32?, name: String?
        for (type, r) in attributes(buf, options.lowerBound, options.upperBound) {
            if type == tcaBPFID, r.count >= 4 { id = u32(buf, r.lowerBound) }
            if type == tcaBPFName { name = string(buf, r) }
        }
        return id.map { Filter(pref: pref, progID: $0, name: name) }
    }

    /// (type without the nested/byte-order flags, payload range) of each attribute.
    static func attributes(_ buf: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> [(UInt16, Range<Int>)] {
        var out: [(UInt16, Range<Int>)] = []
        var off = start
        while off + 4 <= end {
            let len = Int(u16(buf, off))
            guard len >= 4, off + len <= end else { break }
            out.append((u16(buf, off + 2) & 0x3FFF, (off + 4)..<(off + len)))
            off += (len + 3) & ~3
        }
        return out
    }

    static func string(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> String {
        String(decoding: buf[r].prefix { $0 != 0 }, as: UTF8.self)
    }

    static func u16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    static func u32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
}
