/// A dictionary whose entries expire oldest first, in O(1) amortized time
/// per operation.
///
/// Why not `Dictionary.filter` on a size threshold: in a refusal storm the
/// join windows hold hundreds of thousands of entries that are all still
/// young, so a "filter when over N" prune keeps nothing out and runs again on
/// the next event: quadratic work, which made the consumer fall behind
/// (docs/benchmarks.md). Here a FIFO of (key, deadline) is popped from the
/// front while its deadline has passed; entries removed by key leave a stale
/// FIFO slot that is skipped (its serial no longer matches).
///
/// Deadlines are expected in (roughly) increasing order of insertion, as
/// kernel timestamps in ring-buffer order are: an entry is expired no
/// earlier than its deadline, and at most as late as the deadlines of the
/// entries inserted before it.
package struct ExpiringMap<Key: Hashable, Value> {
    private var entries: [Key: (value: Value, serial: UInt64)] = [:]
    private var order: [(key: Key, deadline: UInt64, serial: UInt64)] = []
    private var head = 0
    private var serial: UInt64 = 0

    package init() {}

    package var count: Int { entries.count }
    /// FIFO slots held, live or stale (for tests of the compaction).
    var fifoSlots: Int { order.count - head }
    package var isEmpty: Bool { entries.isEmpty }

    package subscript(key: Key) -> Value? { entries[key]?.value }

    /// Inserts or replaces the value of `key`; it expires at `deadline`.
    package mutating func insert(_ value: Value, forKey key: Key, deadline: UInt64) {
        serial &+= 1
        entries[key] = (value, serial)
        order.append((key, deadline, serial))
    }

    @discardableResult
    package mutating func removeValue(forKey key: Key) -> Value? {
        let v = entries.removeValue(forKey: key)?.value
        compactIfSparse()
        return v
    }

    /// Removes the entries whose deadline is at or before `now`, oldest first.
    package mutating func expire(now: UInt64) -> [Value] {
        var out: [Value] = []
        while head < order.count, order[head].deadline <= now {
            let slot = order[head]
            head += 1
            if let e = entries[slot.key], e.serial == slot.serial {
                entries.removeValue(forKey: slot.key)
                out.append(e.value)
            }
        }
        compactIfSparse()
        return out
    }

    /// Removes and returns the oldest live entry.
    package mutating func removeOldest() -> Value? {
        while head < order.count {
            let slot = order[head]
            head += 1
            if let e = entries[slot.key], e.serial == slot.serial {
                entries.removeValue(forKey: slot.key)
                compactIfSparse()
                return e.value
            }
        }
        compactIfSparse()
        return nil
    }

    package mutating func removeAll() {
        entries.removeAll()
        order.removeAll()
        head = 0
    }

    /// Drops consumed and stale FIFO slots once they are most of the array,
    /// so memory stays proportional to the live entries.
    private mutating func compactIfSparse() {
        if head == order.count {
            order.removeAll(keepingCapacity: true)
            head = 0
            return
        }
        guard order.count >= 4096, order.count > 2 * entries.count + head else {
            if head >= 4096 && head * 2 >= order.count {
                order.removeFirst(head)
                head = 0
            }
            return
        }
        let live = order[head...].filter { entries[$0.key]?.serial == $0.serial }
        order = Array(live)
        head = 0
    }
}
