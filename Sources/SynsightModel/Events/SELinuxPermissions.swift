/// Decoding of SELinux access-vector bits into permission names.
public enum SELinuxPermissions {
    /// COMMON_SOCK_PERMS of security/selinux/include/classmap.h, in bit order.
    static let commonSocket = ["ioctl", "read", "write", "create", "getattr", "setattr", "lock",
                               "relabelfrom", "relabelto", "append", "map",
                               "bind", "connect", "listen", "accept", "getopt", "setopt",
                               "shutdown", "recvfrom", "sendto", "name_bind"]
    package static let capability = ["chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
                             "setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
                             "net_broadcast", "net_admin", "net_raw"]

    /// The kernel classmap's numbering, for when /sys/fs/selinux is not readable.
    public static func fallback(tclass: String) -> [String: UInt32]? {
        var names: [String]
        switch tclass {
        case "tcp_socket": names = commonSocket + ["node_bind", "name_connect"]
        case "udp_socket", "sctp_socket", "dccp_socket": names = commonSocket + ["node_bind"]
        case "rawip_socket": names = commonSocket + ["node_bind"]
        case "capability", "cap_userns": names = capability
        default:
            guard tclass.hasSuffix("_socket") else { return nil }
            names = commonSocket
        }
        var t: [String: UInt32] = [:]
        for (i, n) in names.enumerated() { t[n] = 1 << UInt32(i) }
        return t
    }

    /// /sys/fs/selinux/class/<c>/perms/<p> holds N: the permission is bit 1 << (N-1).
    public static func bit(fromSysfsValue n: Int) -> UInt32? {
        guard (1...32).contains(n) else { return nil }
        return 1 << UInt32(n - 1)
    }

    /// Names of the set bits, lowest first; unknown bits as hex.
    public static func names(bits: UInt32, tclass: String, table: [String: UInt32]?) -> [String] {
        let t = table ?? fallback(tclass: tclass) ?? [:]
        var byBit: [UInt32: String] = [:]
        for (name, bit) in t { byBit[bit] = name }
        var out: [String] = []
        for i in 0..<32 {
            let b: UInt32 = 1 << UInt32(i)
            guard bits & b != 0 else { continue }
            out.append(byBit[b] ?? "0x" + String(b, radix: 16))
        }
        return out
    }

    /// "system_u:system_r:httpd_t:s0" -> "httpd_t".
    public static func type(of context: String) -> String? {
        let parts = context.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count >= 3 ? String(parts[2]) : nil
    }
}
