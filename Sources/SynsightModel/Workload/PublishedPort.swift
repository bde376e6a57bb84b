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
        func join(_ ip: String, _ port: String) -> String { ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)" }
        self.init(published: join(opts["host-ip"] ?? "0.0.0.0", hostPort), target: join(cip, cport))
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
