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
    /// Per container directory: its config's identity, and what was made of it.
    var cache: [String: (file: FileIdentity, value: [PublishedPort])] = [:]
    var bindingCache: [String: (file: FileIdentity, value: [DockerPortBinding])] = [:]
    var networkCache: [String: (file: FileIdentity, value: [String: String])] = [:]
    /// Per data root: libnetwork's store, and its networks (id -> name).
    var storeCache: [String: (file: FileIdentity, value: [String: String])] = [:]
    /// libnetwork's store is a few hundred KB on a busy host; past this it
    /// is not read (the containers' configs still name their networks).
    static let maxStoreBytes = 64 << 20

    /// Rootless data roots: data root -> its user (WorkloadSources.rootlessOwners).
    let owners: [String: RootlessUser]

    /// `roots`: Docker data roots (WorkloadSources.dockerDataRoots).
    public init(roots: [String], owners: [String: RootlessUser] = [:]) {
        self.roots = roots
        self.owners = owners
    }

    /// Every running container's published ports, now.
    public func read() -> [PublishedPort] {
        perContainer(&cache) { _, dir, _ in
            ProcFS.readBytes(dir + "/config.v2.json", limit: WorkloadResolver.maxConfigBytes).map(PublishedPort.docker(configJSON:)) ?? []
        }.flatMap { $0 }
    }

    /// Every TCP port binding of every container, running or not.
    public func bindings() -> [DockerPortBinding] {
        perContainer(&bindingCache) { root, dir, id in
            guard let config = ProcFS.readBytes(dir + "/config.v2.json", limit: WorkloadResolver.maxConfigBytes),
                  let host = ProcFS.readBytes(dir + "/hostconfig.json", limit: WorkloadResolver.maxConfigBytes) else { return [] }
            return DockerPortBinding.docker(id: id, configJSON: config, hostConfigJSON: host)
                .map { var b = $0; b.rootless = owners[root]; return b }
        }.flatMap { $0 }
    }

    /// Every network Docker knows: id -> name, from libnetwork's store
    /// (each data root's `network/files/local-kv.db`, read again only when
    /// it changed), and from the configs of the containers attached to one
    /// (running or not) where the store cannot be read.
    public func networks() -> [String: String] {
        var all = perContainer(&networkCache) { _, dir, _ in
            ProcFS.readBytes(dir + "/config.v2.json", limit: WorkloadResolver.maxConfigBytes).map(WorkloadNames.dockerNetworks(configJSON:)) ?? [:]
        }.reduce(into: [:]) { all, one in all.merge(one) { kept, _ in kept } }
        for root in roots { all.merge(storeNetworks(root)) { _, stored in stored } }
        return all
    }

    /// libnetwork's store of one data root, parsed again only when it changed.
    func storeNetworks(_ root: String) -> [String: String] {
        let path = root + "/network/files/local-kv.db"
        guard let file = Self.identity(path) else { storeCache[root] = nil; return [:] }
        if let hit = storeCache[root], hit.file == file { return hit.value }
        let value = ProcFS.readBytes(path, limit: Self.maxStoreBytes).map(WorkloadNames.dockerNetworks(localKV:)) ?? [:]
        storeCache[root] = (file, value)
        return value
    }

    /// One value per container directory, made again (`make(root, dir, id)`)
    /// only when its config.v2.json changed; `cache` keeps only the
    /// directories there now.
    func perContainer<T>(_ cache: inout [String: (file: FileIdentity, value: T)],
                         _ make: (_ root: String, _ dir: String, _ id: String) -> T) -> [T] {
        var out: [T] = []
        let dirs = containerDirs()
        for (root, dir, id) in dirs {
            guard let file = Self.identity(dir + "/config.v2.json") else { continue }
            if let hit = cache[dir], hit.file == file {
                out.append(hit.value)
                continue
            }
            let value = make(root, dir, id)
            cache[dir] = (file, value)
            out.append(value)
        }
        let seen = Set(dirs.map(\.dir))
        cache = cache.filter { seen.contains($0.key) }
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
