import SynsightBase
import SynsightModel
import SynsightNftables
/// Attribution of failed bind(), listen() and connect() calls: which reason,
/// whose fault, the evidence and one fix.
///
/// PID semantics (docs/architecture.md): for `address_in_use`, `process` is the holder
/// of the port and `client` the process whose bind/listen failed; for every
/// other reason `process` is the failing process (and, for connect(),
/// `client` too: it is the connecting process on this host).

/// The engine's state for socket-call failures (one stored property on the
/// engine, so this area does not spread through Attribution.swift).
public struct SyscallState {
    /// Live lookups (/proc, /sys); nil: only the listener registry is used.
    public var holders: (any PortHolderLookup)?
    /// Recent holder lookups, so a crash-looping service retrying bind()
    /// does not cost a /proc scan per attempt.
    var holderCache: [HolderKey: (ts: UInt64, holders: [PortHolder])] = [:]
    var lsmCache: [String]??
    var permCache: [String: [String: UInt32]?] = [:]

    static let holderCacheNs: UInt64 = 1_000_000_000

    public init(holders: (any PortHolderLookup)? = nil) {
        self.holders = holders
    }
}

struct HolderKey: Hashable {
    package var netns: UInt32
    package var port: UInt16
    package var proto: String
}


extension AttributionEngine {
    mutating func ingestSocketCall(_ e: SocketCallFailure) -> [Record] {
        // An SELinux denial explains EACCES/EPERM (enforcing) or nothing
        // failed at all (permissive): report the denial.
        if let avc = e.avc, avc.denied != 0, e.errno == 0 || e.errno == 13 || e.errno == 1 {
            return [selinuxDenial(e, avc)]
        }
        // connect() refused by the routing table (its errnos: ENETUNREACH,
        // EHOSTUNREACH, and EACCES / EINVAL when a prohibit / blackhole route says so).
        if let r = noRoute(e) { return [r] }
        switch e.errno {
        case 98:
            return [addressInUse(e)]
        case 99:
            return [addressNotAvailable(e)]
        case 13, 1:
            // The capability check returns EACCES; a cgroup bind program's EPERM is not it.
            if e.call == .bind && e.errno == 13 && e.capability.refuses { return [privilegedPort(e)] }
            if e.landlocked && e.call != .listen { return [landlockDenial(e)] }
            if let r = cgroupProgramDenial(e) { return [r] }
            return [otherLSMDenial(e)]
        default:
            return []
        }
    }

    // MARK: - Records

    func baseRecord(_ e: SocketCallFailure, kind: RecordKind, reason: Reason) -> Record {
        var r = Record(ts: clock.epoch(e.ts), kind: kind, reason: reason, port: e.port,
                       family: e.family, netns: e.netns)
        if e.call == .connect {
            if e.local.port != 0 || !e.local.addr.isUnspecified { r.local = e.local }
            r.remote = e.remote
        } else {
            r.local = e.local
        }
        return r
    }

    func failing(_ e: SocketCallFailure) -> ProcessRef { processRef(e.task) }

    func who(_ e: SocketCallFailure) -> String { "\(e.task.comm) (pid \(e.task.pid))" }

