import Foundation
import Testing
@testable import SynsightKernel
@testable import SynsightModel

/// CPU limits read from cgroup files (CPUThrottleReader): the nearest
/// limited ancestor in v2, v1's cpu hierarchy, a mount of a sub-tree, and
/// the window between readings. The files are written by the test (no
/// cgroup, no root); the kernel matrix's sc_accept_full_throttled reads
/// real ones.
@Suite("cpu limits from cgroup files")
struct CPUThrottleReaderTests {
    let root = NSTemporaryDirectory() + "synsight-cpu-\(UInt32.random(in: 0...UInt32.max))"

    func write(_ path: String, _ text: String) throws {
        let full = root + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: false, encoding: .utf8)
    }

    func v2Stat(_ periods: Int, _ throttled: Int, _ us: Int) -> String {
        "usage_usec 100\nuser_usec 50\nsystem_usec 50\nnr_periods \(periods)\nnr_throttled \(throttled)\nthrottled_usec \(us)\nnr_bursts 0\nburst_usec 0\n"
    }

    var mountinfo: String {
        """
        30 23 0:26 / \(root)/v2 rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
        32 31 0:29 / \(root)/cpu rw,relatime - cgroup cgroup rw,cpu
        33 31 0:30 / \(root)/memory rw,relatime - cgroup cgroup rw,memory
        """
    }

    @Test("v2: the pod's limit over an unlimited container cgroup; the first reading is the counters' life, the next a window")
    func v2Window() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("/v2/kubepods/pod1/cpu.max", "50000 100000\n")
        try write("/v2/kubepods/pod1/cpu.stat", v2Stat(1000, 20, 500_000))
        try write("/v2/kubepods/pod1/ctr/cpu.max", "max 100000\n")
        try write("/v2/kubepods/pod1/ctr/cpu.stat", v2Stat(0, 0, 0))
        let reader = CPUThrottleReader(mountinfo: mountinfo)
        let first = try #require(reader.read(procCgroup: "0::/kubepods/pod1/ctr\n", now: 1_000_000_000))
        #expect(first.cgroup == "/kubepods/pod1" && first.hierarchy == .v2 && first.quotaUs == 50_000 && first.periodUs == 100_000)
        #expect(first.windowNs == nil && first.periods == 1000 && first.throttled == 20 && !first.throttling)  // 2% of its life

        try write("/v2/kubepods/pod1/cpu.stat", v2Stat(1005, 24, 700_000))
        // 50 ms later: shorter than two periods, still the counters' life.
        #expect(reader.read(procCgroup: "0::/kubepods/pod1/ctr\n", now: 1_050_000_000)?.windowNs == nil)
        let next = try #require(reader.read(procCgroup: "0::/kubepods/pod1/ctr\n", now: 1_500_000_000))
        #expect(next.windowNs == 500_000_000 && next.periods == 5 && next.throttled == 4 && next.throttledUs == 200_000)
        #expect(next.throttling)
        #expect(next.summary == "throttled in 4 of 5 periods (200 ms) in the last 500 ms")
    }

    @Test("v1: the cpu hierarchy's quota and throttled_time (ns); the v2 path has no limit")
    func v1() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("/cpu/docker/abc/cpu.cfs_quota_us", "10000\n")
        try write("/cpu/docker/abc/cpu.cfs_period_us", "100000\n")
        try write("/cpu/docker/abc/cpu.stat", "nr_periods 50\nnr_throttled 49\nthrottled_time 4500000000\nnr_bursts 0\nburst_time 0\n")
        try write("/cpu/docker/cpu.cfs_quota_us", "-1\n")
        try write("/cpu/docker/cpu.cfs_period_us", "100000\n")
        let reader = CPUThrottleReader(mountinfo: mountinfo)
        let t = try #require(reader.read(procCgroup: "4:memory:/docker/abc\n2:cpu:/docker/abc\n0::/\n", now: 1))
        #expect(t.hierarchy == .v1 && t.cgroup == "/docker/abc" && t.quotaUs == 10_000 && t.throttledUs == 4_500_000)
        #expect(t.throttling && t.limitPhrase == "0.1 CPU (10 ms per 100 ms period)")
    }

    @Test("no quota anywhere (max, -1, files missing): nil")
    func unlimited() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("/v2/system.slice/a.service/cpu.max", "max 100000\n")
        try write("/v2/system.slice/a.service/cpu.stat", v2Stat(0, 0, 0))
        try write("/cpu/x/cpu.cfs_quota_us", "-1\n")
        let reader = CPUThrottleReader(mountinfo: mountinfo)
        #expect(reader.read(procCgroup: "0::/system.slice/a.service\n3:cpu:/x\n", now: 1) == nil)
        #expect(reader.read(procCgroup: "0::/gone\n", now: 1) == nil)
        #expect(CPUThrottleReader(mountinfo: "").read(procCgroup: "0::/system.slice/a.service\n", now: 1) == nil)
    }

    @Test("a mount of a sub-tree (synsight in a container): paths below its root, named in full")
    func subTreeMount() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("/sub/abc/cpu.max", "20000 100000\n")
        try write("/sub/abc/cpu.stat", v2Stat(10, 9, 900_000))
        let reader = CPUThrottleReader(mountinfo: "30 23 0:26 /kubepods \(root)/sub rw - cgroup2 cgroup2 rw\n")
        let t = try #require(reader.read(procCgroup: "0::/kubepods/abc\n", now: 1))
        #expect(t.cgroup == "/kubepods/abc" && t.quotaUs == 20_000 && t.throttling)
        #expect(reader.read(procCgroup: "0::/elsewhere/abc\n", now: 1) == nil)
    }

    @Test("the whole hierarchy (CgroupRoot's detached mount) before a sub-tree mount: paths outside the sub-tree are read")
    func wholeHierarchyFirst() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("/whole/kubepods/other/cpu.max", "20000 100000\n")
        try write("/whole/kubepods/other/cpu.stat", v2Stat(10, 9, 900_000))
        let reader = CPUThrottleReader(mountinfo: "30 23 0:26 /kubepods/mine \(root)/sub rw - cgroup2 cgroup2 rw\n", wholeV2: root + "/whole")
        let t = try #require(reader.read(procCgroup: "0::/kubepods/other\n", now: 1))
        #expect(t.cgroup == "/kubepods/other" && t.quotaUs == 20_000 && t.throttling)
    }
}
