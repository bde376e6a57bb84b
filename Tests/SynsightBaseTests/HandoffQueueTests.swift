@testable import SynsightBase
import Testing
import SynsightTestSupport

/// The ring-buffer thread's hand-off to the pipeline thread.
@Suite("HandoffQueue")
struct HandoffQueueTests {
    @Test func takesEverythingInOrder() {
        let q = HandoffQueue<Int>(capacity: 10)
        #expect(q.push([1, 2, 3]))
        #expect(q.push([4]))
        #expect(q.takeAll() == [1, 2, 3, 4])
        #expect(q.dropped == 0)
    }

    /// A batch larger than the room left is cut, not refused whole: what
    /// fits is queued, the rest counted.
    @Test func whatDoesNotFitIsCountedNotLost() {
        let q = HandoffQueue<Int>(capacity: 4)
        #expect(q.push([1, 2, 3]))
        #expect(!q.push([4, 5, 6]))
        #expect(q.dropped == 2)
        #expect(q.takeAll() == [1, 2, 3, 4])
        #expect(q.push(Array(0..<10)) == false)
        #expect(q.dropped == 8)
    }

    /// Control markers (ticks, lost counts) always go in.
    @Test func controlItemsAreNeverDropped() {
        let q = HandoffQueue<Int>(capacity: 1)
        #expect(q.push([1]))
        #expect(q.push([-1, -2], droppable: false))
        #expect(q.takeAll() == [1, -1, -2])
        #expect(q.dropped == 0)
    }

    @Test func closeDrainsThenEnds() {
        let q = HandoffQueue<Int>(capacity: 8)
        q.push([7])
        q.close()
        #expect(!q.push([8]))
        #expect(q.takeAll() == [7])
        #expect(q.takeAll().isEmpty)
    }

    /// A consumer on a WorkerThread wakes for items pushed from this thread
    /// and ends when the queue is closed.
    @Test func crossesThreads() throws {
        let q = HandoffQueue<Int>(capacity: 1_000_000)
        final class Sum: @unchecked Sendable { var total = 0; var batches = 0 }  // written by the worker, read after join
        let sum = Sum()
        let worker = try WorkerThread(name: "test") {
            while true {
                let items = q.takeAll()
                if items.isEmpty { return }
                sum.total += items.reduce(0, +)
                sum.batches += 1
            }
        }
        for i in 0..<1000 { q.push([i]) }
        q.close()
        worker.join()
        #expect(sum.total == 999 * 1000 / 2)
        #expect(sum.batches >= 1)
    }
}
