import SynsightBase

/// The programs armed on anomaly (BPFObjectSet's deferred group) are
/// verified while the rest of start-up runs: the listener snapshot, the
/// seeding and the engine's set-up take about as long on the other CPU.
extension Tracer {
    /// Starts loading the deferred programs on a thread of its own. Call it
    /// after `init` returns (init runs in a private mount namespace, which a
    /// thread created there would keep from being left). Without this call,
    /// OverflowArming loads them on its own thread.
    public func startDeferredLoad() {
        guard deferredLoad == nil, objects.deferredGroup != nil else { return }
        let objects = self.objects
        deferredLoad = try? WorkerThread(name: "BPF load (armed)") { try? objects.loadDeferred() }
    }

    /// Waits for `startDeferredLoad`'s thread, before the ring is read and
    /// before the arming thread starts. Its pages are then freed before the
    /// ring is mapped, and no two threads load the group. A failure is
    /// reported by OverflowArming, which sees the same error.
    func finishDeferredLoad() {
        deferredLoad?.join()
        deferredLoad = nil
    }
}
