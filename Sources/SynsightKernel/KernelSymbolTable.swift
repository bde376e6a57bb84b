import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// The kernel's text symbols from /proc/kallsyms, for naming drop locations
/// (`tcp_v4_rcv+0x3a1`) with a binary search.
///
/// Read once, on the first drop that needs a name (a host without drops
/// never pays for it: generating kallsyms costs the kernel tens of
/// milliseconds, and the table about 3.5 MB, against the start-up and memory
/// targets of docs/benchmarks.md), then cached for the process's life.
/// Addresses are kept as 32-bit offsets from the lowest text symbol (kernel
/// and module text span far less than 4 GB) and names in one byte buffer
/// rather than one String each. Without root, kallsyms shows every address as
/// zero: the table is then empty and locations stay addresses.
public final class KernelSymbolTable: KernelSymbolizer {
    struct Table {
        var base: UInt64 = 0
        var offsets: [UInt32] = []
        var nameStart: [UInt32] = []
        var nameLen: [UInt16] = []
        var names: [UInt8] = []
    }

    let path: String
    var table: Table?
    /// No kernel function is this long: an address further from its symbol is not in the table.
    static let maxOffset: UInt64 = 1 << 20

    public init(path: String = "/proc/kallsyms") {
        self.path = path
    }

    init(text: [UInt8]) {
        path = ""
        table = Self.parse(text)
    }

    /// Symbols in the table (reads it if not read yet).
    public var count: Int { loaded().offsets.count }

    func loaded() -> Table {
        if let table { return table }
        let t = Self.parse(ProcFS.readBytes(path, limit: 64 << 20) ?? [])
        table = t
        return t
    }

    /// Does /proc/kallsyms show real addresses to this process (root, or
    /// kptr_restrict allowing it)? Reads only its first line.
    public static func addressesVisible(path: String = "/proc/kallsyms") -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return false }
        return buf.prefix(n).prefix { $0 != 0x20 }.contains { $0 != UInt8(ascii: "0") }
    }

    /// Lines are `<hex address> <type> <name>[\t[module]]`; text symbols (t, T) only.
    static func parse(_ text: [UInt8]) -> Table {
        var entries: [(addr: UInt64, start: UInt32, len: UInt16)] = []
        var names: [UInt8] = []
        text.withUnsafeBufferPointer { buf in
            let n = buf.count
            var i = 0
            while i < n {
                var addr: UInt64 = 0
                while i < n, let v = hexValue(buf[i]) {
                    addr = addr << 4 | UInt64(v)
                    i += 1
                }
                let type = i + 1 < n ? buf[i + 1] : 0
                let nameStart = i + 3
                var j = nameStart
                while j < n, buf[j] != 0x0A, buf[j] != 0x09, buf[j] != 0x20 { j += 1 }
                if addr != 0, type == UInt8(ascii: "t") || type == UInt8(ascii: "T"), nameStart < j, j - nameStart < 0xFFFF {
                    entries.append((addr, UInt32(names.count), UInt16(j - nameStart)))
                    names.append(contentsOf: buf[nameStart..<j])
                }
                while j < n, buf[j] != 0x0A { j += 1 }
                i = j + 1
            }
        }
        guard let low = entries.lazy.map(\.addr).min() else { return Table() }
        // Only what fits 32 bits above the lowest symbol (all of it on x86-64 and arm64).
        entries.removeAll { $0.addr - low > UInt64(UInt32.max) }
        entries.sort { $0.addr < $1.addr }
        return Table(base: low, offsets: entries.map { UInt32($0.addr - low) },
                     nameStart: entries.map(\.start), nameLen: entries.map(\.len), names: names)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    /// The symbol at or below `address`.
    public func symbolize(_ address: UInt64) -> (name: String, offset: UInt64)? {
        guard address != 0 else { return nil }
        let t = loaded()
        guard !t.offsets.isEmpty, address >= t.base, address - t.base <= UInt64(UInt32.max) else { return nil }
        let want = UInt32(address - t.base)
        var lo = 0, hi = t.offsets.count - 1
        guard t.offsets[0] <= want else { return nil }
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if t.offsets[mid] <= want { lo = mid } else { hi = mid - 1 }
        }
        let offset = UInt64(want - t.offsets[lo])
        // Past the last symbol of a region (no end address in kallsyms).
        guard offset < Self.maxOffset else { return nil }
        let s = Int(t.nameStart[lo]), l = Int(t.nameLen[lo])
        return (String(decoding: t.names[s..<(s + l)], as: UTF8.self), offset)
    }
}
