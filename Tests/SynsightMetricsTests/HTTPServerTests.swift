import Foundation
import Glibc
import SynsightModel
import Testing
@testable import SynsightMetrics

/// A blocking loopback client with a receive timeout, written on sockets so
/// it can misbehave (send half a request, never read).
final class Client {
    let fd: Int32

    init(port: UInt16, v6: Bool = false, timeoutMs: Int = 5000) throws {
        fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int((timeoutMs % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc: Int32
        if v6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            inet_pton(AF_INET6, "::1", &sa.sin6_addr)
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        if rc != 0 {
            let e = errno
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: e) ?? .EIO)
        }
    }

    deinit { close(fd) }

    func send(_ s: String) {
        let b = Array(s.utf8)
        _ = b.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until the server closes (or the timeout); returns what came and whether it closed.
    func readAll() -> (bytes: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { out += buf[0..<n]; continue }
            return (out, n == 0 || (n < 0 && errno == ECONNRESET))
        }
    }

    /// Status code and body of a complete response.
    static func parse(_ bytes: [UInt8]) -> (status: Int, headers: String, body: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return (0, text, []) }
        let head = String(text[..<end.lowerBound])
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        let bodyStart = text.utf8.distance(from: text.startIndex, to: end.upperBound)
        return (status, head, Array(bytes[bodyStart...]))
    }

    static func request(port: UInt16, _ raw: String, v6: Bool = false) throws -> (status: Int, headers: String, body: [UInt8]) {
        let c = try Client(port: port, v6: v6)
        c.send(raw)
        return parse(c.readAll().bytes)
    }
}

/// 127.0.0.1 and a port; 0 (which --metrics-address refuses) asks the kernel for a free one.
func loopback(_ port: UInt16 = 0) -> MetricsAddress {
    MetricsAddress(host: .v4([127, 0, 0, 1]), port: port, hostText: "127.0.0.1")
}

@Suite("metrics: HTTP request parsing and responses")
struct HTTPExchangeTests {
    @Test("complete heads with CRLF or LF, query strings ignored")
    func heads() {
        #expect(HTTPExchange.parseHead(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) == .request(method: "GET", path: "/metrics"))
        #expect(HTTPExchange.parseHead(Array("GET /metrics?x=1 HTTP/1.0\n\n".utf8)) == .request(method: "GET", path: "/metrics"))
        #expect(HTTPExchange.parseHead(Array("HEAD / HTTP/1.1\r\n\r\n".utf8)) == .request(method: "HEAD", path: "/"))
        #expect(HTTPExchange.parseHead(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)) == .incomplete)
        #expect(HTTPExchange.parseHead([]) == .incomplete)
    }

    @Test("malformed and oversized heads",
          arguments: ["get /metrics HTTP/1.1\r\n\r\n", "GET /metrics\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n",
                      "GET metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/2\r\n\r\n", "\r\n\r\n", "GET /metrics HTTP/1.1 x\r\n\r\n"])
    func malformed(head: String) {
        #expect(HTTPExchange.parseHead(Array(head.utf8)) == .malformed)
        let r = Client.parse(HTTPExchange.response(to: .malformed) { [] })
        #expect(r.status == 400)
    }

    @Test func tooLarge() {
        let head = "GET /metrics HTTP/1.1\r\n" + String(repeating: "X-Pad: 0123456789\r\n", count: 600)
        #expect(HTTPExchange.parseHead(Array(head.utf8)) == .tooLarge)
        #expect(Client.parse(HTTPExchange.response(to: .tooLarge) { [] }).status == 431)
    }

    @Test("GET /metrics: 200 with the exposition content type; HEAD: no body; other paths 404; other methods 405")
    func responses() {
        let body = Array("synsight_x 1\n".utf8)
        let ok = Client.parse(HTTPExchange.response(to: .request(method: "GET", path: "/metrics")) { body })
        #expect(ok.status == 200)
        #expect(ok.headers.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"))
        #expect(ok.headers.contains("Content-Length: \(body.count)"))
        #expect(ok.body == body)
        let head = Client.parse(HTTPExchange.response(to: .request(method: "HEAD", path: "/metrics")) { body })
        #expect(head.status == 200 && head.body.isEmpty && head.headers.contains("Content-Length: \(body.count)"))
        var rendered = false
        let notFound = Client.parse(HTTPExchange.response(to: .request(method: "GET", path: "/")) { rendered = true; return body })
        #expect(notFound.status == 404 && !rendered)
        let post = Client.parse(HTTPExchange.response(to: .request(method: "POST", path: "/metrics")) { rendered = true; return body })
        #expect(post.status == 405 && !rendered)
        #expect(post.headers.contains("Allow: GET, HEAD"))
    }
}

