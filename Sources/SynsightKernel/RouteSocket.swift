import Glibc
import SynsightBase
import SynsightModel

/// One RTM_GETROUTE exchange on a NETLINK_ROUTE socket of the calling
/// thread's namespace (a socket belongs to the namespace it was created in).
enum RouteSocket {
    static func get(_ r: RouteGet.Request) -> Result<RouteGet.Answer, RouteReader.ReadError> {
        func fail(_ what: String, _ e: Int32) -> Result<RouteGet.Answer, RouteReader.ReadError> {
            .failure(RouteReader.ReadError(description: "route lookup of \(r.dst): \(what): \(ErrnoName.name(e))"))
        }
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), TCFilterDump.netlinkRoute)
        guard fd >= 0 else { return fail("socket(AF_NETLINK, NETLINK_ROUTE)", errno) }
        defer { close(fd) }
        // Bounded: the kernel answers a route lookup at once; never wait long.
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let seq: UInt32 = 1
        let req = RouteGet.request(r, seq: seq)
        let sent = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == req.count else { return fail("send", errno) }
        var buf = [UInt8](repeating: 0, count: 8 << 10)
        for _ in 0..<4 {
            let n = retryingEINTR { buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            guard n > 0 else { return fail("recv", n == 0 ? ECONNRESET : errno) }
            if let answer = buf.withUnsafeBytes({ RouteGet.parse(UnsafeRawBufferPointer(rebasing: $0[0..<n]), seq: seq) }) {
                return .success(answer)
            }
        }
        return fail("no answer", EPROTO)
    }
}

extension RouteReader {
    /// Whether this process can make route lookups (an output lookup of 127.0.0.1 in its own namespace).
    public static func probe() -> ProbeResult {
        switch RouteSocket.get(RouteGet.Request(family: .ipv4, dst: IPAddress(v4: 127, 0, 0, 1))) {
        case .success(.route): return .supports("rtnetlink RTM_GETROUTE")
        case .success(.failed(let e)): return .unsupported("a route lookup of 127.0.0.1 failed: \(ErrnoName.name(e))")
        case .failure(let why): return .unsupported(why.description)
        }
    }
}
