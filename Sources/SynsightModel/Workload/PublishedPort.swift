import SynsightBase
/// A port published by a userland proxy (Docker's `docker-proxy`): the
/// address clients use on the host, and where the proxy connects to.
public struct PublishedPort: Sendable, Hashable {
    public var published: String
    public var target: String

    public init(published: String, target: String) {
        self.published = published
        self.target = target
    }

    /// From docker-proxy's command line (`-proto tcp -host-ip 127.0.0.1
    /// -host-port 18300 -container-ip 172.17.0.2 -container-port 80`).
    public init?(dockerProxyCommandLine args: [String]) {
        guard let first = args.first, first == "docker-proxy" || first.hasSuffix("/docker-proxy") else { return nil }
        var opts: [String: String] = [:]
        var i = 1
        while i + 1 < args.count {
            if args[i].hasPrefix("-") { opts[String(args[i].drop { $0 == "-" })] = args[i + 1]; i += 2 } else { i += 1 }
        }
        guard let hostPort = opts["host-port"], let cip = opts["container-ip"], let cport = opts["container-port"] else { return nil }
        self.init(published: Self.join(opts["host-ip"] ?? "0.0.0.0", hostPort), target: Self.join(cip, cport))
    }

    /// `addr:port`, as `Endpoint.description` prints it (IPv6 in brackets).
    public static func join(_ ip: String, _ port: String) -> String { ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    /// The published (host) port: what clients connect to.
    public var hostPort: UInt16? { Self.port(of: published) }
    /// The container's port the published one leads to.
    public var targetPort: UInt16? { Self.port(of: target) }

    /// The distinct mappings among `all` whose published (host) port is one
    /// of `ports`: what `--port` follows into containers.
    public static func publishing(_ ports: Set<UInt16>, in all: [PublishedPort]) -> [PublishedPort] {
        var seen = Set<PublishedPort>()
        return all.filter { $0.hostPort.map(ports.contains) == true && seen.insert($0).inserted }
    }

    /// The port of an `addr:port` string (IPv6 in brackets).
    public static func port(of endpoint: String) -> UInt16? {
        endpoint.lastIndex(of: ":").flatMap { UInt16(endpoint[endpoint.index(after: $0)...]) }
    }

    /// The TCP ports a running Docker container publishes, from its
    /// `<data-root>/containers/<id>/config.v2.json`: each of
    /// `NetworkSettings.Ports` ("80/tcp": [{"HostIp", "HostPort"}]) to each
    /// of the container's addresses (`NetworkSettings.Networks`). Reached by
    /// Docker's DNAT rules and by docker-proxy alike. None for a stopped
    /// container, or one on the host's network (it publishes nothing).
    public static func docker(configJSON bytes: [UInt8]) -> [PublishedPort] {
        guard let root = JSONReader.parse(bytes), root["State"]?["Running"] == .bool(true),
              let settings = root["NetworkSettings"], case .object(let ports)? = settings["Ports"],
              case .object(let networks)? = settings["Networks"] else { return [] }
        let addresses = networks.flatMap { _, n in
            ["IPAddress", "GlobalIPv6Address"].compactMap { n[$0]?.stringValue }.filter { !$0.isEmpty }
        }
        var out: [PublishedPort] = []
        for (key, bindings) in ports {
            let parts = key.split(separator: "/")
            guard parts.count == 2, parts[1] == "tcp", let containerPort = UInt16(parts[0]),
                  case .array(let list) = bindings else { continue }
            for b in list {
                guard let hostPort = b["HostPort"]?.stringValue.flatMap(UInt16.init) else { continue }
                let hostIP = b["HostIp"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
                for a in addresses {
                    out.append(PublishedPort(published: join(hostIP, String(hostPort)), target: join(a, String(containerPort))))
                }
            }
        }
        return out
    }
}

extension Record {
    /// The record's client is a userland proxy for a published port: say
    /// which one, so the refusal inside the container is tied to the
    /// address the real client used.
    public mutating func addProxy(_ p: PublishedPort, tool: String) {
        evidence.append((EvidenceKey.proxy.rawValue, .object([("tool", .string(tool)), ("published", .string(p.published)),
                                           ("target", .string(p.target))])))
        if let h = hint {
            hint = h + " (the client is \(tool), forwarding the published port \(p.published) to \(p.target)"
                + (netnsName.map { " in \($0)" } ?? "") + ")"
        }
    }
}

extension PublishedPort {
    /// Is `endpoint` (as a record prints it) this published address? A
    /// wildcard host address (0.0.0.0, ::) publishes the port on every address.
    public func isPublished(at endpoint: String) -> Bool {
        if endpoint == published { return true }
        guard let colon = published.lastIndex(of: ":") else { return false }
        let host = published[..<colon], port = published[published.index(after: colon)...]
        return (host == "0.0.0.0" || host == "[::]") && endpoint.hasSuffix(":" + port)
    }
}
