import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel

/// A device by ifindex in the calling thread's network namespace: its
/// name (SIOCGIFNAME, what if_indextoname does) and whether it is a VRF
/// (the ethtool driver name "vrf"). The namespace readers and explain's
/// namespace walk call it from inside the namespace; no netlink needed.
enum NetDeviceLookup {
    static func name(_ ifindex: UInt32) -> String? {
        var buf = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(ifindex, &buf) != nil else { return nil }
        // Interface names may hold any byte but '/', ':' and white space.
        return NameBytes.string(buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })
    }

    /// nil when no device has that index here.
    static func here(_ ifindex: UInt32) -> NetDevice? {
        guard let name = name(ifindex) else { return nil }
        return NetDevice(ifindex: ifindex, name: name, isVRF: driver(name) == "vrf")
    }

    /// `here`, with whether it is up (IFF_UP; nil when unreadable).
    static func withState(_ ifindex: UInt32) -> NetDevice? {
        guard var dev = here(ifindex), let name = dev.name else { return nil }
        var flags: UInt32 = 0
        if syn_if_flags(name, &flags) == 0 { dev.up = flags & 0x1 != 0 }  // IFF_UP
        return dev
    }

    /// The device's driver (ETHTOOL_GDRVINFO); nil if it does not say.
    static func driver(_ name: String) -> String? {
        var out = [CChar](repeating: 0, count: 33)
        guard syn_ethtool_driver(name, &out, out.count) == 0 else { return nil }
        return NameBytes.string(out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })
    }
}
