import Testing
@testable import SynsightMetrics

@Suite("--metrics-address parsing")
struct MetricsAddressTests {
    @Test("a bare port binds loopback only")
    func barePort() throws {
        let a = try MetricsAddress.parse("9464")
        #expect(a.host == .v4([127, 0, 0, 1]))
        #expect(a.port == 9464)
        #expect(a.description == "127.0.0.1:9464")
    }

    @Test("IPv4, IPv6 in brackets, wildcard and localhost")
    func hosts() throws {
        #expect(try MetricsAddress.parse("0.0.0.0:9464").host == .v4([0, 0, 0, 0]))
        #expect(try MetricsAddress.parse("10.1.2.3:1").host == .v4([10, 1, 2, 3]))
        let v6 = try MetricsAddress.parse("[::1]:9464")
        #expect(v6.host == .v6([UInt8](repeating: 0, count: 15) + [1]))
        #expect(v6.description == "[::1]:9464")
        #expect(try MetricsAddress.parse("[::]:65535").host == .v6([UInt8](repeating: 0, count: 16)))
        #expect(try MetricsAddress.parse("localhost:80").host == .v4([127, 0, 0, 1]))
    }

    @Test("bad syntax says what was wrong and what is expected",
          arguments: [
            ("", "port must be a number"), ("abc", "port must be a number"), ("0", "port must be a number"),
            ("65536", "port must be a number"), ("-1", "port must be a number"), ("9464:", "port must be a number"),
            (":9464", ""), ("127.0.0.1:", "port must be a number"), ("::1:9464", "in brackets"),
            ("[::1]9464", "expected ':PORT'"), ("[::1:9464", "missing ']'"), ("[1.2.3.4]:80", "not an IPv6 address"),
            ("example.com:9464", "host names other than localhost"), ("300.1.1.1:80", "not an IPv4 address"),
            ("1.2.3.4:+80", "port must be a number"),
          ])
    func badSyntax(input: String, fragment: String) {
        do {
            let a = try MetricsAddress.parse(input)
            // ":9464" means "port 9464 on the default host": allowed.
            #expect(input == ":9464" && a.description == "127.0.0.1:9464", "'\(input)' was accepted as \(a)")
        } catch {
            #expect(error.description.contains(fragment), "\(error.description)")
            #expect(error.description.contains("e.g. 9464"), "no example in: \(error.description)")
        }
    }
}
