import SynsightBase

/// The TCP ports Podman containers publish (`podman run -p`), running or
/// not, from libpod's state database: `<graphroot>/libpod/bolt_state.db`
/// (BoltDB: Podman 4's default) or `<graphroot>/db.sql` (SQLite: Podman 5's).
/// Pure: bytes in, bindings out.
///
/// BoltDB is read by scanning, not as a database: it keeps each value contiguous
/// (in its leaf page, or in consecutive overflow pages), and libpod stores a
/// container's configuration and its state as JSON values, so both are
/// found as the JSON objects that open with `{"spec":` and `{"state":`.
/// BoltDB's copy-on-write leaves older copies in free pages: a
/// configuration never changes after creation (its copies agree), of a
/// state's copies the one with the latest `finishedTime` is the container's
/// last stop, and only containers still in the store's `containers.json`
/// (`live`) count, so one removed since is never named. Podman 5's SQLite
/// database splits large values across pages: it is read through SQLite
/// itself (`parse(rows:)`, PodmanPortReader).
public enum PodmanPortBindings {
    /// The processes that hold a rootful Podman container's published ports
    /// (listening sockets that never accept, so that nothing else takes the
    /// port): podman binds them and hands them to the container's conmon.
    /// Rootless Podman forwards them from the host's namespace into the
    /// container's: `rootlessport` (slirp4netns networks, Podman 4's
    /// default), `pasta` (Podman 5's default: pasta, or `pasta.avx2` as
    /// passt re-executes itself where AVX2 is), or slirp4netns itself
    /// (`port_handler=slirp4netns`).
    public static let portHolders: Set<String> = ["podman", "conmon", "rootlessport", "pasta", "pasta.avx2", "slirp4netns"]

