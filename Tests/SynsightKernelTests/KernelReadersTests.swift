import Glibc
import Testing
@testable import SynsightBase
@testable import SynsightKernel
@testable import SynsightModel

/// The kernel module's host readers that need no root: kallsyms parsing and
/// symbolization on synthetic text, drop-reason names from the running
/// kernel's BTF (world-readable), and the bounded file reads.
@Suite("kernel readers (no root)")
struct KernelReadersTests {
    static let kallsyms = Array("""
        ffffffff81000000 T _stext
        ffffffff81000100 t tcp_v4_rcv
        ffffffff81000400 D some_data
        ffffffff81000500 T tcp_conn_request
        ffffffffc0a00000 t nf_hook_slow\t[nf_tables]
        0000000000000000 T hidden_without_root

        """.utf8)

    @Test("text symbols only, sorted; an address names the symbol at or below it with its offset")
    func symbolize() {
        let t = KernelSymbolTable(text: Self.kallsyms)
        #expect(t.count == 4)
        #expect(t.symbolize(0xffffffff810001a1)! == ("tcp_v4_rcv", 0xa1))
        // The data symbol in between is not a text symbol: still tcp_v4_rcv.
        #expect(t.symbolize(0xffffffff81000450)! == ("tcp_v4_rcv", 0x350))
        #expect(t.symbolize(0xffffffff81000500)! == ("tcp_conn_request", 0))
        // A module's symbol, its "[module]" suffix not part of the name.
        #expect(t.symbolize(0xffffffffc0a00010)! == ("nf_hook_slow", 0x10))
        // Below the first symbol, zero, or far past the last: no name.
        #expect(t.symbolize(0xffffffff80ffffff) == nil)
        #expect(t.symbolize(0) == nil)
        #expect(t.symbolize(0xffffffffc0a00000 + KernelSymbolTable.maxOffset) == nil)
    }

    @Test("kallsyms as an unprivileged reader sees it (every address zero): an empty table, no names")
    func zeroAddresses() {
        let t = KernelSymbolTable(text: Array("0000000000000000 T a\n0000000000000000 t b\n".utf8))
        #expect(t.count == 0)
        #expect(t.symbolize(0xffffffff81000000) == nil)
    }

    @Test("drop-reason names come from this kernel's BTF: present, unique, and the reasons synsight's causes rely on")
    func dropReasonsFromBTF() throws {
        try #require(access("/sys/kernel/btf/vmlinux", R_OK) == 0, "this kernel has no BTF")
        let names = KernelDropReasons.read()
        #expect(names.count > 20)
        let all = Set(names.core.values)
        #expect(all.count == names.core.count)
        for reason in ["not_specified", "no_socket", "netfilter_drop", "tcp_flags"] {
            #expect(all.contains(reason), "missing \(reason)")
        }
        // The code maps back to the same name, whatever number this kernel gave it.
        let noSocket = try #require(names.core.first { $0.value == "no_socket" }?.key)
        #expect(names.name(noSocket).name == "no_socket")
        #expect(names.name(noSocket).known)
        // A number this kernel does not define is reported with its number.
        #expect(!names.name(0xFFFF).known)
    }

    @Test("bounded reads: readToEnd stops at its limit; ProcFS reads /proc files whole")
    func boundedReads() throws {
        let status = try #require(ProcFS.read("/proc/self/status"))
        #expect(status.hasPrefix("Name:"))
        let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(readToEnd(fd: fd, limit: 5, chunk: 2) == Array("Name:".utf8))
        #expect(ProcFS.readBytes("/proc/self/status", limit: 5) == Array("Name:".utf8))
        #expect(ProcFS.read("/proc/self/no-such-file") == nil)
    }
}