@Suite("metrics: the HTTP server on real loopback sockets", .serialized)
struct HTTPServerTests {
    func server(limits: MetricsHTTPServer.Limits = .init(), _ addr: MetricsAddress = loopback(),
                render: @escaping @Sendable () -> [UInt8] = { Array("synsight_test 1\n".utf8) }) throws -> MetricsHTTPServer {
        let s = try MetricsHTTPServer.bind(addr)
        s.start(limits: limits, render: render)
        return s
    }

    @Test("GET /metrics over IPv4 and IPv6 loopback; 404 and 405 otherwise")
    func serves() throws {
        let s = try server()
        defer { s.stop() }
        #expect(s.address.port != 0)
        let r = try Client.request(port: s.address.port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(r.status == 200)
        #expect(String(decoding: r.body, as: UTF8.self) == "synsight_test 1\n")
        #expect(try Client.request(port: s.address.port, "GET /other HTTP/1.1\r\n\r\n").status == 404)
        #expect(try Client.request(port: s.address.port, "DELETE /metrics HTTP/1.1\r\n\r\n").status == 405)
        #expect(try Client.request(port: s.address.port, "garbage\r\n\r\n").status == 400)

        let s6 = try server(MetricsAddress(host: .v6([UInt8](repeating: 0, count: 15) + [1]), port: 0, hostText: "::1"))
        defer { s6.stop() }
        #expect(try Client.request(port: s6.address.port, "GET /metrics HTTP/1.1\r\n\r\n", v6: true).status == 200)
    }

    @Test("a client that sends half a request, or nothing, is cut off at the deadline and never delays another scrape")
    func slowClients() throws {
        var limits = MetricsHTTPServer.Limits()
        limits.headTimeoutMs = 600
        let s = try server(limits: limits)
        defer { s.stop() }
        let slow = try Client(port: s.address.port)
        slow.send("GET /metrics HTTP/1.1\r\nHost: a")
        let silent = try Client(port: s.address.port)

        let t0 = Date()
        let r = try Client.request(port: s.address.port, "GET /metrics HTTP/1.1\r\n\r\n")
        #expect(r.status == 200)
        #expect(Date().timeIntervalSince(t0) < 0.5, "a scrape waited behind a slow client")

        let (bytes, closed) = slow.readAll()
        #expect(closed && bytes.isEmpty, "the slow client was not closed")
        let waited = Date().timeIntervalSince(t0)
        #expect(waited > 0.4 && waited < 3, "closed after \(waited) s, deadline 0.6 s")
        #expect(silent.readAll().closed)
    }

    @Test("a client that never reads a large response is dropped at the write deadline; others are served meanwhile")
    func nonReadingClient() throws {
        var limits = MetricsHTTPServer.Limits()
        limits.writeTimeoutMs = 700
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 32 << 20)
        let s = try server(limits: limits) { big }
        defer { s.stop() }
        let stuck = try Client(port: s.address.port)
        stuck.send("GET /metrics HTTP/1.1\r\n\r\n")
        usleep(100_000)
        let t0 = Date()
        let other = try Client(port: s.address.port)
        other.send("GET /metrics HTTP/1.1\r\n\r\n")
        let r = Client.parse(other.readAll().bytes)
        #expect(r.status == 200 && r.body.count == big.count)
        #expect(Date().timeIntervalSince(t0) < 5)
        // Past the stuck client's deadline (it has read nothing so far), it
        // gets only what the socket buffers held, then a close.
        usleep(1_200_000)
        let (bytes, closed) = stuck.readAll()
        #expect(closed)
        #expect(bytes.count < big.count, "the whole body fitted in socket buffers: the test proves nothing")
    }

    @Test("all slots taken by idle clients: a new connection closes the oldest idle one and is served at once")
    func connectionCap() throws {
        var limits = MetricsHTTPServer.Limits()
        limits.maxConnections = 3
        let s = try server(limits: limits)
        defer { s.stop() }
        let oldest = try Client(port: s.address.port, timeoutMs: 3000)
        usleep(50_000)
        let partial = try Client(port: s.address.port, timeoutMs: 300)
        partial.send("GET /metrics HTTP/1.1\r\nHo")
        usleep(50_000)
        let third = try Client(port: s.address.port, timeoutMs: 300)
        usleep(100_000)

        let t0 = Date()
        let r = try Client.request(port: s.address.port, "GET /metrics HTTP/1.1\r\n\r\n")
        let waited = Date().timeIntervalSince(t0)
        #expect(r.status == 200 && String(decoding: r.body, as: UTF8.self) == "synsight_test 1\n")
        // The head deadline is 5 s: an answer well before it means no slot was waited for.
        #expect(waited < 2, "the scrape waited \(waited) s for a slot")
        let (bytes, closed) = oldest.readAll()
        #expect(closed && bytes.isEmpty, "the oldest idle connection was not the one closed")
        #expect(!partial.readAll().closed, "a younger connection was closed instead of the oldest")
        #expect(!third.readAll().closed, "a younger connection was closed instead of the oldest")
    }

