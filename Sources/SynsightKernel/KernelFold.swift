import CLibBPF
import CSynsightABI
import Glibc

/// One key's storm folded in the kernel since the last read (bpf/fold.bpf.h):
/// records the BPF side counted instead of sending them one by one.
public struct FoldedStorm: Sendable, Hashable {
    public var netns: UInt32
    public var port: UInt16
    /// AF_INET (2) or AF_INET6 (10).
    public var family: UInt8
    /// The `SYN_EV_*` kind of the folded records.
    public var kind: UInt8
    /// Records folded since the last read.
    public var count: UInt64
    /// Of them, how many had their local client's ECONNREFUSED folded too.
    public var clients: UInt64
    /// CLOCK_BOOTTIME of the first and last folded record of this read.
    public var firstNs: UInt64
    public var lastNs: UInt64
}

/// Reads the kernel's fold counters (map `folded`). The BPF side only ever
/// increments them, so a read never races with a reset: each read returns
/// the difference since the previous one, and no folded record is lost.
/// Used by the pipeline thread only (a map walk is a few syscalls per key;
/// never on the ring-buffer thread).
public final class KernelFold: @unchecked Sendable {
    let fd: Int32
    let ncpus: Int
    struct Seen {
        var count: UInt64 = 0
        var clients: UInt64 = 0
        var lastNs: UInt64 = 0
    }
    var seen: [UInt64: Seen] = [:]

    init(fd: Int32, ncpus: Int) {
        self.fd = fd
        self.ncpus = ncpus
    }

    /// Every key whose counters moved since the last call.
    public func read() -> [FoldedStorm] {
        var out: [FoldedStorm] = []
        var key = syn_fold_key()
        var next = syn_fold_key()
        var values = [syn_fold_val](repeating: syn_fold_val(), count: ncpus)
        var first = true
        while true {
            let rc = first ? bpf_map_get_next_key(fd, nil, &next) : bpf_map_get_next_key(fd, &key, &next)
            if rc != 0 { break }
            first = false
            key = next
            guard bpf_map_lookup_elem(fd, &key, &values) == 0 else { continue }
            var count: UInt64 = 0, clients: UInt64 = 0, firstNs = UInt64.max, lastNs: UInt64 = 0
            for v in values {
                count &+= v.count
                clients &+= v.clients
                if v.count > 0 { firstNs = min(firstNs, v.first_ns) }
                lastNs = max(lastNs, v.last_ns)
            }
            let id = UInt64(key.netns) << 32 | UInt64(key.port) << 16 | UInt64(key.kind) << 8 | UInt64(key.family)
            let before = seen[id] ?? Seen()
            guard count > before.count else { continue }
            seen[id] = Seen(count: count, clients: clients, lastNs: lastNs)
            // The first fold of this read: after the previous read's last one.
            let from = before.lastNs == 0 ? firstNs : min(lastNs, before.lastNs + 1)
            out.append(FoldedStorm(netns: key.netns, port: key.port, family: key.family, kind: key.kind,
                                   count: count - before.count, clients: clients &- before.clients,
                                   firstNs: from, lastNs: lastNs))
        }
        return out.sorted { $0.lastNs < $1.lastNs }
    }
}

extension Tracer {
    /// The reader of the kernel's folded storms, when folding is on.
    public func kernelFold() -> KernelFold? {
        guard foldPerWindow > 0, let map = objects.map("folded") else { return nil }
        return KernelFold(fd: bpf_map__fd(map), ncpus: ncpus)
    }
}
