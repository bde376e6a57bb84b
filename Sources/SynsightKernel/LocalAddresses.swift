import Glibc
import SynsightBase
import SynsightModel

/// The addresses of the calling thread's network namespace (RouteReader
/// reads them there for a bind() refused with EADDRNOTAVAIL): IPv6 from
/// /proc/thread-self/net/if_inet6, which has each address's duplicate
/// address detection flags; IPv4 from getifaddrs(3) (an RTM_GETADDR dump on
/// a netlink socket of the thread's namespace).
enum LocalAddresses {
    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    static func here(family: AddressFamily) -> Result<[LocalAddress], ReadError> {
        family == .ipv6 ? ipv6() : ipv4()
    }

    static func ipv6() -> Result<[LocalAddress], ReadError> {
        guard let text = ProcFS.read("/proc/thread-self/net/if_inet6", limit: 1 << 20) else {
            // No file: IPv6 is disabled in this kernel or namespace.
            return .success([])
        }
        return .success(LocalAddress.parseIfInet6(text))
    }

    static func ipv4() -> Result<[LocalAddress], ReadError> {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0 else {
            return .failure(ReadError(description: "cannot list the namespace's addresses (getifaddrs): \(ErrnoName.name(errno))"))
        }
        defer { freeifaddrs(head) }
        var out: [LocalAddress] = []
        var p = head
        while let a = p?.pointee {
            defer { p = a.ifa_next }
            guard let sa = a.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            let addr = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
            let mask = a.ifa_netmask?.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr } ?? 0
            let b = withUnsafeBytes(of: addr) { Array($0) }  // network order
            let name = a.ifa_name.map { NameBytes.string(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? "?"
            out.append(LocalAddress(ifname: name, addr: IPAddress(v4: b[0], b[1], b[2], b[3]),
                                    prefixLength: UInt32(bigEndian: mask).nonzeroBitCount))
        }
        return .success(out)
    }
}
