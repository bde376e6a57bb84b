import SynsightBase

/// A TCP port a Docker container publishes on the host, from the
/// container's `config.v2.json` (State, Name) and `hostconfig.json`
/// (PortBindings, which outlive the run; NetworkSettings.Ports does not).
/// Not running: its DNAT rules and docker-proxy went with it, so its port is
/// refused by the host itself (`no_listener/publisher_stopped`). Running: a
/// refusal of its port means the SYN went to an address it does not publish
/// on (`bound_to_other_address`), or Docker's forwarding of the port is gone
/// (`publisher_not_forwarded`).
public struct DockerPortBinding: Sendable, Hashable {
    /// The programs that listen on a Docker container's published port for
    /// it: docker-proxy (the userland proxy), dockerd (its reservation
    /// without the proxy), rootlesskit (rootless Docker's builtin port
    /// driver, in the host's namespace), slirp4netns (its slirp4netns port
    /// driver). Podman's: PodmanPortBindings.portHolders.
    public static let portHolders: Set<String> = ["docker-proxy", "dockerd", "rootlesskit", "slirp4netns"]

    /// Whether a listener of this program may hold or forward a published
    /// port of this binding's runtime (slirp4netns does for both).
    public func heldBy(_ comm: String) -> Bool {
        (runtime == .podman ? PodmanPortBindings.portHolders : Self.portHolders).contains(comm)
    }

    /// Docker, or Podman (PodmanPortBindings: its port reservations are held by conmon).
    public var runtime: ContainerRuntime = .docker
    public var id: String
    /// Docker's name, without the leading "/".
    public var name: String?
    /// The Compose or Swarm service it was created for (its labels).
    public var service: ComposeService?
    /// A rootless container's user (rootless Podman's store, or rootless
    /// Docker's data root, is in that user's home): its commands are that user's.
    public var rootless: RootlessUser?
    /// "0.0.0.0", "127.0.0.1", "::": the host address of the binding.
    public var hostIP: String
    public var hostPort: UInt16
    public var containerPort: UInt16
    public var exitCode: Int64?
    /// RFC 3339 (Docker's FinishedAt); nil if it never ran.
    public var finishedAt: String?
    public var oomKilled: Bool
    /// Docker is restarting it (a restart policy between attempts).
    public var restarting: Bool
    /// The container is running (State.Running).
    public var running: Bool

    public init(id: String, name: String?, service: ComposeService? = nil, hostIP: String, hostPort: UInt16, containerPort: UInt16, exitCode: Int64? = nil,
                finishedAt: String? = nil, oomKilled: Bool = false, restarting: Bool = false, running: Bool = false) {
        self.running = running
        self.id = id
        self.name = name
        self.service = service
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.exitCode = exitCode
        self.finishedAt = finishedAt
        self.oomKilled = oomKilled
        self.restarting = restarting
    }

    /// The TCP port bindings of a container, running or not.
    public static func docker(id: String, configJSON: [UInt8], hostConfigJSON: [UInt8]) -> [DockerPortBinding] {
        guard let config = JSONReader.parse(configJSON), let state = config["State"],
              let host = JSONReader.parse(hostConfigJSON), case .object(let bindings)? = host["PortBindings"] else { return [] }
        let name = WorkloadNames.dockerName(config)
        let service = ComposeService(dockerConfig: config)
        let finished = state["FinishedAt"]?.stringValue.flatMap { $0.hasPrefix("0001-") ? nil : $0 }
        var out: [DockerPortBinding] = []
        for (key, list) in bindings {
            let parts = key.split(separator: "/")
            guard parts.count == 2, parts[1] == "tcp", let containerPort = UInt16(parts[0]), case .array(let bs) = list else { continue }
            for b in bs {
                guard let hostPort = b["HostPort"]?.stringValue.flatMap(UInt16.init) else { continue }
                out.append(DockerPortBinding(
                    id: id, name: name, service: service, hostIP: b["HostIp"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0",
                    hostPort: hostPort, containerPort: containerPort, exitCode: state["ExitCode"]?.intValue,
                    finishedAt: finished, oomKilled: state["OOMKilled"] == .bool(true), restarting: state["Restarting"] == .bool(true),
                    running: state["Running"] == .bool(true)))
            }
        }
        return out.sorted { ($0.hostPort, $0.hostIP) < ($1.hostPort, $1.hostIP) }
    }

    /// "0.0.0.0:8080", "[::]:8080": where it publishes the port.
    public var published: String { PublishedPort.join(hostIP, String(hostPort)) }

    /// Whether a SYN to `addr` on the host is this binding's: its host
    /// address, or any address of the family for 0.0.0.0 / :: (Docker's
    /// "0.0.0.0" binding serves IPv6 too when the daemon has IPv6 on; an
    /// IPv6 SYN is not claimed for it here).
    public func covers(_ addr: IPAddress) -> Bool {
        switch hostIP {
        case "0.0.0.0": return addr.isV4Mapped
        case "::": return true
        default: return "\(addr)" == hostIP
        }
    }

    /// "web", else the short id.
    public var label: String { name ?? String(id.prefix(12)) }

    /// "container web", "Podman container web", "user alice's rootless
    /// Docker container web", "container shop-web-1 (compose service
    /// shop/web)": how a hint names it.
    public var phrase: String {
        let runtimeName = runtime == .podman ? "Podman " : "Docker "
        let owner = rootless.map { "user \($0.name)'s rootless " + runtimeName } ?? (runtime == .podman ? runtimeName : "")
        return owner + "container \(label)" + (service.map { " (\($0.phrase))" } ?? "")
    }

    /// "exited with code 137 at 2026-12-06T12:00:00Z (OOM-killed)", "never started".
    public var how: String {
        if restarting { return "restarting (its restart policy between attempts)" }
        // Podman's last stop comes from its database, which may not say.
        guard let finishedAt else { return runtime == .podman ? "not running" : "created but never started" }
        return "exited" + (exitCode.map { " with code \($0)" } ?? "") + " at \(finishedAt)" + (oomKilled ? " (OOM-killed)" : "")
    }

    package var json: JSONValue {
        var o: [(String, JSONValue)] = [("runtime", .string(runtime.rawValue)), ("id", .string(id))]
        if let name { o.append(("name", .string(name))) }
        if let service { o.append(("service", service.json)) }
        if let rootless { o.append(("rootless_user", .string(rootless.name))) }
        o.append(("published", .string(published)))
        o.append(("container_port", .int(Int64(containerPort))))
        if let exitCode { o.append(("exit_code", .int(exitCode))) }
        if let finishedAt { o.append(("finished_at", .string(finishedAt))) }
        if oomKilled { o.append(("oom_killed", .bool(true))) }
        if restarting { o.append(("restarting", .bool(true))) }
        if running { o.append(("running", .bool(true))) }
        return .object(o)
    }
}
