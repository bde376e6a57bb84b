import Glibc
import SynsightModel

/// The TCP ports running Docker containers publish, from their configs
/// (`<data root>/containers/<id>/config.v2.json`, `NetworkSettings.Ports`),
/// and those of containers that are not running (`hostconfig.json`'s
/// PortBindings outlive the run). A config is parsed again only when it
/// changed (Docker replaces it on every state change: a new inode, size or
/// mtime), so following the containers every few seconds costs one stat per
/// container.
///
/// Not Sendable: one owner (start-up, then the pipeline thread).
public final class DockerPortReader {
    let roots: [String]
    /// What identifies one version of a config file.
    struct FileIdentity: Equatable {
        var inode: UInt64
        var size: Int
        var sec: Int
        var nsec: Int
    }
    var cache: [String: (file: FileIdentity, ports: [PublishedPort])] = [:]
    var bindingCache: [String: (file: FileIdentity, bindings: [DockerPortBinding])] = [:]

    /// Rootless data roots: data root -> its user (WorkloadSources.rootlessOwners).
    let owners: [String: RootlessUser]

    /// `roots`: Docker data roots (WorkloadSources.dockerDataRoots).
    public init(roots: [String], owners: [String: RootlessUser] = [:]) {
        self.roots = roots
        self.owners = owners
    }

    /// Every running container's published ports, now.
    public func read() -> [PublishedPort] {
        var out: [PublishedPort] = []
        let dirs = containerDirs()
        for (_, dir, _) in dirs {
            let path = dir + "/config.v2.json"
            guard let file = Self.identity(path) else { continue }
            if let hit = cache[path], hit.file == file {
                out += hit.ports
                continue
            }
            let ports = ProcFS.readBytes(path, limit: WorkloadResolver.maxConfigBytes).map(PublishedPort.docker(configJSON:)) ?? []
            cache[path] = (file, ports)
            out += ports
        }
        let seen = Set(dirs.map { $0.dir + "/config.v2.json" })
        cache = cache.filter { seen.contains($0.key) }
        return out
    }

    /// Every TCP port binding of every container, running or not.
    public func bindings() -> [DockerPortBinding] {
        var out: [DockerPortBinding] = []
        let dirs = containerDirs()
        for (root, dir, id) in dirs {
            guard let file = Self.identity(dir + "/config.v2.json") else { continue }
            if let hit = bindingCache[dir], hit.file == file {
                out += hit.bindings
                continue
            }
            var found: [DockerPortBinding] = []
            if let config = ProcFS.readBytes(dir + "/config.v2.json", limit: WorkloadResolver.maxConfigBytes),
               let host = ProcFS.readBytes(dir + "/hostconfig.json", limit: WorkloadResolver.maxConfigBytes) {
                found = DockerPortBinding.docker(id: id, configJSON: config, hostConfigJSON: host)
                    .map { var b = $0; b.rootless = owners[root]; return b }
            }
            bindingCache[dir] = (file, found)
            out += found
        }
        let seen = Set(dirs.map(\.dir))
        bindingCache = bindingCache.filter { seen.contains($0.key) }
        return out
    }

    var networkCache: [String: (file: FileIdentity, networks: [String: String])] = [:]

    /// Every network a container (running or not) is attached to: id -> name.
    public func networks() -> [String: String] {
        var out: [String: String] = [:]
        let dirs = containerDirs()
        for (_, dir, _) in dirs {
            let path = dir + "/config.v2.json"
            guard let file = Self.identity(path) else { continue }
            if let hit = networkCache[path], hit.file == file {
                out.merge(hit.networks) { a, _ in a }
                continue
            }
            let found = ProcFS.readBytes(path, limit: WorkloadResolver.maxConfigBytes).map(WorkloadNames.dockerNetworks(configJSON:)) ?? [:]
            networkCache[path] = (file, found)
            out.merge(found) { a, _ in a }
        }
        let seen = Set(dirs.map { $0.dir + "/config.v2.json" })
        networkCache = networkCache.filter { seen.contains($0.key) }
        return out
    }

    /// Every binding of a container that is not running.
    public func stopped() -> [DockerPortBinding] { bindings().filter { !$0.running } }

    /// Each container's directory, with its data root and id, under every data root.
    func containerDirs() -> [(root: String, dir: String, id: String)] {
        roots.flatMap { root in ProcFS.list(root + "/containers").map { (root, "\(root)/containers/\($0)", $0) } }
    }

    static func identity(_ path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(inode: UInt64(st.st_ino), size: Int(st.st_size), sec: st.st_mtim.tv_sec, nsec: st.st_mtim.tv_nsec)
    }
}
