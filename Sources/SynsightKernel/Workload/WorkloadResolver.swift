import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// PID -> workload identity (cgroup, unit, container, pod) and network
/// namespace -> name, from the host's files. Used on the consumer thread in
/// the same place the executable path is read (a listener's birth, a client's
/// refused connect(), the start-up snapshot), so every step is one small
/// read, and everything is cached and bounded:
/// - per PID, /proc/<pid>/cgroup (one small file) at most once per second;
///   when the process is already gone, its cgroup v2 id (from the kernel
///   event) names the directory it was in, while that still exists
///   (open_by_handle_at on the v2 mount: one syscall, no walk);
/// - per cgroup path, the named identity (names are looked for again after
///   `retryNamesNs` when one was missing: a container's config or a pod's
///   log directory may appear just after its process);
/// - Docker names per container id (one config.v2.json read); Podman names
///   from the container's conmon (a few /proc/<pid>/stat reads up the
///   parent chain, then its command line), else Podman's container store;
/// - kubelet's pod directories and /run/netns, listed again only on a miss
///   and at most once per `relistNs` (/run/netns also at once when a cached
///   name's namespace is gone: its inode number went to a newer one).
/// Each table is emptied when it reaches `maxEntries`.
public final class WorkloadResolver {
    /// What this host has; rootless stores and data roots are added while
    /// tracing (rediscoverRootless).
    public private(set) var sources: WorkloadSources

    static let maxEntries = 4096
    static let pidTTLNs: UInt64 = 1_000_000_000
    static let retryNamesNs: UInt64 = 5_000_000_000
    static let relistNs: UInt64 = 2_000_000_000
    static let maxConfigBytes = 1 << 20

    struct PidEntry {
        var identity: WorkloadIdentity?
        var readAt: UInt64
    }

    struct Named {
        var identity: WorkloadIdentity
        var namedAt: UInt64
        var complete: Bool
    }

    struct PodDir {
        var namespace: String
        var name: String
        var directory: String
    }

    var byPid: [UInt32: PidEntry] = [:]
    var byCgroup: [String: Named] = [:]
    /// Docker container id -> its name and Compose service (config.v2.json).
    var dockerNames: [String: (name: String, service: ComposeService?)] = [:]
    var podmanNames: [String: String] = [:]
    /// containerd container id -> its nerdctl name, listed again on a miss (at most every `relistNs`).
    var nerdctlNames: [String: String] = [:]
    var nerdctlListedAt: UInt64?
    var pods: [String: PodDir] = [:]
    var podsListedAt: UInt64?
    var containerLinks: [String: String] = [:]
    var linksListedAt: UInt64?
    var netnsNames: [UInt32: String] = [:]
    var netnsListedAt: UInt64?
    /// Network namespaces of processes found in a container or pod: their label.
    var workloadNetns: [UInt32: String] = [:]
    /// cgroup v2 id -> path, for processes gone before they were looked at.
    var byCgroupID: [UInt64: String?] = [:]
    public init(sources: WorkloadSources) {
        self.sources = sources
    }

    // MARK: - Processes

    /// `cgroupID`: the task's cgroup v2 id from the kernel event (0: unknown).
    public func identity(pid: UInt32, cgroupID: UInt64 = 0) -> WorkloadIdentity? {
        let now = Self.monotonicNow()
        if let e = byPid[pid], now &- e.readAt < Self.pidTTLNs { return e.identity }
        guard let text = ProcFS.read("/proc/\(pid)/cgroup", limit: 65536) else {
            // Gone: what was read while it lived is still the best answer,
            // else the cgroup it was in, if the kernel event named it.
            if let known = byPid[pid] { return known.identity }
            guard cgroupID > 1, let path = cgroupPath(id: cgroupID) else { return nil }
            let raw = CgroupIdentity.identity(path: path)
            return raw.cgroup == "/" ? nil : named(raw, now: now)
        }
        var identity = CgroupIdentity.identity(cgroupFile: text).map { named($0, now: now, pid: pid) }
        if identity?.container == nil, identity?.pod == nil, var c = rootlessContainer(pid: pid) {
            nameContainer(&c, pid: pid)
            // Its cgroup is its user's (a session's, or the unit running its
            // daemon), which is not the container's unit.
            identity = WorkloadIdentity(cgroup: identity?.cgroup, container: c)
        }
        if let id = identity, let label = Self.netnsLabel(id), let ns = ProcFS.nsInode("/proc/\(pid)/ns/net") {
            Self.bound(&workloadNetns)
            workloadNetns[ns] = label
        }
        Self.bound(&byPid)
        byPid[pid] = PidEntry(identity: identity, readAt: now)
        return identity
    }

