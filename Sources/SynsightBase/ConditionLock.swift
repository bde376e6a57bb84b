import Glibc

/// A mutex with one condition variable, for the few places where a thread
/// must sleep until another hands it work (the pipeline, the ruleset reader).
/// Waits are timed on CLOCK_MONOTONIC, so a wall-clock step does not stretch
/// or cut them. `@unchecked Sendable`: every field is guarded by the mutex.
public final class ConditionLock: @unchecked Sendable {
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let cond: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Wakes every waiter. Call with or without the lock held.
    public func broadcast() { pthread_cond_broadcast(cond) }

    /// With the lock held (inside `withLock`): sleeps until woken or until
    /// `deadline` (CLOCK_MONOTONIC ns; nil waits without a limit). Returns
    /// false when the deadline passed. Callers re-check their condition.
    @discardableResult
    public func wait(until deadline: UInt64? = nil) -> Bool {
        guard let deadline else {
            pthread_cond_wait(cond, mutex)
            return true
        }
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(cond, mutex, &ts) != ETIMEDOUT
    }

    /// CLOCK_MONOTONIC now, in ns: the clock `wait(until:)` counts in.
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
