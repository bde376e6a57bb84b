import Glibc
import Synchronization

// The HTTP side of `--metrics-address`: one endpoint, `GET /metrics`, for a
// Prometheus scraper. Hand-written on poll(2) and non-blocking sockets
// because SwiftNIO (or a framework on it) would add a large build for one
// GET; what matters here is small and testable: parse one request head,
// answer, close. Slow or half-open clients are bounded by deadlines and a
// connection cap that closes the oldest idle connection to admit a new one
// (ServeLoop.swift), and the server runs on a thread of its own, so neither
// idle clients nor a scraper can stall a scrape or the tracing loop.

/// Request parsing and responses, without sockets.
public enum HTTPExchange {
    public static let maxHeadBytes = 8192
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public enum Head: Equatable, Sendable {
        /// No blank line yet.
        case incomplete
        case tooLarge
        case malformed
        case request(method: String, path: String)
    }

    /// Looks for a complete request head (ended by CRLF CRLF, or LF LF) in `bytes`.
    public static func parseHead(_ bytes: [UInt8]) -> Head {
        guard let end = headEnd(bytes) else { return bytes.count >= maxHeadBytes ? .tooLarge : .incomplete }
        let lineEnd = bytes[..<end].firstIndex(of: 0x0A) ?? end
        var line = bytes[..<lineEnd]
        if line.last == 0x0D { line = line.dropLast() }
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ (0x41...0x5A).contains($0) }),
              parts[1].first == UInt8(ascii: "/") || parts[1].elementsEqual("*".utf8),
              parts[2].starts(with: "HTTP/1.".utf8) else { return .malformed }
        let method = String(decoding: parts[0], as: UTF8.self)
        var target = parts[1]
        if let q = target.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            target = target[..<q]
        }
        return .request(method: method, path: String(decoding: target, as: UTF8.self))
    }

    static func headEnd(_ b: [UInt8]) -> Int? {
        var i = 0
        while i < b.count {
            if b[i] == 0x0A {
                if i + 1 < b.count && b[i + 1] == 0x0A { return i }
                if i + 2 < b.count && b[i + 1] == 0x0D && b[i + 2] == 0x0A { return i }
            }
            i += 1
        }
        return nil
    }

    /// The whole response to `head`; `render` produces the metrics body.
    public static func response(to head: Head, render: () -> [UInt8]) -> [UInt8] {
        switch head {
        case .incomplete, .malformed:
            return message(400, "Bad Request", "bad request: expected `GET /metrics HTTP/1.1`\n")
        case .tooLarge:
            return message(431, "Request Header Fields Too Large", "request head larger than \(maxHeadBytes) bytes\n")
        case let .request(method, path):
            guard path == "/metrics" else {
                return message(404, "Not Found", "not found: synsight serves only /metrics\n")
            }
            guard method == "GET" || method == "HEAD" else {
                return message(405, "Method Not Allowed", "method \(method) not allowed: use GET\n",
                               extra: "Allow: GET, HEAD\r\n")
            }
            let body = render()
            var out = Array(("HTTP/1.1 200 OK\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
                + "Cache-Control: no-store\r\nConnection: close\r\n\r\n").utf8)
            if method == "GET" { out += body }
            return out
        }
    }

    static func message(_ code: Int, _ phrase: String, _ body: String, extra: String = "") -> [UInt8] {
        Array(("HTTP/1.1 \(code) \(phrase)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
            + extra + "Connection: close\r\n\r\n" + body).utf8)
    }
}

public struct MetricsServerError: Error, CustomStringConvertible {
    public var description: String
}

/// The listening socket and its serving thread.
public final class MetricsHTTPServer {
    public struct Limits: Sendable {
        /// A client must send its whole request head within this time.
        public var headTimeoutMs: Int64 = 5000
        /// ... and read the whole response within this time.
        public var writeTimeoutMs: Int64 = 10_000
        /// After the response, how long to wait for the client to close.
        public var lingerMs: Int64 = 1000
        /// Connections open at once. A new connection beyond it closes the
        /// oldest one still waiting for its client (see ServeLoop), so idle
        /// clients can never keep a scraper out.
        public var maxConnections = 64

        public init() {}
    }

    static let listenBacklog: Int32 = 1024

    /// The bound address (the real port when 0 was asked for).
    public let address: MetricsAddress
    let listenFD: Int32
    let wakeFD: Int32
    let wakeWriteFD: Int32
    var thread: pthread_t?
    var closed = false

    init(address: MetricsAddress, listenFD: Int32, wakeFD: Int32, wakeWriteFD: Int32) {
        self.address = address
        self.listenFD = listenFD
        self.wakeFD = wakeFD
        self.wakeWriteFD = wakeWriteFD
    }

    /// Non-blocking and close-on-exec (synsight runs `nft`: no socket of
    /// ours may leak into it).
    static func setFlags(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    }

    deinit { stop() }

