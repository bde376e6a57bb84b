import Foundation
import Testing

/// A process name that is not UTF-8, end to end: the kernel's raw comm bytes
/// reach the record in the escaped form the README documents (invalid bytes
/// and control bytes as \xHH, a backslash doubled), not as U+FFFD.
@Suite("untrusted process names, end to end", .serialized, .enabled(if: Privileged.enabled))
struct NameEscapingTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    @Test("a client whose comm is p, é, 0xFF, a backslash and ESC: client.comm keeps every byte, escaped")
    func invalidUTF8Comm() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        // "p" "é" (C3 A9, valid) 0xFF (invalid) "\" ESC
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port, extra: ["--comm-hex", "70c3a9ff5c1b"])
        #expect(c.errno == Int(ECONNREFUSED))
        let r = try #require(trace.waitForRecord {
            $0.string("kind") == "refusal" && $0.int("netns") == ns.inode && $0.int("port") == port
        }, "no refusal reported; stderr: \(trace.stderr)")
        trace.stop()

        #expect(r.pid("client") == c.pid)
        let comm = r.object("client")?["comm"] as? String
        #expect(comm == "p\u{E9}\\xff\\\\\\x1b", "record: \(r)")
        #expect(comm?.unicodeScalars.contains { $0.value == 0xFFFD || $0.value == 0x1B } == false)
        // The raw line: JSON escaping of the escaped form (each backslash doubled once more).
        #expect(r.line.contains(#""comm":"pé\\xff\\\\\\x1b""#), "\(r.line)")
    }

    @Test("a listener whose comm and executable path are not UTF-8: explain lists both in the escaped form, from /proc")
    func listenerNamesFromProc() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let dir = tempDir()
        defer { _ = try? sh(["rm", "-rf", dir]) }
        let port = randomPort()
        // comm "l" "i" 0xFF "\" ESC; the interpreter re-executed from <dir>/"d" 0xFF "\"/python3.
        let listener = try Peer(runIn: ns, ["listen", "0.0.0.0", String(port), "--comm-hex", "6c69ff5c1b",
                                            "--exe-in", dir, "--exe-dir-hex", "64ff5c"])
        let run = try ExplainTests.Run(["--json", String(port), "--netns", ns.name, "--duration", "0"])
        let (_, r) = try run.finish()

        let l = try #require(r.listeners.first, "\(r)")
        let p = try #require((l["processes"] as? [[String: Any]])?.first, "\(l)")
        #expect(p["pid"] as? Int == listener.pid)
        #expect(p["comm"] as? String == #"li\xff\\\x1b"#, "\(p)")
        #expect(p["exe"] as? String == dir + #"/d\xff\\/python3"#, "\(p)")
        #expect(!r.text.unicodeScalars.contains { $0.value == 0xFFFD }, "a byte was lost: \(r.text)")
    }
}