    /// `pid`: a live process of the cgroup (Podman's conmon is its ancestor).
    func named(_ raw: WorkloadIdentity, now: UInt64, pid: UInt32? = nil) -> WorkloadIdentity {
        guard let key = raw.cgroup else { return raw }
        if let hit = byCgroup[key], hit.complete || now &- hit.namedAt < Self.retryNamesNs { return hit.identity }
        var id = raw
        var complete = true
        if var pod = id.pod {
            complete = namePod(&pod, containerID: id.container?.id, now: now)
            id.pod = pod
        } else if var c = id.container {
            complete = nameContainer(&c, pid: pid)
            id.container = c
        }
        Self.bound(&byCgroup)
        byCgroup[key] = Named(identity: id, namedAt: now, complete: complete)
        return id
    }

    /// Names a Docker, Podman or nerdctl container (and a Docker or Podman
    /// one's Compose service); whether that is all there is to find (CRI-O's
    /// and LXC's have no names to look up here).
    @discardableResult
    func nameContainer(_ c: inout ContainerRef, pid: UInt32?) -> Bool {
        switch c.runtime {
        case .docker?, nil:
            let named = dockerName(id: c.id)
            c.name = named?.name ?? c.name
            c.service = named?.service
            // A bare id (cgroupfs: /<namespace>/<id>) may be nerdctl's.
            if c.name == nil, c.runtime == nil, let name = nerdctlName(id: c.id) {
                c.runtime = .containerd
                c.name = name
            }
            return c.name != nil || sources.dockerDataRoots.isEmpty
        case .containerd?:
            c.name = c.name ?? nerdctlName(id: c.id)
            return c.name != nil || sources.nerdctlDataRoots.isEmpty
        case .podman?:
            c.name = c.name ?? podmanName(id: c.id, pid: pid)
            c.service = podmanStores.service(id: c.id)
            return c.name != nil
        default:
            return true
        }
    }

    /// The v2 directory of a cgroup id, relative to the mount ("/system.slice/x.service").
    func cgroupPath(id: UInt64) -> String? {
        if let hit = byCgroupID[id] { return hit }
        guard sources.cgroupV2Mount != nil else { return nil }
        let path = CgroupRoot.path(id: id)
        Self.bound(&byCgroupID)
        byCgroupID[id] = .some(path)
        return path
    }

    /// The label a network namespace takes from the workload living in it.
    static func netnsLabel(_ id: WorkloadIdentity) -> String? {
        if let pod = id.pod, pod.name != nil { return "pod " + pod.label }
        if let c = id.container { return "container " + (c.name ?? c.shortID) }
        return nil
    }

    // MARK: - Docker

    /// Its name and the Compose (or Swarm) service its labels name.
    func dockerName(id: String) -> (name: String, service: ComposeService?)? {
        if let hit = dockerNames[id] { return hit }
        for root in sources.dockerDataRoots {
            guard let bytes = ProcFS.readBytes("\(root)/containers/\(id)/config.v2.json", limit: Self.maxConfigBytes) else { continue }
            let found = WorkloadNames.dockerContainer(configJSON: bytes)
            guard let name = found.name else { continue }
            Self.bound(&dockerNames)
            dockerNames[id] = (name, found.service)
            return (name, found.service)
        }
        // A rootless dockerd's container, its data root new since start-up?
        return rediscoverRootless() ? dockerName(id: id) : nil
    }

    // MARK: - Rootless stores

    /// At most this often, /etc/passwd's users' homes are looked at again
    /// for rootless stores and data roots that appeared (a user's first
    /// rootless container, made while synsight runs).
    static let rootlessRecheckNs: UInt64 = 10_000_000_000
    var rootlessCheckedAt: UInt64?

