import SynsightBase
/// One line of the JSON Lines contract (schema v1, docs/schema/synsight-record-v1.schema.json). Field names
/// are fixed by the contract; renaming or retyping one bumps `v`.

public enum RecordKind: String, Sendable, Hashable, CaseIterable {
    case refusal, drop
    case bindFailure = "bind_failure"
    case connectFailure = "connect_failure"
    case overflow, denial, lost, summary
}

public enum Reason: String, Sendable, Hashable, CaseIterable {
    case noListener = "no_listener"
    case acceptQueueFull = "accept_queue_full"
    case synQueueFull = "syn_queue_full"
    case firewallReject = "firewall_reject"
    case firewallDrop = "firewall_drop"
    case lsmDenied = "lsm_denied"
    case addressInUse = "address_in_use"
    case privilegedPort = "privileged_port"
    case addressNotAvailable = "address_not_available"
    case fdExhausted = "fd_exhausted"
    case ephemeralPortsExhausted = "ephemeral_ports_exhausted"
    /// connect() failed at once: no route to the destination, or a route
    /// (or policy rule) of type unreachable, prohibit or blackhole.
    case noRoute = "no_route"
    case resetByPeer = "reset_by_peer"
    /// A handshake segment dropped by the kernel for any other reason (DropAttribution.swift).
    case packetDropped = "packet_dropped"
    /// A local connect() timed out (ETIMEDOUT), explained (TimeoutAttribution.swift).
    case connectTimeout = "connect_timeout"
    /// A listener dropped a SYN without a full queue because the kernel
    /// could not route its SYN-ACK back to the client (NoRouteBack.swift).
    case noRouteBack = "no_route_back"
    case unknown
}

/// Finer causes of `no_listener`.
public enum NoListenerCause: String, Sendable, Hashable, CaseIterable {
    case neverListened = "never_listened"
    case listenerClosed = "listener_closed"
    case listenerExited = "listener_exited"
    case boundToOtherAddress = "bound_to_other_address"
    case familyMismatch = "family_mismatch"
    case otherNetns = "other_netns"
    /// Nothing on this port, but the container or pod owning the namespace
    /// listens on other ports (the usual port-mapping mistake).
    case wrongPort = "wrong_port"
    /// The listener exited and a new process has started in its unit,
    /// container or pod, but does not listen yet.
    case restarting
    /// A listener on the address is bound to a device (SO_BINDTODEVICE), and
    /// the SYN came in on another one.
    case boundToOtherDevice = "bound_to_other_device"
    /// A listener on the address is in another VRF than the one the SYN came
    /// through: bound to a VRF (`ip vrf exec`), or in the default VRF with
    /// net.ipv4.tcp_l3mdev_accept=0 while the SYN came through a VRF.
    case otherVRF = "other_vrf"
    /// Nothing listens on the port in the host's namespace, and a Docker
    /// container that publishes it is not running (its DNAT rules and
    /// docker-proxy went with it).
    case publisherStopped = "publisher_stopped"
    /// Nothing listens on the host's port, and a running Docker container
    /// publishes it on the SYN's address: Docker's forwarding of it is gone
    /// (its DNAT rules flushed by a firewall reload or `iptables -F`, its
    /// docker-proxy killed).
    case publisherNotForwarded = "publisher_not_forwarded"
    /// Nothing listens anywhere in the namespace, and the container or pod
    /// living in it started moments ago (`NoListenerEvidence.startingWindowNs`):
    /// the client came before the service was ready.
    case starting
}

/// The process an event is attributed to (or the local client).
public struct ProcessRef: Sendable, Hashable {
    public var pid: UInt32
    public var comm: String
    public var exe: String?
    public var cgroup: String?
    /// Unit, container, pod (Workload/WorkloadIdentity.swift), captured while
    /// the process lived; its `cgroup` takes the place of `cgroup` above.
    public var workload: WorkloadIdentity?

    public init(pid: UInt32, comm: String, exe: String? = nil, cgroup: String? = nil,
                workload: WorkloadIdentity? = nil) {
        self.pid = pid
        self.comm = comm
        self.exe = exe
        self.cgroup = cgroup
        self.workload = workload
    }

    /// "nginx (pid 4410)", with its workload when known: "nginx (pid 4410, unit nginx.service)".
    public var label: String { "\(comm) (pid \(pid)" + (workload?.phrase.map { ", " + $0 } ?? "") + ")" }

    package var json: JSONValue {
        var fields: [(String, JSONValue)] = [("pid", .int(Int64(pid))), ("comm", .string(comm))]
        if let exe { fields.append(("exe", .string(exe))) }
        if let workload {
            fields += workload.jsonFields
        } else if let cgroup {
            fields.append(("cgroup", .string(cgroup)))
        }
        return .object(fields)
    }
}

