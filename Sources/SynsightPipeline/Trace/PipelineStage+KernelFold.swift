import SynsightBase
import SynsightModel
import SynsightAttribution
import SynsightKernel

/// Storms folded in the kernel (bpf/fold.bpf.h, `KernelFold`): every second
/// the pipeline thread reads the counts the BPF side kept instead of sending
/// records, and emits each key's as one `summary` record attributed like the
/// key's last individual record (same reason, cause, process; the client
/// only when the folded refusals had local clients). Totals stay exact: the
/// summary's `count` is what the kernel counted, and `trace`'s summary and
/// the metrics count it like any summary.
extension PipelineStage {
    /// What a kernel fold key says of a record: namespace, port, family.
    struct FoldSampleKey: Hashable {
        var netns: UInt32
        var port: UInt16
        var family: AddressFamily
    }

    /// The summary's evidence: where it was folded, how many had local clients
    /// (docs/schema/synsight-record-v1.schema.json, summary records).
    static let foldedInKey = "folded_in"
    static let foldedInKernel = "kernel"
    static let localClientsKey = "local_clients"

    /// How often the counters are read (the kernel's window is 1 s too).
    static let foldReadIntervalNs: UInt64 = 1_000_000_000

    /// Remember the latest individual no-listener refusal of each key.
    func noteFoldSample(_ r: Record) {
        guard kernelFold != nil, r.kind == .refusal, r.reason == .noListener,
              let netns = r.netns, let port = r.port, let family = r.family else { return }
        foldSamples[FoldSampleKey(netns: netns, port: port, family: family)] = r
    }

    /// Read the kernel's counters when a second has passed (`force`: now).
    func readKernelFolds(now: UInt64, force: Bool = false) {
        guard let kernelFold, force || now &- lastFoldRead >= Self.foldReadIntervalNs else { return }
        lastFoldRead = now
        for storm in kernelFold.read() {
            // The kernel's filter also passes the container ports of followed
            // published ports, in every namespace: only the storms at a
            // followed container end (known from the key's latest record) or
            // at a named port are the filter's.
            let s = foldSummary(storm)
            if s.matches(ports: portFilter, publishedTargets: publishedTargets) { deliver(s) }
        }
    }

    func foldSummary(_ storm: FoldedStorm) -> Record {
        let family: AddressFamily = storm.family == 10 ? .ipv6 : .ipv4
        var s = foldSamples[FoldSampleKey(netns: storm.netns, port: storm.port, family: family)]
            ?? unsampledRefusal(storm, family: family)
        if storm.clients == 0 { s.client = nil }
        s.evidence.append((StormAggregator.summarizedKindKey, .string(s.kind.rawValue)))
        s.evidence.append((Self.foldedInKey, .string(Self.foldedInKernel)))
        s.evidence.append((Self.localClientsKey, .int(Int64(clamping: storm.clients))))
        s.kind = .summary
        s.ts = engine.clock.epoch(storm.lastNs)
        s.count = storm.count
        s.firstTs = engine.clock.epoch(storm.firstNs)
        s.lastTs = s.ts
        return s
    }

    /// No individual record of this key was seen (it was lost): attribute
    /// the key itself (namespace and port; no addresses).
    func unsampledRefusal(_ storm: FoldedStorm, family: AddressFamily) -> Record {
        let zero = IPAddress(bytes: [UInt8](repeating: 0, count: 16))
        let reset = NoSocketReset(ts: storm.lastNs, family: family, local: Endpoint(addr: zero, port: storm.port),
                                  remote: Endpoint(addr: zero, port: 0), netns: storm.netns)
        var r = engine.attribute(reset)
        r.local = nil
        r.remote = nil
        return r
    }
}
