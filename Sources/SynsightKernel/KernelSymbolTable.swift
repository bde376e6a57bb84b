import Glibc
import SynsightCore

/// The kernel's text symbols from /proc/kallsyms, read once at start-up into
/// a sorted table, for naming drop locations (`tcp_v4_rcv+0x3a1`) with a
/// binary search on the consumer thread. Names are kept in one byte buffer
/// (about 4 MB for a distribution kernel with modules) rather than one
/// String each. Without root, kallsyms shows every address as zero: the
/// table is then empty and locations stay addresses.
public final class KernelSymbolTable: KernelSymbolizer {
    let addrs: [UInt64]
    let nameStart: [UInt32]
    let nameLen: [UInt16]
    let names: [UInt8]

    public var count: Int { addrs.count }
    /// No kernel function is this long: an address further from its symbol is not in the table.
    static let maxOffset: UInt64 = 1 << 20

    public init(path: String = "/proc/kallsyms") {
        let text = ProcFS.readBytes(path, limit: 64 << 20) ?? []
        (addrs, nameStart, nameLen, names) = Self.parse(text)
    }

    init(text: [UInt8]) {
        (addrs, nameStart, nameLen, names) = Self.parse(text)
    }

    /// Lines are `<hex address> <type> <name>[\t[module]]`; text symbols (t, T) only.
    static func parse(_ text: [UInt8]) -> ([UInt64], [UInt32], [UInt16], [UInt8]) {
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
        entries.sort { $0.addr < $1.addr }
        return (entries.map(\.addr), entries.map(\.start), entries.map(\.len), names)
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
        guard address != 0, let first = addrs.first, address >= first else { return nil }
        var lo = 0, hi = addrs.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if addrs[mid] <= address { lo = mid } else { hi = mid - 1 }
        }
        // Past the last symbol of a region (no end address in kallsyms).
        guard address - addrs[lo] < Self.maxOffset else { return nil }
        let s = Int(nameStart[lo]), l = Int(nameLen[lo])
        return (String(decoding: names[s..<(s + l)], as: UTF8.self), address - addrs[lo])
    }
}
