@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// bind() EADDRNOTAVAIL explained by the namespace's addresses
/// (BindAddressAttribution.swift), on a fake address source.
@Suite("syscalls: bind() to an address the namespace cannot bind")
struct BindAddressTests {
    /// Answers a localAddress query with these addresses.
    struct Addresses: DropRouteSource {
        var all: [LocalAddress]?
        var unavailable: [String] = []
        func pin(_ drop: PacketDrop) {}
        func lookup(_ q: DropRouteQuery) -> DropRouteFindings {
            #expect(q.purpose == .localAddress)
            return DropRouteFindings(addresses: all, unavailable: unavailable)
        }
    }

    static let v6 = IPAddress(bytes: [0xfd, 0, 0, 0, 0, 0, 0, 0x77, 0, 0, 0, 0, 0, 0, 0, 1])
    static let eth = [LocalAddress(ifname: "lo", addr: v4(127, 0, 0, 1), prefixLength: 8),
                      LocalAddress(ifname: "eth0", addr: v4(10, 0, 0, 5), prefixLength: 24)]

    static func bind(_ addr: IPAddress, _ source: Addresses) throws -> Record {
        var e = sysEngine()
        e.drops.routes = source
        let family: AddressFamily = addr.isV4Mapped ? .ipv4 : .ipv6
        return try single(e.ingest(.socketCall(SocketCallFailure(
            ts: 10_000, call: .bind, family: family, local: Endpoint(addr: addr, port: 8080),
            task: TaskInfo(pid: 500, comm: "svc"), netns: hostNS, errno: 99))))
    }

    /// One record of each bind cause (SchemaRecordsTests validates them).
    static func records() throws -> [Record] {
        [try bind(v4(10, 0, 0, 6), Addresses(all: eth)),
         try bind(v4(10, 0, 0, 5), Addresses(all: eth)),
         try bind(v6, Addresses(all: [LocalAddress(ifname: "veth0", addr: v6, prefixLength: 64, tentative: true)])),
         try bind(v6, Addresses(all: [LocalAddress(ifname: "veth0", addr: v6, prefixLength: 64, dadFailed: true)]))]
    }

    @Test("on no interface: not_configured, listing the addresses there are (a typo shows)")
    func notConfigured() throws {
        let r = try Self.bind(v4(10, 0, 0, 6), Addresses(all: Self.eth))
        #expect(r.kind == .bindFailure && r.reason == .addressNotAvailable && r.cause?.rawValue == "not_configured")
        guard case .array(let a)? = r.evidence("addresses") else {
            Issue.record("no addresses: \(r)")
            return
        }
        #expect(a.map { $0["addr"]?.stringValue } == ["127.0.0.1", "10.0.0.5"])
        #expect(a.last?["interface"]?.stringValue == "eth0" && a.last?["prefix_length"]?.intValue == 24)
        #expect(r.hint?.contains("10.0.0.6 is on no interface of network namespace") == true, "\(r.hint ?? "")")
        #expect(r.hint?.contains("(it has 10.0.0.5/24 on eth0)") == true, "\(r.hint ?? "")")
        #expect(r.hint?.contains("ip_nonlocal_bind") == true)
    }

    @Test("there now: configured_since (started before its network)")
    func configuredSince() throws {
        let r = try Self.bind(v4(10, 0, 0, 5), Addresses(all: Self.eth))
        #expect(r.cause?.rawValue == "configured_since")
        #expect(r.evidence("configured")?["interface"]?.stringValue == "eth0")
        #expect(r.evidence("addresses") == nil)
        #expect(r.hint?.contains("network-online.target") == true, "\(r.hint ?? "")")
    }

