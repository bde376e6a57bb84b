import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel

/// Reads the route state behind rp_filter and no-route drops in the drop's
/// network namespace, on one thread of its own (after NftablesReader): the
/// rp_filter sysctls (`/proc/sys/net/ipv4/conf/{all,<dev>}/rp_filter`, which
/// show the namespace of the reading thread) and one RTM_GETROUTE exchange
/// (RouteGet), what `ip route get` does, in-process (no `ip` spawned).
///
/// Threads: `pin` runs on the ring-buffer thread for every decoded packet
/// drop: a dictionary probe for the reasons that want a lookup, then, for
/// those, an open of the namespace when it is named in /run/netns (no /proc
/// walk, no netlink there) and a queued request; the reader thread enters
/// the namespace, reads, and comes back. `lookup` runs on the pipeline
/// thread and waits at most `timeoutNs`. The lookup is made at once, not
/// when the record is decided: a router namespace torn down right after the
/// drop still gives its answer. Namespaces are unpinned `idleNs` after their
/// last drop; answers are kept `keepNs` (one per attempt: the engine reports
/// an attempt's first drop only).
public final class RouteReader: DropRouteSource, @unchecked Sendable {
    struct Entry {
        var findings: DropRouteFindings?
        var queuedAt: UInt64
    }

    /// Reason values (this kernel's) whose drops want a lookup.
    let codes: [UInt32: DropCause]
    let lock = ConditionLock()
    var entries: [DropRouteQuery: Entry] = [:]
    var queue: [DropRouteQuery] = []
    var pins: [UInt32: (fd: Int32, lastWanted: UInt64, scannedAt: UInt64)] = [:]
    var stopping = false
    var worker: WorkerThread?
    var workerFailure: String?
    let timeoutNs: UInt64
    let idleNs: UInt64 = 10_000_000_000
    let keepNs: UInt64 = 10_000_000_000
    static let maxPins = 64
    static let maxEntries = 4096
    static let maxQueued = 256
    /// Entering a namespace and coming back (synsight's own: `ownNetns`).
    let visit = NetnsVisit()
    public var ownNetns: UInt32? { visit.ownNetns }

    public init(reasons: DropReasonNames, timeoutMs: Int = 1000) {
        codes = reasons.codes(of: [.rpFilter, .noRoute])
        timeoutNs = UInt64(max(1, timeoutMs)) * 1_000_000
    }

    deinit {
        stop()
        for pin in pins.values where pin.fd >= 0 { close(pin.fd) }
        visit.close()
    }

    public func pin(_ drop: PacketDrop) {
        guard let cause = codes[drop.reasonCode], let q = DropRouteQuery.of(drop, cause: cause) else { return }
        let now = ConditionLock.now()
        let scan = lock.withLock { () -> Bool in
            guard entries[q] == nil, q.netns != 0, q.netns != ownNetns else { return false }
            guard let pin = pins[q.netns] else { return true }
            return pin.fd < 0 && pin.scannedAt &+ 100_000_000 <= now
        }
        // A named namespace is opened here and now (the reader thread may be
        // woken too late); others through /proc, by the reader.
        let fd = scan ? NetnsPaths.openNamed(q.netns) : -1
        lock.withLock {
            if scan || pins[q.netns] != nil { keepPinLocked(q.netns, fd: fd, now: now, scanned: scan) }
            wantLocked(q, now: now)
        }
    }

    public func lookup(_ q: DropRouteQuery) -> DropRouteFindings {
        let deadline = ConditionLock.now() &+ timeoutNs
        return lock.withLock {
            if let failure = workerFailure { return DropRouteFindings(unavailable: [failure]) }
            wantLocked(q, now: ConditionLock.now())
            while true {
                if let f = entries[q]?.findings { return f }
                if !lock.wait(until: deadline) {
                    return DropRouteFindings(unavailable: ["the route lookup did not finish within \(timeoutNs / 1_000_000) ms"
                        + " (\(queue.count) other lookup\(queue.count == 1 ? "" : "s") queued)"])
                }
            }
        }
    }

    /// Stops the reader thread (a lookup in progress finishes first).
    public func stop() {
        let t: WorkerThread? = lock.withLock {
            stopping = true
            lock.broadcast()
            return worker
        }
        t?.join()
    }

    func keepPinLocked(_ netns: UInt32, fd: Int32, now: UInt64, scanned: Bool) {
        var pin = pins[netns] ?? (fd: -1, lastWanted: now, scannedAt: 0)
        pin.lastWanted = now
        if scanned { pin.scannedAt = now }
        if fd >= 0 { if pin.fd < 0 { pin.fd = fd } else { close(fd) } }
        pins[netns] = pin
    }

    func wantLocked(_ q: DropRouteQuery, now: UInt64) {
        guard entries[q] == nil, !stopping else { return }
        if queue.count >= Self.maxQueued {
            entries[q] = Entry(findings: DropRouteFindings(unavailable: [
                "\(Self.maxQueued) route lookups were already queued (a drop storm): this one was not made"]), queuedAt: now)
            return
        }
        entries[q] = Entry(queuedAt: now)
        queue.append(q)
        startLocked()
        lock.broadcast()
    }

