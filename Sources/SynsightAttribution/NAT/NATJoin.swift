import SynsightBase
import SynsightModel
import SynsightNftables
/// Joining a refusal and its local client across a destination NAT (Docker
/// `-p`, kube-proxy and nftables Services, any DNAT or REDIRECT).
///
/// DNAT rewrites where the SYN goes, not where it comes from: the refusal
/// (seen where the translated SYN arrived, e.g. inside a container) and the
/// client's failed connect() (seen with the address the client used) share
/// the client's endpoint, not the server's. Within one join window, a refusal
/// and a connect() error with the same client endpoint and different server
/// endpoints are one connection, and the client's server endpoint is the
/// original destination.
///
/// Loopback clients are left out: 127.0.0.1 source ports repeat across
/// network namespaces, and loopback is not destination-NATed (docker-proxy
/// takes those connections instead, see `DockerProxy`).
struct NATJoinState {
    /// Refusals waiting for their client, by client endpoint.
    var pendingByClient: [Endpoint: JoinKey] = [:]
    /// Refused connect()s waiting for a refusal, by client endpoint.
    var earlyByClient: [Endpoint: JoinKey] = [:]
    /// Refusals waiting for their client, by the client's port alone: a
    /// masqueraded client keeps its port, not its address (`natMasqueradedRefusal`).
    var pendingByClientPort: [UInt16: JoinKey] = [:]
    /// The latest refusals noted, a ring (`recentNext` the oldest slot): a
    /// client masqueraded with `--random-fully` keeps neither address nor
    /// port (`onlyMasqueradedCandidate`). A ring, not an array shifted at
    /// each insert: every refusal of a storm passes here.
    var recentPending = [JoinKey?](repeating: nil, count: recentCount)
    var recentNext = 0
    static let recentCount = 64
    /// Entries are checked against the maps they index when used; past this
    /// many (stale ones accumulate) an index is cleared.
    package static let maxEntries = 16_384

    static func joinable(_ client: Endpoint) -> Bool { !client.addr.isLoopback && !client.addr.isUnspecified }

    mutating func notePending(_ key: JoinKey) {
        guard Self.joinable(key.client) else { return }
        if pendingByClient.count >= Self.maxEntries { pendingByClient.removeAll() }
        pendingByClient[key.client] = key
        if pendingByClientPort.count >= Self.maxEntries { pendingByClientPort.removeAll() }
        pendingByClientPort[key.client.port] = key
        recentPending[recentNext] = key
        recentNext = (recentNext + 1) % Self.recentCount
    }

    /// How a masqueraded client was joined to its refusal (evidence `nat_match`).
    enum MasqueradeMatch: String {
        /// Masquerading kept the client's port.
        case sourcePort = "source_port"
        /// The port changed (`--random-fully`): the one refusal that could be this client's.
        case onlyCandidate = "only_candidate"
    }

    mutating func noteEarly(_ key: JoinKey) {
        guard Self.joinable(key.client) else { return }
        if earlyByClient.count >= Self.maxEntries { earlyByClient.removeAll() }
        earlyByClient[key.client] = key
    }
}

extension AttributionEngine {
    /// A refused connect() waiting under a translated destination for this refusal.
    mutating func natEarlyClient(for r: NoSocketReset, key: JoinKey) -> ConnectError? {
        guard let other = natJoin.earlyByClient.removeValue(forKey: key.client), other.server != key.server,
              let ce = earlyClients.removeValue(forKey: other), ce.ts &+ joinWindowNs > r.ts else { return nil }
        return ce
    }

    /// A refusal waiting for its client, seen under the translated destination.
    mutating func natPendingRefusal(for ce: ConnectError, key: JoinKey) -> Pending? {
        guard let other = natJoin.pendingByClient.removeValue(forKey: key.client), other.server != key.server else {
            return nil
        }
        return pending.removeValue(forKey: other)
    }

