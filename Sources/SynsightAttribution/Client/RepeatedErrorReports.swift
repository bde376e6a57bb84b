import SynsightModel

/// A connect()'s error reported twice by the kernel: an ICMP refusal
/// (port unreachable, host prohibited) of a connecting socket runs the
/// socket's error report twice on 6.18, microseconds apart, the second
/// finding the caller's entry already taken (no process). The second is
/// the same failure: dropped, so one connect() gives one record, with its
/// caller. A new connect() on the same 4-tuple (a fixed source port) fails
/// no sooner than its own round trip: `window` keeps it apart.
struct RepeatedErrorReports {
    static let window: UInt64 = 1_000_000  // 1 ms
    static let capacity = 4096

    private var last: [JoinKey: (ts: UInt64, errno: Int32)] = [:]

    /// Whether `ce` repeats the previous report of its socket; notes it otherwise.
    mutating func isRepeat(_ ce: ConnectError, key: JoinKey) -> Bool {
        if let p = last[key], p.errno == ce.errno, ce.ts >= p.ts, ce.ts - p.ts < Self.window { return true }
        if last.count >= Self.capacity { last = last.filter { ce.ts >= $0.value.ts && ce.ts - $0.value.ts < Self.window } }
        last[key] = (ce.ts, ce.errno)
        return false
    }
}
