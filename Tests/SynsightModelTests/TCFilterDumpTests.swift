@testable import SynsightModel
import Testing

/// The rtnetlink tc filter dump (TCFilterDump) on bytes laid out as the
/// kernel sends them (include/uapi/linux/rtnetlink.h, pkt_cls.h).
@Suite("tc filter dump: request and parsing")
struct TCFilterDumpTests {
    func u16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    func attr(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        var out = u16(UInt16(4 + payload.count)) + u16(type) + payload
        while out.count % 4 != 0 { out.append(0) }
        return out
    }

    func cstring(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }

    /// An RTM_NEWTFILTER of `kind` with pref in tcm_info and the given attributes.
    func message(type: UInt16 = 44, pref: UInt16, attrs: [UInt8]) -> [UInt8] {
        let tcmsg = [UInt8](repeating: 0, count: 4) + u32(2) + u32(1) + u32(0xFFFF_FFF2) + u32(UInt32(pref) << 16 | 0x0003)
        let body = tcmsg + attrs
        return u32(UInt32(16 + body.count)) + u16(type) + u16(2) + u32(1) + u32(0) + body
    }

    @Test("the request asks for a dump of one interface's filters under one parent")
    func request() {
        let r = TCFilterDump.dumpRequest(ifindex: 7, parent: TCFilterDump.parentClsactEgress, seq: 3)
        #expect(r.count == 36)
        #expect(Array(r[0..<4]) == u32(36) && Array(r[4..<6]) == u16(46) && Array(r[6..<8]) == u16(0x0301))
        #expect(Array(r[8..<12]) == u32(3))
        #expect(Array(r[20..<24]) == u32(7) && Array(r[28..<32]) == u32(0xFFFF_FFF3))
    }

    @Test("cls_bpf filters give their program id, name and pref; heads, other classifiers and DONE do not")
    func parse() {
        // The chain's head (kind, no options), a u32 filter, a bpf filter, then NLMSG_DONE.
        let head = message(pref: 49152, attrs: attr(1, cstring("bpf")))
        let u32f = message(pref: 1, attrs: attr(1, cstring("u32")) + attr(2, attr(1, u32(5))))
        let bpf = message(pref: 49152, attrs: attr(1, cstring("bpf"))
                          + attr(0x8000 | 2, attr(7, cstring("drop.o:[tc]")) + attr(11, u32(135032)) + attr(8, u32(1))))
        let done = u32(20) + u16(3) + u16(2) + u32(1) + u32(0) + u32(0)
        var found: [TCFilterDump.Filter] = []
        let step = (head + u32f + bpf).withUnsafeBytes { TCFilterDump.parse($0, into: &found) }
        #expect(step == .more)
        #expect(found == [TCFilterDump.Filter(pref: 49152, progID: 135032, name: "drop.o:[tc]")])
        #expect(done.withUnsafeBytes { TCFilterDump.parse($0, into: &found) } == .done)
    }

    @Test("an error answer gives its errno; a truncated message fails")
    func errors() {
        var found: [TCFilterDump.Filter] = []
        let err = u32(20) + u16(2) + u16(0) + u32(1) + u32(0) + u32(UInt32(bitPattern: -22))
        #expect(err.withUnsafeBytes { TCFilterDump.parse($0, into: &found) } == .failed(22))
        let cut = Array(message(pref: 1, attrs: attr(1, cstring("bpf"))).prefix(30))
        #expect(cut.withUnsafeBytes { TCFilterDump.parse($0, into: &found) } == .failed(71))
    }
}
