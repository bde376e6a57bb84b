import Foundation
import Testing

/// `synsight explain`: help and argument validation, rejected before any
/// privilege check or BPF load (no root needed).
@Suite("synsight explain CLI")
struct ExplainCLITests {
    @Test func helpListsItsOptionsAndExitStatus() throws {
        let r = try synsight("explain", "--help")
        #expect(r.status == 0)
        for option in ["<port>", "--json", "--duration <seconds>", "--netns <netns>", "--reset-hook <hook>", "--verbose"] {
            #expect(r.stdout.contains(option), "explain --help does not mention \(option)")
        }
        #expect(r.stdout.contains("needs root"))
        #expect(r.stdout.contains("Exit status"))
        let top = try synsight("--help")
        #expect(top.stdout.range(of: #"(?m)^\s+explain\s"#, options: .regularExpression) != nil)
    }

    @Test("ports out of range or not numbers are usage errors", arguments: ["0", "65536", "70000", "-1", "http"])
    func badPort(_ port: String) throws {
        let r = try run(["explain", port])
        #expect(r.status == usageError, "stderr: \(r.stderr)")
        #expect(r.stdout.isEmpty)
        if port != "http" && port != "-1" {
            #expect(r.stderr.contains("the port must be between 1 and 65535, got \(port)"), "stderr: \(r.stderr)")
        }
    }

    @Test func missingPort() throws {
        let r = try synsight("explain")
        #expect(r.status == usageError)
        #expect(r.stderr.contains("<port>"))
    }

    @Test("invalid --duration and --reset-hook", arguments: [
        (["--duration=-1"], "--duration must be between 0 and 3600"),
        (["--duration", "7200"], "--duration must be between 0 and 3600"),
        (["--reset-hook", "bogus"], "--reset-hook must be one of"),
    ])
    func badOptions(_ extra: [String], _ message: String) throws {
        let r = try run(["explain", "8080"] + extra)
        #expect(r.status == usageError)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
    }
}
