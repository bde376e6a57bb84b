import CSynsightShim
import Glibc
import SynsightModel

/// The TCP ports Podman containers publish, running or not, from each
/// store's libpod state database (PodmanPortBindings): Podman 5's SQLite
/// `db.sql` where it exists (through libsqlite3, loaded when needed), else
/// Podman 4's BoltDB `libpod/bolt_state.db` with the store's containers.json.
/// Read again only when one of those files changed (a stat each otherwise).
///
/// Not Sendable: one owner (the pipeline thread: WorkloadResolver's, which
/// ProcfsResolver's published-port lookup uses too).
public final class PodmanPortReader {
    let roots: [String]
    /// Per store: the files' identities, and what they gave.
    var cache: [String: (files: [DockerPortReader.FileIdentity], store: PodmanPortBindings.Contents)] = [:]
    /// libpod's database is small (kilobytes per container); past this it is not read.
    static let maxDatabaseBytes = 64 << 20
    /// A writer holding SQLite's lock is waited for this long, no longer (the pipeline thread reads).
    static let sqliteBusyMs: Int32 = 200
    static let sqliteQuery = "SELECT ContainerConfig.JSON, ContainerState.JSON FROM ContainerConfig "
        + "LEFT JOIN ContainerState ON ContainerConfig.ID = ContainerState.ID"

    /// Rootless stores: store -> its user (WorkloadSources.rootlessOwners).
    let owners: [String: RootlessUser]

    /// `roots`: Podman's graphroots (WorkloadSources.podmanStorageRoots).
    public init(roots: [String], owners: [String: RootlessUser] = [:]) {
        self.roots = roots
        self.owners = owners
    }

    public func bindings() -> [DockerPortBinding] {
        roots.flatMap { root in
            store(root).bindings.map { var b = $0; b.rootless = owners[root]; return b }
        }
    }

    /// The Compose service of container `id`, if its labels name one.
    public func service(id: String) -> ComposeService? {
        for root in roots { if let s = store(root).services[id] { return s } }
        return nil
    }

    /// What one store's database gives: its published ports, and the
    /// Compose services of its containers.
    func store(_ root: String) -> PodmanPortBindings.Contents {
        let sqlite = root + "/db.sql"
        if let db = DockerPortReader.identity(sqlite) {
            // The write-ahead log changes while the database file does not.
            let files = [db] + [DockerPortReader.identity(sqlite + "-wal")].compactMap { $0 }
            return cached(root, files) {
                Self.sqliteRows(sqlite).map(PodmanPortBindings.read(rows:))
            }
        }
        let database = root + "/libpod/bolt_state.db"
        guard let stores = ProcFS.list(root).first(where: { $0.hasSuffix("-containers") }).map({ root + "/" + $0 + "/containers.json" }),
              let db = DockerPortReader.identity(database), let names = DockerPortReader.identity(stores) else { return .init() }
        return cached(root, [db, names]) {
            guard let bytes = ProcFS.readBytes(database, limit: Self.maxDatabaseBytes),
                  let json = ProcFS.readBytes(stores, limit: Self.maxDatabaseBytes) else { return nil }
            return PodmanPortBindings.read(state: bytes, live: WorkloadNames.podmanNames(containersJSON: json))
        }
    }

    /// What `read` gives for these versions of the store's files, read again when one changed.
    func cached(_ root: String, _ files: [DockerPortReader.FileIdentity],
                _ read: () -> PodmanPortBindings.Contents?) -> PodmanPortBindings.Contents {
        if let hit = cache[root], hit.files == files { return hit.store }
        guard let found = read() else { return .init() }
        cache[root] = (files, found)
        return found
    }

    /// Each container's configuration and state JSON; nil when the database
    /// cannot be read (no libsqlite3, locked past the wait, another schema).
    static func sqliteRows(_ path: String) -> [(config: [UInt8], state: [UInt8]?)]? {
        var out: UnsafeMutablePointer<CChar>?
        var len = 0
        guard syn_sqlite_query(path, sqliteQuery, 2, sqliteBusyMs, &out, &len) == 0 else { return nil }
        defer { free(out) }
        guard let out else { return [] }
        let cells = UnsafeRawBufferPointer(start: out, count: len)
        var rows: [(config: [UInt8], state: [UInt8]?)] = []
        var at = 0
        func cell() -> [UInt8]?? {
            guard at + 4 <= cells.count else { return nil }
            let n = cells.loadUnaligned(fromByteOffset: at, as: UInt32.self)
            at += 4
            if n == UInt32.max { return .some(nil) }
            guard at + Int(n) <= cells.count else { return nil }
            defer { at += Int(n) }
            return .some(Array(cells[at..<(at + Int(n))]))
        }
        while at < cells.count {
            guard let config = cell(), let state = cell() else { break }
            if let config { rows.append((config, state)) }
        }
        return rows
    }
}
