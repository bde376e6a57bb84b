import SynsightModel

/// The TCP ports Podman containers publish, running or not, from each
/// store's libpod state database and its containers.json
/// (PodmanPortBindings). Parsed again only when either file changed (one
/// stat each per reading otherwise).
///
/// Not Sendable: one owner (the pipeline thread, through ProcfsResolver).
public final class PodmanPortReader {
    let roots: [String]
    /// Per store: the two files' identities, and what they gave.
    var cache: [String: (files: [DockerPortReader.FileIdentity], bindings: [DockerPortBinding])] = [:]
    /// libpod's database is small (kilobytes per container); past this it is not read.
    static let maxDatabaseBytes = 64 << 20

    /// `roots`: Podman's graphroots (WorkloadSources.podmanStorageRoots).
    public init(roots: [String]) {
        self.roots = roots
    }

    public func bindings() -> [DockerPortBinding] {
        roots.flatMap { root -> [DockerPortBinding] in
            let database = root + "/libpod/bolt_state.db"
            guard let stores = ProcFS.list(root).first(where: { $0.hasSuffix("-containers") }).map({ root + "/" + $0 + "/containers.json" }),
                  let db = DockerPortReader.identity(database), let names = DockerPortReader.identity(stores) else { return [] }
            if let hit = cache[root], hit.files == [db, names] { return hit.bindings }
            guard let bytes = ProcFS.readBytes(database, limit: Self.maxDatabaseBytes),
                  let json = ProcFS.readBytes(stores, limit: Self.maxDatabaseBytes) else { return [] }
            let found = PodmanPortBindings.parse(state: bytes, live: WorkloadNames.podmanNames(containersJSON: json))
            cache[root] = ([db, names], found)
            return found
        }
    }
}
