import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Which workload-identity sources this host has, found once at start-up
/// (before the ring buffer is read: the /proc scan for dockerd happens here,
/// never on the consumer thread). Reported by `doctor`.
public struct WorkloadSources: Sendable {
    public enum CgroupMode: String, Sendable {
        case v2 = "cgroup v2"
        case v1 = "cgroup v1"
        case hybrid = "hybrid (cgroup v1 with v2 at /sys/fs/cgroup/unified)"
        case none = "no cgroup filesystem mounted"
    }

    /// Default kubelet pod log root; the hidden `--pod-log-dir` overrides it (tests).
    public static let defaultPodLogRoot = "/var/log/pods"
    public static let defaultDockerDataRoot = "/var/lib/docker"
    public static let defaultPodmanStorageRoot = "/var/lib/containers/storage"
    public static let storageConf = "/etc/containers/storage.conf"
    /// storage.conf as Podman finds it: `CONTAINERS_STORAGE_CONF` when set.
    static var storageConfPath: String {
        getenv("CONTAINERS_STORAGE_CONF").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? storageConf
    }
    public static let netnsDir = "/run/netns"
    public static let defaultNerdctlDataRoot = "/var/lib/nerdctl"

    public var cgroupMode: CgroupMode
    /// Docker data roots that exist: from running dockerd command lines
    /// (a rootless dockerd's from its environment), the default, and
    /// rootless Docker's of every user that has one.
    public var dockerDataRoots: [String]
    /// Podman's container stores (graphroots) that exist: the default and storage.conf's.
    public var podmanStorageRoots: [String] = []
    /// nerdctl's data roots that exist (its default, rootless users'):
    /// `<root>/<address hash>/names/<namespace>/<name>` holds a container's id.
    public var nerdctlDataRoots: [String] = []
    /// The rootless ones among those stores and data roots (rootless
    /// Podman's `~/.local/share/containers/storage`, rootless Docker's
    /// `~/.local/share/docker`): store or data root -> its user.
    public var rootlessOwners: [String: RootlessUser] = [:]
    /// kubelet's pod log directories, and the `containers` symlink directory next to it.
    public var podLogRoot: String
    public var podLogRootExists: Bool
    public var containerLogRoot: String
    public var netnsDirExists: Bool

    /// The path that opens the whole v2 hierarchy (members of a cgroup are
    /// read there): its mount, or synsight's detached mount (CgroupRoot).
    public var cgroupV2Mount: String?
    /// Where that hierarchy comes from, and synsight's cgroup namespace (doctor).
    public var cgroupV2Source: String?
    public var cgroupNamespace: CgroupNamespace.State = .host

    public init(cgroupMode: CgroupMode, dockerDataRoots: [String], podLogRoot: String, podLogRootExists: Bool,
                containerLogRoot: String, netnsDirExists: Bool) {
        self.cgroupMode = cgroupMode
        self.dockerDataRoots = dockerDataRoots
        self.podLogRoot = podLogRoot
        self.podLogRootExists = podLogRootExists
        self.containerLogRoot = containerLogRoot
        self.netnsDirExists = netnsDirExists
        switch cgroupMode {
        case .v2: cgroupV2Mount = "/sys/fs/cgroup"
        case .hybrid: cgroupV2Mount = "/sys/fs/cgroup/unified"
        case .v1, .none: cgroupV2Mount = nil
        }
    }

