@testable import SynsightBase
@testable import SynsightModel
import Testing
import SynsightTestSupport


@Suite("IPAddress")
struct IPAddressTests {

    @Test func ipv4MappedPrintsAsIPv4() {
        let a = IPAddress(bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 192, 168, 1, 254])
        #expect(a.isV4Mapped)
        #expect(a.description == "192.168.1.254")
        #expect(a == IPAddress(v4: 192, 168, 1, 254))
        #expect(IPAddress(v4: 255, 255, 255, 255).description == "255.255.255.255")
        #expect(IPAddress(v4: 0, 0, 0, 0).description == "0.0.0.0")
        #expect(IPAddress.any4.description == "0.0.0.0")
    }

    @Test(arguments: [
        (ip6(0, 0, 0, 0, 0, 0, 0, 1), "::1"),
        (ip6(0, 0, 0, 0, 0, 0, 0, 0), "::"),
        (ip6(0xfe80, 0, 0, 0, 0, 0, 0, 1), "fe80::1"),
        // RFC 5952 4.2.3: the longest run wins; of equal runs, the first.
        (ip6(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1), "2001:db8::1:0:0:1"),
        (ip6(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1), "2001:db8:0:1::1"),
        (ip6(0x2001, 0, 0, 1, 0, 0, 0, 1), "2001:0:0:1::1"),
        // RFC 5952 4.2.2: a single zero group is not compressed.
        (ip6(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1), "2001:db8:0:1:1:1:1:1"),
        (ip6(1, 0, 0, 0, 0, 0, 0, 0), "1::"),
        (ip6(0, 0, 0, 0, 0, 0, 0xFFFE, 1), "::fffe:1"),
        // RFC 5952 4.3: lower case, no leading zeros.
        (ip6(0x2001, 0x0DB8, 0xABCD, 0x0012, 0, 0, 0, 0x000A), "2001:db8:abcd:12::a"),
        (ip6(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ])
    func ipv6Description(address: IPAddress, expected: String) {
        #expect(address.description == expected)
        #expect(!address.isV4Mapped)
    }

    @Test func bytesRoundTrip() {
        let bytes: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        let a = IPAddress(bytes: bytes)
        #expect(a.bytes == bytes)
        #expect(a.high == 0x2001_0db8_0102_0304)
        #expect(a.low == 0x0506_0708_090a_0b0c)
        #expect(IPAddress(v4: 10, 1, 2, 3).bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 1, 2, 3])
    }

    @Test func loopback() {
        #expect(ip6(0, 0, 0, 0, 0, 0, 0, 1).isLoopback)
        #expect(IPAddress(v4: 127, 0, 0, 1).isLoopback)
        #expect(IPAddress(v4: 127, 255, 0, 9).isLoopback)
        #expect(!IPAddress(v4: 10, 0, 0, 1).isLoopback)
        #expect(!IPAddress(v4: 128, 0, 0, 1).isLoopback)
        #expect(!IPAddress.any6.isLoopback)
        #expect(!ip6(0xfe80, 0, 0, 0, 0, 0, 0, 1).isLoopback)
        #expect(!ip6(0, 0, 0, 0, 0, 0, 1, 1).isLoopback)
    }

    @Test func unspecified() {
        #expect(IPAddress.any6.isUnspecified)
        #expect(IPAddress.any4.isUnspecified)
        #expect(IPAddress(v4: 0, 0, 0, 0).isUnspecified)
        #expect(!IPAddress(v4: 0, 0, 0, 1).isUnspecified)
        #expect(!IPAddress(v4: 127, 0, 0, 1).isUnspecified)
        #expect(!ip6(0, 0, 0, 0, 0, 0, 0, 1).isUnspecified)
        #expect(IPAddress.any4 != IPAddress.any6)
    }

    @Test func endpointDescription() {
        #expect(Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: 80).description == "127.0.0.1:80")
        #expect(Endpoint(addr: ip6(0, 0, 0, 0, 0, 0, 0, 1), port: 8443).description == "[::1]:8443")
        #expect(Endpoint(addr: .any6, port: 0).description == "[::]:0")
    }

    @Test func addressFamilyFromKernel() {
        #expect(AddressFamily(kernel: 2) == .ipv4)
        #expect(AddressFamily(kernel: 10) == .ipv6)
        #expect(AddressFamily(kernel: 0) == nil)
        #expect(AddressFamily(kernel: 1) == nil)
        #expect(AddressFamily.ipv4.rawValue == "ipv4")
        #expect(AddressFamily.ipv6.rawValue == "ipv6")
    }
}
