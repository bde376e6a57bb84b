import CSynsightShim
import Glibc
import Synchronization
import SynsightCore

/// Accept-queue length and backlog of every listening TCP socket, in every
/// network namespace, for the per-listener metrics gauges. Read at scrape
/// time (not per packet) on the metrics thread.
///
/// Namespaces are found as the start-up snapshot finds them (one PID per
/// namespace from /proc/<pid>/ns/net), plus namespaces named under
/// /run/netns that no process lives in. In each, a sock_diag netlink socket
/// is created (a netlink socket queries the namespace it was created in):
/// the calling thread enters the namespace with setns(), creates the socket
/// and returns at once, so only this thread, and only for a moment, is ever
/// elsewhere. /proc/<pid>/net/tcp is not used because it lacks the backlog
/// (see `SockDiag`).
public enum ListenerQueues {
    public struct Sample: Sendable {
        public var listeners: [ListenerQueue]
        /// Namespaces that could not be entered or queried.
        public var unreadable: Int
    }

    static let stuck = Atomic<Bool>(false)

    public static func sample() -> Sample {
        var paths: [UInt32: String] = [:]  // netns inode -> a path to its ns file
        for pid in ProcFS.pids() {
            let p = "/proc/\(pid)/ns/net"
            guard let ns = ProcFS.nsInode(p), paths[ns] == nil else { continue }
            paths[ns] = p
        }
        for name in ProcFS.list("/run/netns") {
            let p = "/run/netns/\(name)"
            guard let ns = ProcFS.nsInode(p), paths[ns] == nil else { continue }
            paths[ns] = p
        }
        let home = ProcFS.nsInode("/proc/thread-self/ns/net")
        var out: [ListenerQueue] = []
        var unreadable = 0
        for (ns, path) in paths.sorted(by: { $0.key < $1.key }) {
            let sock = ns == home ? diagSocket() : stuck.load(ordering: .relaxed) ? -1 : diagSocket(in: path)
            guard sock >= 0 else { unreadable += 1; continue }
            defer { close(sock) }
            var ok = true
            for family in [AddressFamily.ipv4, .ipv6] {
                if !dump(sock, family: family, netns: ns, into: &out) { ok = false }
            }
            if !ok { unreadable += 1 }
        }
        return Sample(listeners: out, unreadable: unreadable)
    }

    static func diagSocket() -> Int32 {
        let fd = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), SockDiag.netlinkSockDiag)
        guard fd >= 0 else { return -1 }
        // A reply must never hang a scrape.
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// A sock_diag socket in the namespace at `path`; the thread goes back
    /// to its own namespace before returning (or the socket is not returned).
    static func diagSocket(in path: String) -> Int32 {
        let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard home >= 0 else { return -1 }
        defer { close(home) }
        let target = open(path, O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { return -1 }
        defer { close(target) }
        guard syn_setns_net(target) == 0 else { return -1 }
        let fd = diagSocket()
        guard syn_setns_net(home) == 0 else {
            // Stuck in the other namespace (never seen): sample no more, so
            // no later socket of this thread is created there.
            if fd >= 0 { close(fd) }
            stuck.store(true, ordering: .relaxed)
            return -1
        }
        return fd
    }

    static func dump(_ fd: Int32, family: AddressFamily, netns: UInt32, into out: inout [ListenerQueue]) -> Bool {
        let req = SockDiag.dumpRequest(family: family, states: [SockDiag.stateListen], seq: 1)
        let sent = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == req.count else { return false }
        var buf = [UInt8](repeating: 0, count: 64 << 10)
        var found: [SockDiag.Socket] = []
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }  // error or SO_RCVTIMEO
            let r = buf.withUnsafeBytes { SockDiag.parse(UnsafeRawBufferPointer(rebasing: $0[0..<n]), into: &found) }
            switch r {
            case .more: continue
            case .failed: return false
            case .done:
                for s in found where s.state == SockDiag.stateListen {
                    out.append(ListenerQueue(netns: netns, local: s.local, acceptQueue: s.rqueue, maxBacklog: s.wqueue))
                }
                return true
            }
        }
    }
}
