import CSynsightABI
import SynsightBase

/// Failed bind(), listen() and connect() calls (bpf/syscalls.bpf.h,
/// `struct syn_ev_sockcall`), with what the kernel said during the call:
/// the CAP_NET_BIND_SERVICE check, SELinux denials, Landlock sandboxing.

/// The socket system call that failed.
public enum SocketCall: UInt8, Sendable, Hashable, CaseIterable {
    case bind = 1
    case listen = 2
    case connect = 3

    public var name: String {
        switch self {
        case .bind: return "bind"
        case .listen: return "listen"
        case .connect: return "connect"
        }
    }
}

/// CAP_NET_BIND_SERVICE at a failed bind(), decided in the kernel from the
/// caller's credentials over the socket's network namespace, as the kernel's
/// own check decides it (`bind_cap_state` in bpf/syscalls.bpf.h).
public enum CapabilityCheck: UInt8, Sendable, Hashable {
    /// Not checked by the kernel: port 0, or not below ip_unprivileged_port_start.
    case notChecked = 0
    case granted = 1
    /// Not in the caller's effective set.
    case denied = 2
    /// The network namespace belongs to a user namespace outside the
    /// caller's (an ancestor's, or unrelated): capabilities the caller holds
    /// in its own user namespace do not count there.
    case otherUserNamespace = 3

    /// The kernel refuses the privileged port.
    public var refuses: Bool { self == .denied || self == .otherUserNamespace }

    /// As the evidence and `otherLSMDenial` state it.
    public var text: String {
        switch self {
        case .notChecked: return "not checked (port 0 or not below ip_unprivileged_port_start)"
        case .granted: return "granted"
        case .denied: return "not in the effective set"
        case .otherUserNamespace: return "held only in the process's own user namespace, not in the one owning the network namespace"
        }
    }
}

/// The first SELinux denial audited during the call (avc:selinux_audited).
public struct AVCDenial: Sendable, Hashable {
    public var requested: UInt32
    public var denied: UInt32
    public var audited: UInt32
    /// The access decision: 0 with `denied != 0` means permissive (allowed, logged).
    public var result: Int32
    public var tclass: String
    public var scontext: String
    public var tcontext: String

    public init(requested: UInt32, denied: UInt32, audited: UInt32, result: Int32,
                tclass: String, scontext: String, tcontext: String) {
        self.requested = requested
        self.denied = denied
        self.audited = audited
        self.result = result
        self.tclass = tclass
        self.scontext = scontext
        self.tcontext = tcontext
    }

    public var permissive: Bool { result == 0 && denied != 0 }
}

/// bind(), listen() or connect() that failed (or that SELinux audited as a
/// denial in permissive mode, in which case `errno` is 0).
public struct SocketCallFailure: Sendable, Hashable {
    public var ts: UInt64
    public var startTs: UInt64
    public var call: SocketCall
    public var family: AddressFamily
    /// bind: the requested address and port; listen: the bound ones;
    /// connect: the socket's bound local end (often unspecified, port 0).
    public var local: Endpoint
    /// connect: the destination; otherwise unspecified.
    public var remote: Endpoint
    public var task: TaskInfo
    public var netns: UInt32
    /// Positive errno (98 EADDRINUSE, 99 EADDRNOTAVAIL, 13 EACCES, 1 EPERM), 0 if the call succeeded.
    public var errno: Int32
    public var fd: Int32
    /// net.ipv4.ip_unprivileged_port_start of the netns, nil if unreadable.
    public var unprivilegedPortStart: Int32?
    /// net.ipv4.ip_local_port_range of the netns, nil if unreadable.
    public var localPortRange: ClosedRange<UInt16>?
    /// SOCK_STREAM (1), SOCK_DGRAM (2); 0 unknown.
    public var socketType: UInt8
    public var capability: CapabilityCheck
    /// The process restricted itself with Landlock (or descends from one that did).
    public var landlocked: Bool
    public var nonlocalBind: Bool
    public var avcCount: UInt8
    public var avc: AVCDenial?
    /// The socket's device, mark and owner; nil when it could not be read.
    public var routing: SocketRouting?