    /// A refusal waiting under the connection as NAT rewrote it on this host,
    /// destination and source both: a host-local client of a published port
    /// (Docker with `--userland-proxy=false`, Podman's CNI or netavark port
    /// mappings, a CNI hostPort reached from the node) is
    /// translated (DNAT) into another namespace and masqueraded (its source
    /// becomes the host's address on that bridge), so neither endpoint
    /// matches. Masquerading keeps the source port when it can (not with
    /// `--random-fully`, as kube-proxy masquerades: `onlyMasqueradedCandidate`), and the
    /// source it gives is an address of the client's own namespace, so: the
    /// refusal waiting in another namespace for a client with this client's
    /// port, another address that is one of the client's namespace's, and
    /// another server. (The conntrack entry that would say so for certain is
    /// gone by then: the RST kills it before the client sees it.)
    mutating func natMasqueradedRefusal(for ce: ConnectError) -> (Pending, seenFrom: Endpoint, NATJoinState.MasqueradeMatch)? {
        guard let key = natJoin.pendingByClientPort[ce.local.port], key.client.addr != ce.local.addr,
              key.server != ce.remote, let p = pending[key], p.record.netns != ce.netns,
              resolver?.isLocalAddress(key.client.addr, netns: ce.netns) != false else {
            return onlyMasqueradedCandidate(for: ce).map { ($0.0, $0.seenFrom, .onlyCandidate) }
        }
        natJoin.pendingByClientPort.removeValue(forKey: ce.local.port)
        pending.removeValue(forKey: key)
        return (p, key.client, .sourcePort)
    }

    /// Masquerading with `--random-fully` (kube-proxy's, where iptables
    /// supports it) gives the client another port too: no endpoint is
    /// shared. The refusal is then joined only when it is the one candidate
    /// among the latest: in another namespace, within one join window before
    /// the error, from an address of the client's namespace (as far as the
    /// resolver can tell: it reads synsight's own namespace's addresses
    /// only) that is not the client's own, to another server. Two candidates (two clients refused at once, or a client of
    /// the container's address straight from this namespace) join nothing.
    mutating func onlyMasqueradedCandidate(for ce: ConnectError) -> (Pending, seenFrom: Endpoint)? {
        var found: JoinKey?
        for case let key? in natJoin.recentPending where key.client.addr != ce.local.addr && key.server != ce.remote {
            guard let p = pending[key], p.record.netns != ce.netns, p.deadline > ce.ts, p.deadline &- joinWindowNs <= ce.ts,
                  resolver?.isLocalAddress(key.client.addr, netns: ce.netns) != false else { continue }
            if found != nil, found != key { return nil }
            found = key
        }
        guard let key = found, let p = pending.removeValue(forKey: key) else { return nil }
        for i in natJoin.recentPending.indices where natJoin.recentPending[i] == key { natJoin.recentPending[i] = nil }
        return (p, key.client)
    }

    /// The client's view joined into a refusal it never saw directly: where
    /// it connected to, and that the destination was translated;
    /// `translatedSource`: its own address after masquerading, when that was too.
    func applyNAT(_ record: inout Record, clientDestination: Endpoint, translatedSource: Endpoint? = nil,
                  match: NATJoinState.MasqueradeMatch? = nil) {
        guard let local = record.local, clientDestination != local, record.originalDestination == nil else { return }
        record.originalDestination = clientDestination
        record.evidence.append((EvidenceKey.nat.rawValue, .string("dnat")))
        if let translatedSource { record.evidence.append((EvidenceKey.translatedSource.rawValue, Record.endpoint(translatedSource))) }
        if let match { record.evidence.append((EvidenceKey.natMatch.rawValue, .string(match.rawValue))) }
        if let hint = record.hint {
            let source = translatedSource.map { ", its source masqueraded to \($0)" } ?? ""
            record.hint = "the client connected to \(clientDestination), translated (DNAT) to \(local)\(source): " + hint
        }
    }
}
