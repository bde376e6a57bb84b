import CLibBPF
import CSynsightABI
import CSynsightShim
import Glibc
import Synchronization
import SynsightBase
import SynsightModel
import SynsightNftables

public struct TracerOptions: Sendable {
    /// How many ports the kernel's --port filter holds.
    public static let maxPorts = Int(SYN_MAX_FILTER_PORTS)
    /// Only report refusals to these local ports (empty = all). Past
    /// `maxPorts` the kernel passes every port and user space filters (PortFilter).
    public var ports: [UInt16] = []
    /// Hooks chosen instead of the probed ones (--reset-hook, --force-hook).
    public var hooks = HookChoices()
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    public var ringBytes: UInt32 = 8 << 20
    /// Print libbpf's own log to stderr.
    public var verbose: Bool = false
    /// Storms folded in the kernel (bpf/fold.bpf.h): per key, CPU and
    /// second, this many records are sent one by one, the rest counted.
    /// 0: every record crosses the ring buffer.
    public var foldPerWindow: UInt32 = 0
    /// Tests only: use this many sets of the connecting-socket table (a
    /// power of two up to `connectTableSets`; 0: all), so that its
    /// first-in-first-out eviction happens after a few connections.
    public var connectTableSetsInUse: UInt32 = 0
    /// The sets of the connecting-socket table (bpf/conntab.bpf.h).
    public static let connectTableSets = 1 << Int(SYN_CONN_SET_BITS)
    /// Where the per-SYN overflow program is armed on anomaly: how long
    /// nothing must move before it is detached (nil: ArmingPurpose.overflow's
    /// default). Tests shorten it.
    public var overflowQuietNs: UInt64? = nil

    public init() {}
}

/// Routes libbpf's log: dropped unless --verbose (libbpf-bootstrap style).
let libbpfVerbose = Atomic<Bool>(false)

