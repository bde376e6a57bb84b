import CNftables
import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Reads the nftables ruleset of any network namespace in-process with
/// libnftables (what `nft -j list ruleset` prints), on one dedicated thread.
///
/// Why a thread of its own: entering a namespace (setns) changes only the
/// calling thread, and a ruleset read may take milliseconds (or, for a huge
/// ruleset, much longer): neither may happen on the ring-buffer thread nor
/// hold up the pipeline more than its deadline.
///
/// Why pinning: a drop's namespace may be deleted right after the drop (a
/// crash-looping container, a test harness). `pin` is called the moment the
/// drop is decoded; the reader opens the namespace (an fd keeps it alive) and
/// reads its ruleset at once, so the rule is still found when the record is
/// decided a join window later. Pins are released after `idleNs` without a
/// drop in that namespace, and at most `maxPins` are held.
public final class NftablesReader: @unchecked Sendable {
    public enum Outcome: Sendable {
        case ruleset(NftRuleset)
        /// Why the ruleset could not be read (the namespace is gone, libnftables failed, too slow).
        case unavailable(String)
    }

    struct Pin {
        /// The namespace's fd, -1 until opened (or for synsight's own namespace).
        var fd: Int32 = -1
        var lastWanted: UInt64
        var outcome: Outcome? = nil
        var readAt: UInt64 = 0
        var queued = false
        /// When the ring-buffer thread last looked for it in /run/netns.
        var namedScanAt: UInt64 = 0
    }

    let lock = ConditionLock()
    var pins: [UInt32: Pin] = [:]
    var queue: [UInt32] = []
    var stopping = false
    var worker: WorkerThread?
    var workerFailure: String?

    /// A ruleset read this recently answers lookups without a new read.
    let ttlNs: UInt64
    let idleNs: UInt64 = 10_000_000_000
    let maxPins = 64
    /// A deliberately slow source, for tests of the pipeline's deadlines.
    let delayNs: UInt64
    /// Entering a namespace and coming back (synsight's own: `ownNetns`).
    let visit = NetnsVisit()
    /// synsight's own network namespace (the host's, normally).
    public var ownNetns: UInt32? { visit.ownNetns }

    public init(ttlNs: UInt64 = 1_000_000_000, delayMs: Int = 0) {
        self.ttlNs = ttlNs
        self.delayNs = UInt64(max(0, delayMs)) * 1_000_000
    }

    deinit {
        stop()
        for pin in pins.values where pin.fd >= 0 { close(pin.fd) }
        visit.close()
    }

    /// A drop was seen in `netns`: open it and read its ruleset now, unless a
    /// fresh one is cached. Never blocks beyond a short lock; called on the
    /// ring-buffer thread.
    public func pin(_ netns: UInt32) {
        let now = ConditionLock.now()
        // Take the pin here and now when the namespace is named: a wakeup of
        // the reader thread can come too late on a loaded machine (the
        // namespace may be deleted milliseconds after the drop). Others are
        // found by the reader thread, through /proc. At most one scan of
        // /run/netns per namespace every 100 ms.
        let scan = lock.withLock { () -> Bool in
            guard netns != 0, netns != ownNetns else { return false }
            guard let pin = pins[netns] else { return true }
            return pin.fd < 0 && pin.namedScanAt &+ 100_000_000 <= now
        }
        let fd = scan ? NetnsPaths.openNamed(netns) : -1
        lock.withLock {
            wantLocked(netns, now: now)
            if scan { pins[netns]?.namedScanAt = now }
            if fd >= 0 {
                if pins[netns]?.fd ?? 0 < 0 { pins[netns]?.fd = fd } else { close(fd) }
            }
        }
    }

    /// The namespace's latest ruleset read (a drop's `pin` starts a read
    /// when the last one is older than `ttlNs`), waiting at most `timeoutNs`
    /// when there is none yet.
    public func ruleset(_ netns: UInt32, timeoutNs: UInt64) -> Outcome {
        let deadline = ConditionLock.now() &+ timeoutNs
        return lock.withLock {
            if let failure = workerFailure { return .unavailable(failure) }
            // Reads are started by `pin`, when drops arrive, and refresh the
            // cache in the background; a lookup waits only when the namespace
            // has never been read. Waiting for each refresh made the pipeline
            // crawl on a loaded machine: with many namespaces in a storm the
            // reader was always a refresh behind, and every lookup waited.
            if pins[netns]?.outcome == nil { wantLocked(netns, now: ConditionLock.now()) }
            while true {
                if let outcome = pins[netns]?.outcome { return outcome }
                if !lock.wait(until: deadline) {
                    return .unavailable("the ruleset was not read within \(timeoutNs / 1_000_000) ms "
                        + "(the reader is busy with \(queue.count) other namespace\(queue.count == 1 ? "" : "s"))")
                }
            }
        }
    }

    /// Stops the reader thread (a read in progress finishes first).
    public func stop() {
        let t: WorkerThread? = lock.withLock {
            stopping = true
            lock.broadcast()
            return worker
        }
        t?.join()
    }

    func wantLocked(_ netns: UInt32, now: UInt64) {
        var pin = pins[netns] ?? Pin(lastWanted: now)
        pin.lastWanted = now
        let fresh = pin.outcome != nil && pin.readAt &+ ttlNs > now
        if !pin.queued && !fresh && !stopping {
            pin.queued = true
            queue.append(netns)
            startLocked()
            lock.broadcast()
        }
        pins[netns] = pin
    }

