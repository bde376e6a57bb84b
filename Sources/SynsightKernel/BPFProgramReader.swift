import CLibBPF
import CSynsightShim
import Glibc
import Synchronization
import SynsightBase
import SynsightModel

/// Names the BPF programs at a dropped packet's attach points: the tc
/// (cls_bpf) filters of the interface (rtnetlink, TCFilterDump), its tcx
/// programs (bpf_prog_query BPF_TCX_INGRESS/EGRESS, 6.6+), and the cgroup
/// inet programs in effect on a socket owner's cgroup v2 (bpf_prog_query
/// with BPF_F_QUERY_EFFECTIVE, then each ancestor to say where each is
/// attached); each program's name, type and tag from bpf_obj_get_info_by_fd.
///
/// Threads: called on the pipeline thread. An interface is read inside the
/// drop's network namespace (netlink and ifindex lookups are per namespace
/// of the calling thread), on a short-lived thread that enters it
/// (PortState.onOwnThread), so no other thread ever leaves synsight's
/// namespace. Answers are cached per query for `ttlNs`: a policy dropping a
/// storm of SYNs is read once a second, not once per attempt.
public final class BPFProgramReader: BPFProgramSource, @unchecked Sendable {
    /// synsight's own programs (never the actor).
    let own: Set<UInt32>
    let ownNetns: UInt32?
    let ttlNs: UInt64
    let cache = Mutex<[BPFProgramQuery: (at: UInt64, findings: BPFProgramFindings)]>([:])
    static let maxCached = 1024
    /// At most this many programs per attach point are named.
    static let maxPrograms = 64
    /// enum bpf_attach_type values newer than this libbpf's headers (uapi bpf.h, 6.6).
    static let tcxIngress = bpf_attach_type(rawValue: 46)
    static let tcxEgress = bpf_attach_type(rawValue: 47)

    public init(own: Set<UInt32>, ttlNs: UInt64 = 1_000_000_000) {
        self.own = own
        self.ttlNs = ttlNs
        ownNetns = ProcFS.nsInode("/proc/self/ns/net")
    }

    public func programs(_ q: BPFProgramQuery) -> BPFProgramFindings {
        let now = ConditionLock.now()
        if let hit = cache.withLock({ $0[q] }), hit.at &+ ttlNs > now { return hit.findings }
        let found = read(q)
        cache.withLock {
            if $0.count >= Self.maxCached { $0.removeAll() }
            $0[q] = (now, found)
        }
        return found
    }

    func read(_ q: BPFProgramQuery) -> BPFProgramFindings {
        var out = BPFProgramFindings()
        var attached: [(id: UInt32, kind: BPFAttachKind, target: String, pref: UInt16?, tcName: String?, dir: String?)] = []
        if q.tc || q.xdp, q.ifindex != 0 {
            switch interfacePrograms(q) {
            case .success(let found):
                attached += found.map { ($0.progID, $0.kind, q.ifname, $0.pref, $0.name, nil) }
            case .failure(let why):
                out.unavailable.append(why.description)
            }
        }
        if let pid = q.cgroupOf {
            let hooks: [BPFAttachKind] = q.cgroupHooks.isEmpty ? [q.ingress ? .cgroupIngress : .cgroupEgress] : q.cgroupHooks
            switch cgroupLeaf(pid: pid, cgroupID: q.cgroupID) {
            case .success(let leaf):
                for kind in hooks {
                    switch cgroupPrograms(leaf: leaf, kind: kind) {
                    case .success(let found): attached += found.map { ($0.id, $0.kind, $0.path, nil, nil, $0.dir) }
                    case .failure(let why): out.unavailable.append(why.description)
                    }
                }
            case .failure(let why): out.unavailable.append(why.description)
            }
        }
        for a in attached where !own.contains(a.id) {
            var ref = BPFProgramRef(id: a.id, name: "", type: "", tag: "", kind: a.kind, target: a.target,
                                    tcPref: a.pref, tcName: a.tcName, cgroupDir: a.dir)
            if let e = Self.describe(&ref) { out.unavailable.append(e) }
            out.programs.append(ref)
        }
        return out
    }

