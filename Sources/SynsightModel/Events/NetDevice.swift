import CSynsightABI
import SynsightBase

/// A network device as BPF saw it when the event happened (struct syn_dev,
/// bpf/dev.bpf.h): a listener's bound device (SO_BINDTODEVICE, `ip vrf
/// exec`), the device a SYN came in on, the VRF it came through.
public struct NetDevice: Sendable, Hashable {
    public var ifindex: UInt32
    /// nil when BPF could not find the device in its namespace.
    public var name: String?
    /// An L3 master device: a VRF.
    public var isVRF: Bool
    /// Administratively up (IFF_UP); nil when not read.
    public var up: Bool?

    public init(ifindex: UInt32, name: String?, isVRF: Bool = false, up: Bool? = nil) {
        self.ifindex = ifindex
        self.name = name
        self.isVRF = isVRF
        self.up = up
    }

    /// nil for ifindex 0 (no device: an unbound socket, no VRF).
    init?(_ d: syn_dev) {
        guard d.ifindex != 0 else { return nil }
        ifindex = d.ifindex
        name = d.found != 0 ? NameBytes.string(cField: d.name) : nil
        isVRF = d.l3mdev != 0
    }

    /// The loopback: ifindex 1 in every network namespace (LOOPBACK_IFINDEX).
    public var isLoopback: Bool { ifindex == 1 }

    /// "eth1", "VRF blue", "ifindex 7" (no name).
    public var label: String {
        let n = name ?? "ifindex \(ifindex)"
        return isVRF ? "VRF \(n)" : n
    }

    /// The name, or the ifindex as text: what commands and evidence take.
    public var reference: String { name ?? "\(ifindex)" }

    package var json: JSONValue {
        var f: [(String, JSONValue)] = [("ifindex", .int(Int64(ifindex)))]
        if let name { f.append(("name", .string(name))) }
        if isVRF { f.append(("vrf", .bool(true))) }
        if let up { f.append(("up", .bool(up))) }
        return .object(f)
    }
}
