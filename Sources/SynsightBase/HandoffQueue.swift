/// Hands items from one thread to another in batches: the ring-buffer thread
/// pushes what it decoded after each poll, the pipeline thread takes
/// everything queued at once. Bounded: droppable items beyond `capacity`
/// queued ones are refused and counted (`dropped`), so the pushing thread
/// never blocks and nothing is lost without a count. Items pushed with
/// `droppable: false` (control markers) are always queued.
public final class HandoffQueue<Item: Sendable>: @unchecked Sendable {
    package let lock = ConditionLock()
    var items: [Item] = []
    var closed = false
    var droppedCount: UInt64 = 0
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
    }

    /// Queues `batch`, or as much of it as fits when it is droppable (the
    /// rest is counted as dropped); returns false when anything was dropped.
    /// A closed queue takes nothing.
    @discardableResult
    public func push(_ batch: [Item], droppable: Bool = true) -> Bool {
        guard !batch.isEmpty else { return true }
        return lock.withLock {
            if closed {
                droppedCount &+= UInt64(batch.count)
                return false
            }
            let fits = droppable ? max(0, min(batch.count, capacity - items.count)) : batch.count
            items.append(contentsOf: batch.prefix(fits))
            if fits > 0 { lock.broadcast() }
            droppedCount &+= UInt64(batch.count - fits)
            return fits == batch.count
        }
    }

    /// Waits until something is queued or the queue is closed, then takes
    /// everything. An empty result means closed and drained.
    public func takeAll() -> [Item] {
        lock.withLock {
            while items.isEmpty && !closed { lock.wait() }
            var taken: [Item] = []
            swap(&taken, &items)
            return taken
        }
    }

    /// No more pushes; `takeAll` returns what is left, then empty.
    public func close() {
        lock.withLock {
            closed = true
            lock.broadcast()
        }
    }

    /// Items refused because the queue was full (or closed), since start.
    public var dropped: UInt64 { lock.withLock { droppedCount } }
}