    struct ReadError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    // MARK: - an interface's tc and tcx programs

    struct InterfaceProgram: Sendable {
        var progID: UInt32
        var kind: BPFAttachKind
        var pref: UInt16?
        var name: String?
    }

    func interfacePrograms(_ q: BPFProgramQuery) -> Result<[InterfaceProgram], ReadError> {
        let body = { () -> Result<[InterfaceProgram], ReadError> in Self.listInterface(q) }
        if q.netns == 0 || q.netns == ownNetns { return body() }
        do {
            return try PortState.onOwnThread { () throws(KernelError) -> Result<[InterfaceProgram], ReadError> in
                let fd = NetnsPaths.open(q.netns)
                guard fd >= 0 else {
                    return .failure(ReadError("network namespace \(q.netns) is gone (not in /run/netns, no process in it): the programs of \(q.ifname) cannot be read"))
                }
                defer { close(fd) }
                let rc = syn_setns_net(fd)
                guard rc == 0 else {
                    return .failure(ReadError("cannot enter network namespace \(q.netns) to read the programs of \(q.ifname): \(ErrnoName.name(-rc))"))
                }
                // The thread ends here: it is never used again in that namespace.
                return body()
            }
        } catch {
            return .failure(ReadError("cannot read the programs of \(q.ifname): \(error)"))
        }
    }

    /// In the current thread's namespace: XDP, cls_bpf filters, then tcx.
    static func listInterface(_ q: BPFProgramQuery) -> Result<[InterfaceProgram], ReadError> {
        var out: [InterfaceProgram] = []
        if q.xdp {
            var opts = bpf_xdp_query_opts()
            opts.sz = MemoryLayout<bpf_xdp_query_opts>.size
            let rc = bpf_xdp_query(Int32(bitPattern: q.ifindex), 0, &opts)
            guard rc == 0 else {
                return .failure(ReadError("cannot read the XDP programs of \(q.ifname) (ifindex \(q.ifindex)): \(ErrnoName.name(-rc))"))
            }
            for (id, kind) in [(opts.skb_prog_id, BPFAttachKind.xdpGeneric), (opts.drv_prog_id, .xdpDriver), (opts.hw_prog_id, .xdpOffload)]
            where id != 0 {
                out.append(InterfaceProgram(progID: id, kind: kind))
            }
        }
        guard q.tc else { return .success(out) }
        let parents = q.ingress ? [TCFilterDump.parentClsactIngress, TCFilterDump.parentIngressQdisc]
                                : [TCFilterDump.parentClsactEgress]
        for (i, parent) in parents.enumerated() {
            switch dumpFilters(ifindex: q.ifindex, parent: parent, seq: UInt32(i + 1)) {
            case .success(let fs):
                out += fs.map { InterfaceProgram(progID: $0.progID, kind: q.ingress ? .tcIngress : .tcEgress, pref: $0.pref, name: $0.name) }
            // No such qdisc (EINVAL) or device (ENODEV): no filters there.
            case .failure(let e) where e.errno == EINVAL || e.errno == ENOENT:
                continue
            case .failure(let e):
                return .failure(ReadError("cannot list the tc filters of \(q.ifname) (ifindex \(q.ifindex)): \(e.why)"))
            }
        }
        var ids = [UInt32](repeating: 0, count: maxPrograms)
        var count = UInt32(maxPrograms)
        let rc = bpf_prog_query(Int32(bitPattern: q.ifindex), q.ingress ? tcxIngress : tcxEgress, 0, nil, &ids, &count)
        if rc == 0 {
            out += ids.prefix(Int(count)).map { InterfaceProgram(progID: $0, kind: q.ingress ? .tcxIngress : .tcxEgress) }
        }
        // EINVAL: the kernel has no tcx (before 6.6); nothing attached there.
        return .success(out)
    }