    package mutating func addressInUse(_ e: SocketCallFailure) -> Record {
        // bind(port 0) failing with EADDRINUSE: no free ephemeral port.
        if e.call == .bind && e.local.port == 0 {
            var r = baseRecord(e, kind: .bindFailure, reason: .ephemeralPortsExhausted)
            r.process = failing(e)
            var ev = EphemeralPortsEvidence(call: e)
            ev.requested = Record.endpoint(e.local)
            ev.setRange(e.localPortRange)
            r.evidence = ev.fields
            r.hint = "\(who(e)) asked for any free port but all of net.ipv4.ip_local_port_range\(rangeText(e)) are taken: "
                + Advice.for(reason: .ephemeralPortsExhausted, cause: nil).fix
            return r
        }
        var r = baseRecord(e, kind: .bindFailure, reason: .addressInUse)
        r.client = failing(e)
        var ev = AddressInUseEvidence(call: e)
        ev.requested = Record.endpoint(e.local)
        ev.failedIn = e.call.name
        let found = holders(for: e)
        let holder = found.first
        let port = e.local.port
        if let h = holder {
            if let pid = h.pid { r.process = ProcessRef(pid: pid, comm: h.comm ?? "?", exe: resolver?.exe(pid: pid),
                                                        workload: resolver?.workload(pid: pid)) }
            ev.holder = holderJSON(h)
            if found.count > 1 { ev.holders = found.count }
        }
        r.evidence = ev.fields
        let owner = holder.map { h in h.pid.map { "\(h.comm ?? "?") (pid \($0))" } ?? "a socket with no process" }
        // What was seen; the fix comes from the catalogue (Advice.swift).
        let situation: String
        switch (e.call, holder?.state) {
        case (.listen, _):
            situation = "\(who(e)) could not listen on \(e.local): "
                + (owner.map { "\($0) already listens there" } ?? "another socket already listens there")
                + " (SO_REUSEADDR lets both bind, not both listen): "
        case (_, "LISTEN"):
            situation = "\(owner ?? "another process") already listens on \(holder.map { Endpoint(addr: $0.local.addr, port: port).description } ?? "port \(port)"): "
        case (_, "TIME_WAIT"):
            situation = "port \(port) is held by a connection in TIME_WAIT: "
        case (_, .some(let state)):
            situation = "port \(port) is used by \(owner ?? "a socket") in state \(state): "
        case (_, .none):
            situation = "port \(port) is already bound in this network namespace (holder not found: bound but not listening, or already gone): "
        }
        r.hint = situation + Advice.for(reason: .addressInUse, cause: nil,
                                        facts: Advice.Facts(port: port, call: e.call, holderState: holder?.state)).fix
        return r
    }

    func holderJSON(_ h: PortHolder) -> JSONValue {
        var f: [(String, JSONValue)] = []
        if let pid = h.pid { f.append(("pid", .int(Int64(pid)))) }
        if let comm = h.comm { f.append(("comm", .string(comm))) }
        f.append(("state", .string(h.state)))
        f.append(("addr", .string(h.local.addr.description)))
        f.append(("port", .int(Int64(h.local.port))))
        f.append(("family", .string(h.family.rawValue)))
        if let remote = h.remote, h.state != "LISTEN", remote.port != 0 { f.append(("remote", Record.endpoint(remote))) }
        if let rp = h.reusePort { f.append(("reuseport", .bool(rp))) }
        f.append(("source", .string(h.source)))
        return .object(f)
    }

    /// Does a socket on `h` conflict with binding `addr` of `family`?
    static func conflicts(_ h: PortHolder, family: AddressFamily, addr: IPAddress) -> Bool {
        let hAddr = h.local.addr
        let hFamily: AddressFamily = h.family == .ipv6 && hAddr.isV4Mapped ? .ipv4 : h.family
        if hFamily == family { return hAddr.isUnspecified || addr.isUnspecified || hAddr == addr }
        // A dual-stack [::] socket and an IPv4 socket share the port space.
        return (hAddr.isUnspecified && h.family == .ipv6) || (addr.isUnspecified && family == .ipv6)
    }

    /// The sockets holding the requested port, best explanation first.
    package mutating func holders(for e: SocketCallFailure) -> [PortHolder] {
        let port = e.local.port
        var found: [PortHolder] = []
        // The registry knows who called listen(), even for a socket passed on since.
        for id in byPort[port] ?? [] {
            guard let l = listeners[id], l.netns == e.netns else { continue }
            found.append(PortHolder(pid: l.pid, comm: l.comm, state: "LISTEN", family: l.family, local: l.local,
                                    inode: l.socketInode, source: "listener registry"))
        }
        if let lookup = syscalls.holders {
            let key = HolderKey(netns: e.netns, port: port, proto: e.protocolName)
            let live: [PortHolder]
            if let c = syscalls.holderCache[key], e.ts >= c.ts, e.ts - c.ts < SyscallState.holderCacheNs {
                live = c.holders
            } else {
                live = lookup.holders(netns: e.netns, port: port, proto: e.protocolName, near: e.task.pid)
                if syscalls.holderCache.count > 1024 { syscalls.holderCache.removeAll(keepingCapacity: true) }
                syscalls.holderCache[key] = (e.ts, live)
            }
            for h in live where !found.contains(where: { $0.inode != 0 && $0.inode == h.inode }) { found.append(h) }
        }
        let family = e.family
        let addr = e.local.addr
        func rank(_ h: PortHolder) -> Int {
            var r = Self.conflicts(h, family: family, addr: addr) ? 0 : 100
            switch h.state {
            case "LISTEN": r += 0
            case "TIME_WAIT": r += 20
            default: r += h.pid == nil ? 15 : 10
            }
            return r
        }
        return found.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
    }

