import Foundation
import Testing

/// Handshake segments the kernel drops for reasons other than a firewall
/// verdict (`drop` / `packet_dropped`), provoked for real in namespaces each
/// test creates and deletes: strict reverse-path filtering with asymmetric
/// routes, a router namespace without a route, an IPv6 SYN dropped by a tc
/// ingress BPF program, a cgroup skb program, generic XDP. The IPv4 tc
/// ingress and egress drops (and the program named) are kernel-matrix
/// scenarios (sc_drop_tc, sc_drop_tc_egress), run on this kernel too.
/// The reason names asserted are the running kernel's (read from its BTF by
/// synsight; the tests read nothing from it), on 6.18: ip_rpfilter,
/// ip_innoroutes, tc_ingress.
@Suite("kernel drops of handshake segments, end to end", .serialized, .enabled(if: Privileged.enabled))
struct DropTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// A veth pair between two namespaces: `a` in `left` with `aAddr`/24, `b` in `right` with `bAddr`/24.
    static func veth(_ left: NetNS, _ a: String, _ aAddr: String, _ right: NetNS, _ b: String, _ bAddr: String) throws {
        try left.veth(a, aAddr, to: right, b, bAddr)
    }

    func record(_ trace: TraceSession, netns: NetNS, port: Int, timeout: Double = 8) -> JSONRecord? {
        trace.waitForRecord(timeout: timeout) {
            $0.string("reason") == "packet_dropped" && $0.int("netns") == netns.inode && $0.int("port") == port
        }
    }

    /// One traced connect from the pair's client to `addr`:`port` whose SYN
    /// is dropped (the client times out): the client and the packet_dropped
    /// record in the server's namespace.
    func droppedConnect(_ pair: NetNSPair, to addr: String, port: Int) throws
        -> (client: (pid: Int, errno: Int), record: JSONRecord) {
        let trace = try TraceSession([])
        let c = try Peer.connect(from: pair.client, addr: addr, port: port, timeout: 2)
        #expect(c.errno == Int(ETIMEDOUT))
        let r = record(trace, netns: pair.server, port: port)
        trace.stop()
        return (c, try #require(r, "no packet_dropped record for port \(port): \(trace.stdout)"))
    }

    func assertDrop(_ r: JSONRecord?, cause: String, dropReason: String, port: Int, interface: String,
                    direction: String, clientPid: Int, remote: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
        guard let r else {
            Issue.record("no packet_dropped record for port \(port)", sourceLocation: sourceLocation)
            return
        }
        #expect(r.int("v") == 1, sourceLocation: sourceLocation)
        #expect(r.string("kind") == "drop", "\(r)", sourceLocation: sourceLocation)
        #expect(r.string("reason") == "packet_dropped", "\(r)", sourceLocation: sourceLocation)
        #expect(r.string("cause") == cause, "\(r)", sourceLocation: sourceLocation)
        #expect(r.int("port") == port, sourceLocation: sourceLocation)
        #expect((r.object("local")?["port"] as? Int) == port, sourceLocation: sourceLocation)
        #expect((r.object("remote")?["addr"] as? String) == remote, "\(r)", sourceLocation: sourceLocation)
        #expect(r.pid("client") == clientPid, "\(r)", sourceLocation: sourceLocation)
        let ev = r.evidence
        #expect(ev["drop_reason"] as? String == dropReason, "\(r)", sourceLocation: sourceLocation)
        #expect(ev["drop_reason_code"] as? Int != nil, sourceLocation: sourceLocation)
        #expect(ev["interface"] as? String == interface, "\(r)", sourceLocation: sourceLocation)
        #expect(ev["direction"] as? String == direction, "\(r)", sourceLocation: sourceLocation)
        #expect(ev["segment"] as? String == "syn", sourceLocation: sourceLocation)
        // Root reads real kallsyms addresses: the location is a symbol, not a number.
        #expect((ev["location"] as? String).map { !$0.hasPrefix("0x") } == true, "\(r)", sourceLocation: sourceLocation)
        #expect((r.string("hint") ?? "").contains(interface), "\(r)", sourceLocation: sourceLocation)
    }

    @Test("strict rp_filter drops a SYN that arrives on the interface the route back does not use")
    func rpFilter() throws {
        let server = try NetNS(), client = try NetNS()
        defer { server.remove(); client.remove() }
        let n = server.number
        let (s1, c1, s2, c2) = ("drs\(n)a", "drc\(n)a", "drs\(n)b", "drc\(n)b")
        try Self.veth(server, s1, "198.18.40.1", client, c1, "198.18.40.2")
        try Self.veth(server, s2, "198.18.41.1", client, c2, "198.18.41.2")
        // The client sends from its second address out of the first link; the
        // server's route back to 198.18.41.2 is the second link: strict mode
        // drops. The device's own setting is 0: the kernel applies the larger
        // of it and `all`'s (1), and the record must say so.
        try sh(["ip", "netns", "exec", server.name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1",
                "net.ipv4.conf.\(s1).rp_filter=0"])
        // A static neighbour: the ARP request from that source would be filtered too.
        let link = try sh(["ip", "-n", server.name, "-j", "link", "show", "dev", s1])
        let mac = try #require((try JSONSerialization.jsonObject(with: Data(link.utf8)) as? [[String: Any]])?.first?["address"] as? String)
        try sh(["ip", "-n", client.name, "neigh", "replace", "198.18.40.1", "lladdr", mac, "dev", c1, "nud", "permanent"])
        let port = randomPort()
        let listener = try Peer(listenIn: server, addr: "0.0.0.0", port: port)
        // The client runs in a systemd-shaped unit: the record names it as the operator knows it.
        let (unitCgroup, unit) = try CgroupTree.service(root: try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy"))
        defer { unitCgroup.remove() }

        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "198.18.40.1", port: port, timeout: 2, source: "198.18.41.2",
                                 cgroupDir: unitCgroup.leaf)
        #expect(c.errno == Int(ETIMEDOUT))
        let r = record(trace, netns: server, port: port)
        trace.stop()
        assertDrop(r, cause: "rp_filter", dropReason: "ip_rpfilter", port: port, interface: s1,
                   direction: "ingress", clientPid: c.pid, remote: "198.18.41.2")
        #expect(r?.pid("process") == listener.pid, "\(String(describing: r))")
        #expect(r?.object("client")?["unit"] as? String == unit, "\(String(describing: r))")
        #expect(r?.object("client")?["cgroup"] as? String == unitCgroup.path, "\(String(describing: r))")
        #expect(r?.evidence["sysctl"] as? String == "net.ipv4.conf.\(s1).rp_filter")
        #expect(r?.string("hint")?.contains("net.ipv4.conf.\(s1).rp_filter=2") == true)
        // The values that decided it, read in the server's namespace, and the route back.
        let rp = r?.evidence["rp_filter"] as? [String: Any]
        #expect(rp?["all"] as? Int == 1 && rp?["device"] as? Int == 0, "\(String(describing: r))")
        #expect(rp?["effective"] as? Int == 1 && rp?["mode"] as? String == "strict", "\(String(describing: r))")
        #expect((rp?["decision"] as? String)?.contains("leaves by \(s2), not by \(s1)") == true, "\(String(describing: r))")
        let back = r?.evidence["route_back"] as? [String: Any]
        #expect(back?["destination"] as? String == "198.18.41.2" && back?["source"] as? String == "198.18.40.1", "\(String(describing: r))")
        #expect(back?["result"] as? String == "route" && back?["interface"] as? String == s2, "\(String(describing: r))")
        #expect(back?["next_hop"] as? String == "directly connected" && back?["table"] as? Int == 254, "\(String(describing: r))")
        #expect(r?.evidence["route_unavailable"] == nil, "\(String(describing: r))")
        #expect(r?.string("hint")?.contains("the route back to 198.18.41.2 leaves by \(s2), not \(s1)") == true, "\(String(describing: r))")
        // One drop record per attempt (the retransmitted SYN is the same one), and the client's own
        // failure: it gave up after 2 s (python's timeout), its SYNs dropped on this host by that drop.
        let mine = trace.records.filter { $0.int("port") == port }
        #expect(mine.count == 2, "\(mine)")
        let gaveUp = mine.first { $0.string("reason") == "connect_timeout" }
        #expect(gaveUp?.string("cause") == "dropped_on_host" && gaveUp?.evidence["abandoned_by"] as? String == "application", "\(mine)")
        #expect(gaveUp?.pid("process") == c.pid && (gaveUp?.evidence["drop"] as? [String: Any])?["cause"] as? String == "rp_filter", "\(mine)")
    }

    @Test("loose rp_filter drops a SYN whose source has no route back at all; the record says there is none")
    func rpFilterLooseNoRouteBack() throws {
        let (server, client, s1, c1) = try Self.unreachableSource(tag: "l", link: "198.18.44", source: "198.18.45.2", rpFilter: 2)
        defer { server.remove(); client.remove() }
        let link = try sh(["ip", "-n", server.name, "-j", "link", "show", "dev", s1])
        let mac = try #require((try JSONSerialization.jsonObject(with: Data(link.utf8)) as? [[String: Any]])?.first?["address"] as? String)
        try sh(["ip", "-n", client.name, "neigh", "replace", "198.18.44.1", "lladdr", mac, "dev", c1, "nud", "permanent"])
        let port = randomPort()
        _ = try Peer(listenIn: server, addr: "0.0.0.0", port: port)

        let trace = try TraceSession(["--port", String(port)])
        let c = try Peer.connect(from: client, addr: "198.18.44.1", port: port, timeout: 2, source: "198.18.45.2")
        #expect(c.errno == Int(ETIMEDOUT))
        let r = record(trace, netns: server, port: port)
        trace.stop()
        assertDrop(r, cause: "rp_filter", dropReason: "ip_rpfilter", port: port, interface: s1,
                   direction: "ingress", clientPid: c.pid, remote: "198.18.45.2")
        let rp = r?.evidence["rp_filter"] as? [String: Any]
        #expect(rp?["all"] as? Int == 2 && rp?["device"] as? Int == 0 && rp?["effective"] as? Int == 2, "\(String(describing: r))")
        #expect(rp?["mode"] as? String == "loose", "\(String(describing: r))")
        #expect((rp?["decision"] as? String)?.hasPrefix("loose: no route back to 198.18.45.2") == true, "\(String(describing: r))")
        let back = r?.evidence["route_back"] as? [String: Any]
        #expect(back?["destination"] as? String == "198.18.45.2" && back?["result"] as? String == "no_route", "\(String(describing: r))")
        #expect(back?["errno"] as? String == "ENETUNREACH" && back?["interface"] == nil, "\(String(describing: r))")
        #expect(r?.string("hint")?.contains("there is no route back to 198.18.45.2") == true, "\(String(describing: r))")
    }

    @Test("rp_filter off and no route back: the listener drops the SYN unanswered (no drop reason, no RST, only its drop counter); no_route_back names it, the lookup back, and the client's timeout points at it")
    func noRouteBackUnanswered() throws {
        // Reverse-path filtering off (a new namespace's default): the SYN
        // gets in and only the SYN-ACK has nowhere to go.
        let (server, client, _, _) = try Self.unreachableSource(tag: "n", link: "198.18.46", source: "198.18.47.2", rpFilter: 0)
        defer { server.remove(); client.remove() }
        // The client gives up after one retransmission (3 s): its own ETIMEDOUT.
        try sh(["ip", "netns", "exec", client.name, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])
        let port = randomPort()
        let listener = try Peer(listenIn: server, addr: "0.0.0.0", port: port)

        let trace = try TraceSession(["--port", String(port)])
        let c = try Peer.connect(from: client, addr: "198.18.46.1", port: port, timeout: 8, source: "198.18.47.2")
        #expect(c.errno == Int(ETIMEDOUT))
        let r = try #require(trace.waitForRecord(timeout: 8) { $0.string("reason") == "no_route_back" && $0.int("port") == port },
                             "no no_route_back record; records: \(trace.stdout)")
        let timeout = trace.waitForRecord(timeout: 8) { $0.string("reason") == "connect_timeout" && $0.int("port") == port }
        trace.stop()
        #expect(r.string("kind") == "drop" && r.string("cause") == "no_matching_route" && r.int("netns") == server.inode, "\(r)")
        #expect(r.pid("process") == listener.pid && r.pid("client") == c.pid, "\(r)")
        #expect((r.object("local")?["addr"] as? String) == "198.18.46.1" && (r.object("remote")?["addr"] as? String) == "198.18.47.2", "\(r)")
        let back = r.evidence["route_back"] as? [String: Any]
        #expect(back?["destination"] as? String == "198.18.47.2" && back?["source"] as? String == "198.18.46.1", "\(r)")
        #expect(back?["result"] as? String == "no_route" && back?["errno"] as? String == "ENETUNREACH", "\(r)")
        #expect(r.evidence["stage"] as? String == "syn" && (r.evidence["accept_queue"] as? Int ?? -1) < (r.evidence["max_backlog"] as? Int ?? 0), "\(r)")
        #expect((r.string("hint") ?? "").contains("has no route back to 198.18.47.2"), "\(r)")
        // One record for the attempt (its retransmitted SYN is the same failure);
        // the client's timeout is explained by it.
        #expect(trace.records.filter { $0.string("reason") == "no_route_back" && $0.int("port") == port }.count == 1, "\(trace.stdout)")
        let t = try #require(timeout, "no connect_timeout record; records: \(trace.stdout)")
        #expect(t.string("cause") == "dropped_on_host" && t.pid("process") == c.pid, "\(t)")
        #expect(((t.evidence["drop"] as? [String: Any])?["reason"] as? String) == "no_route_back", "\(t)")
    }

    @Test("a marked listener (SO_MARK) whose mark's policy rule routes its SYN-ACKs to an unreachable route, beside a main table that has the route back: no_route_back replays the lookup with the listener's mark and owner, and names them")
    func noRouteBackMarkedListener() throws {
        let pair = try NetNSPair(subnet: "198.18.48")
        defer { pair.remove() }
        // The main table routes the client back; the listener's mark (0x2a) is routed by table 142, which rejects.
        try sh(["ip", "-n", pair.server.name, "rule", "add", "fwmark", "0x2a", "lookup", "142", "priority", "100"])
        try sh(["ip", "-n", pair.server.name, "route", "add", "unreachable", "default", "table", "142"])
        try sh(["ip", "netns", "exec", pair.client.name, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])
        let port = randomPort()
        let listener = try Peer(listenIn: pair.server, addr: "0.0.0.0", port: port, extra: ["--mark", "0x2a"])
        let trace = try TraceSession(["--port", String(port)])
        let c = try Peer.connect(from: pair.client, addr: "198.18.48.1", port: port, timeout: 8)
        #expect(c.errno == Int(ETIMEDOUT))
        let r = try #require(trace.waitForRecord(timeout: 8) { $0.string("reason") == "no_route_back" && $0.int("port") == port },
                             "no no_route_back record; records: \(trace.stdout)")
        trace.stop()
        #expect(r.string("cause") == "unreachable_route" && r.int("netns") == pair.server.inode, "\(r)")
        #expect(r.pid("process") == listener.pid && r.pid("client") == c.pid, "\(r)")
        let back = r.evidence["route_back"] as? [String: Any]
        #expect(back?["destination"] as? String == "198.18.48.2" && back?["mark"] as? Int == 0x2a && back?["uid"] as? Int == 0, "\(r)")
        // The kernel's answer to the marked lookup: table 142's unreachable route (the main table's would be a unicast route).
        #expect(back?["errno"] as? String == "EHOSTUNREACH" && back?["next_hop"] == nil, "\(r)")
        #expect((r.string("hint") ?? "").contains("ip route get 198.18.48.2 from 198.18.48.1 mark 0x2a"), "\(r)")
    }

    @Test("syncookies off: past three quarters of tcp_max_syn_backlog the listener drops new clients' SYNs unanswered with its queues far from full; syn_queue_full names the reserve")
    func synBacklogReserve() throws {
        let pair = try NetNSPair(subnet: "198.18.12")
        defer { pair.remove() }
        let port = randomPort()
        try sh(["ip", "netns", "exec", pair.server.name, "sysctl", "-qw", "net.ipv4.tcp_syncookies=0", "net.ipv4.tcp_max_syn_backlog=16"])
        // The client never completes a handshake (its SYN-ACKs are dropped): the server's requests wait in its SYN queue.
        try pair.client.loadNft("""
            table inet synsight_e2e {
              chain in { type filter hook input priority 0; policy accept;
                tcp sport \(port) tcp flags & (syn | ack) == syn | ack drop
              }
            }
            """)
        let listener = try Peer(runIn: pair.server, ["stall", "0.0.0.0", String(port), "--backlog", "64"])
        let trace = try TraceSession(["--port", String(port)])
        // 24 attempts at once, kept 4 s (their SYNs are retransmitted at 1 s and 3 s): from the 13th on
        // fewer than 16 / 4 request slots are left and the kernel drops the SYN of a client it has not talked to before.
        try sh(["ip", "netns", "exec", pair.client.name, "/usr/bin/python3", "-c", """
            import socket, time
            socks = []
            for _ in range(24):
                s = socket.socket()
                s.setblocking(False)
                try: s.connect(("\(pair.serverAddr)", \(port)))
                except BlockingIOError: pass
                socks.append(s)
            time.sleep(4)
            """])
        let r = try #require(trace.waitForRecord(timeout: 8) { $0.string("reason") == "syn_queue_full" && $0.int("port") == port },
                             "no syn_queue_full record; records: \(trace.stdout)")
        trace.stop()
        #expect(r.string("kind") == "drop" && r.string("cause") == "syncookies_off" && r.int("netns") == pair.server.inode, "\(r)")
        #expect(r.pid("process") == listener.pid, "\(r)")
        #expect(r.evidence["max_syn_backlog"] as? Int == 16 && (r.evidence["syn_queue"] as? Int ?? 0) >= 13, "\(r)")
        #expect((r.evidence["syn_queue"] as? Int ?? 64) < (r.evidence["max_backlog"] as? Int ?? 0), "\(r)")
        #expect(r.string("hint")?.contains("past three quarters of net.ipv4.tcp_max_syn_backlog (16)") == true, "\(r)")
        #expect(!trace.records.contains { $0.string("reason") == "no_route_back" }, "\(trace.stdout)")
        listener.killHard()
    }

    @Test("a router namespace without a route drops the forwarded SYN")
    func noRoute() throws {
        let (router, client, r1) = try Self.routerWithoutRoute(ipv6: false)
        defer { router.remove(); client.remove() }
        let port = randomPort()

        let trace = try TraceSession([])
        let c = try Peer.connect(from: client, addr: "198.18.43.9", port: port, timeout: 2)
        // The router answers with ICMP net unreachable; the client may see it or time out.
        #expect([Int(ENETUNREACH), Int(EHOSTUNREACH), Int(ETIMEDOUT)].contains(c.errno), "errno \(c.errno)")
        let r = record(trace, netns: router, port: port)
        trace.stop()
        assertDrop(r, cause: "no_route", dropReason: "ip_innoroutes", port: port, interface: r1,
                   direction: "forward", clientPid: c.pid, remote: "198.18.42.2")
        #expect(r?.string("hint")?.contains("198.18.43.9") == true)
        // The router's lookup for the SYN, replayed in its namespace when the drop was decoded.
        let lookup = r?.evidence["route_lookup"] as? [String: Any]
        #expect(lookup?["destination"] as? String == "198.18.43.9" && lookup?["source"] as? String == "198.18.42.2", "\(String(describing: r))")
        #expect(lookup?["iif"] as? String == r1 && lookup?["result"] as? String == "no_route", "\(String(describing: r))")
        #expect(lookup?["errno"] as? String == "ENETUNREACH" && lookup?["interface"] == nil, "\(String(describing: r))")
        #expect(r?.evidence["route_unavailable"] == nil, "\(String(describing: r))")
        #expect(r?.string("hint")?.contains("`ip route get 198.18.43.9 from 198.18.42.2 iif \(r1)`") == true, "\(String(describing: r))")
        // The client's own failure is the same event, not a second record
        // (a timeout is the exception: connect_timeout names this drop).
        #expect(!trace.records.contains {
            $0.string("kind") == "connect_failure" && $0.pid("process") == c.pid && $0.string("reason") != "connect_timeout"
        })
    }

    @Test("an IPv6 router namespace without a route: the forwarded SYN's failed lookup, replayed")
    func noRouteIPv6() throws {
        let (router, client, r1) = try Self.routerWithoutRoute(ipv6: true)
        defer { router.remove(); client.remove() }
        let port = randomPort()

        let trace = try TraceSession(["--port", String(port)])
        let c = try Peer.connect(from: client, addr: "fd00:5e:43::9", port: port, timeout: 2)
        #expect([Int(ENETUNREACH), Int(EHOSTUNREACH), Int(ETIMEDOUT)].contains(c.errno), "errno \(c.errno)")
        let r = record(trace, netns: router, port: port)
        trace.stop()
        // IPv6 drops it as the null route's input (ip6_pkt_discard), before the FORWARD hook.
        assertDrop(r, cause: "no_route", dropReason: "ip_innoroutes", port: port, interface: r1,
                   direction: "ingress", clientPid: c.pid, remote: "fd00:5e:42::2")
        let lookup = r?.evidence["route_lookup"] as? [String: Any]
        #expect(lookup?["destination"] as? String == "fd00:5e:43::9" && lookup?["source"] as? String == "fd00:5e:42::2", "\(String(describing: r))")
        #expect(lookup?["iif"] as? String == r1 && lookup?["result"] as? String == "no_route", "\(String(describing: r))")
        #expect(lookup?["errno"] as? String == "ENETUNREACH", "\(String(describing: r))")
        #expect(r?.evidence["route_unavailable"] == nil, "\(String(describing: r))")
    }

    @Test("a router namespace deleted right after its no-route drop: the lookup was made in it in time")
    func noRouteNamespaceDeleted() throws {
        let (router, client, r1) = try Self.routerWithoutRoute(ipv6: false)
        defer { router.remove(); client.remove() }
        let port = randomPort()

        let trace = try TraceSession(["--port", String(port)])
        // 20 ms: the drop is read at once (it wakes the consumer), the namespace
        // pinned when decoded; without the pin the lookup finds it gone.
        try Self.synThenDelete(from: client, to: "198.18.43.9", port: port, deleting: router, afterMs: 20)
        #expect(access("/run/netns/\(router.name)", F_OK) != 0, "the router namespace still exists")
        let r = record(trace, netns: router, port: port)
        trace.stop()
        guard let r else {
            Issue.record("no packet_dropped record; stderr: \(trace.stderr)")
            return
        }
        #expect(r.string("cause") == "no_route", "\(r)")
        let lookup = r.evidence["route_lookup"] as? [String: Any]
        #expect(lookup?["iif"] as? String == r1 && lookup?["result"] as? String == "no_route", "\(r)")
        #expect(r.evidence["route_unavailable"] == nil, "\(r)")
    }

    /// A client namespace that routes 198.18.43.0/24 (IPv6: fd00:5e:43::/64)
    /// through a forwarding router namespace that has no route there; the
    /// router's end of their link is `routerLink`. The caller removes both.
    /// A server and a client joined by one link (`<link>.1`, `<link>.2`; the
    /// devices `drs<n><tag>`, `drc<n><tag>`). The client also owns `source`,
    /// which the server has no route to (and no default route); the server's
    /// net.ipv4.conf.all.rp_filter is `rpFilter`, the link's own 0.
    static func unreachableSource(tag: String, link: String, source: String, rpFilter: Int) throws
        -> (server: NetNS, client: NetNS, serverDev: String, clientDev: String) {
        let server = try NetNS(), client = try NetNS()
        do {
            let n = server.number
            let (s1, c1) = ("drs\(n)\(tag)", "drc\(n)\(tag)")
            try veth(server, s1, link + ".1", client, c1, link + ".2")
            try sh(["ip", "-n", client.name, "addr", "add", source + "/32", "dev", c1])
            try sh(["ip", "netns", "exec", server.name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=\(rpFilter)",
                    "net.ipv4.conf.\(s1).rp_filter=0"])
            return (server, client, s1, c1)
        } catch {
            server.remove()
            client.remove()
            throw error
        }
    }

    static func routerWithoutRoute(ipv6: Bool) throws -> (router: NetNS, client: NetNS, routerLink: String) {
        let router = try NetNS(), client = try NetNS()
        do {
            let n = router.number
            let (r1, c1) = ("drr\(n)\(ipv6 ? "6" : "a")", "drc\(n)\(ipv6 ? "6" : "a")")
            if ipv6 {
                try sh(["ip", "link", "add", r1, "netns", router.name, "type", "veth", "peer", "name", c1, "netns", client.name])
                try sh(["ip", "-n", router.name, "addr", "add", "fd00:5e:42::1/64", "dev", r1, "nodad"])
                try sh(["ip", "-n", client.name, "addr", "add", "fd00:5e:42::2/64", "dev", c1, "nodad"])
                try sh(["ip", "-n", router.name, "link", "set", r1, "up"])
                try sh(["ip", "-n", client.name, "link", "set", c1, "up"])
                try sh(["ip", "netns", "exec", router.name, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
                try sh(["ip", "-n", client.name, "-6", "route", "add", "fd00:5e:43::/64", "via", "fd00:5e:42::1"])
            } else {
                try veth(router, r1, "198.18.42.1", client, c1, "198.18.42.2")
                try sh(["ip", "netns", "exec", router.name, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
                try sh(["ip", "-n", client.name, "route", "add", "198.18.43.0/24", "via", "198.18.42.1"])
            }
            return (router, client, r1)
        } catch {
            router.remove()
            client.remove()
            throw error
        }
    }

    /// From a thread of this process: enter `ns`, send one SYN to `addr`
    /// (a non-blocking connect), come back, and `afterMs` later delete
    /// `deleting` as `ip netns del` does (detach and remove its /run/netns
    /// mount): the deletion follows the drop closely whatever the load.
    static func synThenDelete(from ns: NetNS, to addr: String, port: Int, deleting victim: NetNS, afterMs: Int) throws {
        var target = in_addr()
        guard inet_pton(AF_INET, addr, &target) == 1 else { throw CommandFailure(description: "bad address \(addr)") }
        let destination = target
        _ = try NamespaceVisit.run(in: ns, deleting: victim, afterMs: afterMs, {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = in_port_t(UInt16(port).bigEndian)
            sa.sin_addr = destination
            _ = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            return fd
        }, after: { fd in close(fd) })
    }

    /// Compiles a tc direct-action program that drops TCP (IPv4 or IPv6) to
    /// `port`, with the clang that builds synsight's own BPF programs.
    func tcProgram(port: Int, dir: String) throws -> String {
        let src = "\(dir)/drop.c", obj = "\(dir)/drop.o"
        try """
            #include <linux/bpf.h>
            #include <linux/if_ether.h>
            #include <linux/ip.h>
            #include <linux/ipv6.h>
            #include <linux/tcp.h>
            #include <linux/in.h>
            __attribute__((section("tc"), used)) int synsight_e2e_drop(struct __sk_buff *skb)
            {
            \tvoid *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
            \tstruct ethhdr *eth = data;
            \tstruct tcphdr *th;
            \tif ((void *)(eth + 1) > end)
            \t\treturn 0; /* TC_ACT_OK */
            \tif (eth->h_proto == __builtin_bswap16(ETH_P_IP)) {
            \t\tstruct iphdr *ip = (void *)(eth + 1);
            \t\tif ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
            \t\t\treturn 0;
            \t\tth = (void *)ip + ip->ihl * 4;
            \t} else if (eth->h_proto == __builtin_bswap16(ETH_P_IPV6)) {
            \t\tstruct ipv6hdr *ip6 = (void *)(eth + 1);
            \t\tif ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
            \t\t\treturn 0;
            \t\tth = (void *)(ip6 + 1);
            \t} else {
            \t\treturn 0;
            \t}
            \tif ((void *)(th + 1) > end)
            \t\treturn 0;
            \treturn th->dest == __builtin_bswap16(\(port)) ? 2 /* TC_ACT_SHOT */ : 0;
            }
            char _license[] __attribute__((section("license"), used)) = "GPL";
            """.write(toFile: src, atomically: true, encoding: .utf8)
        try compileBPF(src, obj)
        return obj
    }

    /// Compiles a test's BPF program with the clang that builds synsight's own.
    func compileBPF(_ src: String, _ obj: String) throws {
        let clang = ["/opt/swift/usr/bin/clang", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "clang"
        var arch = utsname()
        uname(&arch)
        let machine = withUnsafeBytes(of: arch.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        try sh([clang, "-target", "bpf", "-O2", "-I/usr/include/\(machine)-linux-gnu", "-c", src, "-o", obj])
    }

    /// Attaches the compiled tc program to `dev` (direct action) on a clsact
    /// qdisc; they live on the namespace's veth and go with the namespace.
    func attachTC(_ obj: String, to dev: String, in ns: NetNS, direction: String) throws {
        try sh(["ip", "netns", "exec", ns.name, "tc", "qdisc", "add", "dev", dev, "clsact"])
        try sh(["ip", "netns", "exec", ns.name, "tc", "filter", "add", "dev", dev, direction, "bpf", "da",
                "obj", obj, "sec", "tc"])
    }

    /// The record names the program: `bpf_programs` holds exactly `expected` (id, name, tag, type) at `attach`,
    /// and the hint says how to inspect it.
    func assertNamed(_ r: JSONRecord?, program expected: [String: Any], type: String, attach: String,
                     inspect: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let r else { return }
        let programs = r.evidence["bpf_programs"] as? [[String: Any]]
        #expect(programs?.count == 1, "\(r)", sourceLocation: sourceLocation)
        guard let p = programs?.first, let id = expected["id"] as? Int else {
            Issue.record("no program named: \(r)", sourceLocation: sourceLocation)
            return
        }
        #expect(p["id"] as? Int == id, "\(r)", sourceLocation: sourceLocation)
        #expect(p["name"] as? String == expected["name"] as? String, "\(r)", sourceLocation: sourceLocation)
        #expect(p["tag"] as? String == expected["tag"] as? String, "\(r)", sourceLocation: sourceLocation)
        #expect(p["type"] as? String == type, "\(r)", sourceLocation: sourceLocation)
        #expect(p["attach"] as? String == attach, "\(r)", sourceLocation: sourceLocation)
        #expect(p["owner"] == nil, "\(r)", sourceLocation: sourceLocation)
        if let pref = expected["pref"] as? Int { #expect(p["tc_pref"] as? Int == pref, "\(r)", sourceLocation: sourceLocation) }
        if let n = expected["bpf_name"] as? String { #expect(p["tc_name"] as? String == n, "\(r)", sourceLocation: sourceLocation) }
        #expect(r.evidence["bpf_programs_unavailable"] == nil, "\(r)", sourceLocation: sourceLocation)
        let hint = r.string("hint") ?? ""
        #expect(hint.contains("`bpftool prog show id \(id)`") && hint.contains(inspect), "\(hint)", sourceLocation: sourceLocation)
    }

    @Test("a tc ingress BPF program drops an IPv6 SYN")
    func tcIngressIPv6() throws {
        let pair = try NetNSPair(subnet: "198.18.46", v6: "fd00:5e:46::")
        defer { pair.remove() }
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let obj = try tcProgram(port: port, dir: dir)
        try attachTC(obj, to: pair.serverDev, in: pair.server, direction: "ingress")
        let (c, r) = try droppedConnect(pair, to: pair.serverAddr6!, port: port)
        assertDrop(r, cause: "bpf_program", dropReason: "tc_ingress", port: port, interface: pair.serverDev,
                   direction: "ingress", clientPid: c.pid, remote: pair.clientAddr6!)
        #expect(r.string("family") == "ipv6")
    }

    /// Compiles a cgroup skb program that drops every packet of sockets bound to `port`.
    func cgroupProgram(port: Int, dir: String) throws -> String {
        let src = "\(dir)/cg.c", obj = "\(dir)/cg.o"
        try """
            #include <linux/bpf.h>
            __attribute__((section("cgroup_skb/ingress"), used)) int synsight_e2e_cgroup(struct __sk_buff *skb)
            {
            \treturn skb->local_port == \(port) ? 0 /* drop */ : 1;
            }
            char _license[] __attribute__((section("license"), used)) = "GPL";
            """.write(toFile: src, atomically: true, encoding: .utf8)
        try compileBPF(src, obj)
        return obj
    }

    @Test("a cgroup inet ingress BPF program on the listener's cgroup drops the SYN")
    func cgroupIngress() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy on this host")
        let pair = try NetNSPair(subnet: "198.18.47")
        defer { pair.remove() }
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let obj = try cgroupProgram(port: port, dir: dir)
        let cgroup = try CgroupTree(root: root, components: ["synsight-e2e-bpf-\(getpid())-\(pair.server.number)"])
        defer { cgroup.remove() }
        // Loaded and attached from a private mount namespace (bpftool needs a
        // bpffs pin, the host's mounts stay as they are); the attachment keeps
        // the program, and it goes when the cgroup is removed.
        let pins = "\(dir)/bpffs"
        try FileManager.default.createDirectory(atPath: pins, withIntermediateDirectories: false)
        try sh(["unshare", "-m", "sh", "-c", "mount -t bpf bpf \(pins) && bpftool prog load \(obj) \(pins)/p type cgroup/skb "
                + "&& bpftool cgroup attach \(cgroup.leaf) ingress pinned \(pins)/p"])
        let attached = try sh(["bpftool", "-j", "cgroup", "show", cgroup.leaf])
        let progs = try #require(try JSONSerialization.jsonObject(with: Data(attached.utf8)) as? [[String: Any]])
        var expected = try #require(progs.first, "nothing attached: \(attached)")
        let id = try #require(expected["id"] as? Int)
        defer { _ = try? sh(["bpftool", "cgroup", "detach", cgroup.leaf, "ingress", "id", String(id)]) }
        let info = try sh(["bpftool", "-j", "prog", "show", "id", String(id)])
        expected = try #require(try JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any])
        // The listener's socket is made inside the cgroup: cgroup programs run for the socket's cgroup.
        let listener = try Peer(listenIn: pair.server, addr: "0.0.0.0", port: port, cgroup: cgroup)
        defer { listener.killHard() }
        let (c, r) = try droppedConnect(pair, to: pair.serverAddr, port: port)
        // tcp_filter() runs the listener's cgroup ingress programs: SOCKET_FILTER on 6.x.
        #expect(r.string("cause") == "socket_filter", "\(r)")
        #expect(r.evidence["drop_reason"] as? String == "socket_filter", "\(r)")
        #expect(r.pid("process") == listener.pid, "\(r)")
        #expect(r.pid("client") == c.pid, "\(r)")
        assertNamed(r, program: expected, type: "cgroup_skb", attach: "cgroup inet ingress \(cgroup.path)",
                    inspect: "`bpftool cgroup show \(cgroup.leaf)`")
    }

    @Test("an XDP program drops the SYN, generic or native on a veth: the record names it and its mode",
          arguments: ["xdpgeneric", "xdpdrv"])
    func xdpDrop(mode: String) throws {
        let pair = try NetNSPair(subnet: "198.18.48")
        defer { pair.remove() }
        let (server, s1) = (pair.server, pair.serverDev)
        let port = randomPort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = "\(dir)/xdp.c", obj = "\(dir)/xdp.o"
        try """
            #include <linux/bpf.h>
            #include <linux/if_ether.h>
            #include <linux/ip.h>
            #include <linux/tcp.h>
            #include <linux/in.h>
            __attribute__((section("xdp"), used)) int synsight_e2e_xdp(struct xdp_md *ctx)
            {
            \tvoid *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
            \tstruct ethhdr *eth = data;
            \tif ((void *)(eth + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
            \t\treturn XDP_PASS;
            \tstruct iphdr *ip = (void *)(eth + 1);
            \tif ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
            \t\treturn XDP_PASS;
            \tstruct tcphdr *th = (void *)ip + ip->ihl * 4;
            \tif ((void *)(th + 1) > end)
            \t\treturn XDP_PASS;
            \treturn th->dest == __builtin_bswap16(\(port)) ? XDP_DROP : XDP_PASS;
            }
            char _license[] __attribute__((section("license"), used)) = "GPL";
            """.write(toFile: src, atomically: true, encoding: .utf8)
        try compileBPF(src, obj)
        // On the namespace's veth: it goes with the namespace.
        try sh(["ip", "-n", server.name, "link", "set", "dev", s1, mode, "obj", obj, "sec", "xdp"])
        let link = try sh(["ip", "-n", server.name, "-j", "-d", "link", "show", "dev", s1])
        let info = try #require((try JSONSerialization.jsonObject(with: Data(link.utf8)) as? [[String: Any]])?.first)
        let expected = try #require((info["xdp"] as? [String: Any])?["prog"] as? [String: Any], "no xdp program: \(link)")
        let listener = try Peer(listenIn: server, addr: "0.0.0.0", port: port)
        let (c, r) = try droppedConnect(pair, to: pair.serverAddr, port: port)
        // 6.18 frees it without a reason (do_xdp_generic, veth_xdp_rcv_skb); a kernel may name it XDP.
        #expect(["unspecified", "bpf_program"].contains(r.string("cause") ?? ""), "\(r)")
        #expect(r.pid("process") == listener.pid, "\(r)")
        #expect(r.pid("client") == c.pid, "\(r)")
        assertNamed(r, program: expected, type: "xdp", attach: "\(mode) on \(s1)", inspect: "`ip link show dev \(s1)`")
        #expect((r.string("hint") ?? "").contains("`ip link set dev \(s1) \(mode) off`"), "\(r)")
    }
}
