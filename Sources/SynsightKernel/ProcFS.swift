import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Thin /proc access: every file read of the snapshot goes through here.
package enum ProcFS {
    package static func read(_ path: String, limit: Int = 4 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return String(decoding: readToEnd(fd: fd, limit: limit), as: UTF8.self)
    }

    package static func readBytes(_ path: String, limit: Int = 4 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readToEnd(fd: fd, limit: limit, chunk: 1 << 20)
    }

    /// A link's target (an executable's path, "socket:[123]"), in the
    /// escaped form of `NameBytes`: a path is any bytes.
    package static func readlink(_ path: String) -> String? {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes {
            Glibc.readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count - 1)
        }
        guard n > 0 else { return nil }
        return NameBytes.string(buf[0..<n])
    }

    /// Every thread's state letter, and the wait channels of those in
    /// uninterruptible sleep. At most `maxThreads` threads are read (a
    /// thread pool of thousands is sampled, not walked).
    package static func runState(pid: UInt32) -> ProcessRunState? {
        let tids = ProcFS.list("/proc/\(pid)/task").prefix(Self.maxThreads)
        guard !tids.isEmpty else { return nil }
        var threads: [Character: Int] = [:]
        var channels: [String: Int] = [:]
        for tid in tids {
            guard let stat = ProcFS.read("/proc/\(pid)/task/\(tid)/stat", limit: 4096),
                  let state = ProcessRunState.stateLetter(stat: stat) else { continue }
            threads[state, default: 0] += 1
            if state == "D", let w = ProcFS.read("/proc/\(pid)/task/\(tid)/wchan", limit: 256), !w.isEmpty, w != "0" {
                channels[NameBytes.string(Array(w.utf8)), default: 0] += 1
            }
        }
        guard !threads.isEmpty else { return nil }
        return ProcessRunState(threads: threads,
                               waitChannels: channels.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(4).map(\.key))
    }

    static let maxThreads = 256

    package static func list(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The inode of a namespace link such as /proc/<pid>/ns/net (= ns.inum).
    /// Is `path` a namespace (on nsfs, the device every namespace file has)?
    static func isNamespace(_ path: String) -> Bool {
        var st = stat(), own = stat()
        guard stat(path, &st) == 0, stat("/proc/self/ns/net", &own) == 0 else { return false }
        return st.st_dev == own.st_dev
    }

    static func nsInode(_ path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(truncatingIfNeeded: st.st_ino)
    }

    static func pids() -> [UInt32] {
        list("/proc").compactMap { UInt32($0) }
    }

    /// The owner of /proc/<pid>: the process's effective uid (root's for a
    /// process that is not dumpable).
    static func ownerUID(pid: UInt32) -> UInt32? {
        var st = stat()
        return stat("/proc/\(pid)", &st) == 0 ? st.st_uid : nil
    }

    /// The children of every thread of `pid` (`/proc/<pid>/task/<tid>/children`,
    /// CONFIG_PROC_CHILDREN; at most `maxThreads` threads): a supervisor's
    /// processes without a walk of /proc.
    static func children(of pid: UInt32) -> [UInt32] {
        list("/proc/\(pid)/task").prefix(maxThreads).flatMap { tid in
            (read("/proc/\(pid)/task/\(tid)/children", limit: 1 << 16) ?? "").split(separator: " ").compactMap { UInt32($0) }
        }
    }

    /// Nanoseconds per clock tick of /proc/<pid>/stat's start time (ProcStat.startTicks).
    static let nsPerTick: UInt64 = 1_000_000_000 / UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))

    /// A process's name, in the escaped form of `NameBytes` (any 15 bytes).
    package static func comm(_ pid: UInt32) -> String? {
        guard var b = readBytes("/proc/\(pid)/comm", limit: 64) else { return nil }
        if b.last == UInt8(ascii: "\n") { b.removeLast() }
        return NameBytes.string(b)
    }
}

/// Listeners that existed before tracing started, from /proc: every
/// process's socket fds, and each network namespace's /proc/<pid>/net/tcp{,6}
/// (read once per namespace, through a process that lives in it).
public enum ListenerSnapshot {
    public struct Result: Sendable {
        public var listeners: [ListenerInfo]
        /// Every network namespace some process lives in, with one such PID.
        public var namespaces: [UInt32: UInt32]
    }