    func startLocked() {
        guard worker == nil, workerFailure == nil else { return }
        do {
            worker = try WorkerThread(name: "synsight-nft") { [unowned self] in self.loop() }
        } catch {
            workerFailure = "cannot start the ruleset reader: \(error)"
            for ns in queue { pins[ns]?.queued = false; pins[ns]?.outcome = .unavailable(workerFailure!) }
            queue.removeAll()
        }
    }

    func loop() {
        while let netns = next() {
            let fd = lock.withLock { pins[netns]?.fd ?? -1 }
            let (outcome, pinned) = read(netns, fd: fd)
            if delayNs > 0 { sleepNs(delayNs) }
            lock.withLock {
                let now = ConditionLock.now()
                if pins[netns]?.fd ?? -1 < 0 {
                    pins[netns]?.fd = pinned
                } else if pinned >= 0 && pinned != pins[netns]?.fd {
                    close(pinned)
                }
                pins[netns]?.outcome = outcome
                pins[netns]?.readAt = now
                pins[netns]?.queued = false
                evictLocked(now: now)
                lock.broadcast()
            }
        }
    }

    func next() -> UInt32? {
        lock.withLock {
            while queue.isEmpty && !stopping { lock.wait() }
            return stopping ? nil : queue.removeFirst()
        }
    }

    /// Unpins namespaces without a drop for `idleNs`, then the longest idle
    /// ones beyond `maxPins` (never one with a read queued).
    func evictLocked(now: UInt64) {
        let idle = NetnsVisit.evictable(pins.mapValues(\.lastWanted), now: now, idleNs: idleNs, maxPins: maxPins) {
            pins[$0]?.queued == true
        }
        for ns in idle {
            if let fd = pins.removeValue(forKey: ns)?.fd, fd >= 0 { close(fd) }
        }
    }

    /// Reads on the reader thread: opens the namespace if `fd` is not yet
    /// open, enters it, lists the ruleset, comes back. Returns the fd to keep.
    func read(_ netns: UInt32, fd: Int32) -> (Outcome, Int32) {
        let (result, kept, stranded) = visit.run(netns, fd: fd) { list() }
        if stranded {
            // The thread is stranded in another namespace: every later read
            // would list the wrong ruleset. Refuse them all instead.
            lock.withLock { workerFailure = "the ruleset reader could not return to its own network namespace" }
        }
        switch result {
        case .success(let outcome): return (outcome, kept)
        case .failure(let why): return (.unavailable(why.description), kept)
        }
    }

    /// `list ruleset` in the current thread's namespace, as JSON (for the
    /// matcher) and as text with handles (the rule as `nft -a` prints it).
    /// A dump interrupted by a concurrent ruleset change fails: retried.
    func list() -> Outcome {
        var lastError = "no output"
        for _ in 0..<3 {
            switch run(flags: UInt32(NFT_CTX_OUTPUT_JSON) | UInt32(NFT_CTX_OUTPUT_HANDLE)) {
            case .failure(let e):
                lastError = e.message
            case .success(let json):
                let text = try? run(flags: UInt32(NFT_CTX_OUTPUT_HANDLE)).get()
                if var rs = NftRuleset(json: json, text: text) {
                    attachIptablesComments(&rs)
                    return .ruleset(rs)
                }
                lastError = "unparsable JSON: \(json.prefix(120))"
            }
        }
        return .unavailable("libnftables could not list the ruleset: \(lastError)")
    }

    /// nft shows an iptables-nft rule's `-m comment` only as a match without
    /// its text: iptables-nft-save prints it. Spawned from this thread, the
    /// tool runs in the namespace the thread has entered; only when the
    /// ruleset has such a rule.
    func attachIptablesComments(_ rs: inout NftRuleset) {
        guard rs.hasIptablesComments else { return }
        for (family, tool) in Self.iptablesSave.sorted(by: { $0.key < $1.key }) {
            if let save = Subprocess.capture([tool]) { rs.attachIptablesComments(save: save, family: family) }
        }
    }

    /// iptables-nft-save / ip6tables-nft-save, by nft family.
    static let iptablesSave: [String: String] = {
        var save: [String: String] = [:]
        for (family, tool) in [("ip", "iptables"), ("ip6", "ip6tables")] {
            save[family] = ["/usr/sbin/\(tool)-nft-save", "/sbin/\(tool)-nft-save", "/usr/sbin/\(tool)-save"]
                .first { access($0, X_OK) == 0 }
        }
        return save
    }()

    struct ListError: Error { let message: String }

    func run(flags: UInt32) -> Result<String, ListError> {
        guard let ctx = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            return .failure(ListError(message: "nft_ctx_new failed"))
        }
        defer { nft_ctx_free(ctx) }
        nft_ctx_output_set_flags(ctx, flags)
        _ = nft_ctx_buffer_output(ctx)
        _ = nft_ctx_buffer_error(ctx)
        let rc = nft_run_cmd_from_buffer(ctx, "list ruleset")
        let out = nft_ctx_get_output_buffer(ctx).map { String(cString: $0) } ?? ""
        guard rc == 0 else {
            let err = nft_ctx_get_error_buffer(ctx).map { String(cString: $0) } ?? "error \(rc)"
            return .failure(ListError(message: err.trimmingSuffix("\n")))
        }
        return .success(out)
    }
}

extension NftablesReader.ListError: CustomStringConvertible { var description: String { message } }

private extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) : self }
}

func sleepNs(_ ns: UInt64) {
    var left = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var rest = timespec()
    while nanosleep(&left, &rest) != 0 && errno == EINTR { left = rest }
}
