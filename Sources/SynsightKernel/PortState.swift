import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// The live state of one TCP port for `explain`, in every network namespace
/// of the host: listening sockets and SYN-queue request sockets (sock_diag),
/// the processes holding them with their fd limits (/proc), each
/// namespace's sysctls and TcpExt counters, and its nftables ruleset.
///
/// Sysctls under /proc/sys/net and netlink sockets belong to the namespace
/// of the calling *thread*, so a thread enters each namespace with setns(),
/// reads, and returns before anything else happens. That thread is a
/// dedicated one, never the main thread: /proc/<pid>/ns/net shows the main
/// thread's namespace, so the process never appears to live in another
/// namespace (`ip netns pids` would list it, and whoever cleans that
/// namespace up would kill it). Read-only: nothing is changed in any namespace.
public enum PortState {
    /// A network namespace and a way into it.
    public struct Namespace: Sendable {
        public var inode: UInt32
        /// /run/netns/<name> or /proc/<pid>/ns/net.
        public var path: String
        public var name: String?
        public var processCount: Int
        public var isHost: Bool
        /// Its processes, the first `sampledPids` found in /proc (pid order):
        /// a pod's namespace holds several containers' processes, and the
        /// one a question is about (the infra container holding a pod's
        /// port bindings) need not be the first.
        public var pids: [UInt32] = []
        /// One of its processes (the first found); nil when it has none.
        public var pid: UInt32? { pids.first }

        public static let sampledPids = 64
    }

    /// Synsight's own network namespace.
    public static func ownNetns() -> UInt32? { ProcFS.nsInode("/proc/self/ns/net") }

    /// Every network namespace some process lives in, and the named ones
    /// under /run/netns (which may hold no process).
    public static func namespaces() -> [Namespace] {
        var byInode: [UInt32: Namespace] = [:]
        // init's namespace; where /proc/1 is hidden (a sandbox), init_net's fixed
        // inode number PROC_NET_INIT_INO (0xEFFFFFF9, include/linux/proc_ns.h, 6.x).
        let host = ProcFS.nsInode("/proc/1/ns/net") ?? 0xEFFF_FFF9
        for pid in ProcFS.pids() {
            guard let ns = ProcFS.nsInode("/proc/\(pid)/ns/net") else { continue }
            if byInode[ns] == nil {
                byInode[ns] = Namespace(inode: ns, path: "/proc/\(pid)/ns/net", name: nil, processCount: 0, isHost: ns == host)
            }
            byInode[ns]!.processCount += 1
            if byInode[ns]!.pids.count < Namespace.sampledPids { byInode[ns]!.pids.append(pid) }
        }
        for dir in ["/run/netns", "/var/run/netns"] {
            for name in ProcFS.list(dir).sorted() {
                let path = "\(dir)/\(name)"
                // Not yet (or no longer) a namespace mount: a plain file.
                guard ProcFS.isNamespace(path), let ns = ProcFS.nsInode(path) else { continue }
                if byInode[ns] == nil {
                    byInode[ns] = Namespace(inode: ns, path: path, name: name, processCount: 0, isHost: ns == host)
                } else if byInode[ns]!.name == nil {
                    // A named path is steadier than a process that may exit.
                    byInode[ns]!.name = name
                    byInode[ns]!.path = path
                }
            }
        }
        return byInode.values.sorted { ($0.isHost ? 0 : 1, $0.inode) < ($1.isHost ? 0 : 1, $1.inode) }
    }

    /// A namespace given as a name under /run/netns, an inode number,
    /// `pid:<pid>`, or a path to a namespace file.
    public static func resolveNetns(_ spec: String) -> UInt32? {
        if spec.hasPrefix("pid:"), let pid = UInt32(spec.dropFirst(4)) { return ProcFS.nsInode("/proc/\(pid)/ns/net") }
        if spec.hasPrefix("/") { return ProcFS.nsInode(spec) }
        if let n = UInt32(spec), namespaces().contains(where: { $0.inode == n }) { return n }
        guard !spec.contains("/") else { return nil }
        return ProcFS.nsInode("/run/netns/\(spec)") ?? ProcFS.nsInode("/var/run/netns/\(spec)")
    }

