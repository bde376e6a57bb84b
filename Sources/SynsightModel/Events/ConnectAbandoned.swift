import CSynsightABI
import SynsightBase

/// A local connect() its application gave up on (SYN_EV_CONNECT_ABANDONED,
/// bpf/timeouts.bpf.h): the socket was closed in SYN_SENT, never answered,
/// with no error reported, after at least one SYN retransmission. What
/// curl `--connect-timeout`, a dialer's deadline or a proxy's connect
/// timeout does long before the kernel's own ETIMEDOUT (about 130 s).
/// Explained like a timeout (TimeoutAttribution.swift).
public struct ConnectAbandoned: Sendable, Hashable {
    /// The attempt as a connect() outcome: the caller captured at
    /// connect(), the close's time; `errno` 0 (none was reported).
    public var attempt: ConnectError
    /// Where its SYNs left, and how many were retransmitted.
    public var route: ConnectTimeoutRoute
    /// The task that closed the socket (usually the caller itself).
    public var closer: TaskInfo
    /// The closer was exiting: the process died (or was killed) while connecting.
    public var closerExiting: Bool
    /// Closed with SO_LINGER 0 (an abort: tcp_disconnect's ECONNRESET,
    /// seen at its error report, not at the socket's destruction).
    public var aborted: Bool

    public init(attempt: ConnectError, route: ConnectTimeoutRoute, closer: TaskInfo, closerExiting: Bool,
                aborted: Bool = false) {
        self.attempt = attempt
        self.route = route
        self.closer = closer
        self.closerExiting = closerExiting
        self.aborted = aborted
    }

    /// Who gave up, as the record's evidence says it (`abandoned_by`).
    public enum By: String, Sendable, Hashable, CaseIterable {
        /// The application closed the socket (its own connect timeout).
        case application
        /// The socket was closed as its process exited.
        case processExit = "process_exit"
    }

    public var by: By { closerExiting ? .processExit : .application }
}

extension EventDecoder {
    /// SYN_EV_CONNECT_ABANDONED; `raw` is already checked for size and ABI version by `decode`.
    static func decodeConnectAbandoned(_ raw: UnsafeRawBufferPointer) throws(DecodeError) -> KernelEvent {
        let e = raw.loadUnaligned(as: syn_ev_connect_abandoned.self)
        let t = try tuple(e.t)
        let attempt = connectError(ts: e.hdr.ts_ns, tuple: t, caller: e.task, connectTs: e.connect_ts_ns, netns: e.netns, errno: 0)
        return .connectAbandoned(ConnectAbandoned(
            attempt: attempt,
            route: route(e.route, ts: e.hdr.ts_ns, tuple: t, netns: e.netns, synRetransmits: e.syn_retransmits),
            closer: task(e.closer), closerExiting: e.closer_exiting != 0, aborted: e.aborted != 0))
    }
}
