import SynsightBase
import SynsightKernel
import SynsightModel

/// `--port` followed into Docker containers while tracing. At start
/// (TraceSettings.followPublishedPorts) the running containers' mappings of
/// the named ports are known; a container started, restarted or re-created
/// later may publish a named port to a new address or container port. Every
/// `period` the configs are checked again (DockerPortReader: one stat per
/// container, a parse only for a changed config): the records' filter then
/// keeps the new container ends, and the kernel's filter gains their ports
/// (PortFilter). Runs on the pipeline thread, never the ring-buffer one.
final class PublishedPortFollower {
    static let periodNs: UInt64 = 2_000_000_000
    let wanted: Set<UInt16>
    let reader: DockerPortReader
    /// The named ports' mappings now (those at start first).
    private(set) var published: [PublishedPort]
    var lastRead: UInt64 = 0

    /// nil without --port or without a Docker data root.
    init?(ports: [UInt16], published: [PublishedPort], sources: WorkloadSources?) {
        guard !ports.isEmpty, let roots = sources?.dockerDataRoots, !roots.isEmpty else { return nil }
        wanted = Set(ports)
        reader = DockerPortReader(roots: roots)
        self.published = published
    }

    /// The mappings that appeared since the last read, when `period` has
    /// passed since it and the named ports' mappings changed; nil otherwise.
    func refresh(now: UInt64) -> [PublishedPort]? {
        guard now &- lastRead >= Self.periodNs else { return nil }
        lastRead = now
        let current = PublishedPort.publishing(wanted, in: reader.read())
        guard Set(current) != Set(published) else { return nil }
        let before = Set(published)
        published = current
        return current.filter { !before.contains($0) }
    }
}
