import Foundation
import SynsightBase
import Testing
@testable import SynsightKernel

/// The first process of a network namespace, from a real walk of /proc: a
/// process started in a namespace of its own, then a later one joining it.
@Suite("NamespaceStarts", .serialized)
struct NamespaceStartsTests {
    @Test("a namespace's first process and its start; a later member is not it; an unknown namespace walks once, not again within the TTL")
    func firstProcess() throws {
        let first = Process()
        first.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        first.arguments = ["--net", "/bin/sleep", "30"]
        try first.run()
        defer { kill(first.processIdentifier, SIGKILL); first.waitUntilExit() }
        let pid = UInt32(first.processIdentifier)
        var netns: UInt32?
        #expect(Self.waitFor { netns = Self.netns(pid); return netns != nil && netns != Self.netns(UInt32(getpid())) })
        let ns = try #require(netns)
        // A second process joins the namespace later.
        let second = Process()
        second.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        second.arguments = ["--net=/proc/\(pid)/ns/net", "/bin/sleep", "30"]
        try second.run()
        defer { kill(second.processIdentifier, SIGKILL); second.waitUntilExit() }
        #expect(Self.waitFor { Self.netns(UInt32(second.processIdentifier)) == ns })

        let starts = NamespaceStarts()
        let now = ConditionLock.now()
        let found = try #require(starts.first(netns: ns, now: now))
        #expect(found.pid == pid)
        let uptime = try #require(Double(try String(contentsOfFile: "/proc/uptime", encoding: .utf8).split(separator: " ")[0]))
        // Started within the last minute, by the boot-time clock.
        #expect(found.startedAt <= UInt64(uptime * 1e9) + 1_000_000_000 && UInt64(uptime * 1e9) - found.startedAt < 60_000_000_000)

        // An unknown namespace: one more walk (after retryNs), then none within the TTL.
        let later = now + NamespaceStarts.retryNs
        #expect(starts.first(netns: 1, now: later) == nil)
        #expect(starts.walkedAt == later)
        #expect(starts.first(netns: 1, now: later + NamespaceStarts.retryNs) == nil)
        #expect(starts.walkedAt == later, "walked again for a namespace it just missed")
    }

    @Test("a namespace created moments after a walk is found by reading only the new processes; a spent budget looks no further and does not mark it missed")
    func namespaceAfterWalk() throws {
        let starts = NamespaceStarts()
        let now = ConditionLock.now()
        _ = starts.first(netns: 1, now: now)
        #expect(starts.walkedAt == now)
        let seen = starts.seen.count

        let late = try Self.unshared()
        defer { kill(late.process.processIdentifier, SIGKILL); late.process.waitUntilExit() }
        // Within retryNs: no full walk, yet the new namespace is found.
        let found = starts.first(netns: late.netns, now: now + 1)
        #expect(found?.pid == UInt32(late.process.processIdentifier))
        #expect(starts.walkedAt == now, "walked all of /proc again within retryNs")
        #expect(starts.newWalks == 1 && starts.seen.count > seen)

        // The budget spent: nothing read, and the namespace not marked missed.
        starts.newWalks = NamespaceStarts.newWalkBudget
        let other = try Self.unshared()
        defer { kill(other.process.processIdentifier, SIGKILL); other.process.waitUntilExit() }
        #expect(starts.first(netns: other.netns, now: now + 2) == nil)
        #expect(starts.missed[other.netns] == nil)
        // retryNs after the full walk: walks all of /proc again, and finds it.
        #expect(starts.first(netns: other.netns, now: now + NamespaceStarts.retryNs)?.pid == UInt32(other.process.processIdentifier))
        #expect(starts.walkedAt == now + NamespaceStarts.retryNs && starts.newWalks == 0)
    }

    /// `sleep` in a network namespace of its own, and that namespace.
    static func unshared() throws -> (process: Process, netns: UInt32) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        p.arguments = ["--net", "/bin/sleep", "30"]
        try p.run()
        let pid = UInt32(p.processIdentifier)
        var netns: UInt32?
        guard waitFor({ netns = Self.netns(pid); return netns != nil && netns != Self.netns(UInt32(getpid())) }), let ns = netns else {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw POSIXError(.ETIMEDOUT)
        }
        return (p, ns)
    }

    static func netns(_ pid: UInt32) -> UInt32? {
        var st = stat()
        return stat("/proc/\(pid)/ns/net", &st) == 0 ? UInt32(truncatingIfNeeded: st.st_ino) : nil
    }

    static func waitFor(_ cond: () -> Bool) -> Bool {
        for _ in 0..<100 {
            if cond() { return true }
            usleep(20_000)
        }
        return false
    }
}