    /// Looks for new rootless stores and data roots (when a refusal of a
    /// published port or a container's name needs them, at most every
    /// `rootlessRecheckNs`): /etc/passwd read again, and a stat or two per
    /// user. Returns whether any was added; the Docker and Podman readers
    /// are then made again with them.
    @discardableResult
    public func rediscoverRootless() -> Bool {
        let now = Self.monotonicNow()
        if let at = rootlessCheckedAt, now &- at < Self.rootlessRecheckNs { return false }
        rootlessCheckedAt = now
        guard sources.addRootless(users: WorkloadSources.passwdUsers()) else { return false }
        dockerPorts = Self.dockerPorts(sources)
        podmanStores = Self.podmanStores(sources)
        return true
    }

    /// Docker's published ports, running or not (ProcfsResolver.publishers):
    /// one reader, made again when rediscovery adds a data root.
    lazy var dockerPorts = Self.dockerPorts(sources)

    static func dockerPorts(_ s: WorkloadSources) -> DockerPortReader { DockerPortReader(roots: s.dockerDataRoots, owners: s.rootlessOwners) }

    // MARK: - Podman

    /// libpod's databases: a container's Compose service here, the published
    /// ports for ProcfsResolver.publishers (one reader: each database parsed once per change).
    lazy var podmanStores = Self.podmanStores(sources)

    static func podmanStores(_ s: WorkloadSources) -> PodmanPortReader { PodmanPortReader(roots: s.podmanStorageRoots, owners: s.rootlessOwners) }

    /// Podman keeps no per-container config file a reader can find from the
    /// id alone (its store may be anywhere: --root, rootless users'), but each
    /// running container's conmon has `-c <id> -n <name>` on its command line.
    func podmanName(id: String, pid: UInt32?) -> String? {
        if let hit = podmanNames[id] { return hit }
        var name = pid.flatMap { conmonName(above: $0, containerID: id) }
        stores: for root in sources.podmanStorageRoots where name == nil {
            for dir in ProcFS.list(root) where dir.hasSuffix("-containers") {
                guard let bytes = ProcFS.readBytes("\(root)/\(dir)/containers.json", limit: 8 << 20) else { continue }
                name = WorkloadNames.podmanNames(containersJSON: bytes)[id]
                if name != nil { break stores }
            }
        }
        if let name {
            Self.bound(&podmanNames)
            podmanNames[id] = name
        }
        return name
    }

    /// The container name on the command line of the conmon above `pid`
    /// (its first process's parent; at most 8 generations up).
    func conmonName(above pid: UInt32, containerID: String) -> String? {
        monitor(above: pid) { $0 == "conmon" }.flatMap { WorkloadNames.conmonName(commandLine: $0, containerID: containerID) }
    }

    /// The command line of the nearest ancestor of `pid` whose name
    /// `matches` (at most `maxMonitorDepth` generations up, below pid 1):
    /// one /proc/<pid>/stat read per generation, then its command line.
    func monitor(above pid: UInt32, matches: (Substring) -> Bool) -> [String]? {
        guard var stat = ProcFS.read("/proc/\(pid)/stat", limit: 4096) else { return nil }
        for _ in 0..<Self.maxMonitorDepth {
            guard let ppid = ProcStat.parent(stat), ppid > 1,
                  let parent = ProcFS.read("/proc/\(ppid)/stat", limit: 4096), let name = ProcStat.comm(parent) else { return nil }
            if matches(name) {
                return (ProcFS.read("/proc/\(ppid)/cmdline", limit: 65536) ?? "").split(separator: "\0").map(String.init)
            }
            stat = parent
        }
        return nil
    }

    static let maxMonitorDepth = 8

    /// The container of a process in a user namespace other than
    /// synsight's whose cgroup names none: a rootless container where
    /// cgroups are not delegated (cgroup v1, no systemd), found by the
    /// conmon or containerd shim above it (WorkloadNames.monitoredContainer).
    /// nil at once for a process in synsight's user namespace (a rootful
    /// container's cgroup names it).
    func rootlessContainer(pid: UInt32) -> ContainerRef? {
        guard let userns = ProcFS.nsInode("/proc/\(pid)/ns/user"), userns != ownUserNS,
              let args = monitor(above: pid, matches: { $0 == "conmon" || $0.hasPrefix("containerd-shim") }) else { return nil }
        return WorkloadNames.monitoredContainer(commandLine: args)
    }

    lazy var ownUserNS = ProcFS.nsInode("/proc/self/ns/user")

    // MARK: - nerdctl

