import CLibBPF
import Glibc
@testable import SynsightKernel
import Testing

/// KernelFold on a real per-CPU hash map with the layout of bpf/fold.bpf.h's
/// `folded` (struct syn_fold_key / syn_fold_val): per-CPU counters summed, and
/// each read returns only what grew since the previous one.
@Suite("kernel fold counters", .serialized, .enabled(if: Root.enabled))
struct KernelFoldReadTests {
    /// syn_fold_key: netns u32, port u16, kind u8, family u8.
    func key(netns: UInt32, port: UInt16) -> [UInt8] {
        withUnsafeBytes(of: netns.littleEndian) { Array($0) } + withUnsafeBytes(of: port.littleEndian) { Array($0) } + [1, 2]
    }

    /// syn_fold_val: count, clients, first_ns, last_ns, window_ns (u64), passed, pad (u32).
    func value(count: UInt64, clients: UInt64, first: UInt64, last: UInt64) -> [UInt8] {
        [count, clients, first, last, 0].flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } } + [UInt8](repeating: 0, count: 8)
    }

    @Test("two CPUs' counts are summed; a second read returns the growth only; an unchanged key is not returned")
    func deltas() throws {
        try Root.check()
        let ncpus = Int(libbpf_num_possible_cpus())
        let fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, "fold_test", 8, 48, 16, nil)
        try #require(fd >= 0, "bpf_map_create: errno \(errno)")
        defer { close(fd) }
        func put(_ perCPU: [(count: UInt64, clients: UInt64, first: UInt64, last: UInt64)]) throws {
            var k = key(netns: 4026531840, port: 4999)
            var bytes: [UInt8] = []
            for cpu in 0..<ncpus {
                let v = cpu < perCPU.count ? perCPU[cpu] : (count: 0, clients: 0, first: 0, last: 0)
                bytes += value(count: v.count, clients: v.clients, first: v.first, last: v.last)
            }
            try #require(bpf_map_update_elem(fd, &k, &bytes, UInt64(BPF_ANY)) == 0)
        }
        let fold = KernelFold(fd: fd, ncpus: ncpus)
        try put([(100, 90, 1_000, 5_000), (50, 50, 2_000, 6_000)])
        let first = fold.read()
        try #require(first.count == 1)
        #expect(first[0].netns == 4026531840 && first[0].port == 4999 && first[0].family == 2 && first[0].kind == 1)
        #expect(first[0].count == (ncpus > 1 ? 150 : 100))
        #expect(first[0].clients == (ncpus > 1 ? 140 : 90))
        #expect(first[0].firstNs == 1_000)
        #expect(first[0].lastNs == (ncpus > 1 ? 6_000 : 5_000))
        #expect(fold.read().isEmpty, "nothing grew")
        try put([(130, 90, 1_000, 9_000), (50, 50, 2_000, 6_000)])
        let second = fold.read()
        try #require(second.count == 1)
        #expect(second[0].count == 30 && second[0].clients == 0)
        #expect(second[0].firstNs == (ncpus > 1 ? 6_001 : 5_001) && second[0].lastNs == 9_000)
    }
}
