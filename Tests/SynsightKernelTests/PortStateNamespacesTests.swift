import Foundation
import Testing
@testable import SynsightKernel

/// PortState's namespace walk, over real processes: a namespace's processes
/// are all listed (up to the sample), not only the first found, so that a
/// question about one of them (a Podman pod's infra container among its app
/// containers) finds it.
@Suite("PortState namespaces", .serialized)
struct PortStateNamespacesTests {
    @Test("a namespace of three processes lists all three, the first found first; the host's is the host")
    func processesOfANamespace() throws {
        let first = try NamespaceStartsTests.unshared()
        defer { kill(first.process.processIdentifier, SIGKILL); first.process.waitUntilExit() }
        var joined: [Process] = []
        defer { for p in joined { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        for _ in 0..<2 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            p.arguments = ["--net=/proc/\(first.process.processIdentifier)/ns/net", "/bin/sleep", "30"]
            try p.run()
            joined.append(p)
            #expect(NamespaceStartsTests.waitFor { NamespaceStartsTests.netns(UInt32(p.processIdentifier)) == first.netns })
        }
        let all = PortState.namespaces()
        let ns = try #require(all.first { $0.inode == first.netns })
        let pids = [first.process] + joined
        #expect(ns.processCount == 3)
        #expect(Set(ns.pids) == Set(pids.map { UInt32($0.processIdentifier) }), "\(ns.pids)")
        #expect(ns.pid == ns.pids.min(), "the first found in /proc is the lowest pid")
        #expect(!ns.isHost)
        let host = try #require(all.first { $0.isHost })
        #expect(host.pids.count == min(host.processCount, PortState.Namespace.sampledPids))
    }
}