    /// nerdctl's name for a containerd container: a file per name under
    /// `<data root>/<address hash>/names/<namespace>/`, holding the id
    /// (nerdctl keeps no per-id file with the name); listed again on a miss.
    func nerdctlName(id: String) -> String? {
        guard !sources.nerdctlDataRoots.isEmpty else { return nil }
        let now = Self.monotonicNow()
        if nerdctlNames[id] == nil, Self.due(nerdctlListedAt, now) {
            nerdctlListedAt = now
            nerdctlNames.removeAll(keepingCapacity: true)
            for root in sources.nerdctlDataRoots {
                for hash in ProcFS.list(root) {
                    let names = "\(root)/\(hash)/names"
                    for ns in ProcFS.list(names) {
                        for name in ProcFS.list("\(names)/\(ns)").prefix(Self.maxEntries) where nerdctlNames.count < Self.maxEntries {
                            guard let text = ProcFS.read("\(names)/\(ns)/\(name)", limit: 256),
                                  let found = WorkloadNames.nerdctlNameFile(text) else { continue }
                            nerdctlNames[found] = name
                        }
                    }
                }
            }
        }
        return nerdctlNames[id]
    }

    // MARK: - Kubernetes

    /// Fills namespace, name and container name; true when all were found.
    func namePod(_ pod: inout PodRef, containerID: String?, now: UInt64) -> Bool {
        if pods[pod.uid] == nil, Self.due(podsListedAt, now) { listPods(now: now) }
        guard let dir = pods[pod.uid] else { return false }
        pod.namespace = dir.namespace
        pod.name = dir.name
        let containers = ProcFS.list(dir.directory).filter { WorkloadSources.isDirectory(dir.directory + "/" + $0) }
        if containers.count == 1 {
            pod.container = containers[0]
        } else if let containerID {
            if containerLinks[containerID] == nil, Self.due(linksListedAt, now) { listContainerLinks(now: now) }
            pod.container = containerLinks[containerID]
        }
        return pod.container != nil || containerID == nil
    }

    func listPods(now: UInt64) {
        podsListedAt = now
        pods.removeAll(keepingCapacity: true)
        for entry in ProcFS.list(sources.podLogRoot).prefix(Self.maxEntries) {
            guard let p = WorkloadNames.podLogDirectory(entry) else { continue }
            pods[p.uid] = PodDir(namespace: p.namespace, name: p.pod, directory: sources.podLogRoot + "/" + entry)
        }
    }

    func listContainerLinks(now: UInt64) {
        linksListedAt = now
        containerLinks.removeAll(keepingCapacity: true)
        for entry in ProcFS.list(sources.containerLogRoot).prefix(Self.maxEntries * 4) {
            if let l = WorkloadNames.containerLogLink(entry) { containerLinks[l.id] = l.container }
        }
    }

    // MARK: - Network namespaces

    /// `ip netns` name of a namespace, else the container or pod living in it.
    public func netnsName(_ inode: UInt32) -> String? {
        if let n = netnsNames[inode] {
            // The kernel gives a deleted namespace's inode to the next one
            // made: the name must still be that namespace's, else relist.
            if ProcFS.nsInode(WorkloadSources.netnsDir + "/" + n) == inode { return n }
            netnsListedAt = nil
        }
        let now = Self.monotonicNow()
        if sources.netnsDirExists, Self.due(netnsListedAt, now) {
            netnsListedAt = now
            netnsNames.removeAll(keepingCapacity: true)
            for name in ProcFS.list(WorkloadSources.netnsDir).prefix(Self.maxEntries) {
                if let ns = ProcFS.nsInode(WorkloadSources.netnsDir + "/" + name) { netnsNames[ns] = name }
            }
            if let n = netnsNames[inode] { return n }
        }
        return workloadNetns[inode]
    }

    // MARK: - Records

    var proxies: [UInt32: PublishedPort?] = [:]

    /// Adds what the record's namespace and client say in the operator's
    /// terms: the namespace's name, and the published port when the client
    /// is Docker's userland proxy (its command line, read once per pid).
    public func enrich(_ r: inout Record) {
        if r.netnsName == nil, let ns = r.netns { r.netnsName = netnsName(ns) }
        // A failed call's or connection's own process lives in the record's
        // namespace, and may have been named from its cgroup id alone (no
        // /proc read that would have mapped its namespace).
        if r.netnsName == nil, [.bindFailure, .connectFailure, .denial].contains(r.kind),
           let id = r.process?.workload, let label = Self.netnsLabel(id) {
            r.netnsName = label
        }
        guard let c = r.client, c.comm == "docker-proxy" else { return }
        if proxies[c.pid] == nil {
            let cmd = ProcFS.read("/proc/\(c.pid)/cmdline", limit: 4096) ?? ""
            let args = cmd.split(separator: "\0").map(String.init)
            Self.bound(&proxies)
            proxies[c.pid] = .some(PublishedPort(dockerProxyCommandLine: args))
        }
        if let p = proxies[c.pid] ?? nil { r.addProxy(p, tool: "docker-proxy") }
    }