    package func addressNotAvailable(_ e: SocketCallFailure) -> Record {
        if e.call == .connect {
            if e.local.port != 0 {
                // A socket bound to a fixed port: that 4-tuple already exists.
                var r = baseRecord(e, kind: .connectFailure, reason: .addressNotAvailable)
                r.cause = .addressNotAvailable(.fourTupleInUse)
                r.process = failing(e)
                r.client = failing(e)
                var ev = AddressNotAvailableEvidence(call: e)
                ev.destination = Record.endpoint(e.remote)
                ev.bound = Record.endpoint(e.local)
                r.evidence = ev.fields
                r.hint = "\(who(e)) bound its socket to \(e.local) and that port already has a connection to \(e.remote): "
                    + Advice.for(reason: .addressNotAvailable, cause: r.cause).fix
                return r
            }
            var r = baseRecord(e, kind: .connectFailure, reason: .ephemeralPortsExhausted)
            r.process = failing(e)
            r.client = failing(e)
            var ev = EphemeralPortsEvidence(call: e)
            ev.destination = Record.endpoint(e.remote)
            ev.setRange(e.localPortRange)
            r.evidence = ev.fields
            r.hint = "no free local port to reach \(e.remote): all ports of net.ipv4.ip_local_port_range\(rangeText(e)) are in use towards it; "
                + Advice.for(reason: .ephemeralPortsExhausted, cause: nil, facts: Advice.Facts(outgoing: true)).fix
            return r
        }
        return bindAddressNotAvailable(e)
    }

    func rangeText(_ e: SocketCallFailure) -> String {
        guard let r = e.localPortRange else { return "" }
        return " (\(r.lowerBound)-\(r.upperBound), \(r.count) port\(r.count == 1 ? "" : "s"))"
    }

    package func privilegedPort(_ e: SocketCallFailure) -> Record {
        var r = baseRecord(e, kind: .bindFailure, reason: .privilegedPort)
        r.process = failing(e)
        var ev = PrivilegedPortEvidence(call: e)
        ev.port = e.local.port
        ev.ipUnprivilegedPortStart = e.unprivilegedPortStart
        ev.capability = "CAP_NET_BIND_SERVICE"
        ev.uid = e.task.uid
        ev.check = PrivilegedPortEvidence.credentialsCheck
        ev.capabilityCheck = e.capability.text
        r.evidence = ev.fields
        let start = e.unprivilegedPortStart.map(String.init) ?? "1024"
        let lacks = e.capability == .otherUserNamespace
            ? "holds CAP_NET_BIND_SERVICE only in its own user namespace, not in the one owning network namespace \(e.netns)"
            : "lacks CAP_NET_BIND_SERVICE"
        var facts = Advice.Facts(unprivilegedPortStart: e.unprivilegedPortStart.map { Int($0) })
        facts.otherUserNamespace = e.capability == .otherUserNamespace
        r.hint = "port \(e.local.port) is below net.ipv4.ip_unprivileged_port_start (\(start)) and \(who(e)), uid \(e.task.uid), \(lacks): "
            + Advice.for(reason: .privilegedPort, cause: nil, facts: facts).fix
            + (e.landlocked ? " (it is also sandboxed by Landlock: its ruleset must allow binding this port too)" : "")
        return r
    }

    func denialRecord(_ e: SocketCallFailure, cause: Cause.LSMDenied) -> Record {
        var r = baseRecord(e, kind: .denial, reason: .lsmDenied)
        r.cause = .lsmDenied(cause)
        r.process = failing(e)
        if e.call == .connect { r.client = failing(e) }
        return r
    }

