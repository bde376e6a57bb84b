import Glibc
import Testing
@testable import SynsightBase
@testable import SynsightKernel
@testable import SynsightModel

/// BPFProgramReader where nothing can be read: the findings say why instead
/// of coming back empty (no root needed: a namespace and a process that do
/// not exist), and answers are cached per query.
@Suite("BPF program reader: what cannot be read is said")
struct BPFProgramReaderTests {
    /// An inode no network namespace has (inodes of nsfs are far below it), and a PID above pid_max's limit.
    static let noNetns: UInt32 = 0xFFFF_FFF0
    static let noPid: UInt32 = 4_194_304 + 17

    @Test("a namespace that is gone: its tc programs cannot be read, and the findings say so")
    func namespaceGone() {
        let reader = BPFProgramReader(own: [])
        let q = BPFProgramQuery(netns: Self.noNetns, ifindex: 2, ifname: "veth0", ingress: true, tc: true, cgroupOf: nil)
        let f = reader.programs(q)
        #expect(f.programs.isEmpty)
        #expect(f.unavailable == ["network namespace \(Self.noNetns) is gone (not in /run/netns, no process in it): its tc programs cannot be read"])
        #expect(reader.cache.withLock { $0[q] } != nil)
    }

    @Test("a socket owner that is gone: its cgroup programs cannot be read")
    func ownerGone() {
        let reader = BPFProgramReader(own: [])
        let f = reader.programs(BPFProgramQuery(netns: 0, ifindex: 0, ifname: "", ingress: false, tc: false, cgroupOf: Self.noPid))
        #expect(f.programs.isEmpty)
        #expect(f.unavailable.count == 1)
        #expect(f.unavailable.first?.contains("process \(Self.noPid) is gone") == true
                || f.unavailable.first?.contains("no cgroup v2 hierarchy") == true, "\(f.unavailable)")
    }

    @Test("tags are lower-case hex, two digits a byte")
    func hex() {
        #expect([0x00, 0x0f, 0xa5, 0xff].map(BPFProgramReader.hex).joined() == "000fa5ff")
    }
}
