import SynsightBase
import SynsightModel

/// A connect() its application gave up on while unanswered (ConnectAbandoned):
/// what the timeout record says differently from the kernel's ETIMEDOUT.
/// No errno (none was reported); `abandoned_by`, and `closed_by` when
/// another process closed it; `after_ms` is then the application's own
/// connect timeout.
extension AttributionEngine {
    func noteAbandonment(_ a: ConnectAbandoned, into ev: inout ConnectTimeoutEvidence) {
        ev.abandonedBy = a.by.rawValue
        ev.closedBy = closerJSON(a)
        ev.hook = clientErrorHook.abandonHook(a)
    }

    /// The closer, when it is not the client that connected.
    func closerJSON(_ a: ConnectAbandoned) -> JSONValue? {
        guard a.closer.pid != 0, a.closer.pid != a.attempt.task?.pid else { return nil }
        return processRef(a.closer).json
    }

    /// "curl (pid 4410) gave up connecting to 203.0.113.7:443 after 3002 ms
    /// (3 SYNs unanswered)", or "... exited while connecting ...".
    static func abandonedText(_ a: ConnectAbandoned, sent: String) -> String {
        let ce = a.attempt
        let after = ce.elapsedMs.map { " after \($0) ms" } ?? ""
        switch a.by {
        case .application:
            let closed = a.aborted ? "reset the socket with SO_LINGER 0" : "closed the socket"
            return "\(ce.clientLabel) gave up connecting to \(ce.remote)\(after) (\(sent) unanswered; it \(closed) "
                + "before the kernel's own timeout)"
        case .processExit:
            return "\(ce.clientLabel) exited while connecting to \(ce.remote)\(after) (\(sent) unanswered)"
        }
    }

    /// Given up, and nothing on this host explains the silence (its SYNs
    /// never left the host, and no drop of them was seen): `unknown`/`timed_out`.
    func abandonedUnexplained(_ a: ConnectAbandoned, route: ConnectTimeoutRoute?) -> Record {
        let ce = a.attempt
        var r = Record(ts: clock.epoch(ce.ts), kind: .connectFailure, reason: .unknown, cause: .unknown(.timedOut),
                       port: ce.remote.port, family: ce.family, netns: ce.netns, local: ce.local, remote: ce.remote)
        r.process = clientRef(ce)
        var ev = ClientFailureEvidence()
        ev.afterMs = ce.elapsedMs
        ev.clientSeen = ce.task != nil
        ev.abandonedBy = a.by.rawValue
        ev.closedBy = closerJSON(a)
        ev.hook = clientErrorHook.abandonHook(a)
        r.evidence = ev.fields
        let sent = Self.synsSent(route)
        let advice = Advice.for(reason: .unknown, cause: r.cause,
                                facts: Advice.Facts(port: ce.remote.port, pid: ce.task?.pid, address: ce.remote.addr, family: ce.family))
        r.hint = Self.abandonedText(a, sent: sent) + ", and nothing traced on this host explains why they went unanswered: " + advice.fix
        return r
    }
}