    /// Binds and listens (so errors surface before tracing starts).
    public static func bind(_ addr: MetricsAddress) throws(MetricsServerError) -> MetricsHTTPServer {
        let fd = socket(addr.isV6 ? AF_INET6 : AF_INET,
                        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw MetricsServerError(description: "cannot serve metrics on \(addr): socket: \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        // Restarting right after a stop must not fail on TIME_WAIT; Linux
        // still refuses a port another socket listens on.
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if addr.isV6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        var err = bindSocket(fd, addr)
        // A deep backlog: a burst of connections waits there (the serving
        // thread drains it at once) instead of having its SYNs dropped and
        // retried a second or more later. The kernel caps it at somaxconn.
        if err == 0 && listen(fd, listenBacklog) != 0 { err = errno }
        guard err == 0 else {
            close(fd)
            throw MetricsServerError(description: explain(err, addr))
        }
        var bound = addr
        if addr.port == 0 { bound = addr.with(port: localPort(fd)) }
        // A pipe wakes the serving thread for stop() (Glibc's module has no eventfd).
        var wake: [Int32] = [-1, -1]
        guard pipe(&wake) == 0 else {
            close(fd)
            throw MetricsServerError(description: "cannot serve metrics: pipe: \(String(cString: strerror(errno)))")
        }
        for f in wake { setFlags(f) }
        return MetricsHTTPServer(address: bound, listenFD: fd, wakeFD: wake[0], wakeWriteFD: wake[1])
    }

    static func bindSocket(_ fd: Int32, _ addr: MetricsAddress) -> Int32 {
        let rc: Int32
        switch addr.host {
        case .v4(let b):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = addr.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { for i in 0..<4 { $0[i] = b[i] } }
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let b):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = addr.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { for i in 0..<16 { $0[i] = b[i] } }
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        return rc == 0 ? 0 : errno
    }

    static func localPort(_ fd: Int32) -> UInt16 {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        // sin_port and sin6_port are at the same offset (2).
        return withUnsafeBytes(of: &ss) { UInt16(bigEndian: $0.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
    }

    /// One line: what failed, why, what to do.
    static func explain(_ err: Int32, _ addr: MetricsAddress) -> String {
        let head = "cannot serve metrics on \(addr)"
        switch err {
        case EADDRINUSE:
            var hint = "choose another port with --metrics-address"
            if let free = freePort(near: addr) {
                hint += ", e.g. --metrics-address \(addr.with(port: free)) (free now)"
            }
            return "\(head): port \(addr.port) is already in use (another process listens on it): \(hint)"
        case EACCES, EPERM:
            return "\(head): permission denied: ports below net.ipv4.ip_unprivileged_port_start need CAP_NET_BIND_SERVICE; "
                + "use a port of 1024 or more (e.g. 9464) or grant the capability"
        case EADDRNOTAVAIL:
            return "\(head): \(addr.hostText) is not an address of this host: use 127.0.0.1, 0.0.0.0, [::1], [::] "
                + "or an address shown by `ip addr`"
        case EAFNOSUPPORT:
            return "\(head): IPv6 is not available on this host: use an IPv4 address (e.g. 127.0.0.1:\(addr.port))"
        default:
            return "\(head): \(String(cString: strerror(err)))"
        }
    }

    /// A port next to `addr`'s that binds right now (for the error message).
    static func freePort(near addr: MetricsAddress) -> UInt16? {
        var candidate = Int(addr.port)
        for _ in 0..<20 {
            candidate = candidate >= 65535 ? 1024 : candidate + 1
            let probe = addr.with(port: UInt16(candidate))
            let fd = socket(addr.isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return nil }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if addr.isV6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
            let ok = bindSocket(fd, probe) == 0
            close(fd)
            if ok { return UInt16(candidate) }
        }
        return nil
    }

    /// Starts the serving thread. `render` runs on it for every scrape.
    public func start(limits: Limits = Limits(), render: @escaping @Sendable () -> [UInt8]) {
        precondition(thread == nil, "server already started")
        let loop = ServeLoop(listenFD: listenFD, wakeFD: wakeFD, limits: limits, render: render)
        let ctx = Unmanaged.passRetained(loop).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { ctx in
            let loop = Unmanaged<ServeLoop>.fromOpaque(ctx!).takeRetainedValue()
            // Signals (Ctrl-C, SIGTERM, SIGHUP) are for the tracing thread.
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_BLOCK, &all, nil)
            loop.run()
            return nil
        }, ctx)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        thread = t
    }

    /// Stops the thread (closing open connections) and the socket. Idempotent.
    public func stop() {
        if let t = thread {
            var one: UInt8 = 1
            _ = write(wakeWriteFD, &one, 1)
            pthread_join(t, nil)
            thread = nil
        }
        if !closed {
            close(listenFD)
            close(wakeFD)
            close(wakeWriteFD)
            closed = true
        }
    }
}