    /// Probe this host. `podLogRoot`: kubelet's pod log root, when not the default.
    public static func probe(podLogRoot: String? = nil) -> WorkloadSources {
        let podRoot = podLogRoot ?? defaultPodLogRoot
        let parent = podRoot.split(separator: "/").dropLast().joined(separator: "/")
        let users = passwdUsers()
        let docker = dockerDataRoots(users: users)
        var sources = WorkloadSources(cgroupMode: cgroupMode(), dockerDataRoots: docker.roots, podLogRoot: podRoot,
                                      podLogRootExists: isDirectory(podRoot), containerLogRoot: "/" + parent + "/containers",
                                      netnsDirExists: isDirectory(netnsDir))
        sources.rootlessOwners = docker.owners
        sources.podmanStorageRoots = podmanStorageRoots()
        sources.nerdctlDataRoots = isDirectory(defaultNerdctlDataRoot) ? [defaultNerdctlDataRoot] : []
        sources.addRootless(users: users)
        sources.cgroupNamespace = CgroupNamespace.state
        if let h = try? CgroupRoot.v2.get() {
            sources.cgroupV2Mount = h.path
            sources.cgroupV2Source = h.source
        }
        return sources
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// A v2 hierarchy's root has `cgroup.controllers`: at /sys/fs/cgroup (v2)
    /// or /sys/fs/cgroup/unified (hybrid).
    static func cgroupMode() -> CgroupMode {
        func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
        if exists("/sys/fs/cgroup/cgroup.controllers") { return .v2 }
        if exists("/sys/fs/cgroup/unified/cgroup.controllers") { return .hybrid }
        return isDirectory("/sys/fs/cgroup/systemd") || isDirectory("/sys/fs/cgroup/memory") ? .v1 : .none
    }

    static let passwdPath = "/etc/passwd"

    /// Adds the rootless stores and data roots of `users` not known yet:
    /// rootless Podman's store and nerdctl's data root where they exist,
    /// rootless Docker's data root where it has a `containers` directory (its dockerd runs only in the
    /// user's sessions, unless lingering). At start-up, and again while
    /// tracing (WorkloadResolver.rediscoverRootless: a user's first rootless
    /// container). Returns whether any was added.
    @discardableResult
    public mutating func addRootless(users: [RootlessUser]) -> Bool {
        var added = false
        for user in users {
            added = adopt(user.dockerDataRoot, of: user, into: \.dockerDataRoots, once: user.dockerDataRoot + "/containers") || added
            added = adopt(user.podmanStore, of: user, into: \.podmanStorageRoots) || added
            added = adopt(user.nerdctlDataRoot, of: user, into: \.nerdctlDataRoots) || added
        }
        return added
    }

    /// Adds `root`, `user`'s, to `roots` once the directory `once` (the root
    /// itself by default) exists; whether it was added now.
    mutating func adopt(_ root: String, of user: RootlessUser, into roots: WritableKeyPath<WorkloadSources, [String]>,
                        once present: String? = nil) -> Bool {
        guard !self[keyPath: roots].contains(root), Self.isDirectory(present ?? root) else { return false }
        self[keyPath: roots].append(root)
        rootlessOwners[root] = user
        return true
    }

    /// /etc/passwd's users, read now (RootlessUser.users).
    public static func passwdUsers() -> [RootlessUser] {
        RootlessUser.users(passwd: ProcFS.read(passwdPath, limit: 1 << 20) ?? "")
    }

    /// `--data-root` of every running dockerd (a rootless one's default from
    /// its environment: mapped to its user, by uid) and /var/lib/docker;
    /// only those with a `containers` directory. The users' rootless data
    /// roots that no running dockerd names come from `addRootless`.
    static func dockerDataRoots(users: [RootlessUser]) -> (roots: [String], owners: [String: RootlessUser]) {
        var roots: [String] = []
        var owners: [String: RootlessUser] = [:]
        for pid in ProcFS.pids() {
            guard let cmd = ProcFS.read("/proc/\(pid)/cmdline", limit: 65536) else { continue }
            let args = cmd.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
            guard WorkloadNames.isDockerd(commandLine: args) else { continue }
            let named = WorkloadNames.dockerDataRoots(commandLine: args)
            let env = RootlessUser.environment(ProcFS.read("/proc/\(pid)/environ", limit: 1 << 20) ?? "")
            guard let rootless = RootlessUser.dockerDataRoot(environment: env) else {
                roots += named.isEmpty ? [defaultDockerDataRoot] : named
                continue
            }
            let root = named.first ?? rootless
            roots.append(root)
            if let uid = ProcFS.ownerUID(pid: pid), let user = users.first(where: { $0.uid == uid }) { owners[root] = user }
        }
        roots.append(defaultDockerDataRoot)
        var seen = Set<String>()
        let found = roots.filter { seen.insert($0).inserted && isDirectory($0 + "/containers") }
        return (found, owners.filter { found.contains($0.key) })
    }

    /// Podman's graphroot from storage.conf, and the default; those that exist.
    static func podmanStorageRoots() -> [String] {
        var roots = [defaultPodmanStorageRoot]
        if let conf = ProcFS.read(storageConfPath, limit: 65536), let root = WorkloadNames.storageGraphRoot(storageConf: conf) {
            roots.insert(root, at: 0)
        }
        var seen = Set<String>()
        return roots.filter { seen.insert($0).inserted && isDirectory($0) }
    }

    /// The TCP ports running Docker containers publish (every data root's
    /// container configs): what `--port` of a published port follows into
    /// the container (DockerPortReader; PublishedPortFollower reads them again while tracing).
    public func dockerPublishedPorts() -> [PublishedPort] {
        DockerPortReader(roots: dockerDataRoots, owners: rootlessOwners).read()
    }

    /// "; rootless: alice's, bob's" for the rootless ones among `roots`.
    func rootlessNote(_ roots: [String]) -> String {
        let users = roots.compactMap { rootlessOwners[$0]?.name }
        return users.isEmpty ? "" : "; rootless: " + users.map { $0 + "'s" }.joined(separator: ", ")
    }

    /// One line per source, for `doctor`.
    public var doctorLines: [String] {
        [
            "cgroups                  \(cgroupMode.rawValue)" + (cgroupV2Source.map { "; v2 read through \($0)" } ?? ""),
            "cgroup namespace         " + cgroupNamespace.detail,
            "docker names             " + (dockerDataRoots.isEmpty
                ? "no Docker data root found (no dockerd running, no \(Self.defaultDockerDataRoot)/containers, no user's "
                    + "~/.local/share/docker/containers: looked for again, at most every 10 s, when needed): containers named by id only"
                : "container configs in " + dockerDataRoots.joined(separator: ", ")
                    + " (names, and Compose and Swarm services from their labels)"
                    + rootlessNote(dockerDataRoots)),
            "podman names             conmon's command line (running containers)" + (podmanStorageRoots.isEmpty
                ? "" : ", container stores in " + podmanStorageRoots.joined(separator: ", ")
                    + " (published ports from db.sql there, through libsqlite3, or libpod/bolt_state.db; "
                    + "CONTAINERS_STORAGE_CONF names another store)" + rootlessNote(podmanStorageRoots)),
            "nerdctl names            " + (nerdctlDataRoots.isEmpty
                ? "no nerdctl data root (\(Self.defaultNerdctlDataRoot)): containerd's containers named by id only"
                : "names/<namespace>/<name> files in " + nerdctlDataRoots.joined(separator: ", ") + rootlessNote(nerdctlDataRoots)),
            "lxc names                the payload cgroup (/lxc.payload.<name>: LXC, LXD, Incus; /lxc/<name>: older LXC, Proxmox VE)",
            "pod names                " + (podLogRootExists
                ? "kubelet pod log directories in \(podLogRoot)"
                : "\(podLogRoot) absent (no kubelet): pods named by UID only"),
            "netns names              " + (netnsDirExists ? "\(Self.netnsDir) (ip netns)" : "\(Self.netnsDir) absent: namespaces by inode (and container) only"),
        ]
    }
}
