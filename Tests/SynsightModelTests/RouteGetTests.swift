import Testing
@testable import SynsightModel

/// RTM_GETROUTE requests and answers as bytes, without a kernel. The answers
/// were captured from a 6.18 kernel in a namespace with 10.9.0.1/24 and
/// fd00::1/64 on veth d0 (ifindex 3) and a route 10.8.0.0/16 via 10.9.0.254,
/// asked with the very bytes `request` builds (the kernel accepted them;
/// `ip route get` gave the same answers).
@Suite("route lookups: rtnetlink RTM_GETROUTE bytes")
struct RouteGetTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    static func parse(_ hex: String, seq: UInt32 = 1) -> RouteGet.Answer? {
        bytes(hex).withUnsafeBytes { RouteGet.parse($0, seq: seq) }
    }

    @Test("requests: output lookup from a source, input lookup on an interface, IPv6")
    func requests() {
        let out = RouteGet.request(RouteGet.Request(family: .ipv4, dst: IPAddress(v4: 10, 8, 1, 2), src: IPAddress(v4: 10, 9, 0, 1)), seq: 1)
        #expect(out == Self.bytes("2c0000001a0001000100000000000000022020000000000000100000080001000a080102080002000a090001"))
        let input = RouteGet.request(RouteGet.Request(family: .ipv4, dst: IPAddress(v4: 10, 7, 0, 1), src: IPAddress(v4: 10, 9, 0, 7), iif: 3), seq: 7)
        #expect(input == Self.bytes("340000001a0001000700000000000000022020000000000000100000080001000a070001080002000a0900070800030003000000"))
        var v6 = [UInt8](repeating: 0, count: 16)
        v6[0] = 0xfd
        v6[15] = 5
        let six = RouteGet.request(RouteGet.Request(family: .ipv6, dst: IPAddress(bytes: v6)), seq: 1)
        #expect(six == Self.bytes("300000001a00010001000000000000000a800000000000000010000014000100fd000000000000000000000000000005"))
    }

    @Test("a socket's lookup: its device, mark, owner and TCP destination port as connect() passes them (RTA_OIF, RTA_MARK, RTA_UID, RTA_IP_PROTO, RTA_DPORT)")
    func socketKeys() {
        var q = RouteGet.Request(family: .ipv4, dst: IPAddress(v4: 203, 0, 113, 1), oif: 3, mark: 7, uid: 1000)
        q.tcpDport = 443
        #expect(RouteGet.request(q, seq: 1) == Self.bytes(
            "4c0000001a000100010000000000000002200000000000000010000008000100cb007101"
                + "0800040003000000" + "0800100007000000" + "08001900e8030000"
                + "05001b000600000006001d0001bb0000"))
        q.tcpSport = 40000
        let withSport = RouteGet.request(q, seq: 1)
        #expect(withSport.count == 84 && Array(withSport[68..<76]) == Self.bytes("06001c009c400000"))
    }

    @Test("a route through a gateway: type, table, output interface, gateway")
    func gatewayRoute() {
        let a = Self.parse("700000001800000001000000db49000002202000fe0000010002000008000f00fe000000080001000a080102080002000a0900010800040003000000080005000a0900fe080019000000000024000c000200000000000000000000000000000000000000000000000000000000000000")
        #expect(a == .route(RouteGet.Route(type: 1, table: 254, oif: 3, gateway: IPAddress(v4: 10, 9, 0, 254))))
        if case .route(let r) = a { #expect(r.typeName == "unicast") }
    }

    @Test("an IPv6 route on the link: no gateway, the preferred source")
    func ipv6Route() {
        var src = [UInt8](repeating: 0, count: 16)
        src[0] = 0xfd
        src[15] = 1
        let a = Self.parse("9c0000001800000001000000db4900000a808000fe0200010000000008000f00fe00000014000100fd000000000000000000000000000005140002000000000000000000000000000000000014000700fd0000000000000000000000000000010800060000010000080004000300000024000c0002000000000000000000000000000000000000000000000000000000000000000500140000000000")
        #expect(a == .route(RouteGet.Route(type: 1, table: 254, oif: 3, gateway: nil, prefSrc: IPAddress(bytes: src))))
    }

    @Test("no route: the kernel's error, output and input lookups")
    func noRoute() {
        #expect(Self.parse("380000000200000001000000db4900009bffffff240000001a0001000100000000000000022000000000000000100000080001000a070001") == .failed(101))
        #expect(Self.parse("480000000200000001000000db4900009bffffff340000001a0001000100000000000000022020000000000000100000080001000a070001080002000a0900070800030003000000") == .failed(101))
        let r = RouteLookupResult(request: RouteGet.Request(family: .ipv4, dst: IPAddress(v4: 10, 7, 0, 1)), answer: .failed(101))
        #expect(r.result == "no_route" && r.route == nil)
        #expect(RouteLookupResult(request: r.request, answer: .failed(113)).result == "unreachable")
        #expect(RouteLookupResult(request: r.request, answer: .failed(13)).result == "prohibit")
        #expect(RouteLookupResult(request: r.request, answer: .failed(22)).result == "invalid")
        #expect(RouteLookupResult(request: r.request, answer: .failed(5)).result == "error")
    }

    @Test("another request's answer is skipped; truncated or garbled bytes are an error, never a crash")
    func robustness() {
        let answer = "380000000200000001000000db4900009bffffff240000001a0001000100000000000000022000000000000000100000080001000a070001"
        #expect(Self.parse(answer, seq: 2) == nil)
        #expect(Self.parse("") == nil)
        #expect(Self.parse(String(answer.prefix(40))) == .failed(71))
        #expect(Self.parse("ff000000" + answer.dropFirst(8)) == .failed(71))
        // An attribute claiming more than the message holds ends the attributes.
        let a = Self.parse("2c0000001800000001000000db49000002202000fe000001000200000800040003000000ff0005000a0900fe")
        #expect(a == .route(RouteGet.Route(type: 1, table: 254, oif: 3)))
    }
}