    public static func take() -> Result {
        var socketOwner: [UInt32: [UInt64: UInt32]] = [:]  // netns -> inode -> pid
        var netnsReader: [UInt32: UInt32] = [:]              // netns -> a pid in it
        for pid in ProcFS.pids() {
            guard let ns = ProcFS.nsInode("/proc/\(pid)/ns/net") else { continue }
            if netnsReader[ns] == nil { netnsReader[ns] = pid }
            for fd in ProcFS.list("/proc/\(pid)/fd") {
                guard let target = ProcFS.readlink("/proc/\(pid)/fd/\(fd)"),
                      target.hasPrefix("socket:["), target.hasSuffix("]"),
                      let ino = UInt64(target.dropFirst(8).dropLast()) else { continue }
                // Keep the lowest PID for a shared socket (usually the parent).
                if let have = socketOwner[ns]?[ino], have < pid { continue }
                socketOwner[ns, default: [:]][ino] = pid
            }
        }
        var comms: [UInt32: String] = [:]
        var out: [ListenerInfo] = []
        for (ns, reader) in netnsReader {
            for (file, family) in [("tcp", AddressFamily.ipv4), ("tcp6", .ipv6)] {
                guard let text = ProcFS.read("/proc/\(reader)/net/\(file)") else { continue }
                for s in ProcNet.parse(text, family: family) where s.state == ProcNetSocket.listenState {
                    guard let pid = socketOwner[ns]?[s.inode] else { continue }
                    let comm = comms[pid] ?? ProcFS.comm(pid) ?? "?"
                    comms[pid] = comm
                    out.append(ListenerInfo(netns: ns, family: family, local: s.local, ipv6Only: nil,
                                            socketInode: s.inode, pid: pid, comm: comm,
                                            exe: ProcFS.readlink("/proc/\(pid)/exe")))
                }
            }
        }
        return Result(listeners: out, namespaces: netnsReader)
    }
}

/// PID -> executable path from /proc, cached (a refusal storm from one
/// client must not cost a readlink per event). Bounded.
public final class ProcfsResolver: ProcessResolver {
    var cache: [UInt32: String?] = [:]
    /// Cgroup, unit, container and pod (cached and bounded there).
    public let workloads: WorkloadResolver?

    public init(workloads: WorkloadResolver? = nil) {
        self.workloads = workloads
    }

    public func workload(pid: UInt32, cgroupID: UInt64) -> WorkloadIdentity? {
        workloads?.identity(pid: pid, cgroupID: cgroupID)
    }

    public func successor(of workload: WorkloadIdentity, excluding pid: UInt32, comm: String,
                          startedAfter: UInt64) -> ProcessRef? {
        guard let next = workloads?.successor(of: workload, excluding: pid, comm: comm, startedAfter: startedAfter) else { return nil }
        // Same comm by construction: no read per refusal.
        return ProcessRef(pid: next, comm: comm, exe: exe(pid: next),
                          workload: workloads?.identity(pid: next))
    }

    public func launch(pid: UInt32) -> ProcessLaunch? {
        guard let stat = ProcFS.read("/proc/\(pid)/stat", limit: 4096), let parent = ProcStat.parent(stat), parent > 1,
              let parentStat = ProcFS.read("/proc/\(parent)/stat", limit: 4096), let parentComm = ProcStat.comm(parentStat),
              let hash = Self.commandLineHash(pid) else { return nil }
        return ProcessLaunch(parent: parent, parentComm: String(parentComm), commandLineHash: hash)
    }

    /// ProcessLaunch.hash of /proc/<pid>/cmdline; nil when it cannot be read.
    static func commandLineHash(_ pid: UInt32) -> UInt64? {
        ProcFS.readBytes("/proc/\(pid)/cmdline", limit: 65536).map(ProcessLaunch.hash(commandLine:))
    }

    /// Per (parent, exited pid, exit time): what the parent's children gave,
    /// for `WorkloadResolver.membersTTLNs` (a refusal storm on a restarting
    /// service reads them once, not per refusal).
    var relaunches = TimedCache<[UInt64], UInt32?>(ttlNs: WorkloadResolver.membersTTLNs, limit: 256)

    public func relaunch(of launch: ProcessLaunch, excluding pid: UInt32, comm: String, startedAfter: UInt64) -> ProcessRef? {
        let key = [UInt64(launch.parent), UInt64(pid), startedAfter]
        let found = relaunches.value(key, now: ConditionLock.now()) {
            ProcFS.children(of: launch.parent).first { child in
                guard child != pid, let stat = ProcFS.read("/proc/\(child)/stat", limit: 4096), ProcStat.comm(stat) == Substring(comm),
                      let ticks = ProcStat.startTicks(stat), ticks * ProcFS.nsPerTick + WorkloadResolver.startSlackNs >= startedAfter
                else { return false }
                return Self.commandLineHash(child) == launch.commandLineHash
            }
        }
        guard let next = found else { return nil }
        return ProcessRef(pid: next, comm: comm, exe: exe(pid: next), workload: workloads?.identity(pid: next))
    }

