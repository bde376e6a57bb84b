import SynsightBase
/// Ties the two halves of a refusal behind a userland proxy (docker-proxy):
/// the proxy's own connection refused inside the container (a record whose
/// client is the proxy, with `evidence.proxy`), and the real client's
/// connection to the published address, which the proxy accepted and then
/// reset (`connect_failure`/`reset_by_peer`). The second names the first.
/// Bounded; fed every delivered record in order.
public struct ProxyJoin {
    struct Behind {
        var proxy: PublishedPort
        var tool: String
        package var ts: Int64
        package var record: Record
    }

    var recent: [String: Behind] = [:]
    /// How long after the proxy's refusal the client's reset is joined.
    static let windowNs: Int64 = 2_000_000_000
    package static let maxEntries = 1024

    public init() {}

    public mutating func annotate(_ r: inout Record) {
        if let p = r.evidence(.proxy), let published = p["published"]?.stringValue,
           let target = p["target"]?.stringValue {
            if recent.count >= Self.maxEntries { recent = recent.filter { r.ts - $0.value.ts < Self.windowNs } }
            if recent.count >= Self.maxEntries { recent.removeAll() }
            recent[published] = Behind(proxy: PublishedPort(published: published, target: target),
                                       tool: p["tool"]?.stringValue ?? "proxy", ts: r.ts, record: r)
            return
        }
        guard r.kind == .connectFailure, r.reason == .resetByPeer, let server = r.remote?.description,
              let behind = recent.values.first(where: { $0.proxy.isPublished(at: server) }),
              r.ts >= behind.ts, r.ts - behind.ts < Self.windowNs else { return }
        let inner = behind.record
        var f: [(String, JSONValue)] = [("tool", .string(behind.tool)), ("published", .string(behind.proxy.published)),
                                        ("target", .string(behind.proxy.target))]
        if let reason = inner.reason { f.append(("reason", .string(reason.rawValue))) }
        if let cause = inner.cause { f.append(("cause", .string(cause.rawValue))) }
        if let ns = inner.netns { f.append(("netns", .int(Int64(ns)))) }
        if let name = inner.netnsName { f.append(("netns_name", .string(name))) }
        if let p = inner.process { f.append(("process", p.json)) }
        r.addEvidence(.behindProxy, .object(f))
        let why = [inner.reason?.rawValue, inner.cause?.rawValue].compactMap { $0 }.joined(separator: "/")
        r.hint = "\(behind.tool) accepted the connection on the published port \(behind.proxy.published) and reset it, "
            + "because its own connection to \(behind.proxy.target)\(inner.netnsName.map { " (\($0))" } ?? "") was refused (\(why))"
            + (inner.hint.map { ": " + $0 } ?? "")
    }
}
