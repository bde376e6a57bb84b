/// The first process of a network namespace that is not a pod's pause
/// process, and when it started: what a starting container or pod is
/// running before it listens (`no_listener/starting`).
public struct NamespaceStart: Sendable, Hashable {
    public var process: ProcessRef
    /// Its start, CLOCK_BOOTTIME ns (as kernel events carry).
    public var startedAt: UInt64

    public init(process: ProcessRef, startedAt: UInt64) {
        self.process = process
        self.startedAt = startedAt
    }
}
