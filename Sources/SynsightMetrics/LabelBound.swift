/// The cardinality bound of the per-event labels (`port`, `workload`): the
/// first `limit` distinct values seen get a label of their own, every later
/// one is counted under the label's overflow value ("other"), so a port scan
/// or a crash-looping deployment cannot create unbounded series while the
/// totals stay exact. A value once admitted keeps its label.
public struct FirstSeenBound<Value: Hashable & Sendable>: Sendable {
    public let limit: Int
    public private(set) var assigned: Set<Value> = []

    public init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// True when `value` has (or now gets) a label of its own.
    public mutating func admit(_ value: Value) -> Bool {
        if assigned.contains(value) { return true }
        guard assigned.count < limit else { return false }
        assigned.insert(value)
        return true
    }
}
