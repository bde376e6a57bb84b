import CLibBPF
import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel

/// The embedded BPF object, loaded as several libbpf objects so that the
/// kernel verifies its programs in parallel.
///
/// Start-up is mostly the verifier: the one-program-per-hook programs
/// (on_kfree_skb, ovf_consume_skb, on_tcp_send_reset, the syscall exits)
/// cost 10k–65k verified instructions each, about 300 ms in a row on this
/// project's 2-core CI machine, and `bpf_object__load` loads programs one
/// after the other. libbpf (1.1 on Debian 12) cannot load one object's
/// programs concurrently, so the object is opened several times from the
/// same bytes:
/// - `maps`: no program, loaded first. It creates every map, including the
///   configuration (`.rodata`, frozen) and the ring buffer;
/// - `groups`: each loads a share of the selected programs and reuses the
///   maps' fds (`bpf_map__reuse_fd`), so all programs share one set of maps
///   and see the same frozen configuration. The groups load on threads of
///   their own, one per CPU the process may run on (at most 4), shares balanced by
///   the verifier's expected work (VerifierWeight.swift).
/// Each group parses the kernel's BTF for its CO-RE relocations (freed after
/// loading; ProcessMemory.useOneArena keeps those pages from staying
/// resident); that is the price of the parallelism.
final class BPFObjectSet {
    /// The maps (and the configuration) of every program.
    let maps: OpaquePointer
    /// The objects holding the loaded programs.
    let groups: [OpaquePointer]

    private init(maps: OpaquePointer, groups: [OpaquePointer]) {
        self.maps = maps
        self.groups = groups
    }

    deinit {
        for g in groups { bpf_object__close(g) }
        bpf_object__close(maps)
    }

    /// Opens the object from `bytes`, lets `configure` set the maps' object
    /// up (configuration, ring size) and loads `selected` in parallel groups.
    static func load(bytes: [UInt8], selected: Set<BPFProgram>, loadFix: String?,
                     configure: (OpaquePointer) throws(KernelError) -> Void) throws(KernelError) -> BPFObjectSet {
        let maps = try open(bytes, mapsOnly: true)
        let shares: [Set<BPFProgram>]
        do throws(KernelError) {
            try configure(maps)
            shares = self.shares(of: selected, in: maps)
            select(maps, [])
            let rc = bpf_object__load(maps)
            if rc != 0 { throw KernelError.sys("creating the BPF maps", code: rc) }
        } catch {
            bpf_object__close(maps)
            throw error
        }
        var groups: [OpaquePointer] = []
        do throws(KernelError) {
            for share in shares {
                let g = try open(bytes)
                groups.append(g)
                select(g, share)
                try reuseMaps(of: maps, in: g)
            }
            try loadInParallel(groups, fix: loadFix)
        } catch {
            for g in groups { bpf_object__close(g) }
            bpf_object__close(maps)
            throw error
        }
        let set = BPFObjectSet(maps: maps, groups: groups)
        Diagnostics.log.debug("verified instructions: \(set.verifiedInstructions.map { "\($0.0.rawValue) \($0.1)" }.joined(separator: ", "))")
        return set
    }

    /// Instructions the verifier walked for each loaded program, most first
    /// (`bpf_prog_info.verified_insns`, 5.16+; what the shares' weights estimate).
    var verifiedInstructions: [(BPFProgram, Int)] {
        loadedPrograms.compactMap { p in
            BPFProgram(rawValue: String(cString: bpf_program__name(p))).map { ($0, Int(syn_prog_verified_insns(bpf_program__fd(p)))) }
        }.sorted { $0.1 > $1.1 }
    }

    /// A map by name.
    func map(_ name: String) -> OpaquePointer? { bpf_object__find_map_by_name(maps, name) }

    /// A loaded program, nil when the plan left it out.
    func program(_ which: BPFProgram) -> OpaquePointer? {
        for g in groups {
            if let p = bpf_object__find_program_by_name(g, which.rawValue), bpf_program__autoload(p) { return p }
        }
        return nil
    }

    /// Every loaded program.
    var loadedPrograms: [OpaquePointer] {
        var out: [OpaquePointer] = []
        for g in groups {
            var prog = bpf_object__next_program(g, nil)
            while let p = prog {
                if bpf_program__autoload(p) { out.append(p) }
                prog = bpf_object__next_program(g, p)
            }
        }
        return out
    }