/// A minimal ordered JSON value: evidence objects keep their field order so
/// output is stable and diffable.
///
/// Not `indirect`: arrays and objects already hold their elements in an
/// Array's heap buffer, and an indirect enum boxes *every* value (each int
/// and string a heap allocation): that was most of the cost of reading and
/// writing JSON Lines (docs/benchmarks.md).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    /// A JSON number that is not an integer in Int64's range (a fraction, an
    /// exponent, or a larger integer), kept as its text (valid JSON number
    /// syntax, checked by `JSONReader`): never mistaken for an integer, and
    /// written back unchanged.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public func hash(into h: inout Hasher) {
        switch self {
        case .null: h.combine(0)
        case .bool(let b): h.combine(b)
        case .int(let i): h.combine(i)
        case .number(let t): h.combine(t)
        case .string(let s): h.combine(s)
        case .array(let a): h.combine(a)
        case .object(let o): for (k, v) in o { h.combine(k); h.combine(v) }
        }
    }

    /// Field lookup in an object (first match), for tests and formatting.
    public subscript(key: String) -> JSONValue? {
        if case .object(let fields) = self { return fields.first { $0.0 == key }?.1 }
        return nil
    }

    public var intValue: Int64? { if case .int(let i) = self { return i } else { return nil } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
}

public struct Record: Sendable, Hashable {
    public static let schemaVersion = 1

    /// Nanoseconds since the Unix epoch (converted from the kernel timestamp).
    public var ts: Int64
    public var kind: RecordKind
    public var reason: Reason?
    /// One of the reason's `Cause` enums (RecordCause.swift), or a newer cause read from a file.
    public var cause: RecordCause?
    public var port: UInt16?
    public var family: AddressFamily?
    public var netns: UInt32?
    /// The namespace's `ip netns` name, or the container or pod living in it.
    public var netnsName: String?
    public var local: Endpoint?
    public var remote: Endpoint?
    /// Where the client connected to before a destination NAT sent the SYN
    /// to `local` (joined from the local client's side).
    public var originalDestination: Endpoint?
    public var process: ProcessRef?
    public var client: ProcessRef?
    public var evidence: [(String, JSONValue)]
    public var hint: String?
    public var count: UInt64?
    /// For `summary` records: the first and last folded event (epoch ns).
    public var firstTs: Int64?
    public var lastTs: Int64?
    /// The node the record comes from (hostname, machine-id, boot-id).
    public var node: NodeIdentity?

    public init(ts: Int64, kind: RecordKind, reason: Reason? = nil, cause: RecordCause? = nil,
                port: UInt16? = nil, family: AddressFamily? = nil, netns: UInt32? = nil,
                local: Endpoint? = nil, remote: Endpoint? = nil, process: ProcessRef? = nil,
                client: ProcessRef? = nil, evidence: [(String, JSONValue)] = [],
                hint: String? = nil, count: UInt64? = nil) {
        self.ts = ts
        self.kind = kind
        self.reason = reason
        self.cause = cause
        self.port = port
        self.family = family
        self.netns = netns
        self.local = local
        self.remote = remote
        self.process = process
        self.client = client
        self.evidence = evidence
        self.hint = hint
        self.count = count
    }

    public static func == (a: Record, b: Record) -> Bool {
        a.json == b.json
    }

    public func hash(into h: inout Hasher) { h.combine(json) }

    /// The record as an ordered JSON object, in contract field order.
    public var json: JSONValue {
        var f: [(String, JSONValue)] = [
            ("v", .int(Int64(Record.schemaVersion))),
            ("ts", .string(RFC3339.format(nanosecondsSinceEpoch: ts))),
            ("kind", .string(kind.rawValue)),
        ]
        if let reason { f.append(("reason", .string(reason.rawValue))) }
        if let cause { f.append(("cause", .string(cause.rawValue))) }
        if let port { f.append(("port", .int(Int64(port)))) }
        if let family { f.append(("family", .string(family.rawValue))) }
        if let netns { f.append(("netns", .int(Int64(netns)))) }
        if let netnsName { f.append(("netns_name", .string(netnsName))) }
        if let local { f.append(("local", Record.endpoint(local))) }
        if let remote { f.append(("remote", Record.endpoint(remote))) }
        if let originalDestination { f.append(("original_destination", Record.endpoint(originalDestination))) }
        if let process { f.append(("process", process.json)) }
        if let client { f.append(("client", client.json)) }
        if let count { f.append(("count", .int(Int64(clamping: count)))) }
        if let firstTs { f.append(("first_ts", .string(RFC3339.format(nanosecondsSinceEpoch: firstTs)))) }
        if let lastTs { f.append(("last_ts", .string(RFC3339.format(nanosecondsSinceEpoch: lastTs)))) }
        f.append(("evidence", .object(evidence)))
        if let hint { f.append(("hint", .string(hint))) }
        if let node, !node.isEmpty { f.append(("node", node.json)) }
        return .object(f)
    }

    /// Kept by a `--port` filter: the record's port, the port its client
    /// connected to before DNAT (`original_destination`: a published port,
    /// a Service's port), or its local end is the container's end of a
    /// published port the filter names (`publishedTargets`, `addr:port`).
    /// Records of lost events name no port and are kept.
    public func matches(ports: Set<UInt16>, publishedTargets: Set<String> = []) -> Bool {
        if ports.isEmpty || kind == .lost { return true }
        if [port, originalDestination?.port].contains(where: { $0.map(ports.contains) == true }) { return true }
        return local.map { publishedTargets.contains($0.description) } == true
    }

    package static func endpoint(_ e: Endpoint) -> JSONValue {
        .object([("addr", .string(e.addr.description)), ("port", .int(Int64(e.port)))])
    }
}