    struct NetlinkError: Error {
        var why: String
        var errno: Int32
    }

    static func dumpFilters(ifindex: UInt32, parent: UInt32, seq: UInt32) -> Result<[TCFilterDump.Filter], NetlinkError> {
        func fail(_ what: String, _ e: Int32) -> Result<[TCFilterDump.Filter], NetlinkError> {
            .failure(NetlinkError(why: "\(what): \(ErrnoName.name(e))", errno: e))
        }
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), TCFilterDump.netlinkRoute)
        guard fd >= 0 else { return fail("socket(AF_NETLINK, NETLINK_ROUTE)", errno) }
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let req = TCFilterDump.dumpRequest(ifindex: ifindex, parent: parent, seq: seq)
        let sent = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == req.count else { return fail("send", errno) }
        var buf = [UInt8](repeating: 0, count: 32 << 10)
        var found: [TCFilterDump.Filter] = []
        while true {
            let n = retryingEINTR { buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            guard n > 0 else { return fail("recv", n == 0 ? ECONNRESET : errno) }
            switch buf.withUnsafeBytes({ TCFilterDump.parse(UnsafeRawBufferPointer(rebasing: $0[0..<n]), into: &found) }) {
            case .more: continue
            case .done: return .success(found)
            case .failed(let e): return fail("the kernel answered", e)
            }
        }
    }

    // MARK: - a process's cgroup programs

    struct CgroupProgram {
        var id: UInt32
        var kind: BPFAttachKind
        /// The cgroup it is attached to, relative to the v2 root ("/" for the root), and its directory.
        var path: String
        var dir: String
    }

    /// The process's cgroup v2 path (relative to the root): from
    /// /proc/<pid>/cgroup while it lives, else from the cgroup id its event
    /// carried (open_by_handle_at on the v2 mount), while the cgroup exists.
    func cgroupLeaf(pid: UInt32, cgroupID: UInt64) -> Result<String, ReadError> {
        guard CgroupRoot.path != nil else {
            return .failure(ReadError("no cgroup v2 hierarchy is mounted: the cgroup programs of process \(pid) cannot be read"))
        }
        if let text = ProcFS.read("/proc/\(pid)/cgroup", limit: 64 << 10),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) {
            return .success(String(line.dropFirst(3)))
        }
        if cgroupID != 0, let path = CgroupRoot.path(id: cgroupID) {
            return .success(path)
        }
        return .failure(ReadError("process \(pid) is gone (or has no cgroup v2), and its cgroup with it: its cgroup programs cannot be read"))
    }

    /// The programs in effect at `kind` on cgroup `leaf`, each with the
    /// cgroup it is attached to (the leaf or an ancestor), in run order.
    func cgroupPrograms(leaf: String, kind: BPFAttachKind) -> Result<[CgroupProgram], ReadError> {
        guard let root = CgroupRoot.path else {
            return .failure(ReadError("no cgroup v2 hierarchy is mounted: the cgroup programs of \(leaf) cannot be read"))
        }
        guard let type = Self.attachType(kind) else { return .success([]) }
        let effective: [UInt32]
        switch Self.query(path: root + (leaf == "/" ? "" : leaf), type: type, flags: UInt32(BPF_F_QUERY_EFFECTIVE)) {
        case .success(let ids): effective = ids
        case .failure(let e): return .failure(ReadError("cannot query the \(kind.rawValue) programs of \(leaf): \(e.description)"))
        }
        // Where each effective program is attached: the nearest cgroup, up from the leaf.
        var out: [CgroupProgram] = []
        var left = Set(effective)
        var dir = leaf
        while !left.isEmpty {
            let here = (try? Self.query(path: root + (dir == "/" ? "" : dir), type: type, flags: 0).get()) ?? []
            for id in here where left.remove(id) != nil {
                out.append(CgroupProgram(id: id, kind: kind, path: dir, dir: root + (dir == "/" ? "" : dir)))
            }
            if dir == "/" || dir.isEmpty { break }
            let parent = dir.split(separator: "/").dropLast().joined(separator: "/")
            dir = "/" + parent
        }
        out += left.sorted().map { CgroupProgram(id: $0, kind: kind, path: leaf, dir: root + leaf) }
        let order = Dictionary(effective.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        return .success(out.sorted { order[$0.id, default: 0] < order[$1.id, default: 0] })
    }

    static func attachType(_ kind: BPFAttachKind) -> bpf_attach_type? {
        switch kind {
        case .cgroupIngress: return BPF_CGROUP_INET_INGRESS
        case .cgroupEgress: return BPF_CGROUP_INET_EGRESS
        case .cgroupBind4: return BPF_CGROUP_INET4_BIND
        case .cgroupBind6: return BPF_CGROUP_INET6_BIND
        case .cgroupPostBind4: return BPF_CGROUP_INET4_POST_BIND
        case .cgroupPostBind6: return BPF_CGROUP_INET6_POST_BIND
        case .cgroupConnect4: return BPF_CGROUP_INET4_CONNECT
        case .cgroupConnect6: return BPF_CGROUP_INET6_CONNECT
        default: return nil
        }
    }

    static func query(path: String, type: bpf_attach_type, flags: UInt32) -> Result<[UInt32], ReadError> {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(ReadError("open \(path): \(ErrnoName.name(errno))")) }
        defer { close(fd) }
        var ids = [UInt32](repeating: 0, count: maxPrograms)
        var count = UInt32(maxPrograms)
        let rc = bpf_prog_query(fd, type, flags, nil, &ids, &count)
        // ENOSPC: more than maxPrograms; the first ones are filled in.
        guard rc == 0 || errno == ENOSPC else {
            let e = errno
            return .failure(ReadError("bpf_prog_query: \(ErrnoName.name(e))\(e == EPERM ? " (needs CAP_NET_ADMIN)" : "")"))
        }
        return .success(Array(ids.prefix(Int(min(count, UInt32(maxPrograms))))))
    }

    // MARK: - a program's name, type and tag

    /// Fills in what the kernel says about program `ref.id`; returns why not
    /// when it cannot (the program was unloaded, no CAP_SYS_ADMIN).
    static func describe(_ ref: inout BPFProgramRef) -> String? {
        let fd = bpf_prog_get_fd_by_id(ref.id)
        guard fd >= 0 else {
            let e = errno
            return "cannot read BPF program \(ref.id): \(ErrnoName.name(e))"
                + (e == EPERM ? " (needs CAP_SYS_ADMIN)" : e == ENOENT ? " (unloaded since the drop)" : "")
        }
        defer { close(fd) }
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &len) == 0 else {
            return "cannot read BPF program \(ref.id)'s info: \(ErrnoName.name(errno))"
        }
        ref.name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        ref.tag = withUnsafeBytes(of: info.tag) { $0.map { hex($0) }.joined() }
        ref.type = libbpf_bpf_prog_type_str(bpf_prog_type(rawValue: info.type)).map { String(cString: $0) } ?? "type \(info.type)"
        return nil
    }

    static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
    }
}

extension Tracer {
    /// The kernel ids of synsight's own loaded programs.
    public func programIDs() -> Set<UInt32> {
        var out: Set<UInt32> = []
        for p in objects.loadedPrograms {
            let fd = bpf_program__fd(p)
            if fd >= 0 {
                var info = bpf_prog_info()
                var len = UInt32(MemoryLayout<bpf_prog_info>.size)
                if bpf_obj_get_info_by_fd(fd, &info, &len) == 0 { out.insert(info.id) }
            }
        }
        return out
    }
}
