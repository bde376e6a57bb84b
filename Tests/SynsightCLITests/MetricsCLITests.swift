import Foundation
import Testing

/// `--metrics-address` and its bounds on the real binary: help, every
/// invalid value, and a port already in use. The metrics socket is bound
/// before any BPF is loaded, so none of this needs privileges.
@Suite("synsight CLI: metrics options")
struct MetricsCLITests {
    @Test(arguments: ["trace", "record"])
    func helpListsMetricsOptions(command: String) throws {
        let r = try run([command, "--help"])
        #expect(r.status == 0)
        for option in ["--metrics-address <[host:]port>", "--metrics-max-ports <n>", "--metrics-max-workloads <n>",
                       "--metrics-max-listeners <n>"] {
            #expect(r.stdout.contains(option), "\(option) missing from \(command) --help")
        }
        #expect(r.stdout.contains("loopback only"))
    }

    @Test(arguments: [
        (["--metrics-address", "abc"], "--metrics-address 'abc': the port must be a number from 1 to 65535"),
        (["--metrics-address", "0"], "the port must be a number from 1 to 65535"),
        (["--metrics-address", "70000"], "the port must be a number from 1 to 65535"),
        (["--metrics-address", "::1:9464"], "write an IPv6 address in brackets, e.g. [::1]:9464"),
        (["--metrics-address", "[::1]"], "expected ':PORT' after ']'"),
        (["--metrics-address", "example.com:9464"], "host names other than localhost are not resolved"),
        (["--metrics-address", "1.2.3:9464"], "'1.2.3' is not an IPv4 address"),
        (["--metrics-max-ports", "0"], "--metrics-max-ports must be between 1 and 10000, got 0"),
        (["--metrics-max-workloads", "10001"], "--metrics-max-workloads must be between 0 and 10000, got 10001"),
        (["--metrics-max-listeners=-1"], "--metrics-max-listeners must be between 0 and 10000, got -1"),
    ])
    func invalidValues(args: [String], message: String) throws {
        for command in [["trace"], ["record", "--dir", "/nonexistent-synsight-cli"]] {
            let r = try run(command + args)
            #expect(r.status == usageError, "\(command + args): \(r.stderr)")
            #expect(r.stderr.contains(message), "\(command + args): \(r.stderr)")
            #expect(r.stderr.contains("e.g. 9464") || args[0] != "--metrics-address", "no example: \(r.stderr)")
        }
    }

    @Test("a port in use: exit 1, one line naming the port and a free one, before any tracing")
    func portInUse() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len); return getsockname(fd, $0, &len) }
        }
        #expect(listen(fd, 1) == 0)
        let port = UInt16(bigEndian: sa.sin_port)
        let r = try run(["trace", "--duration", "1", "--metrics-address", "127.0.0.1:\(port)"])
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("synsight: error: cannot serve metrics on 127.0.0.1:\(port): port \(port) is already in use"),
                "\(r.stderr)")
        #expect(r.stderr.contains("(free now)"), "\(r.stderr)")
        #expect(r.stderrLines.count == 1, "\(r.stderr)")
        #expect(!r.stderr.contains("tracing refusals"))
    }
}