    /// The TcpExt counters of each namespace (cheap: taken when the short trace starts).
    public static func counters(of namespaces: [Namespace]) throws(KernelError) -> [UInt32: [String: UInt64]] {
        try onOwnThread { () throws(KernelError) -> [UInt32: [String: UInt64]] in
            var out: [UInt32: [String: UInt64]] = [:]
            for ns in namespaces {
                _ = try inside(ns) {
                    out[ns.inode] = ProcFS.read("/proc/thread-self/net/netstat").map { ProcText.netstat($0) } ?? [:]
                }
            }
            return out
        }
    }

    // MARK: - inside a namespace

    /// Runs `body` on a new thread and waits for it (see the type's comment:
    /// only that thread ever leaves synsight's namespace).
    package static func onOwnThread<T>(_ body: @escaping () throws(KernelError) -> T) throws(KernelError) -> T {
        var result: Result<T, KernelError>?
        let task = ThreadTask {
            do throws(KernelError) {
                result = .success(try body())
            } catch {
                result = .failure(error)
            }
        }
        let unmanaged = Unmanaged.passRetained(task)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<ThreadTask>.fromOpaque(arg!).takeUnretainedValue().run()
            return nil
        }, unmanaged.toOpaque())
        guard rc == 0 else {
            unmanaged.release()
            throw KernelError.sys("starting the namespace-reading thread", code: rc)
        }
        pthread_join(thread, nil)
        unmanaged.release()
        switch result! {
        case .success(let v): return v
        case .failure(let e): throw e
        }
    }

    /// Runs `body` with the calling thread in `ns`, and brings it back.
    /// Returns false when the namespace is gone (its last process exited
    /// since it was listed). Failing to come back is fatal for the
    /// explanation (every later read would describe the wrong namespace).
    @discardableResult
    package static func inside(_ ns: Namespace, _ body: () -> Void) throws(KernelError) -> Bool {
        let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard home >= 0 else { throw KernelError.sys("opening /proc/thread-self/ns/net", code: errno) }
        defer { close(home) }
        if ProcFS.nsInode("/proc/thread-self/ns/net") == ns.inode {
            body()
            return true
        }
        let fd = open(ns.path, O_RDONLY | O_CLOEXEC)
        // Gone, or a reused PID now in another namespace: either way not this one.
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, UInt32(truncatingIfNeeded: st.st_ino) == ns.inode else { return false }
        let rc = syn_setns_net(fd)
        // EINVAL: the path is no namespace (any more, or not yet): `ip netns
        // add` creates the file before it mounts the namespace on it, and
        // `ip netns del` unmounts it first. Like a namespace that is gone.
        if rc == -EINVAL { return false }
        guard rc == 0 else {
            throw KernelError.sys("entering network namespace \(ns.inode) (\(ns.path))", code: rc,
                                  fix: "explain needs CAP_SYS_ADMIN to enter network namespaces: run it as root")
        }
        body()
        let back = syn_setns_net(home)
        guard back == 0 else {
            throw KernelError.sys("returning to synsight's network namespace", code: back)
        }
        return true
    }

    package static func sysctl(_ name: String) -> Int? {
        guard let s = ProcFS.read("/proc/sys/\(name)", limit: 256) else { return nil }
        return s.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).first.flatMap { Int($0) }
    }

    /// LISTEN and request sockets on `port` in the current namespace, and
    /// the sockets connecting to it (SYN_SENT), from sock_diag;
    /// /proc/net/tcp{,6} when sock_diag is unavailable (no tcp_diag
    /// module: listeners and requests only).
    package static func portSockets(_ port: UInt16) -> ([SockDiag.Socket], String) {
        var out: [SockDiag.Socket] = []
        var failure: String?
        let states = [SockDiag.stateListen, SockDiag.stateNewSynRecv, SockDiag.stateSynSent]
        for family in [AddressFamily.ipv4, .ipv6] {
            switch diagDump(family: family, states: states) {
            case .success(let all):
                out += all.filter { $0.state == SockDiag.stateSynSent ? $0.remote.port == port : $0.local.port == port }
            case .failure(let e): failure = e.why
            }
            // Connections to the port's servers (this host as their client), filtered by the kernel.
            if failure == nil, case .success(let clients) = diagDump(family: family, states: [SockDiag.stateEstablished, SockDiag.stateTimeWait],
                                                                       remotePort: port) {
                out += clients.filter { $0.remote.port == port }
            }
            if failure != nil { break }
        }
        guard let failure else {
            // Named here, in the sockets' namespace (the caller's thread is in it).
            for i in out.indices {
                if let d = out[i].boundDevice { out[i].boundDevice = NetDeviceLookup.here(d.ifindex) ?? d }
            }
            return (out, "sock_diag")
        }
        out = []
        for (file, family) in [("tcp", AddressFamily.ipv4), ("tcp6", .ipv6)] {
            guard let text = ProcFS.read("/proc/thread-self/net/\(file)") else { continue }
            for s in ProcNet.parse(text, family: family) where s.local.port == port
                && (s.state == ProcNetSocket.listenState || (s.state == SockDiag.stateSynRecv && s.inode == 0)) {
                out.append(SockDiag.Socket(family: family, state: s.state, local: s.local, remote: s.remote,
                                           uid: s.uid, inode: s.inode))
            }
        }
        return (out, "/proc/net/tcp (sock_diag failed: \(failure))")
    }

    /// Every listening socket of the calling thread's namespace, both
    /// families, any port (sock_diag); nil when the dump fails.
    package static func listenersHere() -> [SockDiag.Socket]? {
        var out: [SockDiag.Socket] = []
        for family in [AddressFamily.ipv4, .ipv6] {
            guard case .success(let all) = diagDump(family: family, states: [SockDiag.stateListen]) else { return nil }
            out += all
        }
        return out
    }

    /// The addresses of the calling thread's namespace, both families (those it can read).
    package static func addressesHere() -> [IPAddress] {
        [AddressFamily.ipv4, .ipv6].flatMap { family in
            (try? LocalAddresses.here(family: family).get())?.map(\.addr) ?? []
        }
    }

    /// Every TCP socket of `family` in `states` (LISTEN and request sockets unless told).
    static func diagDump(family: AddressFamily, states: [UInt8] = [SockDiag.stateListen, SockDiag.stateNewSynRecv],
                         remotePort: UInt16? = nil) -> Result<[SockDiag.Socket], DiagError> {
        let fd = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), SockDiag.netlinkSockDiag)
        guard fd >= 0 else { return .failure(DiagError("socket(AF_NETLINK, NETLINK_SOCK_DIAG): \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let req = SockDiag.dumpRequest(family: family, states: states, seq: 1, remotePort: remotePort)
        let sent = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == req.count else { return .failure(DiagError("send: \(String(cString: strerror(errno)))")) }
        var buf = [UInt8](repeating: 0, count: 64 << 10)
        var found: [SockDiag.Socket] = []
        while true {
            let n = retryingEINTR { buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            guard n > 0 else { return .failure(DiagError(n == 0 ? "connection closed" : "recv: \(String(cString: strerror(errno)))")) }
            switch buf.withUnsafeBytes({ SockDiag.parse(UnsafeRawBufferPointer(rebasing: $0[0..<n]), into: &found) }) {
            case .more: continue
            case .done: return .success(found)
            case .failed(let e): return .failure(DiagError("the kernel answered \(String(cString: strerror(e)))"))
            }
        }
    }

    struct DiagError: Error {
        var why: String
        init(_ why: String) { self.why = why }
    }

    // MARK: - processes

    /// PIDs holding each socket inode (every process's fds; socket inodes
    /// are unique host-wide, sockfs being a single filesystem).
    package static func socketOwners(_ wanted: Set<UInt64>) -> [UInt64: [UInt32]] {
        guard !wanted.isEmpty else { return [:] }
        var out: [UInt64: [UInt32]] = [:]
        for pid in ProcFS.pids() {
            for fd in ProcFS.list("/proc/\(pid)/fd") {
                guard let target = ProcFS.readlink("/proc/\(pid)/fd/\(fd)"),
                      target.hasPrefix("socket:["), target.hasSuffix("]"),
                      let ino = UInt64(target.dropFirst(8).dropLast()), wanted.contains(ino) else { continue }
                if out[ino]?.contains(pid) != true { out[ino, default: []].append(pid) }
            }
        }
        return out
    }

}

/// The work of the namespace-reading thread. Handed over by pthread_create
/// and collected after pthread_join, which order every access: never used
/// by two threads at once.
final class ThreadTask: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

extension PortState.DiagError: CustomStringConvertible {
    var description: String { why }
}
