import Foundation
import Testing

/// A refused SYN that was destination-NATed: an nft `dnat` rule in a server
/// namespace the test creates sends the client's port P to port Q, where
/// nothing listens. The refusal (on Q) must carry the original destination
/// (P, from the SYN's conntrack entry) and the client, joined across the
/// translation.
@Suite("DNAT, end to end", .serialized, .enabled(if: Privileged.enabled))
struct NATTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    @Test("DNAT to a closed port: original_destination and the client across the translation")
    func dnatToClosedPort() throws {
        let pair = try FirewallTests.Pair()
        defer { pair.remove() }
        let published = randomPort(), target = published + 1
        let ruleset = """
            table ip synsight_nat {
                chain prerouting {
                    type nat hook prerouting priority dstnat; policy accept;
                    tcp dport \(published) dnat to \(FirewallTests.v4Server):\(target)
                }
            }
            """
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-nat-\(UUID().uuidString)")
        try ruleset.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        try sh(["ip", "netns", "exec", pair.server.name, "nft", "-f", file.path])
        let trace = try TraceSession([])
        let c = try Peer.connect(from: pair.client, addr: FirewallTests.v4Server, port: published, timeout: 2)
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == pair.server.inode && $0.int("port") == target
        }, "no refusal on the translated port; stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.string("reason") == "no_listener")
        // never_listened, or other_netns when a concurrent test listens on that port elsewhere.
        #expect(["never_listened", "other_netns"].contains(r.string("cause") ?? ""), "record: \(r)")
        #expect((r.object("local")?["port"] as? Int) == target)
        #expect(r.evidence["original_destination"] as? String == "\(FirewallTests.v4Server):\(published)", "record: \(r)")
        #expect(r.pid("client") == c.pid, "record: \(r)")
        #expect((r.string("hint") ?? "").contains("the client connected to \(FirewallTests.v4Server):\(published)"))
    }
}
