import SynsightBase
import SynsightModel
/// `syn_queue_full`/`syncookies_off` before the SYN queue is full: with
/// syncookies off, tcp_conn_request keeps the last quarter of
/// net.ipv4.tcp_max_syn_backlog for clients it has talked to before (TCP
/// metrics) and drops a new client's SYN, unanswered, once fewer than
/// max/4 request slots are left — however large the listen() backlog.
/// The kernel only counts it (TcpExtListenDrops) and the client times out.
/// Seen as a SYN a listener left unanswered (`OverflowStage.synUnanswered`)
/// whose route back exists, in a namespace whose sysctls (read with that
/// route, RouteReader) say the reserve was hit at the SYN queue's length.
/// The per-SYN fentry on tcp_conn_request (6.1, 6.12) runs before the
/// decision and does not see it.

extension AttributionEngine {
    func synBacklogReserve(_ o: ListenOverflow, _ backlog: SynBacklogSysctls) -> Record {
        var (r, ev) = unansweredRecord(o, reason: .synQueueFull, cause: .synQueueFull(.syncookiesOff))
        ev.maxSynBacklog = Int64(backlog.maxSynBacklog)
        r.evidence = ev.fields
        let who = r.process.map { "\($0.comm) (pid \($0.pid))" } ?? "the listener"
        let situation = "syncookies are off in network namespace \(o.netns) and the SYN queue of \(who) on port \(o.local.port) "
            + "holds \(o.synQueue) requests, past three quarters of net.ipv4.tcp_max_syn_backlog (\(backlog.maxSynBacklog)): "
            + "the kernel keeps the last quarter for clients it has talked to before, so it dropped the SYN of \(o.remote) "
            + "without an answer and the client waits until it times out (the listen() backlog, \(o.maxBacklog), was not reached): "
        let facts = Advice.Facts(port: o.local.port, pid: r.process?.pid)
        r.hint = situation + Advice.for(reason: .synQueueFull, cause: r.cause, facts: facts).fix
        return r
    }
}
