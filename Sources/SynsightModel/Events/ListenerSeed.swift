import CSynsightABI

/// What iter/tcp tells of a listener that predates tracing (struct
/// syn_seed_listener, bpf/refusals.bpf.c): what /proc/net/tcp does not
/// show. The start-up snapshot's listeners take it by (netns, inode).
public struct ListenerSeed: Sendable, Hashable {
    public var netns: UInt32
    public var socketInode: UInt64
    public var ipv6Only: Bool
    public var boundDevice: NetDevice?

    public init(netns: UInt32, socketInode: UInt64, ipv6Only: Bool, boundDevice: NetDevice? = nil) {
        self.netns = netns
        self.socketInode = socketInode
        self.ipv6Only = ipv6Only
        self.boundDevice = boundDevice
    }

    /// The records of one iterator read; a partial record at the end is ignored.
    public static func decode(_ bytes: [UInt8]) -> [ListenerSeed] {
        let size = MemoryLayout<syn_seed_listener>.size
        return bytes.withUnsafeBytes { raw in
            stride(from: 0, to: raw.count - size + 1, by: size).map { at in
                let s = raw.loadUnaligned(fromByteOffset: at, as: syn_seed_listener.self)
                return ListenerSeed(netns: s.netns, socketInode: s.sock_ino, ipv6Only: s.ipv6only != 0,
                                    boundDevice: NetDevice(s.bound))
            }
        }
    }
}

extension ListenerInfo {
    /// Takes what the kernel's iterator knows of this listener.
    public mutating func apply(_ seed: ListenerSeed) {
        guard seed.netns == netns, seed.socketInode == socketInode else { return }
        if family == .ipv6 { ipv6Only = seed.ipv6Only }
        boundDevice = seed.boundDevice
    }
}
