import SynsightBase
/// The accept-queue state of one listening TCP socket, as `ss -lnt` shows
/// it: Recv-Q (connections waiting for accept()) and Send-Q (the backlog,
/// min(listen() backlog, somaxconn)). Read with sock_diag (`SockDiag`) in
/// every network namespace for the per-listener metrics gauges.
public struct ListenerQueue: Sendable, Hashable {
    /// Network namespace inode.
    public var netns: UInt32
    public var local: Endpoint
    /// sk_ack_backlog: established connections not yet accepted.
    public var acceptQueue: UInt32
    /// sk_max_ack_backlog.
    public var maxBacklog: UInt32
    /// The socket's inode (0: unknown).
    public var inode: UInt64
    /// The workload of the process holding it, when known.
    public var workload: WorkloadIdentity?

    public init(netns: UInt32, local: Endpoint, acceptQueue: UInt32, maxBacklog: UInt32, inode: UInt64 = 0,
                workload: WorkloadIdentity? = nil) {
        self.netns = netns
        self.local = local
        self.acceptQueue = acceptQueue
        self.maxBacklog = maxBacklog
        self.inode = inode
        self.workload = workload
    }
}