    @Test("500 idle connections and 50 half requests at once: a scrape is still answered within a second or two")
    func idleBurst() throws {
        var lim = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        if lim.rlim_cur < 2048 {
            lim.rlim_cur = min(lim.rlim_max, 2048)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        }
        let s = try server()  // default limits: 5 s to send a request head
        defer { s.stop() }
        let idle = try IdleClients(port: s.address.port, count: 500)
        let halves = try IdleClients(port: s.address.port, count: 50, sending: "GET /metrics HTTP/1.1\r\nHost: x\r\n")
        #expect(idle.fds.count == 500 && halves.fds.count == 50)

        for attempt in 0..<3 {
            let t0 = Date()
            let r = try Client.request(port: s.address.port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let waited = Date().timeIntervalSince(t0)
            #expect(r.status == 200, "scrape \(attempt): \(r.headers)")
            #expect(String(decoding: r.body, as: UTF8.self) == "synsight_test 1\n")
            // Before, such a burst delayed scrapes by 5 to 15 s (head deadlines
            // of 16 slots in a row); a second or two leaves room for a loaded machine.
            #expect(waited < 2, "scrape \(attempt) took \(waited) s behind idle clients")
        }
        // The idle connections were closed to make room, oldest first.
        #expect(idle.closedCount() > 400, "the server kept the idle connections open")
    }

    @Test("stop() ends the thread and frees the port; it can be bound again")
    func stopFreesPort() throws {
        let s = try server()
        let port = s.address.port
        #expect(try Client.request(port: port, "GET /metrics HTTP/1.1\r\n\r\n").status == 200)
        s.stop()
        s.stop()
        #expect(throws: (any Error).self) { try Client(port: port) }
        let again = try server(loopback(port))
        again.stop()
    }

    @Test("port in use: the error names the port and suggests a free one")
    func portInUse() throws {
        let s = try server()
        defer { s.stop() }
        do {
            _ = try MetricsHTTPServer.bind(loopback(s.address.port))
            Issue.record("binding a port in use succeeded")
        } catch {
            let m = error.description
            #expect(m.contains("cannot serve metrics on 127.0.0.1:\(s.address.port)"), "\(m)")
            #expect(m.contains("port \(s.address.port) is already in use"), "\(m)")
            let suggested = m.range(of: #"--metrics-address 127\.0\.0\.1:(\d+) \(free now\)"#, options: .regularExpression)
            try #require(suggested != nil, "no free port suggested: \(m)")
            let port = UInt16(m[suggested!].split(separator: ":")[1].split(separator: " ")[0])!
            #expect(port != s.address.port)
            let other = try MetricsHTTPServer.bind(loopback(port))
            other.stop()
        }
    }

    @Test("an address not on this host, and the permission message")
    func otherErrors() {
        // 192.0.2.1 is TEST-NET-1: never configured on a host.
        #expect(throws: MetricsServerError.self) { try MetricsHTTPServer.bind(try MetricsAddress.parse("192.0.2.1:9464")) }
        do {
            _ = try MetricsHTTPServer.bind(try MetricsAddress.parse("192.0.2.1:9464"))
        } catch {
            #expect("\(error)".contains("192.0.2.1 is not an address of this host"), "\(error)")
        }
        let m = MetricsHTTPServer.explain(EACCES, try! MetricsAddress.parse("80"))
        #expect(m.contains("CAP_NET_BIND_SERVICE") && m.contains("1024"))
    }
}

/// Many non-blocking client sockets that connect to a loopback port and then
/// sit idle (or send a fixed prefix and stall). connect() is not waited for,
/// so creating them never blocks on a full backlog.
final class IdleClients {
    var fds: [Int32] = []

    init(port: UInt16, count: Int, sending prefix: String? = nil) throws {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            fds.append(fd)
            let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if rc != 0 && errno != EINPROGRESS { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
        guard let prefix else { return }
        let bytes = Array(prefix.utf8)
        for fd in fds {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&p, 1, 2000)
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }

    deinit { for fd in fds { close(fd) } }

    /// How many the server has closed (EOF or reset), waiting up to 3 s for the first.
    func closedCount() -> Int {
        var polls = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        _ = poll(&polls, nfds_t(polls.count), 3000)
        var n = 0
        var byte: UInt8 = 0
        for p in polls where p.revents != 0 {
            let r = recv(p.fd, &byte, 1, Int32(MSG_DONTWAIT))
            if r == 0 || (r < 0 && errno != EAGAIN) { n += 1 }
        }
        return n
    }
}