private let libbpfLogger: syn_log_fn = { level, message in
    guard let message, libbpfVerbose.load(ordering: .relaxed) else { return }
    let line = "libbpf: " + String(cString: message) + "\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}

/// The loaded BPF object, its attached programs and its ring buffer.
///
/// `@unchecked Sendable` is not claimed: a Tracer is created, polled and
/// destroyed on one thread (the consumer loop), which is what libbpf's
/// ring_buffer requires anyway.
public final class Tracer {
    /// What was probed and which programs are loaded.
    public let plan: ProbePlan
    public var features: KernelFeatures { plan.features }
    public let resetHook: ResetHook
    /// The kernel's --port filter, nil without --port (PortFilter).
    public let portFilter: PortFilter?
    /// inet_sock_set_state is not attached (SYN_CFG_NO_STATE_HOOK): connect()
    /// callers from cgroup/connect{4,6}, errors from inet_sk_error_report.
    public let noStateHook: Bool
    /// The loaded programs and their maps (closed after the links).
    let objects: BPFObjectSet
    var links: [OpaquePointer] = []
    var ring: OpaquePointer?
    let lostFD: Int32
    /// TracerOptions.foldPerWindow, as written into the configuration.
    let foldPerWindow: UInt32
    let listenerPidsFD: Int32
    let ncpus: Int
    /// The ring buffer's positions, read-only (its fill, for SelfCost).
    var ringPositions: syn_ring_positions
    let ringBytes: UInt64
    /// The most unread bytes seen before a read, since start and since the
    /// last `takeRingPeak()` (Tracer+Cost.swift).
    var ringPeak: UInt64 = 0
    var ringPeakWindow: UInt64 = 0
    /// Without the state-change hook: the iterator that finds closed
    /// listeners nothing asked about (sweepListeners), and when it last ran.
    var lastSweep: UInt64 = 0
    /// Injected resets (Tracer+ResetTTL.swift): the baseline program's link
    /// while attached, a refusing RST's record since the last read, and when
    /// the latest came.
    var baselineLink: OpaquePointer?
    var resetRecordSeen = false
    var lastResetRecord: UInt64 = 0
    /// The programs armed on anomaly (HookArming): the overflow programs
    /// where the plan has their watch, tcp_destroy_sock where the plan has
    /// the abandoned connects' watch.
    let armings: [HookArming]

    /// Opens, configures, loads and attaches the programs `plan` selects
    /// (probed now with `options.hooks` when not given). Fallible libbpf work
    /// happens before any stored property is set, so a failure cleans up exactly once.
    public init(options: TracerOptions, plan given: ProbePlan? = nil) throws(KernelError) {
        libbpfVerbose.store(options.verbose, ordering: .relaxed)
        // Classic tracepoints are probed and attached through tracefs.
        let tracefs = TraceFS.enter()
        defer { tracefs.leave() }
        syn_set_libbpf_logger(libbpfLogger)
        let plan = given ?? ProbePlan.probe(options.hooks)
        let features = plan.features
        try plan.requireTraceable()
        guard let hook = plan.resetHook else {
            throw KernelError(what: "no no-listener hook was planned", why: "the probe plan chose none",
                              fix: "run `synsight doctor` for details")
        }

        guard let bytes = base64Decode(BPFObject_refusals.base64) else {
            throw KernelError(what: "embedded BPF object", why: "corrupt base64", fix: "rebuild synsight")
        }
        // Load exactly the programs some area's plan selected.
        Diagnostics.log.debug("loading the planned programs: \(plan.orderedPrograms.map(\.rawValue).joined(separator: ", "))")
        let objects = try BPFObjectSet.load(
            bytes: bytes, selected: plan.programs,
            loadFix: options.verbose ? nil : "run with --verbose for the verifier log"
        ) { (obj) throws(KernelError) in
            var cfg = syn_config()
            cfg.flags = plan.configFlags | (options.ports.isEmpty ? 0 : UInt32(SYN_CFG_PORT_FILTER.rawValue))
            cfg.fold_per_window = options.foldPerWindow
            cfg.conn_sets = options.connectTableSetsInUse
            cfg.answer_drop_reasons = Self.answerDropReasons(features.dropReasons)
            let rc = syn_set_config(obj, &cfg)
            if rc != 0 { throw KernelError.sys("writing the BPF configuration", code: rc) }

            guard let ringMap = bpf_object__find_map_by_name(obj, "events") else {
                throw KernelError(what: "BPF object", why: "map `events` missing", fix: "rebuild synsight")
            }
            let ringRC = bpf_map__set_max_entries(ringMap, options.ringBytes)
            if ringRC != 0 { throw KernelError.sys("sizing the ring buffer to \(options.ringBytes) bytes", code: ringRC) }
        }

        try Self.writeTextRanges(objects, plan: plan)
        let portFilter = try Self.portFilter(objects, ports: options.ports)

        var links: [OpaquePointer] = []
        var cgroupFD: Int32 = -1
        defer { if cgroupFD >= 0 { close(cgroupFD) } }
        let armsOverflow = plan.armsOverflow
        for p in objects.loadedPrograms {
            // Iterators are attached on demand (seedListeners), not here;
            // `run_` programs are run by user space (sweepListeners).
            // So are the baseline program of injected resets (Tracer+ResetTTL.swift)
            // and the overflow programs armed on anomaly (HookArming).
            let armed = armsOverflow && Self.program(p)?.armedWithOverflow == true  // HookArming attaches it
            if !Self.runOnDemand(p), Self.program(p)?.attachOnDemand != true, !armed {
                // cgroup programs attach to the root cgroup v2 (the link holds it).
                if String(cString: bpf_program__section_name(p)).hasPrefix("cgroup/") && cgroupFD < 0 {
                    switch CgroupRoot.open() {
                    case .success(let fd): cgroupFD = fd
                    case .failure(let e):
                        for l in links { bpf_link__destroy(l) }
                        throw e
                    }
                }
                let attached = String(cString: bpf_program__section_name(p)).hasPrefix("cgroup/")
                    ? bpf_program__attach_cgroup(p, cgroupFD) : bpf_program__attach(p)
                guard let link = attached else {
                    let e = errno
                    let name = String(cString: bpf_program__name(p))
                    for l in links { bpf_link__destroy(l) }
                    throw KernelError.sys("attaching \(name)", code: e)
                }
                links.append(link)
            }
        }

        self.plan = plan
        self.portFilter = portFilter
        self.resetHook = hook
        self.noStateHook = plan.noStateHook
        self.objects = objects
        self.links = links
        self.ringBytes = UInt64(options.ringBytes)
        var positions = syn_ring_positions()
        if syn_ring_positions_map(bpf_map__fd(objects.map("events")), &positions) != 0 {
            positions = syn_ring_positions()  // the fill is then reported as 0
        }
        self.ringPositions = positions
        self.lostFD = bpf_map__fd(objects.map("lost_events"))
        self.foldPerWindow = options.foldPerWindow
        self.listenerPidsFD = bpf_map__fd(objects.map("listener_pids"))
        self.ncpus = Int(max(1, libbpf_num_possible_cpus()))
        var armings: [HookArming] = []
        if armsOverflow, let watch = objects.program(.runOvfWatch) {
            // Entry probes first: a return probe reads what its entry saved.
            let armed = BPFProgram.allCases.filter(\.armedWithOverflow).sorted { !$0.isReturnProbe && $1.isReturnProbe }
                .compactMap { p in objects.program(p).map { (p, $0) } }
            armings.append(HookArming(.overflow, watch: watch, programs: armed, quietNs: options.overflowQuietNs))
        }
        if let watch = objects.program(.runTmoWatch), let destroy = objects.program(.tmoDestroySock) {
            let gate = objects.map("tmo_gate").map { bpf_map__fd($0) }
            armings.append(HookArming(.abandonedConnects, watch: watch, programs: [(.tmoDestroySock, destroy)], quietNs: nil,
                                      gateFD: gate))
        }
        self.armings = armings
    }

    deinit {
        for a in armings { a.stop() }  // joins its thread, then detaches
        syn_ring_positions_unmap(&ringPositions)
        if let ring { ring_buffer__free(ring) }
        if let baselineLink { bpf_link__destroy(baselineLink) }
        for l in links { bpf_link__destroy(l) }
    }

    /// Tell the kernel side to report the exits of these (pre-existing) listeners.
    public func watchExits(of pids: [UInt32]) {
        var one: UInt8 = 1
        for var pid in pids {
            _ = bpf_map_update_elem(listenerPidsFD, &pid, &one, UInt64(BPF_ANY))
        }
    }

    /// What seeding found: each listener's seed, and the namespaces that
    /// could not be entered (their listeners are not seeded).
    public struct Seeding: Sendable {
        public var seeds: [ListenerSeed] = []
        public var failed: [UInt32] = []
    }

    /// Registers, for the overflow programs, the listening sockets that
    /// existed before tracing, by running iter/tcp once inside each network
    /// namespace (an iterator walks its creator's namespace), and reads
    /// what the iterator writes of each (bound device, IPV6_V6ONLY).
    /// `netnsPids` maps a namespace inode to a PID living in it.
    public func seedListeners(netnsPids: [UInt32: UInt32]) -> Seeding {
        var out = Seeding()
        guard let prog = program(.iterListeners),
              bpf_program__autoload(prog),
              let link = bpf_program__attach_iter(prog, nil) else { return Seeding(failed: Array(netnsPids.keys)) }
        defer { bpf_link__destroy(link) }
        let home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)
        guard home >= 0 else { return Seeding(failed: Array(netnsPids.keys)) }
        defer { close(home) }
        for (ns, pid) in netnsPids.sorted(by: { $0.key < $1.key }) {
            let fd = open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)
            guard fd >= 0, syn_setns_net(fd) == 0 else {
                if fd >= 0 { close(fd) }
                out.failed.append(ns)
                continue
            }
            close(fd)
            if let bytes = Self.readIterator(link) {
                out.seeds += ListenerSeed.decode(bytes)
            } else {
                out.failed.append(ns)
            }
            _ = syn_setns_net(home)
        }
        return out
    }

    /// One run of an attached iterator, all it wrote; nil if it could not run.
    static func readIterator(_ link: OpaquePointer) -> [UInt8]? {
        let iter = bpf_iter_create(bpf_link__fd(link))
        guard iter >= 0 else { return nil }
        defer { close(iter) }
        var all: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(iter, $0.baseAddress, $0.count) }
            if n > 0 {
                all += buf.prefix(n)
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return all
            }
        }
    }

    /// Total ring-buffer reservations that failed, summed over CPUs.
    public func lostEvents() -> UInt64 {
        var key: UInt32 = 0
        var values = [UInt64](repeating: 0, count: ncpus)
        guard bpf_map_lookup_elem(lostFD, &key, &values) == 0 else { return 0 }
        return values.reduce(0, &+)
    }

    /// Reads records until `shouldStop` says so. `onRecord` gets each raw
    /// record; `onTick` runs after every poll (at most every `tickMs`).
    public func run(tickMs: Int32 = 50,
                    onRecord: @escaping (UnsafeRawBufferPointer) -> Void,
                    onTick: () -> Void,
                    shouldStop: () -> Bool) throws(KernelError) {
        let box = Unmanaged.passRetained(RecordSink { [self] raw in
            noteRecordKind(raw)  // a refusing RST arms the baseline program
            onRecord(raw)
        })
        defer { box.release() }
        // Start-up is over: libbpf's parsed vmlinux BTF (CO-RE, feature
        // probes) and the /proc snapshot were freed, but malloc keeps the
        // pages. Give them back before the ring is mapped (it adds twice its
        // size to RSS), or they stay in RSS for the process's life (about
        // 12 MB; docs/benchmarks.md, memory target).
        _ = syn_malloc_trim()
        let fd = bpf_map__fd(objects.map("events"))
        guard let rb = ring_buffer__new(fd, { ctx, data, size in
            guard let ctx, let data else { return 0 }
            Unmanaged<RecordSink>.fromOpaque(ctx).takeUnretainedValue()
                .handler(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }, box.toOpaque(), nil) else {
            throw KernelError.sys("creating the ring buffer reader", code: errno)
        }
        ring = rb
        defer { ring_buffer__free(rb); ring = nil }
        // Started here, not in init: a thread created inside init's private
        // mount namespace (TraceFS) would share the creator's fs and keep
        // it from returning (setns refuses a shared fs).
        for a in armings { a.start() }
        defer { for a in armings { a.stop() } }
        while !shouldStop() {
            let n = ring_buffer__poll(rb, tickMs)
            if n < 0 && n != -EINTR {
                throw KernelError.sys("reading the ring buffer", code: n)
            }
            // The BPF side wakes us only when much is unread (submit() in
            // refusals.bpf.c): what arrived without a wakeup is read here,
            // after noting how much it was (the ring's fill, SelfCost).
            noteRingFill()
            _ = ring_buffer__consume(rb)
            updateResetBaseline()
            sweepListenersIfDue()
            onTick()
        }
        // Drain what is already there.
        _ = ring_buffer__consume(rb)
    }
}

