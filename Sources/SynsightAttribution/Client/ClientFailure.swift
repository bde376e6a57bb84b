import SynsightBase
import SynsightModel
import SynsightNftables
/// Where the kernel side saw a connection's error (evidence.hook).
public enum ClientErrorHook: String, Sendable {
    /// inet_sock_set_state leaving SYN_SENT (or ESTABLISHED) with sk_err set.
    case stateChange = "tp_btf/inet_sock_set_state (sk_err)"
    /// inet_sk_error_report, without the state-change hook (issue 16).
    case errorReport = "tp_btf/inet_sk_error_report (sk_err)"
}

/// The client's view: a local connect() that failed, or a connection reset
/// right after setup, that no server-side event on this host explains (the
/// server is elsewhere, or the cause is not traced). Joined server-side
/// events (no-listener RST, firewall, overflow) take precedence and carry
/// the client instead.
extension AttributionEngine {
    func clientFailureRecord(_ ce: ConnectError) -> Record {
        let dest = ce.remote
        var r = Record(ts: clock.epoch(ce.ts), kind: .connectFailure, port: dest.port, family: ce.family,
                       netns: ce.netns, local: ce.local, remote: ce.remote)
        r.process = ProcessRef(pid: ce.task.pid, comm: ce.task.comm, exe: resolver?.exe(pid: ce.task.pid),
                               workload: resolver?.workload(task: ce.task))
        let who = "\(ce.task.comm) (pid \(ce.task.pid))"
        let elapsedMs = ce.ts >= ce.connectTs ? Int64((ce.ts - ce.connectTs) / 1_000_000) : 0
        var evidence: [(String, JSONValue)] = [("errno", .string(ErrnoName.name(ce.errno))),
                                               ("after_ms", .int(elapsedMs)),
                                               ("hook", .string(clientErrorHook.rawValue))]
        switch ce.errno {
        case 111:
            r.reason = .unknown
            r.cause = Cause.Unknown.connectionRefused.rawValue
            r.hint = "\(dest) answered \(who)'s SYN with a reset, and no listener or firewall rule on this host explains it: "
                + "nothing listens on port \(dest.port) there, or a firewall rejects; run synsight on that host to know which"
        case 110:
            r.reason = .unknown
            r.cause = Cause.Unknown.timedOut.rawValue
            r.hint = "\(dest) never answered \(who)'s SYNs: a firewall drops them, the host is down, or its listen queue overflows; "
                + "check the path and run synsight on that host"
        case 113:
            r.reason = .unknown
            r.cause = Cause.Unknown.hostUnreachable.rawValue
            r.hint = "no route to host \(dest.addr) (ICMP host unreachable or no ARP/NDP answer): check that the host is up and the address right"
        case 101:
            r.reason = .unknown
            r.cause = Cause.Unknown.networkUnreachable.rawValue
            r.hint = "no route to network of \(dest.addr) from this host: check the routing table (ip route get \(dest.addr))"
        case 104:
            r.reason = .resetByPeer
            r.cause = Cause.ResetByPeer.resetAfterSetup.rawValue
            r.hint = "\(dest) reset the connection \(elapsedMs) ms after \(who) connected: a server refusing after the handshake "
                + "(e.g. its accept queue overflowed with tcp_abort_on_overflow=1, or it closed with unread data); check the server"
            evidence.append(("state", .string("established")))
        default:
            r.reason = .unknown
            r.cause = Cause.Unknown.connectError.rawValue
            r.hint = "connect() from \(who) to \(dest) failed with \(ErrnoName.name(ce.errno))"
        }
        r.evidence = evidence
        return r
    }
}
