import SynsightBase
import SynsightModel
import SynsightNftables
/// Where the kernel side saw a connection's error (evidence.hook).
public enum ClientErrorHook: String, Sendable {
    /// inet_sock_set_state leaving SYN_SENT (or ESTABLISHED) with sk_err set.
    case stateChange = "tp_btf/inet_sock_set_state (sk_err)"
    /// inet_sk_error_report, without the state-change hook (issue 16).
    case errorReport = "tp_btf/inet_sk_error_report (sk_err)"

    /// Where a connect() its application gave up on with SO_LINGER 0 is
    /// seen without the state-change hook: tcp_disconnect's report.
    public static let lingerAbortHook = "tp_btf/inet_sk_error_report (ECONNRESET of a close with SO_LINGER 0 in SYN_SENT)"

    /// Where a connect() its application gave up on is seen (ConnectAbandoned).
    public func abandonHook(_ a: ConnectAbandoned) -> String {
        if a.aborted { return Self.lingerAbortHook }
        switch self {
        case .stateChange: return "tp_btf/inet_sock_set_state (SYN_SENT -> CLOSE, no sk_err)"
        case .errorReport: return "tp_btf/tcp_destroy_sock (closed in SYN_SENT, no sk_err)"
        }
    }
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
        r.process = clientRef(ce)
        let who = ce.clientLabel
        let elapsedMs = ce.elapsedMs
        var evidence = ClientFailureEvidence()
        evidence.errno = ErrnoName.name(ce.errno)
        evidence.afterMs = elapsedMs
        evidence.clientSeen = ce.task != nil
        evidence.hook = clientErrorHook.rawValue
        // What was seen; the fix comes from the advice catalogue.
        let seen: String
        switch ce.errno {
        case 111 where ce.refusedByICMP:
            r.reason = .unknown
            r.cause = .unknown(.rejectedWithICMP)
            evidence.refusedBy = ClientFailureEvidence.refusedByICMP
            seen = "\(who)'s SYN to \(dest) was answered with an ICMP port unreachable, not a TCP reset, and no firewall rule on "
                + "this host explains it: a firewall rejects port \(dest.port) there or on the way"
        case 111:
            r.reason = .unknown
            r.cause = .unknown(.connectionRefused)
            if ce.segmentsIn != nil { evidence.refusedBy = ClientFailureEvidence.refusedByReset }
            seen = "\(dest) answered \(who)'s SYN with a reset, and no listener or firewall rule on this host explains it: "
                + "nothing listens on port \(dest.port) there, or a firewall rejects"
        case 110:
            r.reason = .unknown
            r.cause = .unknown(.timedOut)
            seen = "\(dest) never answered \(who)'s SYNs: a firewall drops them, the host is down, or its listen queue overflows"
        case 113:
            r.reason = .unknown
            r.cause = .unknown(.hostUnreachable)
            seen = "no route to host \(dest.addr) (no ARP/NDP answer, or an ICMP host unreachable or host-prohibited came back)"
        case 101:
            r.reason = .unknown
            r.cause = .unknown(.networkUnreachable)
            seen = "no route to network of \(dest.addr) from this host"
        case 104:
            r.reason = .resetByPeer
            r.cause = .resetByPeer(.resetAfterSetup)
            seen = "\(dest) reset the connection \(elapsedMs ?? 0) ms after \(who) connected: a server refusing after the handshake "
                + "(e.g. its accept queue overflowed with tcp_abort_on_overflow=1, or it closed with unread data)"
            evidence.state = ClientFailureEvidence.established
        default:
            r.reason = .unknown
            r.cause = .unknown(.connectError)
            seen = "connect() from \(who) to \(dest) failed with \(ErrnoName.name(ce.errno))"
        }
        let advice = Advice.for(reason: r.reason, cause: r.cause,
                                facts: Advice.Facts(port: dest.port, pid: ce.task?.pid, address: dest.addr, family: ce.family))
        r.hint = seen + (r.cause == .unknown(.connectError) ? "" : ": " + advice.fix)
        r.evidence = evidence.fields
        return r
    }
}
