import Foundation
import Glibc

/// A thread of this test process that enters a named namespace, does one
/// thing there, comes back and deletes a namespace as `ip netns del` does
/// (detach and remove its /run/netns mount) `afterMs` later: the deletion
/// follows the event closely whatever the machine's load.
enum NamespaceVisit {
    typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    typealias Umount2 = @convention(c) (UnsafePointer<CChar>, Int32) -> Int32
    static let CLONE_NEWNET: Int32 = 0x4000_0000
    static let MNT_DETACH: Int32 = 2

    /// glibc declares setns only with _GNU_SOURCE: not in Swift's Glibc module.
    static func calls() throws -> (setns: SetNS, umount2: Umount2) {
        let libc = dlopen(nil, RTLD_NOW)
        guard let s = dlsym(libc, "setns"), let u = dlsym(libc, "umount2") else {
            throw CommandFailure(description: "setns/umount2 not found")
        }
        return (unsafeBitCast(s, to: SetNS.self), unsafeBitCast(u, to: Umount2.self))
    }

    /// Runs `inside` in `ns`, comes back, waits `afterMs`, deletes `victim`,
    /// then runs `after` with what `inside` returned. Returns that value and
    /// the wall-clock time right after the deletion.
    static func run<T>(in ns: NetNS, deleting victim: NetNS, afterMs: Int,
                       _ inside: @escaping () -> T, after: @escaping (T) -> Void = { _ in }) throws -> (T, deletedAt: Double) {
        let (setns, umount2) = try calls()
        let outcome = VisitOutcome<T>()
        let from = "/run/netns/\(ns.name)", path = "/run/netns/\(victim.name)"
        nonisolated(unsafe) let (inside, after) = (inside, after)
        let done = DispatchSemaphore(value: 0)
        let runner = Thread {
            defer { done.signal() }
            let home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)
            let target = open(from, O_RDONLY | O_CLOEXEC)
            defer { close(home) }
            guard home >= 0, target >= 0, setns(target, CLONE_NEWNET) == 0 else {
                outcome.failure = "cannot enter \(from)"
                return
            }
            close(target)
            let value = inside()
            _ = setns(home, CLONE_NEWNET)
            usleep(UInt32(afterMs * 1000))
            if umount2(path, MNT_DETACH) != 0 || unlink(path) != 0 { outcome.failure = "cannot delete \(path)" }
            outcome.at = Date().timeIntervalSince1970
            after(value)
            outcome.value = value
        }
        runner.start()
        done.wait()
        if let failure = outcome.failure { throw CommandFailure(description: failure) }
        return (outcome.value!, outcome.at)
    }
}

/// Written by the visiting thread before it signals, read after the wait.
final class VisitOutcome<T>: @unchecked Sendable {
    var value: T?
    var at = 0.0
    var failure: String?
}
