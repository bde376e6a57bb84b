import Glibc

/// The serving thread of `MetricsHTTPServer`: one poll(2) loop over the
/// listening socket and every open connection. Each connection is a small
/// state machine (read the request head, write the answer, wait for the
/// client's close) with a deadline of its own; sockets are non-blocking and a
/// connection only advances when poll says it can, so no client ever waits
/// for another.
///
/// Idle clients are bounded two ways: each must send its request head within
/// `headTimeoutMs`, and when `maxConnections` are open, a new connection
/// closes the oldest one that is waiting for its client (no complete request
/// yet; else answered and lingering). The listening socket is always polled
/// and its backlog drained, so however many idle connections arrive, a
/// scraper's connection is accepted at once and answered in the next round.
final class ServeLoop: Sendable {
    let listenFD: Int32
    let wakeFD: Int32
    let limits: MetricsHTTPServer.Limits
    let render: @Sendable () -> [UInt8]

    /// How long accepting pauses when the process is out of descriptors and
    /// no connection can be closed to free one.
    static let descriptorPauseMs: Int64 = 100

    init(listenFD: Int32, wakeFD: Int32, limits: MetricsHTTPServer.Limits, render: @escaping @Sendable () -> [UInt8]) {
        self.listenFD = listenFD
        self.wakeFD = wakeFD
        self.limits = limits
        self.render = render
    }

    enum Phase { case reading, writing, draining }

    struct Connection {
        var fd: Int32
        var phase: Phase = .reading
        var input: [UInt8] = []
        var output: [UInt8] = []
        var sent = 0
        var deadline: Int64
    }

    /// The loop's state, owned by the serving thread. `conns` is in accept
    /// order: the first is the oldest.
    struct State {
        var conns: [Connection] = []
        /// accept(2) ran out of descriptors with nothing to close: not before then.
        var acceptPausedUntil: Int64 = 0
    }

    static func nowMs() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1000 + Int64(t.tv_nsec) / 1_000_000
    }

    var capacity: Int { max(1, limits.maxConnections) }

    func run() {
        var state = State()
        var fds: [pollfd] = []
        while true {
            let now = Self.nowMs()
            let accepting = now >= state.acceptPausedUntil
            let timeout = pollSet(&fds, state, accepting: accepting, now: now)
            let n = poll(&fds, nfds_t(fds.count), Int32(timeout))
            if n < 0 && errno != EINTR { break }
            if fds[0].revents != 0 { break }
            let later = Self.nowMs()
            advance(&state.conns, revents: fds[2...].map(\.revents), now: later)
            if accepting && fds[1].revents & Int16(POLLIN) != 0 { acceptPending(&state, now: later) }
        }
        for c in state.conns { close(c.fd) }
    }

    /// Fills `fds` (wake pipe, listening socket, then each connection) and
    /// returns the poll timeout: the nearest deadline, at most a second.
    func pollSet(_ fds: inout [pollfd], _ s: State, accepting: Bool, now: Int64) -> Int64 {
        fds.removeAll(keepingCapacity: true)
        fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
        fds.append(pollfd(fd: accepting ? listenFD : -1, events: Int16(POLLIN), revents: 0))
        var timeout = accepting ? Int64(1000) : max(0, s.acceptPausedUntil - now)
        for c in s.conns {
            fds.append(pollfd(fd: c.fd, events: Int16(c.phase == .writing ? POLLOUT : POLLIN), revents: 0))
            timeout = min(timeout, max(0, c.deadline - now))
        }
        return timeout
    }

    /// Steps every connection poll woke and closes the finished and the late.
    func advance(_ conns: inout [Connection], revents: [Int16], now: Int64) {
        var next: [Connection] = []
        next.reserveCapacity(conns.count + 1)
        for (i, var c) in conns.enumerated() {
            var open = true
            if revents[i] != 0 { open = step(&c, now: now) }
            if open && now >= c.deadline { open = false }  // too slow, or half-open
            if open { next.append(c) } else { close(c.fd) }
        }
        conns = next
    }

    /// Accepts what waits in the backlog, at most one cap's worth per round
    /// so the open connections are served in between.
    func acceptPending(_ s: inout State, now: Int64) {
        for _ in 0..<capacity {
            let fd = accept(listenFD, nil, nil)
            if fd >= 0 {
                MetricsHTTPServer.setFlags(fd)
                admit(fd, &s.conns, now: now)
                continue
            }
            switch errno {
            case EINTR, ECONNABORTED, EPROTO:
                continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors: free the oldest idle one, else wait a little
                // (the pending connection stays in the backlog).
                if Self.closeOldestIdle(&s.conns) { continue }
                s.acceptPausedUntil = now + Self.descriptorPauseMs
                return
            default:
                return  // EAGAIN: the backlog is empty
            }
        }
    }

    /// Opens a slot for `fd`, closing the oldest idle connection when all are taken.
    func admit(_ fd: Int32, _ conns: inout [Connection], now: Int64) {
        if conns.count >= capacity && !Self.closeOldestIdle(&conns) {
            close(fd)  // every slot is sending an answer; this client may retry
            return
        }
        conns.append(Connection(fd: fd, deadline: now + limits.headTimeoutMs))
    }

    /// Closes the oldest connection waiting for its client: one without a
    /// complete request first, else one answered and lingering. False when
    /// every connection is still being sent its answer.
    static func closeOldestIdle(_ conns: inout [Connection]) -> Bool {
        guard let i = conns.firstIndex(where: { $0.phase == .reading })
            ?? conns.firstIndex(where: { $0.phase == .draining }) else { return false }
        close(conns[i].fd)
        conns.remove(at: i)
        return true
    }

    /// Advances one connection; false when it is finished or broken.
    func step(_ c: inout Connection, now: Int64) -> Bool {
        var buf = [UInt8](repeating: 0, count: 4096)
        switch c.phase {
        case .reading:
            let n = buf.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { return errno == EAGAIN || errno == EINTR }
            if n == 0 { return false }  // closed before a whole request
            c.input += buf[0..<n]
            let head = HTTPExchange.parseHead(c.input)
            if head == .incomplete { return true }
            c.output = HTTPExchange.response(to: head, render: render)
            c.input = []
            c.phase = .writing
            c.deadline = now + limits.writeTimeoutMs
            return write(&c, now: now)
        case .writing:
            return write(&c, now: now)
        case .draining:
            // Read (and drop) until the client closes, so closing never
            // resets a connection whose response is still in flight. A
            // bounded amount per round: a client that keeps sending cannot
            // hold the thread.
            for _ in 0..<16 {
                let n = buf.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { continue }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { return true }
                return false
            }
            return true
        }
    }

    func write(_ c: inout Connection, now: Int64) -> Bool {
        while c.sent < c.output.count {
            let n = c.output.withUnsafeBytes { send(c.fd, $0.baseAddress! + c.sent, $0.count - c.sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 { return errno == EAGAIN || errno == EINTR }
            c.sent += n
        }
        shutdown(c.fd, Int32(SHUT_WR))
        c.phase = .draining
        c.deadline = now + limits.lingerMs
        return true
    }
}
