import SynsightBase
import SynsightModel

/// A local client socket of the port, read live with sock_diag: one
/// connecting whose SYN has gone unanswered (SYN_SENT, retransmitted at
/// least once), the client side of an incident ("the app hangs connecting
/// to the database") seen without a trace; or one connected to a server of
/// the port, or closed by this end within the last minute (TIME_WAIT: a
/// client of short connections), which says this host uses the port.
public struct ExplainConnecting: Sendable, Hashable {
    public enum Phase: Sendable, Hashable {
        case connecting, established, closed
    }

    public var netns: UInt32
    public var local: Endpoint
    public var remote: Endpoint
    /// SYNs sent again so far (idiag_retrans).
    public var retransmits: UInt8
    public var inode: UInt64
    /// Processes holding it (lowest PID first).
    public var processes: [ExplainProcess]
    public var phase: Phase

    public init(netns: UInt32, local: Endpoint, remote: Endpoint, retransmits: UInt8, inode: UInt64,
                processes: [ExplainProcess] = [], phase: Phase = .connecting) {
        self.netns = netns
        self.local = local
        self.remote = remote
        self.retransmits = retransmits
        self.inode = inode
        self.processes = processes
        self.phase = phase
    }

    /// To another host's server, as far as the socket tells: neither a
    /// loopback address nor its own.
    var toElsewhere: Bool { !remote.addr.isLoopback && remote.addr != local.addr }
}

extension Analysis {
    /// Local connect()s to the port waiting on unanswered SYNs: one finding
    /// per namespace, by destination. The first SYN is retransmitted after
    /// a second unanswered: a socket with none is a handshake in flight.
    mutating func unansweredConnects() {
        let waiting = input.connecting.filter { $0.phase == .connecting && $0.retransmits > 0 }
        var byNetns: [UInt32: [ExplainConnecting]] = [:]
        for c in waiting { byNetns[c.netns, default: []].append(c) }
        for (ns, sockets) in byNetns.sorted(by: { $0.key < $1.key }) {
            add(unansweredFinding(ns: ns, sockets))
        }
    }

    func unansweredFinding(ns: UInt32, _ sockets: [ExplainConnecting]) -> Finding {
        var destinations: [(Endpoint, [ExplainConnecting])] = []
        for s in sockets {
            if let i = destinations.firstIndex(where: { $0.0 == s.remote }) { destinations[i].1.append(s) } else { destinations.append((s.remote, [s])) }
        }
        destinations.sort { ($0.1.count, "\($1.0)") > ($1.1.count, "\($0.0)") }
        let shown = destinations.prefix(5).map { d, s in
            let owners = Set(s.flatMap { $0.processes.map(\.label) }).sorted()
            return "\(d) (\(s.count) socket\(s.count == 1 ? "" : "s"), up to \(s.map(\.retransmits).max() ?? 0) SYN retransmissions"
                + (owners.isEmpty ? "" : ", " + owners.prefix(3).joined(separator: ", ")) + ")"
        }
        let n = sockets.count
        let msg = "\(n) connect()\(n == 1 ? "" : "s") to port \(port) from \(input.label(ns)) \(n == 1 ? "is" : "are") waiting on unanswered SYNs (SYN_SENT): "
            + shown.joined(separator: "; ") + (destinations.count > 5 ? "; and \(destinations.count - 5) more destinations" : "")
        let remediation = "run `sudo synsight trace --port \(port)`: it says where their SYNs go (a rule or a drop on this host, "
            + "or the interface and gateway they leave by) and reports each attempt as connect_timeout when it times out or is given up"
        let evidence: [(String, JSONValue)] = [
            ("connecting", .int(Int64(n))),
            ("destinations", .array(destinations.prefix(20).map { d, s in
                .object([("addr", .string("\(d.addr)")), ("port", .int(Int64(d.port))), ("sockets", .int(Int64(s.count))),
                         ("max_syn_retransmits", .int(Int64(s.map(\.retransmits).max() ?? 0))),
                         ("pids", .array(Set(s.flatMap { $0.processes.map(\.pid) }).sorted().map { .int(Int64($0)) }))])
            })),
        ]
        return Finding(.warning, "connects_unanswered", msg, remediation: remediation, netns: ns, evidence: evidence)
    }

    /// This host's client sockets of the port to servers elsewhere
    /// (connected, or waiting on unanswered SYNs).
    var remoteClients: [ExplainConnecting] {
        input.connecting.filter { ($0.phase != .connecting || $0.retransmits > 0) && $0.toElsewhere }
    }

    /// Nothing listens on the port anywhere on this host, nothing asked for
    /// it here during the trace, and this host's own sockets use the port
    /// on other hosts: most likely a port it uses rather than serves (a
    /// client host asked about its database's port). Info when the trace
    /// ran and saw no refusal; a warning when no trace could tell.
    func notServedHere(_ clients: [ExplainConnecting]) -> Finding {
        var servers: [Endpoint] = []
        for c in clients where !servers.contains(c.remote) { servers.append(c.remote) }
        func count(_ phase: ExplainConnecting.Phase) -> Int { clients.filter { $0.phase == phase }.count }
        let connected = count(.established), closed = count(.closed), waiting = count(.connecting)
        let owners = Set(clients.flatMap { $0.processes.map(\.label) }).sorted()
        let ran = input.recent.status == .ran
        var msg = "nothing listens on port \(port) on this host, which is a client of it: "
            + [connected > 0 ? "\(connected) connection\(connected == 1 ? "" : "s") established" : nil,
               closed > 0 ? "\(closed) closed within the last minute" : nil,
               waiting > 0 ? "\(waiting) waiting on unanswered SYNs" : nil].compactMap { $0 }.joined(separator: ", ")
            + " to " + servers.prefix(3).map { "\($0)" }.joined(separator: ", ")
            + (servers.count > 3 ? " and \(servers.count - 3) more" : "")
            + (owners.isEmpty ? "" : " (" + owners.prefix(3).joined(separator: ", ") + ")")
        msg += ran ? "; no connection to it was refused here during the \(input.recent.secondsText) s trace"
                   : "; no trace ran to tell whether clients of this host are refused"
        let fix = Advice.for(reason: .noListener, cause: .noListener(.neverListened), facts: Advice.Facts(port: port)).fix
        return Finding(ran ? .info : .warning, "not_served_here", msg,
                       remediation: "nothing to do if port \(port) is served by those hosts; if this host should serve it too: " + fix,
                       evidence: [("client_sockets", .int(Int64(clients.count))),
                                  ("servers", .array(servers.prefix(20).map { .string("\($0)") }))])
    }
}