    func landlockDenial(_ e: SocketCallFailure) -> Record {
        var r = denialRecord(e, cause: .landlock)
        var ev = LSMDeniedEvidence(call: e)
        ev.lsm = Cause.LSMDenied.landlock.rawValue
        ev.operation = e.call.name
        ev.sandboxedPid = e.task.pid
        ev.access = e.call == .bind ? "LANDLOCK_ACCESS_NET_BIND_TCP" : "LANDLOCK_ACCESS_NET_CONNECT_TCP"
        r.evidence = ev.fields
        r.hint = "\(who(e)) is sandboxed by Landlock (landlock_restrict_self) without a rule allowing \(e.call.name) on TCP port \(e.port): "
            + Advice.for(reason: .lsmDenied, cause: r.cause, facts: Advice.Facts(port: e.port)).fix
        return r
    }

    mutating func otherLSMDenial(_ e: SocketCallFailure) -> Record {
        var r = denialRecord(e, cause: .otherLSM)
        var ev = LSMDeniedEvidence(call: e)
        let lsms = activeLSMs()
        ev.activeLsms = .some(lsms)
        if e.call == .bind { ev.capabilityCheck = e.capability.text }
        r.evidence = ev.fields
        let others = (lsms ?? []).filter { !["capability", "lockdown", "yama", "landlock", "selinux"].contains($0) }
        var where_ = others.isEmpty ? "the active LSMs" : others.joined(separator: ", ")
        if e.errno == 1 { where_ += " or a cgroup BPF program (EPERM: `bpftool cgroup tree`)" }
        r.hint = "\(e.call.name)() on port \(e.port) by \(who(e)) was refused with \(ErrnoName.name(e.errno)), not by capabilities, SELinux or Landlock: "
            + Advice.for(reason: .lsmDenied, cause: r.cause, facts: Advice.Facts(port: e.port, lsmsToCheck: where_)).fix
        return r
    }

    package mutating func activeLSMs() -> [String]? {
        if let cached = syscalls.lsmCache { return cached }
        let v = syscalls.holders?.activeLSMs()
        syscalls.lsmCache = .some(v)
        return v
    }

    mutating func selinuxDenial(_ e: SocketCallFailure, _ avc: AVCDenial) -> Record {
        var r = denialRecord(e, cause: .selinux)
        let table: [String: UInt32]?
        if let c = syscalls.permCache[avc.tclass] { table = c } else {
            table = syscalls.holders?.selinuxPermissions(tclass: avc.tclass)
            syscalls.permCache[avc.tclass] = .some(table)
        }
        let denied = SELinuxPermissions.names(bits: avc.denied, tclass: avc.tclass, table: table)
        let mode = avc.permissive ? "permissive" : "enforcing"
        var ev = LSMDeniedEvidence(call: e)
        ev.scontext = avc.scontext
        ev.tcontext = avc.tcontext
        ev.tclass = avc.tclass
        ev.permissions = denied
        ev.requestedPermissions = SELinuxPermissions.names(bits: avc.requested, tclass: avc.tclass, table: table)
        ev.mode = mode
        ev.result = avc.result
        if e.avcCount > 1 { ev.denials = e.avcCount }
        r.evidence = ev.fields
        let domain = SELinuxPermissions.type(of: avc.scontext) ?? avc.scontext
        let target = SELinuxPermissions.type(of: avc.tcontext) ?? avc.tcontext
        let proto = avc.tclass == "udp_socket" ? "udp" : "tcp"
        let prefix = avc.permissive ? "SELinux (permissive: allowed now, denied once enforcing) flags" : "SELinux denies"
        let perms = denied.joined(separator: ",")
        let situation: String
        if denied.contains("name_bind") || denied.contains("name_connect") {
            situation = "\(prefix) \(domain) \(perms) on \(proto) port \(e.port) (labelled \(target)): "
        } else if denied.contains("node_bind") {
            situation = "\(prefix) \(domain) node_bind on address \(e.local.addr) (labelled \(target)): "
        } else {
            situation = "\(prefix) \(domain) \(perms) on \(avc.tclass) (target \(target)): "
        }
        r.hint = situation + Advice.for(reason: .lsmDenied, cause: r.cause,
                                        facts: Advice.Facts(port: e.port, selinuxDomain: domain, deniedPermissions: denied,
                                                            socketProtocol: proto)).fix
        return r
    }
}

