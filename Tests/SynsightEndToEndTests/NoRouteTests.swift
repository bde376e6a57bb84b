import Foundation
import Testing

/// connect() refused by the routing table, in a namespace the test creates
/// with one route of each refusing type (and nothing else but loopback): the
/// record must name the cause from the replayed lookup, the destination, the
/// client, and the errno connect() returned; a prohibit route's EACCES is no
/// LSM denial.
@Suite("no_route, end to end", .serialized, .enabled(if: Privileged.enabled))
struct NoRouteTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    @Test("no route, unreachable, prohibit and blackhole routes (IPv4), a prohibit route (IPv6): each connect() named")
    func everyRouteType() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let ip = ["ip", "netns", "exec", ns.name, "ip"]
        try sh(ip + ["route", "add", "unreachable", "203.0.113.2"])
        try sh(ip + ["route", "add", "prohibit", "203.0.113.3"])
        try sh(ip + ["route", "add", "blackhole", "203.0.113.4"])
        try sh(ip + ["-6", "route", "add", "prohibit", "2001:db8::3"])
        let cases: [(addr: String, errno: Int32, cause: String, result: String)] = [
            ("203.0.113.1", ENETUNREACH, "no_matching_route", "no_route"),
            ("203.0.113.2", EHOSTUNREACH, "unreachable_route", "unreachable"),
            ("203.0.113.3", EACCES, "prohibit_route", "prohibit"),
            ("203.0.113.4", EINVAL, "blackhole_route", "invalid"),
            ("2001:db8::3", EACCES, "prohibit_route", "prohibit"),
        ]
        let port = randomPort()
        let trace = try TraceSession([])
        for c in cases {
            let out = try Peer.connect(from: ns, addr: c.addr, port: port, timeout: 1)
            #expect(out.errno == Int(c.errno), "\(c.addr): connect gave \(out.errno)")
            let r = try #require(trace.waitForRecord(timeout: 8) {
                $0.string("reason") == "no_route" && ($0.object("remote")?["addr"] as? String) == c.addr
            }, "no no_route record for \(c.addr); stderr: \(trace.stderr)")
            #expect(r.string("kind") == "connect_failure")
            #expect(r.string("cause") == c.cause, "\(c.addr): \(r)")
            #expect(r.int("port") == port && r.int("netns") == ns.inode)
            #expect(r.pid("client") == out.pid && r.pid("process") == out.pid)
            #expect(r.evidence["errno"] as? String == ErrnoNames.name(c.errno))
            let lookup = r.evidence["route_lookup"] as? [String: Any]
            #expect(lookup?["result"] as? String == c.result, "\(c.addr): \(r.evidence)")
            #expect(lookup?["destination"] as? String == c.addr)
        }
        trace.stop()
        #expect(!trace.stdout.contains("\"lsm_denied\""), "a prohibit route's EACCES is no LSM denial: \(trace.stdout)")
    }
}

/// errno names as synsight writes them (the few these tests need).
enum ErrnoNames {
    static func name(_ e: Int32) -> String {
        [ENETUNREACH: "ENETUNREACH", EHOSTUNREACH: "EHOSTUNREACH", EACCES: "EACCES", EINVAL: "EINVAL"][e] ?? "\(e)"
    }
}
