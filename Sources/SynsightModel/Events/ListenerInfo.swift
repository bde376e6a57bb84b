import SynsightBase

/// A listening socket the engine knows of.
public struct ListenerInfo: Sendable, Hashable {
    public var netns: UInt32
    public var family: AddressFamily
    public var local: Endpoint
    /// nil when unknown (start-up snapshot from /proc does not show it).
    public var ipv6Only: Bool?
    public var socketInode: UInt64
    public var pid: UInt32
    public var comm: String
    public var exe: String?
    /// Kernel time it started listening; nil if it predates synsight.
    public var since: UInt64?
    /// Captured when it started listening (or at the start-up snapshot), so a
    /// refusal after the process or its container died still names them.
    public var workload: WorkloadIdentity?
    /// The device it is bound to (SO_BINDTODEVICE, `ip vrf exec`): it takes
    /// only SYNs that came in on that device (or through that VRF). nil:
    /// any device (or, from a /proc-only snapshot, not known).
    public var boundDevice: NetDevice?
    /// Its parent and command line when it started listening: its restart
    /// where no cgroup groups a service (ProcessResolver.relaunch).
    public var launch: ProcessLaunch?

    public init(netns: UInt32, family: AddressFamily, local: Endpoint, ipv6Only: Bool?,
                socketInode: UInt64, pid: UInt32, comm: String, exe: String? = nil, since: UInt64? = nil,
                workload: WorkloadIdentity? = nil, boundDevice: NetDevice? = nil) {
        self.boundDevice = boundDevice
        self.workload = workload
        self.netns = netns
        self.family = family
        self.local = local
        self.ipv6Only = ipv6Only
        self.socketInode = socketInode
        self.pid = pid
        self.comm = comm
        self.exe = exe
        self.since = since
    }

    package var process: ProcessRef { ProcessRef(pid: pid, comm: comm, exe: exe, workload: workload) }

    /// "nginx (pid 4410)", with its workload when known: "nginx (pid 4410, unit nginx.service)".
    package var label: String { process.label }

    /// An AF_INET6 socket bound to an IPv4-mapped address (::ffff:a.b.c.d)
    /// takes IPv4 only: it behaves as an IPv4 listener.
    package var effectiveFamily: AddressFamily {
        family == .ipv6 && local.addr.isV4Mapped ? .ipv4 : family
    }

    package var json: JSONValue {
        var f: [(String, JSONValue)] = [
            ("addr", .string(local.addr.description)), ("port", .int(Int64(local.port))),
            ("family", .string(family.rawValue)), ("netns", .int(Int64(netns))),
            ("pid", .int(Int64(pid))), ("comm", .string(comm)),
        ]
        if let ipv6Only { f.append(("ipv6only", .bool(ipv6Only))) }
        if let boundDevice { f.append(("bound_device", boundDevice.json)) }
        if let workload { f += workload.jsonFields }
        return .object(f)
    }

    /// Would the kernel's socket lookup (inet_bound_dev_eq) give this
    /// listener a SYN that came in on `device` through `vrf`? A listener
    /// bound to a device takes what came in on it or through it; one bound
    /// to none takes what came through a VRF only with
    /// net.ipv4.tcp_l3mdev_accept=1, which a refusal it did not take rules out.
    package func takes(device: NetDevice?, vrf: NetDevice?) -> Bool {
        guard let bound = boundDevice else { return vrf == nil }
        return bound.ifindex == device?.ifindex || bound.ifindex == vrf?.ifindex
    }

    /// Would this listener accept a SYN of `family` sent to `addr`?
    package func accepts(family f: AddressFamily, addr: IPAddress) -> Bool {
        let addrMatches = local.addr.isUnspecified || local.addr == addr
        if f == effectiveFamily { return addrMatches }
        // A dual-stack [::] listener also takes IPv4.
        return family == .ipv6 && f == .ipv4 && ipv6Only == false && local.addr.isUnspecified
    }
}
