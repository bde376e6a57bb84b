import CLibBPF
import CSynsightShim
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
        #expect(f.unavailable == ["network namespace \(Self.noNetns) is gone (not in /run/netns, no process in it): the programs of veth0 cannot be read"])
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

/// BPFProgramReader against the real kernel (root): a tcx program attached
/// by the test to a veth in a namespace the test creates is named with its
/// id, name, type and attach point; synsight's own ids are left out.
@Suite("BPF program reader on this kernel", .serialized, .enabled(if: Root.enabled))
struct BPFProgramReaderKernelTests {
    /// `r0 = -1 (TCX_NEXT); exit`, a sched_cls program that lets everything pass.
    static func loadPassProgram(name: String) throws -> Int32 {
        var mov = bpf_insn()
        mov.code = 0xb7  // BPF_ALU64 | BPF_MOV | BPF_K
        mov.imm = -1
        var exit = bpf_insn()
        exit.code = 0x95  // BPF_JMP | BPF_EXIT
        let insns = [mov, exit]
        let fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name, "GPL", insns, insns.count, nil)
        try #require(fd >= 0, "bpf_prog_load: \(ErrnoName.name(errno))")
        return fd
    }

    @Test("a tcx ingress program on a veth in another namespace: id, name, type, attach point")
    func tcxProgram() throws {
        try Root.check()
        let ns = "synsight-kt-tcx-\(getpid())"
        try #require(Subprocess.capture(["/usr/sbin/ip", "netns", "add", ns]) != nil, "ip netns add \(ns)")
        defer { _ = Subprocess.capture(["/usr/sbin/ip", "netns", "del", ns]) }
        try #require(Subprocess.capture(["/usr/sbin/ip", "-n", ns, "link", "add", "ktv0", "type", "veth", "peer", "name", "ktv1"]) != nil)
        let netns = try #require(ProcFS.nsInode("/run/netns/\(ns)"))
        let prog = try Self.loadPassProgram(name: "synsight_kt_tcx")
        defer { close(prog) }
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        try #require(bpf_obj_get_info_by_fd(prog, &info, &len) == 0)
        // Attached from a thread inside the namespace (ifindexes are per namespace).
        let attached = try PortState.onOwnThread { () throws(KernelError) -> (link: Int32, ifindex: UInt32, errno: Int32) in
            let fd = open("/run/netns/\(ns)", O_RDONLY | O_CLOEXEC)
            defer { close(fd) }
            guard syn_setns_net(fd) == 0 else { return (-1, 0, errno) }
            let ifindex = if_nametoindex("ktv0")
            let link = bpf_link_create(prog, Int32(ifindex), BPFProgramReader.tcxIngress, nil)
            return (link, ifindex, link >= 0 ? 0 : errno)
        }
        try #require(attached.link >= 0, "tcx link: \(ErrnoName.name(attached.errno))")
        defer { close(attached.link) }

        let q = BPFProgramQuery(netns: netns, ifindex: attached.ifindex, ifname: "ktv0", ingress: true, tc: true, cgroupOf: nil)
        let f = BPFProgramReader(own: []).programs(q)
        #expect(f.unavailable.isEmpty, "\(f.unavailable)")
        #expect(f.programs == [BPFProgramRef(id: info.id, name: "synsight_kt_tcx", type: "sched_cls", tag: f.programs.first?.tag ?? "",
                                             kind: .tcxIngress, target: "ktv0")], "\(f.programs)")
        #expect(f.programs.first?.attach == "tcx ingress on ktv0")
        #expect(f.programs.first?.tag.count == 16)
        // Egress has nothing; synsight's own programs are never named.
        var egress = q
        egress.ingress = false
        #expect(BPFProgramReader(own: []).programs(egress).programs.isEmpty)
        #expect(BPFProgramReader(own: [info.id]).programs(q).programs.isEmpty)
    }
}