    static let configOpening = Array(#"{"spec":"#.utf8)
    static let stateOpening = Array(#"{"state":"#.utf8)
    /// Port ranges (`-p 8000-8100:8000-8100`) are expanded up to this many ports.
    static let maxRange = 1024

    /// What a store's database says: its containers' TCP port bindings, and
    /// their Compose services (podman-compose's labels) by id, from one parse.
    public struct Contents: Sendable {
        public var bindings: [DockerPortBinding] = []
        public var services: [String: ComposeService] = [:]
        public init() {}
    }

    /// `live`: container id -> name, from the store's containers.json (WorkloadNames.podmanNames).
    public static func parse(state bytes: [UInt8], live: [String: String]) -> [DockerPortBinding] {
        read(state: bytes, live: live).bindings
    }

    /// Podman 4's BoltDB bytes: its live containers' configurations.
    public static func read(state bytes: [UInt8], live: [String: String]) -> Contents {
        var configs: [String: JSONValue] = [:]
        for object in BoltScan.objects(in: bytes, opening: configOpening) {
            guard let c = JSONReader.parse(object), let id = c["id"]?.stringValue, live[id] != nil else { continue }
            configs[id] = c
        }
        return contents(configs, stops: lastStops(bytes, ids: Set(configs.keys)), names: live)
    }

    /// Podman 5's SQLite database (`<graphroot>/db.sql`), read as rows of
    /// its ContainerConfig and ContainerState JSON columns: one current copy
    /// each, no store to check against.
    public static func parse(rows: [(config: [UInt8], state: [UInt8]?)]) -> [DockerPortBinding] {
        read(rows: rows).bindings
    }

    public static func read(rows: [(config: [UInt8], state: [UInt8]?)]) -> Contents {
        var configs: [String: JSONValue] = [:], stops: [String: Stop] = [:]
        for row in rows {
            guard let c = JSONReader.parse(row.config), let id = c["id"]?.stringValue else { continue }
            configs[id] = c
            if let s = row.state.flatMap({ JSONReader.parse($0) }), let stop = stop(s) { stops[id] = stop }
        }
        return contents(configs, stops: stops, names: [:])
    }

    static func contents(_ configs: [String: JSONValue], stops: [String: Stop], names: [String: String]) -> Contents {
        var c = Contents()
        c.services = configs.compactMapValues { ComposeService(podmanConfig: $0) }
        c.bindings = bindings(configs, stops: stops, names: names, services: c.services)
        return c
    }

    static func bindings(_ configs: [String: JSONValue], stops: [String: Stop], names: [String: String],
                         services: [String: ComposeService]) -> [DockerPortBinding] {
        var out: [DockerPortBinding] = []
        for (id, config) in configs {
            let name = config["name"]?.stringValue ?? names[id]
            for m in mappings(config) {
                var b = DockerPortBinding(id: id, name: name, service: services[id], hostIP: m.hostIP, hostPort: m.hostPort, containerPort: m.containerPort,
                                          exitCode: stops[id]?.exitCode, finishedAt: stops[id]?.finishedAt,
                                          oomKilled: stops[id]?.oomKilled ?? false)
                b.runtime = .podman
                out.append(b)
            }
        }
        return out.sorted { ($0.hostPort, $0.hostIP, $0.id) < ($1.hostPort, $1.hostIP, $1.id) }
    }

    struct Mapping: Hashable {
        var hostIP: String
        var hostPort: UInt16
        var containerPort: UInt16
    }

    /// Podman 4's `newPortMappings` (host_ip, host_port, container_port,
    /// range, protocol), or Podman 3's `portMappings` (CNI's hostIP, hostPort, containerPort).
    static func mappings(_ config: JSONValue) -> [Mapping] {
        var out: [Mapping] = []
        if case .array(let list)? = config["newPortMappings"] {
            for m in list {
                guard (m["protocol"]?.stringValue ?? "tcp").split(separator: ",").contains("tcp"),
                      let host = m["host_port"]?.intValue, let container = m["container_port"]?.intValue else { continue }
                let ip = m["host_ip"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
                let range = max(1, min(Int(m["range"]?.intValue ?? 1), maxRange))
                for i in 0..<range {
                    guard let h = UInt16(exactly: host + Int64(i)), let c = UInt16(exactly: container + Int64(i)) else { break }
                    out.append(Mapping(hostIP: ip, hostPort: h, containerPort: c))
                }
            }
        } else if case .array(let list)? = config["portMappings"] {
            for m in list {
                guard (m["protocol"]?.stringValue ?? "tcp") == "tcp", let host = m["hostPort"]?.intValue.flatMap({ UInt16(exactly: $0) }),
                      let container = m["containerPort"]?.intValue.flatMap({ UInt16(exactly: $0) }) else { continue }
                out.append(Mapping(hostIP: m["hostIP"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0",
                                   hostPort: host, containerPort: container))
            }
        }
        return out
    }

    struct Stop {
        var finishedAt: String
        var exitCode: Int64?
        var oomKilled: Bool
    }

    /// Each container's last stop: of its state copies, the latest
    /// `finishedTime` (its id from `configPath`, ".../<id>/userdata/config.json").
    static func lastStops(_ bytes: [UInt8], ids: Set<String>) -> [String: Stop] {
        var out: [String: Stop] = [:]
        for object in BoltScan.objects(in: bytes, opening: stateOpening) {
            guard let s = JSONReader.parse(object), let path = s["configPath"]?.stringValue, let stop = stop(s) else { continue }
            let parts = path.split(separator: "/")
            guard let u = parts.lastIndex(of: "userdata"), u > 0, ids.contains(String(parts[u - 1])) else { continue }
            let id = String(parts[u - 1])
            // RFC 3339 with the same zone: later sorts later.
            if let known = out[id], known.finishedAt >= stop.finishedAt { continue }
            out[id] = stop
        }
        return out
    }

    /// A state's stop: nil when it never ran (finishedTime is Go's zero time).
    static func stop(_ s: JSONValue) -> Stop? {
        guard let finished = s["finishedTime"]?.stringValue, !finished.hasPrefix("0001-") else { return nil }
        return Stop(finishedAt: finished, exitCode: s["exitCode"]?.intValue, oomKilled: s["oomKilled"] == .bool(true))
    }
}
