import Glibc
import SynsightModel

/// The TCP ports running Docker containers publish, from their configs
/// (`<data root>/containers/<id>/config.v2.json`, `NetworkSettings.Ports`).
/// A config is parsed again only when it changed (Docker replaces it on
/// every state change: a new inode, size or mtime), so following the
/// containers every few seconds costs one stat per container.
///
/// Not Sendable: one owner (start-up, then the pipeline thread).
public final class DockerPortReader {
    let roots: [String]
    struct Entry {
        var inode: UInt64
        var size: Int
        var mtime: timespec
        var ports: [PublishedPort]
    }
    var cache: [String: Entry] = [:]

    /// `roots`: Docker data roots (WorkloadSources.dockerDataRoots).
    public init(roots: [String]) {
        self.roots = roots
    }

    /// Every running container's published ports, now.
    public func read() -> [PublishedPort] {
        var seen = Set<String>()
        var out: [PublishedPort] = []
        for root in roots {
            for id in ProcFS.list(root + "/containers") {
                let path = "\(root)/containers/\(id)/config.v2.json"
                seen.insert(path)
                out += ports(at: path)
            }
        }
        cache = cache.filter { seen.contains($0.key) }
        return out
    }

    private func ports(at path: String) -> [PublishedPort] {
        var st = stat()
        guard stat(path, &st) == 0 else { return [] }
        if let e = cache[path], e.inode == UInt64(st.st_ino), e.size == Int(st.st_size),
           e.mtime.tv_sec == st.st_mtim.tv_sec, e.mtime.tv_nsec == st.st_mtim.tv_nsec {
            return e.ports
        }
        let ports = ProcFS.readBytes(path, limit: WorkloadResolver.maxConfigBytes).map(PublishedPort.docker(configJSON:)) ?? []
        cache[path] = Entry(inode: UInt64(st.st_ino), size: Int(st.st_size), mtime: st.st_mtim, ports: ports)
        return ports
    }
}