final class RecordSink {
    let handler: (UnsafeRawBufferPointer) -> Void
    init(_ handler: @escaping (UnsafeRawBufferPointer) -> Void) { self.handler = handler }
}

/// Base64 decoding of the embedded object (no Foundation in this module).
func base64Decode(_ s: String) -> [UInt8]? {
    var table = [UInt8](repeating: 0xFF, count: 256)
    for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
        table[Int(c)] = UInt8(i)
    }
    var out: [UInt8] = []
    out.reserveCapacity(s.utf8.count * 3 / 4)
    var acc: UInt32 = 0, bits = 0
    for c in s.utf8 {
        if c == UInt8(ascii: "=") { break }
        let v = table[Int(c)]
        if v == 0xFF { return nil }
        acc = acc << 6 | UInt32(v)
        bits += 6
        if bits >= 8 {
            bits -= 8
            out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
        }
    }
    return out
}

/// Kernel CLOCK_BOOTTIME -> wall clock.
public func currentClockMapping() -> ClockMapping {
    var real = timespec(), boot = timespec()
    clock_gettime(CLOCK_BOOTTIME, &boot)
    clock_gettime(CLOCK_REALTIME, &real)
    let r = Int64(real.tv_sec) * 1_000_000_000 + Int64(real.tv_nsec)
    let b = Int64(boot.tv_sec) * 1_000_000_000 + Int64(boot.tv_nsec)
    return ClockMapping(bootToEpochOffsetNs: r - b)
}

public func bootTimeNow() -> UInt64 {
    var boot = timespec()
    clock_gettime(CLOCK_BOOTTIME, &boot)
    return UInt64(boot.tv_sec) * 1_000_000_000 + UInt64(boot.tv_nsec)
}