    // MARK: - Restarts

    struct Members {
        var pids: [UInt32]
        var readAt: UInt64
    }

    var members: [String: Members] = [:]
    /// Answers of `successor`, so a storm of refusals to a dead port costs
    /// one look at the cgroup's processes per `membersTTLNs`.
    var successors: [String: (pid: UInt32?, at: UInt64)] = [:]
    static let membersTTLNs: UInt64 = 500_000_000
    /// Start times are in clock ticks: a restart within a tick of the exit still counts.
    static let startSlackNs: UInt64 = 20_000_000

    /// A process now in the workload's unit, container or pod (for a pod,
    /// in any of its containers: a restarted container gets a new one)
    /// that started at or after `startedAfter` (boot ns) and runs the same
    /// program as the one that exited (`comm`), so that a cron job or a
    /// health check in the same cgroup is not taken for a restart.
    public func successor(of w: WorkloadIdentity, excluding pid: UInt32, comm: String,
                          startedAfter: UInt64) -> UInt32? {
        guard let scope = Self.scopePath(w), scope != "/" else { return nil }
        let key = "\(scope) \(pid) \(startedAfter)"
        let now = Self.monotonicNow()
        if let hit = successors[key], now &- hit.at < Self.membersTTLNs { return hit.pid }
        var found: UInt32?
        for p in members(of: scope, descend: w.pod != nil) where p != pid {
            guard let stat = ProcFS.read("/proc/\(p)/stat", limit: 4096), let ticks = ProcStat.startTicks(stat),
                  ticks * ProcFS.nsPerTick + Self.startSlackNs >= startedAfter, ProcFS.comm(p) == comm else { continue }
            found = p
            break
        }
        Self.bound(&successors)
        successors[key] = (found, now)
        return found
    }

    /// The cgroup holding the workload's processes: the pod's slice, else its own.
    static func scopePath(_ w: WorkloadIdentity) -> String? {
        guard let path = w.cgroup else { return nil }
        guard let pod = w.pod else { return path }
        let parts = path.split(separator: "/")
        let systemdUID = pod.uid.replacing("-", with: "_")
        guard let i = parts.firstIndex(where: { $0 == "pod" + pod.uid || $0.hasSuffix("pod\(systemdUID).slice") }) else { return path }
        return "/" + parts[...i].joined(separator: "/")
    }

    /// PIDs in the cgroup `scope` (and, with `descend`, its child cgroups),
    /// from the v2 hierarchy or the v1 ones systemd and docker use; cached briefly.
    func members(of scope: String, descend: Bool) -> [UInt32] {
        let now = Self.monotonicNow()
        if let m = members[scope], now &- m.readAt < Self.membersTTLNs { return m.pids }
        var pids: [UInt32] = []
        let roots = [sources.cgroupV2Mount, "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/pids"].compactMap { $0 }
        for root in roots {
            let dir = root + scope
            guard let procs = ProcFS.read(dir + "/cgroup.procs", limit: 1 << 20) else { continue }
            pids = procs.split(separator: "\n").compactMap { UInt32($0) }
            if descend {
                for child in ProcFS.list(dir).prefix(64) where WorkloadSources.isDirectory(dir + "/" + child) {
                    let text = ProcFS.read(dir + "/" + child + "/cgroup.procs", limit: 1 << 20) ?? ""
                    pids += text.split(separator: "\n").compactMap { UInt32($0) }
                }
            }
            break
        }
        Self.bound(&members)
        members[scope] = Members(pids: pids, readAt: now)
        return pids
    }

    // MARK: - Helpers

    static func due(_ last: UInt64?, _ now: UInt64) -> Bool {
        guard let last else { return true }
        return now &- last >= relistNs
    }

    static func bound<K, V>(_ table: inout [K: V]) {
        if table.count >= maxEntries { table.removeAll(keepingCapacity: true) }
    }

    static func monotonicNow() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}
