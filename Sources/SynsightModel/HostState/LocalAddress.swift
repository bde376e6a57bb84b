import SynsightBase

/// An address configured on an interface of a network namespace, as read
/// for a bind() that failed with EADDRNOTAVAIL (RouteReader, in the
/// caller's namespace, when the failure is decoded). IPv6 addresses carry
/// their duplicate address detection state (/proc/net/if_inet6 flags):
/// the kernel refuses to bind a tentative or DAD-failed address.
public struct LocalAddress: Sendable, Hashable {
    public var ifname: String
    public var addr: IPAddress
    public var prefixLength: Int
    /// IFA_F_TENTATIVE: duplicate address detection has not finished (or
    /// cannot start: the link has no carrier).
    public var tentative: Bool
    /// IFA_F_DADFAILED: another host on the link answered for it.
    public var dadFailed: Bool

    public init(ifname: String, addr: IPAddress, prefixLength: Int, tentative: Bool = false, dadFailed: Bool = false) {
        self.ifname = ifname
        self.addr = addr
        self.prefixLength = prefixLength
        self.tentative = tentative
        self.dadFailed = dadFailed
    }

    /// include/uapi/linux/if_addr.h.
    static let flagDADFailed: UInt32 = 0x08
    static let flagTentative: UInt32 = 0x40

    /// /proc/net/if_inet6: "ADDR(32 hex) IFINDEX PREFIXLEN SCOPE FLAGS NAME",
    /// numbers in hex. Malformed lines are skipped.
    public static func parseIfInet6(_ text: String) -> [LocalAddress] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(whereSeparator: \.isWhitespace)
            guard f.count >= 6, f[0].count == 32, let plen = Int(f[2], radix: 16), let flags = UInt32(f[4], radix: 16) else { return nil }
            var bytes: [UInt8] = []
            var i = f[0].startIndex
            while i < f[0].endIndex {
                let j = f[0].index(i, offsetBy: 2)
                guard let b = UInt8(f[0][i..<j], radix: 16) else { return nil }
                bytes.append(b)
                i = j
            }
            let tentative = flags & flagTentative != 0
            let failed = flags & flagDADFailed != 0
            return LocalAddress(ifname: NameBytes.string(Array(f[5].utf8)), addr: IPAddress(bytes: bytes), prefixLength: plen,
                                tentative: tentative && !failed, dadFailed: failed)
        }
    }

    /// "fd00::1/64 on eth0 (tentative)".
    public var label: String {
        "\(addr)/\(prefixLength) on \(ifname)" + (dadFailed ? " (dadfailed)" : tentative ? " (tentative)" : "")
    }

    package var json: JSONValue {
        var o: [(String, JSONValue)] = [("addr", .string(addr.description)), ("prefix_length", .int(Int64(prefixLength))),
                                        ("interface", .string(ifname))]
        if tentative { o.append(("tentative", .bool(true))) }
        if dadFailed { o.append(("dadfailed", .bool(true))) }
        return .object(o)
    }
}