    public func exe(pid: UInt32) -> String? {
        if let hit = cache[pid] { return hit }
        if cache.count > 4096 { cache.removeAll(keepingCapacity: true) }
        let v = ProcFS.readlink("/proc/\(pid)/exe")
        cache[pid] = .some(v)
        return v
    }

    public func forget(pid: UInt32) { cache[pid] = nil }

    let starts = NamespaceStarts()

    public func namespaceStart(netns: UInt32) -> NamespaceStart? {
        guard let first = starts.first(netns: netns, now: ConditionLock.now()), let comm = ProcFS.comm(first.pid) else { return nil }
        return NamespaceStart(process: ProcessRef(pid: first.pid, comm: comm, exe: exe(pid: first.pid),
                                                  workload: workloads?.identity(pid: first.pid)),
                              startedAt: first.startedAt)
    }

    /// What its threads are doing now (ProcFS.runState), and the CPU limit
    /// over it (CPUThrottleReader), each read at most once per 500 ms per
    /// process: an overflow storm on a big thread pool walks its task
    /// directory and its cgroup files once, not per record.
    var runStates = TimedCache<UInt32, ProcessRunState?>(ttlNs: 500_000_000, limit: 1024)
    var throttles = TimedCache<UInt32, CPUThrottle?>(ttlNs: 500_000_000, limit: 1024)
    lazy var cpuLimits = CPUThrottleReader.host()

    public func runState(pid: UInt32) -> ProcessRunState? {
        runStates.value(pid, now: ConditionLock.now()) { ProcFS.runState(pid: pid) }
    }

    public func cpuThrottle(pid: UInt32) -> CPUThrottle? {
        let now = ConditionLock.now()
        return throttles.value(pid, now: now) { cpuLimits.read(pid: pid, now: now) }
    }

    /// The addresses of synsight's own namespace (the pipeline thread's, where
    /// this is asked), per family, read at most every 2 s; other namespaces: nil.
    var ownAddresses = TimedCache<AddressFamily, Set<IPAddress>>(ttlNs: 2_000_000_000, limit: 2)
    lazy var ownNetns = ProcFS.nsInode("/proc/thread-self/ns/net")

    public func isLocalAddress(_ addr: IPAddress, netns: UInt32) -> Bool? {
        guard netns == ownNetns else { return nil }
        let family: AddressFamily = addr.isV4Mapped ? .ipv4 : .ipv6
        return ownAddresses.value(family, now: ConditionLock.now()) {
            Set(((try? LocalAddresses.here(family: family).get()) ?? []).map(\.addr))
        }.contains(addr)
    }

    /// Docker's and Podman's port bindings, read at most every
    /// `bindingsTTLNs` (a refusal storm on a published port reads the
    /// configs once, not per refusal), through the workload resolver's
    /// readers (one per runtime, made again when rootless roots appear).
    var bindings: (at: UInt64, list: [DockerPortBinding])?
    static let bindingsTTLNs: UInt64 = 2_000_000_000

    /// Docker's networks (id -> name), read at most every `bindingsTTLNs`.
    var networks: (at: UInt64, map: [String: String])?

    public func dockerNetworkName(idPrefix: String) -> String? {
        guard let workloads, !idPrefix.isEmpty else { return nil }
        let now = bootTimeNow()
        if networks == nil || now &- networks!.at > Self.bindingsTTLNs {
            workloads.rediscoverRootless()  // a rootless dockerd started since: its networks too
            networks = (now, workloads.dockerPorts.networks())
        }
        return networks?.map.first { $0.key.hasPrefix(idPrefix) }?.value
    }

    public func publishers(port: UInt16, freshSince: UInt64) -> [DockerPortBinding] {
        guard let workloads else { return [] }
        let now = bootTimeNow()  // the kernel events' clock, which `freshSince` is on
        if bindings == nil || now &- bindings!.at > Self.bindingsTTLNs || bindings!.at < freshSince {
            workloads.rediscoverRootless()
            bindings = (now, workloads.dockerPorts.bindings() + workloads.podmanStores.bindings())
        }
        return bindings?.list.filter { $0.hostPort == port } ?? []
    }
}