    /// `mapsOnly`: no program of it will load (its CO-RE target is empty, syn_open_object_maps_only).
    private static func open(_ bytes: [UInt8], mapsOnly: Bool = false) throws(KernelError) -> OpaquePointer {
        let obj: OpaquePointer? = bytes.withUnsafeBytes { raw in
            mapsOnly ? syn_open_object_maps_only(raw.baseAddress, raw.count, "synsight")
                : syn_open_object(raw.baseAddress, raw.count, "synsight")
        }
        guard let obj else { throw KernelError.sys("opening the BPF object", code: errno) }
        return obj
    }

    /// Autoload exactly `selected` (an unselected program is neither loaded nor attached).
    private static func select(_ obj: OpaquePointer, _ selected: Set<BPFProgram>) {
        var prog = bpf_object__next_program(obj, nil)
        while let p = prog {
            let which = BPFProgram(rawValue: String(cString: bpf_program__name(p)))
            bpf_program__set_autoload(p, which.map(selected.contains) ?? false)
            prog = bpf_object__next_program(obj, p)
        }
    }

    /// `group` uses the maps `maps` created.
    private static func reuseMaps(of maps: OpaquePointer, in group: OpaquePointer) throws(KernelError) {
        var m = bpf_object__next_map(group, nil)
        while let map = m {
            let name = String(cString: bpf_map__name(map))
            guard let source = bpf_object__find_map_by_name(maps, name) else {
                throw KernelError(what: "BPF object", why: "map `\(name)` missing from the maps' object", fix: "rebuild synsight")
            }
            let rc = bpf_map__reuse_fd(map, bpf_map__fd(source))
            if rc != 0 { throw KernelError.sys("sharing the BPF map \(name)", code: rc) }
            m = bpf_object__next_map(group, map)
        }
    }

    /// `selected` split into one share per group, balanced by the
    /// verifier's expected work (BPFProgram.verifierWeight); no empty share.
    /// `obj` is opened, not loaded.
    static func shares(of selected: Set<BPFProgram>, in obj: OpaquePointer) -> [Set<BPFProgram>] {
        let cpus = Int(min(4, syn_cpus_allowed()))
        var sized: [(BPFProgram, Int)] = []
        var prog = bpf_object__next_program(obj, nil)
        while let p = prog {
            if let which = BPFProgram(rawValue: String(cString: bpf_program__name(p))), selected.contains(which) {
                sized.append((which, which.verifierWeight(instructions: Int(bpf_program__insn_cnt(p)))))
            }
            prog = bpf_object__next_program(obj, p)
        }
        return balance(sized, into: cpus)
    }

    /// Greedy partition: largest first, each into the lightest share.
    static func balance<T: Hashable>(_ items: [(T, Int)], into n: Int) -> [Set<T>] {
        var shares = Array(repeating: (set: Set<T>(), weight: 0), count: max(1, n))
        for (item, weight) in items.sorted(by: { $0.1 > $1.1 }) {
            let i = shares.indices.min { shares[$0].weight < shares[$1].weight }!
            shares[i].set.insert(item)
            shares[i].weight += weight
        }
        return shares.map(\.set).filter { !$0.isEmpty }
    }

    /// bpf_object__load of every group, each on a thread of its own (the
    /// first on the calling thread).
    private static func loadInParallel(_ groups: [OpaquePointer], fix: String?) throws(KernelError) {
        final class Result: @unchecked Sendable { var rc: Int32 = 0 }
        var threads: [WorkerThread] = []
        let results = groups.map { _ in Result() }
        for (i, (g, result)) in zip(groups, results).enumerated().dropFirst() {
            nonisolated(unsafe) let obj = g
            // Each load first reads and parses the kernel's BTF (two copies
            // of ~5.5 MB while it parses; 4-15 ms here): started 12 ms
            // apart, the parses do not overlap and start-up's peak RSS stays
            // ~5 MB lower, while the verifier (the long part) still runs in
            // parallel.
            let stagger = UInt32(i) * 12_000
            if let t = try? WorkerThread(name: "BPF load", {
                usleep(stagger)
                result.rc = bpf_object__load(obj)
            }) {
                threads.append(t)
            } else {
                result.rc = bpf_object__load(obj)  // no thread to be had: load it here
            }
        }
        if let first = groups.first { results[0].rc = bpf_object__load(first) }
        for t in threads { t.join() }
        if let bad = results.first(where: { $0.rc != 0 }) {
            throw KernelError.sys("loading the BPF programs", code: bad.rc, fix: fix)
        }
    }
}
