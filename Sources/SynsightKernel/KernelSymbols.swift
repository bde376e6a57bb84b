import Glibc
import Synchronization

/// Addresses of kernel functions, from /proc/kallsyms (root sees real ones).
public enum KernelSymbols {
    /// [start, end) of a text symbol: end is the lowest symbol address above start.
    public struct Range: Sendable, Equatable {
        public var start: UInt64
        public var end: UInt64
    }

    /// The symbols the probes need, found in one read (KernelFeatures.probe, PendingSymbols).
    static let probed = ["tcp_v4_send_reset", "tcp_v6_send_reset", "tcp_conn_request", "tcp_v4_syn_recv_sock",
                         "tcp_v6_syn_recv_sock", "tcp_rcv_state_process", "tcp_reset", "tcp_finish_connect"]

    /// Reads of /proc/kallsyms started so far (PendingSymbols; the probe-plan
    /// tests check there is one per probe run).
    static let reads = Atomic<Int>(0)

    /// The ranges of `names` that /proc/kallsyms has, from one pass over its
    /// raw bytes (120k+ lines): split into Swift Strings it took most of
    /// synsight's start-up (about 2 s of 3.6 s on a 2-vCPU VM,
    /// docs/benchmarks.md); as bytes it is a few ms on top of the kernel's
    /// own time to generate the file.
    static func ranges(of names: [String]) -> [String: Range] {
        guard let bytes = ProcFS.readBytes("/proc/kallsyms", limit: 64 << 20) else { return [:] }
        let found = find(names.map { Array($0.utf8) }, in: bytes)
        var out: [String: Range] = [:]
        for (name, r) in zip(names, found) { if let r { out[name] = r } }
        return out
    }

    /// Lines are `<hex address> <type> <name>[\t[module]]`.
    static func find(_ names: [[UInt8]], in text: [UInt8]) -> [Range?] {
        var addrs: [UInt64] = []
        addrs.reserveCapacity(text.count / 40)
        var starts = [UInt64?](repeating: nil, count: names.count)
        text.withUnsafeBufferPointer { buf in
            let n = buf.count
            var i = 0
            while i < n {
                let (addr, digits, after) = hexAddress(buf, from: i)
                i = after
                // " <type> "
                let nameStart = i + 3
                var j = nameStart
                while j < n, buf[j] != 0x0A, buf[j] != 0x09, buf[j] != 0x20 { j += 1 }
                if digits > 0, addr != 0, nameStart <= j, i < n, buf[i] == 0x20 {
                    addrs.append(addr)
                    for (k, name) in names.enumerated() where starts[k] == nil && j - nameStart == name.count {
                        if name.withUnsafeBufferPointer({ memcmp($0.baseAddress!, buf.baseAddress! + nameStart, name.count) == 0 }) {
                            starts[k] = addr
                        }
                    }
                }
                while j < n, buf[j] != 0x0A { j += 1 }
                i = j + 1
            }
        }
        return starts.map { start in
            guard let s = start else { return nil }
            var end = UInt64.max
            for a in addrs where a > s && a < end { end = a }
            return end == UInt64.max ? nil : Range(start: s, end: end)
        }
    }

    /// The hex number at `i`: its value, its digit count and where it ends.
    static func hexAddress(_ buf: UnsafeBufferPointer<UInt8>, from start: Int) -> (UInt64, Int, Int) {
        var addr: UInt64 = 0, digits = 0, i = start
        while i < buf.count {
            let c = buf[i]
            let v: UInt8
            switch c {
            case 0x30...0x39: v = c - 0x30
            case 0x61...0x66: v = c - 0x61 + 10
            case 0x41...0x46: v = c - 0x41 + 10
            default: return (addr, digits, i)
            }
            addr = addr << 4 | UInt64(v)
            digits += 1
            i += 1
        }
        return (addr, digits, i)
    }
}
