import CLibBPF
import CSynsightABI
import Foundation
import Glibc
import SynsightModel
@testable import SynsightKernel
import Testing

/// Root-only tests skip for a developer without root; SYNSIGHT_REQUIRE_ROOT=1
/// (the project's test command) turns the skip into a failure.
enum Root {
    static let isRoot = geteuid() == 0
    static let enabled = isRoot || getenv("SYNSIGHT_REQUIRE_ROOT").map { String(cString: $0) == "1" } == true
    static func check() throws { try #require(isRoot, "these tests load BPF programs: they need root") }
}

@Suite("probe plan on this kernel", .serialized, .enabled(if: Root.enabled))
struct ProbePlanKernelTests {
    @Test("probes run once: reading the results and planning again loads no program and reads kallsyms no more")
    func cached() throws {
        try Root.check()
        let reads0 = KernelSymbols.reads.load(ordering: .relaxed)
        let loads0 = ProgramProbe.loads.load(ordering: .relaxed)
        let plan = ProbePlan.probe()
        let reads1 = KernelSymbols.reads.load(ordering: .relaxed)
        let loads1 = ProgramProbe.loads.load(ordering: .relaxed)
        #expect(reads1 - reads0 == 1, "one pass over /proc/kallsyms per probe run")
        #expect(loads1 > loads0, "the probes load programs (root)")
        // Everything doctor and the tracer read, twice.
        for _ in 0..<2 {
            let again = ProbePlan(plan.features)
            _ = again.programs
            _ = again.configFlags
            _ = plan.features.allResults
            _ = plan.features.overflow.perSYN
            _ = plan.features.overflow.accept
            _ = plan.features.packetDropProbe
            _ = try? again.requireTraceable()
            #expect(again.programs == plan.programs)
        }
        #expect(KernelSymbols.reads.load(ordering: .relaxed) == reads1)
        #expect(ProgramProbe.loads.load(ordering: .relaxed) == loads1)
        // As root nothing is inconclusive.
        #expect(!plan.features.allResults.contains { $0.isInconclusive })
    }

    @Test("the tracer loads exactly the planned programs: one set aside (Landlock) is absent from the kernel")
    func unselectedNotLoaded() throws {
        try Root.check()
        var f = KernelFeatures.probe()
        f.syscalls.landlock = .unsupported("set aside by the test")
        let plan = ProbePlan(f)
        #expect(!plan.plan(for: .landlock).runs)
        let before = Set(Self.ownPrograms())
        let tracer = try Tracer(options: TracerOptions(), plan: plan)
        let loaded = Set(Self.ownPrograms()).subtracting(before)
        // The kernel truncates program names to 15 bytes (BPF_OBJ_NAME_LEN).
        let planned = Set(plan.programs.map { String($0.rawValue.prefix(15)) })
        #expect(loaded == planned)
        for p in [BPFProgram.scLandlockFork, .scTpExitLandlock, .scFxExitLandlock] {
            #expect(!loaded.contains(String(p.rawValue.prefix(15))), "\(p) loaded")
        }
        withExtendedLifetime(tracer) {}
    }

    @Test("probing and attaching leave the calling thread in the process's mount namespace and working directory")
    func threadKeepsItsMountNamespace() throws {
        try Root.check()
        // This host has no tracefs mounted: the probes and the tracer mount it
        // in a private namespace for the calling thread. A pooled thread left
        // there would hide later mounts (`ip netns add` from it) from the rest
        // of the process.
        let before = (ProcFS.nsInode("/proc/thread-self/ns/mnt"), FileManager.default.currentDirectoryPath)
        let plan = ProbePlan.probe()
        #expect(ProcFS.nsInode("/proc/thread-self/ns/mnt") == before.0)
        let tracer = try Tracer(options: TracerOptions(), plan: plan)
        #expect(ProcFS.nsInode("/proc/thread-self/ns/mnt") == before.0)
        #expect(ProcFS.nsInode("/proc/thread-self/ns/mnt") == ProcFS.nsInode("/proc/self/ns/mnt"))
        #expect(FileManager.default.currentDirectoryPath == before.1)
        withExtendedLifetime(tracer) {}
    }

    @Test("the load shares' weights match what the verifier walked on this kernel")
    func verifierWeights() throws {
        try Root.check()
        let tracer = try Tracer(options: TracerOptions(), plan: ProbePlan.probe())
        let walked = tracer.objects.verifiedInstructions
        #expect(!walked.isEmpty && walked.allSatisfy { $0.1 > 0 }, "verified_insns is reported since 5.16")
        for (program, steps) in walked {
            let weight = program.verifierWeight(instructions: 0)
            // A program the verifier walks far beyond its size must be in
            // the table, or the shares pile such programs onto one thread.
            if steps >= 4_000 {
                #expect(weight > 0, "\(program): \(steps) verified instructions and no weight")
            }
            if weight > 0 {
                let ratio = Double(weight) / Double(steps)
                #expect(ratio > 0.5 && ratio < 2, "\(program): weight \(weight), verifier walked \(steps)")
            }
        }
    }

    @Test("the --port filter: written after loading, grown by appending, past 16 ports every port passes")
    func portFilterGrows() throws {
        try Root.check()
        var options = TracerOptions()
        options.ports = [8080, 8443]
        let tracer = try Tracer(options: options, plan: ProbePlan.probe())
        let filter = try #require(tracer.portFilter)
        let fd = bpf_map__fd(try Tracer.sectionMap(tracer.objects, Tracer.portFilterSection))
        func kernel() -> (ports: [UInt16], n: UInt32) {
            var key: UInt32 = 0
            var v = syn_port_filter()
            #expect(bpf_map_lookup_elem(fd, &key, &v) == 0)
            let ports = withUnsafeBytes(of: v.ports) { Array($0.bindMemory(to: UInt16.self)) }
            return (Array(ports.prefix(Int(v.nports))), v.nports)
        }
        #expect(kernel().ports == [8080, 8443])
        #expect(try filter.add([80, 8080]) == [80])
        #expect(kernel().ports == [8080, 8443, 80])
        #expect(filter.kernelPorts == [8080, 8443, 80])
        // 3 + 14 = 17 ports: more than the kernel's filter holds.
        try filter.add((1...14).map { UInt16(20_000 + $0) })
        #expect(filter.kernelPorts == nil)
        #expect(kernel().n == 0, "nports 0: the kernel passes every port")
        // Without --port there is no filter (its code is not even verified).
        #expect(try Tracer(options: TracerOptions(), plan: ProbePlan.probe()).portFilter == nil)
    }

    /// The names of the BPF programs this process holds open, from the
    /// kernel: /proc/self/fdinfo gives each program fd's prog_id, and the
    /// program's info its name.
    static func ownPrograms() -> [String] {
        guard let dir = opendir("/proc/self/fdinfo") else { return [] }
        defer { closedir(dir) }
        var ids: Set<UInt32> = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let text = ProcFS.read("/proc/self/fdinfo/\(name)") else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("prog_id:") {
                if let id = UInt32(line.dropFirst(8).trimmingCharacters(in: " \t")) { ids.insert(id) }
            }
        }
        return ids.compactMap { id in
            let fd = bpf_prog_get_fd_by_id(id)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var info = bpf_prog_info()
            var len = UInt32(MemoryLayout<bpf_prog_info>.size)
            guard bpf_obj_get_info_by_fd(fd, &info, &len) == 0 else { return nil }
            return withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
    }
}
