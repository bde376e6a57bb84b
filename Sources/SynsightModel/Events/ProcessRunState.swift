import SynsightBase

/// What a listener's threads were doing when its accept queue overflowed
/// (/proc/<pid>/task/*/stat, read by the pipeline thread as the overflow is
/// attributed): a stopped process (SIGSTOP, a debugger) or one whose every
/// thread is blocked in the kernel (uninterruptible sleep: a hung NFS
/// mount, a stuck disk) accepts nothing, however big its backlog.
public struct ProcessRunState: Sendable, Hashable {
    /// Threads by state letter (R running, S sleeping, D uninterruptible,
    /// T stopped, t traced, Z zombie, ...).
    public var threads: [Character: Int]
    /// Where the blocked (D) threads wait in the kernel (/proc/<pid>/task/<tid>/wchan), most common first.
    public var waitChannels: [String]

    public init(threads: [Character: Int], waitChannels: [String] = []) {
        self.threads = threads
        self.waitChannels = waitChannels
    }

    public var total: Int { threads.values.reduce(0, +) }

    /// Every thread stopped (T) or stopped by a tracer (t).
    public var stopped: Bool { total > 0 && threads.filter { $0.key == "T" || $0.key == "t" }.values.reduce(0, +) == total }

    /// No thread can run (none R or S, nor idle I) and some are in uninterruptible sleep.
    public var blocked: Bool {
        let runnable = threads.filter { "RSI".contains($0.key) }.values.reduce(0, +)
        return total > 0 && runnable == 0 && (threads["D"] ?? 0) > 0
    }

    /// Why the processes holding a listener accept nothing, when none of them
    /// can run: all stopped, or (some blocked in the kernel) none runnable;
    /// nil when any can run, or none was read.
    public static func cannotRun(_ states: [ProcessRunState]) -> Cause.AcceptQueueFull? {
        guard !states.isEmpty, states.allSatisfy({ $0.stopped || $0.blocked }) else { return nil }
        return states.allSatisfy(\.stopped) ? .listenerStopped : .listenerBlocked
    }

    /// "3 threads: 2 D (uninterruptible), 1 T (stopped)".
    public var summary: String {
        let names: [Character: String] = ["R": "running", "S": "sleeping", "D": "uninterruptible", "T": "stopped",
                                          "t": "traced", "Z": "zombie", "I": "idle", "X": "dead"]
        let parts = threads.sorted { ($0.value, String($1.key)) > ($1.value, String($0.key)) }
            .map { "\($0.value) \($0.key)" + (names[$0.key].map { " (\($0))" } ?? "") }
        return "\(total) thread\(total == 1 ? "" : "s"): " + parts.joined(separator: ", ")
    }

    package var json: JSONValue {
        var o: [(String, JSONValue)] = [
            ("threads", .object(threads.sorted { String($0.key) < String($1.key) }.map { (String($0.key), .int(Int64($0.value))) })),
        ]
        if !waitChannels.isEmpty { o.append(("wchan", .array(waitChannels.map { .string($0) }))) }
        return .object(o)
    }

    /// The state letter of a /proc/<pid>/stat line: the field after the
    /// comm, which is in parentheses and may itself hold ") ".
    public static func stateLetter(stat: String) -> Character? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].first { !$0.isWhitespace }
    }
}
