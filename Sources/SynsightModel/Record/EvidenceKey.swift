import SynsightBase
/// Every top-level key of a record's `evidence` object (schema v1): the one
/// place an evidence key is spelled. Writers use `EvidenceKey.x.rawValue` (or
/// `Record.evidence(_:)`); readers (explain, the proxy join, metrics) use
/// `Record.evidence(_:)`. `SchemaRecordsTests` fails when the engine writes
/// a key missing here. Nested objects (listeners, processes, endpoints) keep
/// the field names of their own types.
public enum EvidenceKey: String, Sendable, Hashable, CaseIterable {
    /// connect_timeout: who gave up on an unanswered connect() (`ConnectAbandoned.By`).
    case abandonedBy = "abandoned_by"
    case acceptErrno = "accept_errno"
    case acceptQueue = "accept_queue"
    case access
    case activeLsms = "active_lsms"
    case addr
    /// address_not_available: the namespace's addresses of the family, and why they could not be read.
    case addresses
    case addressesUnavailable = "addresses_unavailable"
    case afterMs = "after_ms"
    case attachPoint = "attach_point"
    case behindProxy = "behind_proxy"
    case bound
    case bpfPrograms = "bpf_programs"
    case bpfProgramsUnavailable = "bpf_programs_unavailable"
    /// A socket bound to a device (SO_BINDTODEVICE): that device and its state (NetDevice.json).
    case boundDevice = "bound_device"
    /// The bridge device a Docker network rule names.
    case bridge
    case call
    case candidates
    case capability
    case capabilityCheck = "capability_check"
    case chain
    case chainHook = "chain_hook"
    case check
    case clientContext = "client_context"
    case clientErrno = "client_errno"
    case clientLookup = "client_lookup"
    case clientSeen = "client_seen"
    case closedAt = "closed_at"
    case closedAtExact = "closed_at_exact"
    case closedBy = "closed_by"
    /// address_not_available: the address as configured (IPv6 DAD state).
    case configured
    /// publisher_stopped: the stopped container that publishes the port.
    case container
    case conntrackCount = "conntrack_count"
    case conntrackMax = "conntrack_max"
    case coreDumped = "core_dumped"
    case countedDrops = "counted_drops"
    case ctState = "ct_state"
    case refusedBy = "refused_by"
    case denials
    case destination
    case direction
    case directory
    case drop
    case dropReason = "drop_reason"
    case dropReasonCode = "drop_reason_code"
    case dropReasonSubsystem = "drop_reason_subsystem"
    /// The Docker network a rule keeps apart, as `docker network` takes it.
    case dockerNetwork = "docker_network"
    case dockerNetworkName = "docker_network_name"
    case drops
    case egressInterface = "egress_interface"
    case errno
    case exitStatus = "exit_status"
    case exitedAt = "exited_at"
    case failedIn = "failed_in"
    case folded
    case handle
    case holder
    /// address_not_available: the address as the host's namespace has it.
    case hostAddress = "host_address"
    case holders
    case hook
    case icmp
    case ifindex
    case interface
    case ipLocalPortRange = "ip_local_port_range"
    case ipNonlocalBind = "ip_nonlocal_bind"
    case ipUnprivilegedPortStart = "ip_unprivileged_port_start"
    case listenedOn = "listened_on"
    case listener
    case listenerDrops = "listener_drops"
    /// accept_queue_full: the listener's threads by state, and where the blocked ones wait.
    case listenerState = "listener_state"
    case cpuThrottle = "cpu_throttle"
    case ipvs
    case listeners
    case localSocket = "local_socket"
    case location
    case lsm
    case mark
    case maxBacklog = "max_backlog"
    case maxSynBacklog = "max_syn_backlog"
    case method
    case mode
    case nat
    case nextHop = "next_hop"
    case nofileLimit = "nofile_limit"
    case operation
    case permissions
    case port
    case portsInRange = "ports_in_range"
    case previous
    case socketProtocol = "protocol"
    case proxy
    case rejectWith = "reject_with"
    case requested
    case restartedBy = "restarted_by"
    /// The TTL of the RST that refused a local client, and the peer's usual one (ResetTTLEvidence).
    case reset
    case result
    case routeBack = "route_back"
    case routeFrom = "route_from"
    case routeLookup = "route_lookup"
    case routeUnavailable = "route_unavailable"
    case rpFilter = "rp_filter"
    case rule
    case ruleComment = "rule_comment"
    case ruleMethod = "rule_method"
    case ruleOwner = "rule_owner"
    case policyPod = "policy_pod"
    /// rate_limited: the limiting match, and what it counts per.
    case rateLimit = "rate_limit"
    /// address_banned: the tool that banned the client, and its jail or set.
    case bannedBy = "banned_by"
    case banList = "ban_list"
    case rateLimitPer = "rate_limit_per"
    /// An iptables rule as iptables-save writes it (nft prints an iptables-nft rule's matches without their options).
    case iptablesRule = "iptables_rule"
    case rulePackets = "rule_packets"
    case rulesetError = "ruleset_error"
    case sandboxedPid = "sandboxed_pid"
    case scontext
    case segment
    case service
    case signal
    case signalName = "signal_name"
    case somaxconn
    case stackHook = "stack_hook"
    case startedAt = "started_at"
    case startupMs = "startup_ms"
    case stage
    case state
    case summarizedKind = "summarized_kind"
    /// The local client's address and port after source NAT (masquerading), as the refusing side saw it.
    case translatedSource = "translated_source"
    /// How a masqueraded local client was joined to a refusal in another namespace (`source_port`, `only_candidate`).
    case natMatch = "nat_match"
    case syn
    /// The device a refused SYN came in on, and the VRF it came through (NetDevice.json).
    case synDevice = "syn_device"
    case synQueue = "syn_queue"
    case synVRF = "syn_vrf"
    case synRetransmits = "syn_retransmits"
    case sysctl
    case table
    case tclass
    case tcontext
    case tcpAbortOnOverflow = "tcp_abort_on_overflow"
    case tcpFlags = "tcp_flags"
    case uid
    /// `lost` records: where events were lost.
    case lostWhere = "where"
}

extension Record {
    /// The value of one evidence field (the first, if repeated).
    public func evidence(_ key: EvidenceKey) -> JSONValue? {
        evidence.first { $0.0 == key.rawValue }?.1
    }

    /// Appends one evidence field.
    public mutating func addEvidence(_ key: EvidenceKey, _ value: JSONValue) {
        evidence.append((key.rawValue, value))
    }
}

extension EvidenceKey {
    /// One evidence field, for building an evidence list.
    public func callAsFunction(_ value: JSONValue) -> (String, JSONValue) { (rawValue, value) }
}