    @Test("IPv6 tentative and dadfailed: DAD's causes, the interface named in the fix")
    func dad() throws {
        let t = try Self.bind(Self.v6, Addresses(all: [LocalAddress(ifname: "veth0", addr: Self.v6, prefixLength: 64, tentative: true)]))
        #expect(t.cause?.rawValue == "tentative")
        #expect(t.evidence("configured")?["tentative"] == .bool(true))
        #expect(t.hint?.contains("fd00:0:0:77::1/64 on veth0 (tentative)") == true, "\(t.hint ?? "")")
        #expect(t.hint?.contains("IPV6_FREEBIND") == true && t.hint?.contains("veth0 has no carrier") == true, "\(t.hint ?? "")")
        let d = try Self.bind(Self.v6, Addresses(all: [LocalAddress(ifname: "veth0", addr: Self.v6, prefixLength: 64, dadFailed: true)]))
        #expect(d.cause?.rawValue == "duplicate_address")
        #expect(d.evidence("configured")?["dadfailed"] == .bool(true))
        #expect(d.hint?.contains("another host") == true, "\(d.hint ?? "")")
    }

    /// A container's namespace has lo and 172.17.0.2; the host's has 10.0.0.5.
    struct ContainerAndHost: DropRouteSource {
        func pin(_ drop: PacketDrop) {}
        func lookup(_ q: DropRouteQuery) -> DropRouteFindings {
            q.netns == hostNS
                ? DropRouteFindings(addresses: BindAddressTests.eth)
                : DropRouteFindings(addresses: [LocalAddress(ifname: "lo", addr: v4(127, 0, 0, 1), prefixLength: 8),
                                                LocalAddress(ifname: "eth0", addr: v4(172, 17, 0, 2), prefixLength: 16)])
        }
    }

    @Test("a container binding its host's address: not_configured, the host's address named, listen inside and publish")
    func hostAddressInContainer() throws {
        var e = sysEngine()
        e.drops.routes = ContainerAndHost()
        e.hostNetns = hostNS
        let r = try single(e.ingest(.socketCall(SocketCallFailure(
            ts: 10_000, call: .bind, family: .ipv4, local: Endpoint(addr: v4(10, 0, 0, 5), port: 8080),
            task: TaskInfo(pid: 500, comm: "svc"), netns: 4_026_532_999, errno: 99))))
        #expect(r.cause?.rawValue == "not_configured")
        #expect(r.evidence("host_address")?["interface"]?.stringValue == "eth0")
        let hint = try #require(r.hint)
        #expect(hint.contains("(it has 172.17.0.2/16 on eth0)") && hint.contains("an address of the host's network namespace (10.0.0.5/24 on eth0)"), "\(hint)")
        #expect(hint.contains("published port"), "\(hint)")
        // The same bind() in the host's namespace itself: nothing more to say.
        var host = sysEngine()
        host.drops.routes = ContainerAndHost()
        host.hostNetns = hostNS
        let h = try single(host.ingest(call(errno: 99, local: Endpoint(addr: v4(10, 0, 0, 6), port: 8080))))
        #expect(h.evidence("host_address") == nil && h.cause?.rawValue == "not_configured")
    }

    @Test("addresses unreadable (namespace gone): no cause, and why")
    func unreadable() throws {
        let r = try Self.bind(v4(10, 0, 0, 6), Addresses(all: nil, unavailable: ["network namespace 1 is gone"]))
        #expect(r.cause == nil)
        #expect(r.evidence("addresses_unavailable")?.stringValue == "network namespace 1 is gone")
    }

    @Test("/proc/net/if_inet6: flags to DAD state; malformed lines skipped")
    func parse() {
        let text = """
            fd000000000000770000000000000001 03 40 00 c0 veth0
            fe800000000000000000000000000001 03 40 20 48 veth0
            00000000000000000000000000000001 01 80 10 80 lo
            bad line
            """
        let a = LocalAddress.parseIfInet6(text)
        #expect(a.count == 3)
        #expect(a[0].addr == Self.v6 && a[0].tentative && !a[0].dadFailed && a[0].prefixLength == 64 && a[0].ifname == "veth0")
        #expect(a[1].dadFailed && !a[1].tentative)
        #expect(!a[2].tentative && a[2].addr.isLoopback)
    }
}
