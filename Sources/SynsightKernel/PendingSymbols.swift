import CSynsightShim
import Glibc
import Synchronization
import SynsightBase

/// The probed kernel symbols (`KernelSymbols.probed`), read from
/// /proc/kallsyms on a thread of its own: the kernel takes ~60 ms to format
/// its 120k lines (a 2-vCPU VM), a fifth of start-up if waited for. Only the
/// kprobe probes need the symbols while probing, and only where kprobes
/// exist; the consume_skb filter's address range is needed after the
/// programs are verified (Tracer writes it before attaching). Without a
/// thread (pthread_create failed) the read happens in `wait()`.
final class PendingSymbols: Sendable {
    private struct State {
        var worker: WorkerThread?
        var found: [String: KernelSymbols.Range]?
    }

    /// Written by the worker before it ends, read after `join()` (which orders the two).
    private final class Slot: @unchecked Sendable {
        var found: [String: KernelSymbols.Range]?
    }

    private let names: [String]
    private let slot = Slot()
    private let state = Mutex(State())

    /// Starts reading `names` (counted in KernelSymbols.reads now).
    init(_ names: [String]) {
        self.names = names
        KernelSymbols.reads.add(1, ordering: .relaxed)
        let slot = self.slot
        // The thread first stops sharing this thread's filesystem context,
        // and init waits for that (microseconds): started inside a private
        // tracefs scope (TraceFS.enter), a thread sharing it would make the
        // scope's setns() back fail and leave the caller in the private mount
        // namespace (ProbePlanKernelTests checks the thread's namespace).
        let unshared = Atomic<Bool>(false)
        let worker = try? WorkerThread(name: "kallsyms") {
            _ = syn_unshare_fs()
            unshared.store(true, ordering: .releasing)
            slot.found = KernelSymbols.ranges(of: names)
        }
        if worker != nil {
            while !unshared.load(ordering: .acquiring) { sched_yield() }
        }
        state.withLock { $0.worker = worker }
    }

    /// Already known: nothing is read.
    init(known: [String: KernelSymbols.Range]) {
        names = []
        state.withLock { $0.found = known }
    }

    /// The ranges found; waits for the read to end.
    func wait() -> [String: KernelSymbols.Range] {
        state.withLock { s in
            if let found = s.found { return found }
            let read: [String: KernelSymbols.Range]
            if let w = s.worker {
                w.join()
                read = slot.found ?? [:]
            } else {
                read = KernelSymbols.ranges(of: names)
            }
            s.worker = nil
            s.found = read
            return read
        }
    }

    /// Does /proc/kallsyms have `name`? Waits for the read.
    func has(_ name: String) -> Bool { wait()[name] != nil }

    /// A read still running is waited for (its thread joined), not started.
    deinit { state.withLock { $0.worker?.join() } }
}
