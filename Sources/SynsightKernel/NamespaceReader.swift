import Glibc
import SynsightBase

/// A thread of its own that answers questions about other network
/// namespaces from inside them: NftablesReader (a namespace's ruleset) and
/// RouteReader (a drop's route lookup and rp_filter sysctls) are each one.
///
/// Why a thread: `setns` changes only the calling thread, and a read may
/// take milliseconds (a huge ruleset, much longer): neither may happen on
/// the ring-buffer thread nor hold up the pipeline past its deadline.
///
/// Why pins: a drop's namespace may be deleted right after the drop (a
/// crash-looping container, a test harness). `want` is called the moment
/// the drop is decoded, on the ring-buffer thread: a namespace named in
/// /run/netns is opened there and then (an fd keeps it alive; no /proc walk
/// and no netlink on that thread), others are opened through /proc by the
/// reader, which reads at once. Pins are released `idleNs` after the
/// namespace was last wanted, at most `maxPins` are held, never one with a
/// read queued.
///
/// Answers are kept per key. A key with an answer younger than `refreshNs`
/// is not read again (nil: a key is read once); `answer` returns the latest
/// answer without waiting for a refresh, and waits (up to its deadline)
/// only for a key never answered. Answers are forgotten with their
/// namespace's pin, or `keepNs` after they were read when many are kept.
final class NamespaceReader<Key: Hashable & Sendable, Answer>: @unchecked Sendable {
    struct Config {
        /// The thread's name (`synsight-nft`).
        var thread: String
        /// What the reader is, in the errors that name it ("the ruleset reader").
        var role: String
        /// What a namespace gone before its read costs ("its ruleset cannot be read").
        var goneConsequence: String
        var refreshNs: UInt64? = nil
        var keepNs: UInt64 = 10_000_000_000
        var idleNs: UInt64 = 10_000_000_000
        var maxPins = 64
        var maxQueued = 256
        var maxAnswers = 4096
    }

    struct Pin {
        /// The namespace's fd, -1 until opened (or for synsight's own namespace).
        var fd: Int32 = -1
        var lastWanted: UInt64
        /// When the ring-buffer thread last looked for it in /run/netns.
        var namedScanAt: UInt64 = 0
    }

    struct Slot {
        var answer: Answer?
        var answeredAt: UInt64 = 0
        var queued = false
    }

    let config: Config
    let netnsOf: (Key) -> UInt32
    /// On the reader thread, inside the key's namespace.
    let read: (Key) -> Answer
    /// The answer that stands for a failure's text.
    let failed: (String) -> Answer

    let lock = ConditionLock()
    var pins: [UInt32: Pin] = [:]
    var slots: [Key: Slot] = [:]
    var queue: [Key] = []
    var stopping = false
    var worker: WorkerThread?
    var workerFailure: String?
    /// Entering a namespace and coming back (synsight's own: `ownNetns`).
    let visit = NetnsVisit()
    var ownNetns: UInt32? { visit.ownNetns }

    init(_ config: Config, netns: @escaping (Key) -> UInt32, read: @escaping (Key) -> Answer,
         failed: @escaping (String) -> Answer) {
        self.config = config
        self.netnsOf = netns
        self.read = read
        self.failed = failed
    }

    deinit {
        stop()
        for pin in pins.values where pin.fd >= 0 { close(pin.fd) }
        visit.close()
    }

    /// A drop wants `key` read: pin its namespace and queue a read unless a
    /// fresh answer is kept. Called on the ring-buffer thread: never blocks
    /// beyond a short lock and, at most every 100 ms per namespace, an open
    /// of /run/netns.
    func want(_ key: Key) {
        let netns = netnsOf(key), now = ConditionLock.now()
        let scan = lock.withLock { () -> Bool in
            guard netns != 0, netns != ownNetns else { return false }
            guard let pin = pins[netns] else { return true }
            return pin.fd < 0 && pin.namedScanAt &+ 100_000_000 <= now
        }
        // Opened here and now: a wakeup of the reader thread can come too
        // late on a loaded machine.
        let fd = scan ? NetnsPaths.openNamed(netns) : -1
        lock.withLock {
            wantLocked(key, now: now)
            if scan { pins[netns]?.namedScanAt = now }
            keepFdLocked(netns, fd: fd)
        }
    }

