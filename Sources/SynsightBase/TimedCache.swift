/// Values read at most once per `ttlNs` per key, for reads that are cheap
/// to repeat but not per event (a process's /proc or cgroup files during an
/// overflow storm). Bounded: past `limit` keys it starts again empty.
package struct TimedCache<Key: Hashable, Value> {
    package let ttlNs: UInt64
    package let limit: Int
    var entries: [Key: (at: UInt64, value: Value)] = [:]

    package init(ttlNs: UInt64, limit: Int) {
        self.ttlNs = ttlNs
        self.limit = limit
    }

    /// The value of `key` read within the last `ttlNs` before `now`, else `read()`'s, kept.
    package mutating func value(_ key: Key, now: UInt64, read: () -> Value) -> Value {
        if let hit = entries[key], now &- hit.at < ttlNs { return hit.value }
        if entries.count > limit { entries.removeAll(keepingCapacity: true) }
        let v = read()
        entries[key] = (now, v)
        return v
    }
}
