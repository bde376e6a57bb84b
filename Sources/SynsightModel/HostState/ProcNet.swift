import SynsightBase
/// Parsing of /proc/<pid>/net/tcp and tcp6, used for the start-up snapshot
/// of listeners that existed before tracing began. Pure text parsing; the
/// file walking lives in SynsightKernel.
public struct ProcNetSocket: Sendable, Hashable {
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint
    /// Kernel TCP state number (10 = LISTEN).
    public var state: UInt8
    public var uid: UInt32
    public var inode: UInt64

    public static let listenState: UInt8 = 0x0A
}

public enum ProcNet {
    /// Parses the whole file; malformed lines are skipped (the kernel writes
    /// them, but a truncated read must not crash the snapshot).
    public static func parse(_ text: String, family: AddressFamily) -> [ProcNetSocket] {
        var out: [ProcNetSocket] = []
        for line in text.split(separator: "\n").dropFirst() {
            if let s = parseLine(Substring(line), family: family) { out.append(s) }
        }
        return out
    }

    public static func parseLine(_ line: Substring, family: AddressFamily) -> ProcNetSocket? {
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        guard f.count >= 10,
              let local = endpoint(f[1], family: family),
              let remote = endpoint(f[2], family: family),
              let state = UInt8(f[3], radix: 16),
              let uid = UInt32(f[7]),
              let inode = UInt64(f[9]) else { return nil }
        return ProcNetSocket(family: family, local: local, remote: remote, state: state, uid: uid, inode: inode)
    }

    /// "0100007F:1F90" (IPv4) or 32 hex digits ":" port (IPv6). The kernel
    /// prints each 32-bit word of the address in host byte order (%08X of
    /// the raw __be32), so on little-endian machines the bytes of each word
    /// are reversed.
    package static func endpoint(_ s: Substring, family: AddressFamily) -> Endpoint? {
        let parts = s.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1], radix: 16) else { return nil }
        let hex = parts[0]
        let words = family == .ipv4 ? 1 : 4
        guard hex.count == 8 * words else { return nil }
        var bytes: [UInt8] = []
        var idx = hex.startIndex
        for _ in 0..<words {
            let end = hex.index(idx, offsetBy: 8)
            guard let w = UInt32(hex[idx..<end], radix: 16) else { return nil }
            // The printed word is the address word as loaded in host order:
            // stored back in host order, its bytes are the network bytes.
            bytes += withUnsafeBytes(of: w) { Array($0) }
            idx = end
        }
        if family == .ipv4 {
            return Endpoint(addr: IPAddress(v4: bytes[0], bytes[1], bytes[2], bytes[3]), port: port)
        }
        return Endpoint(addr: IPAddress(bytes: bytes), port: port)
    }
}