    func startLocked() {
        guard worker == nil, workerFailure == nil else { return }
        do {
            worker = try WorkerThread(name: "synsight-route") { [unowned self] in self.loop() }
        } catch {
            workerFailure = "cannot start the route reader: \(error)"
            for q in queue { entries[q]?.findings = DropRouteFindings(unavailable: [workerFailure!]) }
            queue.removeAll()
        }
    }

    func loop() {
        while let q = next() {
            let fd = lock.withLock { pins[q.netns]?.fd ?? -1 }
            let (findings, opened) = read(q, fd: fd)
            lock.withLock {
                let now = ConditionLock.now()
                if opened >= 0 && opened != fd {
                    if (pins[q.netns]?.fd ?? -1) < 0 {
                        keepPinLocked(q.netns, fd: opened, now: now, scanned: false)
                    } else {
                        close(opened)
                    }
                }
                entries[q]?.findings = findings
                evictLocked(now: now)
                lock.broadcast()
            }
        }
    }

    func next() -> DropRouteQuery? {
        lock.withLock {
            while queue.isEmpty && !stopping { lock.wait() }
            return stopping ? nil : queue.removeFirst()
        }
    }

    /// Forgets answers older than `keepNs` and unpins idle namespaces (the
    /// longest idle first beyond `maxPins`).
    func evictLocked(now: UInt64) {
        if entries.count > Self.maxEntries / 2 {
            entries = entries.filter { $0.value.findings == nil || $0.value.queuedAt &+ keepNs > now }
            if entries.count >= Self.maxEntries { entries = entries.filter { $0.value.findings == nil } }
        }
        let queued = Set(queue.map(\.netns))
        let idle = NetnsVisit.evictable(pins.mapValues(\.lastWanted), now: now, idleNs: idleNs, maxPins: Self.maxPins) {
            queued.contains($0)
        }
        for ns in idle {
            if let fd = pins.removeValue(forKey: ns)?.fd, fd >= 0 { close(fd) }
        }
    }

    /// On the reader thread: enters the namespace (opening it through /proc
    /// when it was not pinned), reads, comes back. Returns the fd to keep.
    func read(_ q: DropRouteQuery, fd: Int32) -> (DropRouteFindings, Int32) {
        let (result, kept, stranded) = visit.run(q.netns, fd: fd) { Self.readHere(q) }
        if stranded {
            // Stranded in another namespace: every later read would be wrong. Refuse them.
            lock.withLock { workerFailure = "the route reader could not return to its own network namespace" }
        }
        switch result {
        case .success(let findings): return (findings, kept)
        case .failure(.gone):
            return (DropRouteFindings(unavailable: ["\(NetnsVisit.Failure.gone(q.netns).description): its routes and sysctls cannot be read"]), kept)
        case .failure(let why): return (DropRouteFindings(unavailable: [why.description]), kept)
        }
    }

    /// In the current thread's namespace.
    static func readHere(_ q: DropRouteQuery) -> DropRouteFindings {
        var out = DropRouteFindings()
        if q.purpose == .reversePath {
            switch rpFilterSysctls(device: q.ifname) {
            case .success(let s): out.rpFilter = s
            case .failure(let why): out.unavailable.append(why.description)
            }
        }
        switch RouteSocket.get(q.lookup) {
        case .success(var answer):
            // rp_filter's lookup is from the packet's destination; an output
            // lookup refuses a source that is not local (a forwarded packet's):
            // made again without it.
            var without = false
            if q.purpose == .reversePath, q.lookup.src != nil, case .failed(let e) = answer, e == ENETUNREACH || e == EINVAL {
                var plain = q.lookup
                plain.src = nil
                if case .success(let again) = RouteSocket.get(plain), case .route = again {
                    answer = again
                    without = true
                }
            }
            var result = RouteLookupResult(request: q.lookup, answer: answer, withoutSource: without)
            if case .route(let r) = answer, let oif = r.oif { result.oifName = interfaceName(oif) }
            out.route = result
        case .failure(let why):
            out.unavailable.append(why.description)
        }
        return out
    }

    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    /// `all` and the device's rp_filter (the reading thread's namespace).
    static func rpFilterSysctls(device: String) -> Result<RPFilterSysctls, ReadError> {
        guard !device.isEmpty, !device.contains("/"), device != ".", device != ".." else {
            return .failure(ReadError(description: "the drop has no interface: its rp_filter sysctl cannot be read"))
        }
        func value(_ dev: String) -> Int? {
            ProcFS.read("/proc/sys/net/ipv4/conf/\(dev)/rp_filter", limit: 64)
                .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } }
        }
        guard let all = value("all") else {
            return .failure(ReadError(description: "cannot read net.ipv4.conf.all.rp_filter: \(ErrnoName.name(errno))"))
        }
        guard let dev = value(device) else {
            return .failure(ReadError(description: "cannot read net.ipv4.conf.\(device).rp_filter (the interface is gone?): \(ErrnoName.name(errno))"))
        }
        return .success(RPFilterSysctls(all: all, device: dev))
    }

    /// The interface's name in the current thread's namespace.
    static func interfaceName(_ index: UInt32) -> String? {
        var buf = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(index, &buf) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