    /// The key's latest answer; waits at most `timeoutNs` when it has none
    /// yet. `late` words the timeout, given how many other reads are queued.
    func answer(_ key: Key, timeoutNs: UInt64, late: (Int) -> String) -> Answer {
        let deadline = ConditionLock.now() &+ timeoutNs
        return lock.withLock {
            if let failure = workerFailure { return failed(failure) }
            // Waiting for each refresh made the pipeline crawl on a loaded
            // machine (the reader was always a refresh behind): a kept
            // answer is returned while the drop's `want` refreshes it.
            if slots[key]?.answer == nil { wantLocked(key, now: ConditionLock.now()) }
            while true {
                if let a = slots[key]?.answer { return a }
                if !lock.wait(until: deadline) { return failed(late(queue.count)) }
            }
        }
    }

    /// Stops the reader thread (a read in progress finishes first).
    func stop() {
        let t: WorkerThread? = lock.withLock {
            stopping = true
            lock.broadcast()
            return worker
        }
        t?.join()
    }

    func wantLocked(_ key: Key, now: UInt64) {
        let netns = netnsOf(key)
        pins[netns, default: Pin(lastWanted: now)].lastWanted = now
        var slot = slots[key] ?? Slot()
        let fresh = slot.answer != nil && (config.refreshNs.map { slot.answeredAt &+ $0 > now } ?? true)
        guard !slot.queued, !fresh, !stopping else { return }
        if queue.count >= config.maxQueued {
            if slot.answer == nil {
                slots[key] = Slot(answer: failed("\(config.maxQueued) reads were already queued (a drop storm): this one was not made"),
                                  answeredAt: now)
            }
            return
        }
        slot.queued = true
        slots[key] = slot
        queue.append(key)
        startLocked()
        lock.broadcast()
    }

    /// Keeps `fd` as the namespace's pin, unless it has one (then closes it).
    func keepFdLocked(_ netns: UInt32, fd: Int32) {
        guard fd >= 0 else { return }
        if let pin = pins[netns], pin.fd < 0 { pins[netns]?.fd = fd } else if pins[netns]?.fd != fd { close(fd) }
    }

    func startLocked() {
        guard worker == nil, workerFailure == nil else { return }
        do {
            worker = try WorkerThread(name: config.thread) { [unowned self] in self.loop() }
        } catch {
            let failure = "cannot start \(config.role): \(error)"
            workerFailure = failure
            for key in queue { slots[key] = Slot(answer: failed(failure)) }
            queue.removeAll()
        }
    }

    func loop() {
        while let key = next() {
            let netns = netnsOf(key)
            let fd = lock.withLock { pins[netns]?.fd ?? -1 }
            let (answer, kept) = readIn(netns, key, fd: fd)
            lock.withLock {
                let now = ConditionLock.now()
                keepFdLocked(netns, fd: kept)
                slots[key] = Slot(answer: answer, answeredAt: now)
                evictLocked(now: now)
                lock.broadcast()
            }
        }
    }

    func next() -> Key? {
        lock.withLock {
            while queue.isEmpty && !stopping { lock.wait() }
            return stopping ? nil : queue.removeFirst()
        }
    }

    /// On the reader thread: enters the namespace (opening it through /proc
    /// when it was not pinned), reads, comes back. Returns the fd to keep.
    func readIn(_ netns: UInt32, _ key: Key, fd: Int32) -> (Answer, Int32) {
        let (result, kept, stranded) = visit.run(netns, fd: fd) { read(key) }
        if stranded {
            // Stranded in another namespace: every later read would be of the wrong one. Refuse them.
            lock.withLock { workerFailure = "\(config.role) could not return to its own network namespace" }
        }
        switch result {
        case .success(let answer): return (answer, kept)
        case .failure(.gone(let ns)): return (failed("\(NetnsVisit.Failure.gone(ns).description): \(config.goneConsequence)"), kept)
        case .failure(let why): return (failed(why.description), kept)
        }
    }

    /// Unpins namespaces not wanted for `idleNs`, then the longest idle
    /// beyond `maxPins` (never one with a read queued), with their answers;
    /// past `maxAnswers / 2` answers, forgets those older than `keepNs`.
    func evictLocked(now: UInt64) {
        let queued = Set(queue.map(netnsOf))
        let idle = NetnsVisit.evictable(pins.mapValues(\.lastWanted), now: now, idleNs: config.idleNs,
                                        maxPins: config.maxPins) { queued.contains($0) }
        for ns in idle {
            if let fd = pins.removeValue(forKey: ns)?.fd, fd >= 0 { close(fd) }
        }
        let gone = Set(idle)
        if !gone.isEmpty || slots.count > config.maxAnswers / 2 {
            let keep = slots.count > config.maxAnswers / 2
            slots = slots.filter { k, s in
                s.queued || (!gone.contains(netnsOf(k)) && (!keep || s.answeredAt &+ config.keepNs > now))
            }
        }
    }
}