    public init(ts: UInt64, startTs: UInt64 = 0, call: SocketCall, family: AddressFamily,
                local: Endpoint, remote: Endpoint? = nil, task: TaskInfo, netns: UInt32, errno: Int32,
                fd: Int32 = 3, unprivilegedPortStart: Int32? = 1024,
                localPortRange: ClosedRange<UInt16>? = 32768...60999, socketType: UInt8 = 1,
                capability: CapabilityCheck = .notChecked, landlocked: Bool = false,
                nonlocalBind: Bool = false, avcCount: UInt8 = 0, avc: AVCDenial? = nil,
                routing: SocketRouting? = nil) {
        self.ts = ts
        self.startTs = startTs
        self.call = call
        self.family = family
        self.local = local
        self.remote = remote ?? Endpoint(addr: family == .ipv4 ? .any4 : .any6, port: 0)
        self.task = task
        self.netns = netns
        self.errno = errno
        self.fd = fd
        self.unprivilegedPortStart = unprivilegedPortStart
        self.localPortRange = localPortRange
        self.socketType = socketType
        self.capability = capability
        self.landlocked = landlocked
        self.nonlocalBind = nonlocalBind
        self.avcCount = avcCount
        self.avc = avc
        self.routing = routing
    }

    /// The service port in question: the requested/bound port, or the destination for connect().
    public var port: UInt16 { call == .connect ? remote.port : local.port }

    public var protocolName: String { socketType == 2 ? "udp" : "tcp" }
}

/// A socket holding a port, as found in the listener registry or in /proc.
public struct PortHolder: Sendable, Hashable {
    public var pid: UInt32?
    public var comm: String?
    /// "LISTEN", "TIME_WAIT", "ESTABLISHED", ... ("UNCONN" for an unconnected UDP socket).
    public var state: String
    public var family: AddressFamily
    public var local: Endpoint
    public var remote: Endpoint?
    public var inode: UInt64
    public var reusePort: Bool?
    /// Where it was found: "listener registry" or "/proc".
    public var source: String

    public init(pid: UInt32?, comm: String?, state: String, family: AddressFamily, local: Endpoint,
                remote: Endpoint? = nil, inode: UInt64 = 0, reusePort: Bool? = nil, source: String = "/proc") {
        self.pid = pid
        self.comm = comm
        self.state = state
        self.family = family
        self.local = local
        self.remote = remote
        self.inode = inode
        self.reusePort = reusePort
        self.source = source
    }
}

/// Live system state the syscall attribution needs (who holds a port, the
/// active LSMs, SELinux's permission numbering). Implemented over /proc and
/// /sys in SynsightKernel; faked in tests, so the engine stays pure.
public protocol PortHolderLookup {
    /// Sockets of `proto` ("tcp" or "udp") using local `port` in network
    /// namespace `netns`. `near` is a process believed to live in it.
    func holders(netns: UInt32, port: UInt16, proto: String, near pid: UInt32) -> [PortHolder]
    /// /sys/kernel/security/lsm, nil if unreadable.
    func activeLSMs() -> [String]?
    /// /sys/fs/selinux/class/<tclass>/perms: permission name -> bit, nil if absent.
    func selinuxPermissions(tclass: String) -> [String: UInt32]?
}

enum SocketCallDecoder {
    package static func decode(_ raw: UnsafeRawBufferPointer) throws(DecodeError) -> KernelEvent {
        let e = raw.loadUnaligned(as: syn_ev_sockcall.self)
        guard let call = SocketCall(rawValue: e.op) else { throw .unknownCall(e.op) }
        // listen() on a socket whose fd could not be read carries no family.
        let familyValue = e.t.family == 0 ? UInt16(2) : e.t.family
        let t = try EventDecoder.tuple({ var t = e.t; t.family = familyValue; return t }())
        var avc: AVCDenial?
        if e.avc_count != 0 {
            avc = AVCDenial(requested: e.avc.requested, denied: e.avc.denied, audited: e.avc.audited,
                            result: e.avc.result, tclass: NameBytes.string(cField: e.avc.tclass),
                            scontext: NameBytes.string(cField: e.avc.scontext), tcontext: NameBytes.string(cField: e.avc.tcontext))
        }
        let range: ClosedRange<UInt16>? =
            (e.port_range_lo != 0 && e.port_range_lo <= e.port_range_hi) ? e.port_range_lo...e.port_range_hi : nil
        return .socketCall(SocketCallFailure(
            ts: e.hdr.ts_ns, startTs: e.start_ns, call: call, family: t.family,
            local: t.local, remote: t.remote, task: EventDecoder.task(e.task), netns: e.netns,
            errno: e.ret < 0 ? -e.ret : 0, fd: e.fd,
            unprivilegedPortStart: e.unpriv_port_start < 0 ? nil : e.unpriv_port_start,
            localPortRange: range, socketType: e.sock_type,
            capability: CapabilityCheck(rawValue: e.cap_state) ?? .notChecked,
            landlocked: e.landlocked != 0, nonlocalBind: e.nonlocal_bind != 0,
            avcCount: e.avc_count, avc: avc, routing: SocketRouting.of(e)))
    }
}
