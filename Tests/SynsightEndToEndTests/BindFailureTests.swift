import Foundation
import Testing

/// bind(), listen() and connect() failures against the real kernel, in
/// network namespaces created (and always deleted) by each test; sysctls are
/// changed only inside them. Every test asserts kind, reason, cause, port and pids.
@Suite("bind/listen/connect failures, end to end", .serialized, .enabled(if: Privileged.enabled))
struct BindFailureTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// Runs a peer.py helper subcommand in `ns`; returns its printed integers (pid, errno, ...).
    @discardableResult
    func peer(_ ns: NetNS, unprivileged: Bool = false, _ args: [String]) throws -> [Int] {
        var cmd = ["ip", "netns", "exec", ns.name]
        if unprivileged {
            cmd += ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all"]
        }
        cmd += ["/usr/bin/python3", Peer.script] + args
        let out = try sh(cmd)
        let f = out.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
        guard f.count >= 2 else { throw CommandFailure(description: "bad peer output: \(out)") }
        return f
    }

    func record(_ trace: TraceSession, _ ns: NetNS, kind: String, reason: String, port: Int,
                pid: Int? = nil, key: String = "process") -> JSONRecord? {
        trace.waitForRecord {
            $0.string("kind") == kind && $0.string("reason") == reason && $0.int("netns") == ns.inode
                && $0.int("port") == port && (pid == nil || $0.pid(key) == pid)
        }
    }

    func assertCommon(_ r: JSONRecord, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.int("v") == 1, sourceLocation: sourceLocation)
        #expect(!(r.string("hint") ?? "").isEmpty, "record: \(r)", sourceLocation: sourceLocation)
        #expect(r.string("family") == "ipv4", sourceLocation: sourceLocation)
        #expect(r.string("ts")?.hasSuffix("Z") == true, sourceLocation: sourceLocation)
    }

    @Test("EADDRINUSE on bind(): process = the listener holding the port, client = the failing process")
    func bindInUse() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let holder = try Peer(listenIn: ns, addr: "127.0.0.1", port: port)
        let f = try peer(ns, ["bind", "127.0.0.1", String(port)])
        #expect(f[1] == Int(EADDRINUSE))
        let r = try #require(record(trace, ns, kind: "bind_failure", reason: "address_in_use", port: port),
                             "stderr: \(trace.stderr) stdout: \(trace.stdout)")
        trace.stop()
        assertCommon(r)
        #expect(r.pid("process") == holder.pid)
        #expect(r.pid("client") == f[0])
        let h = try #require(r.evidence["holder"] as? [String: Any], "\(r)")
        #expect(h["state"] as? String == "LISTEN")
        #expect(h["pid"] as? Int == holder.pid)
        #expect(h["port"] as? Int == port)
        #expect(r.evidence["failed_in"] as? String == "bind")
        #expect((r.evidence["requested"] as? [String: Any])?["addr"] as? String == "127.0.0.1")
        #expect((r.object("local")?["port"] as? Int) == port)
    }

    @Test("EADDRINUSE on listen(): two SO_REUSEADDR sockets, the second listen() fails")
    func listenInUse() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let f = try peer(ns, ["listen-twice", "127.0.0.1", String(port)])
        #expect(f[1] == Int(EADDRINUSE))
        let r = try #require(record(trace, ns, kind: "bind_failure", reason: "address_in_use", port: port),
                             "stderr: \(trace.stderr)")
        trace.stop()
        assertCommon(r)
        #expect(r.evidence["failed_in"] as? String == "listen")
        #expect(r.evidence["call"] as? String == "listen")
        #expect(r.pid("client") == f[0])
        // The first socket of the same process holds it.
        #expect(r.pid("process") == f[0])
        #expect((r.evidence["holder"] as? [String: Any])?["state"] as? String == "LISTEN")
        #expect((r.object("local")?["addr"] as? String) == "127.0.0.1")
    }

    @Test("privileged port as uid 65534: privileged_port, seen by cap_capable")
    func privilegedPort() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let trace = try TraceSession([])
        let f = try peer(ns, unprivileged: true, ["bind", "0.0.0.0", "80"])
        #expect(f[1] == Int(EACCES))
        let r = try #require(record(trace, ns, kind: "bind_failure", reason: "privileged_port", port: 80),
                             "stderr: \(trace.stderr) stdout: \(trace.stdout)")
        trace.stop()
        assertCommon(r)
        #expect(r.pid("process") == f[0])
        #expect(r.evidence["capability"] as? String == "CAP_NET_BIND_SERVICE")
        #expect(r.evidence["uid"] as? Int == 65534)
        #expect(r.evidence["ip_unprivileged_port_start"] as? Int == 1024)
        #expect(r.evidence["check"] as? String == "tp_btf/cap_capable")
    }

    @Test("ip_unprivileged_port_start of the namespace is the one reported")
    func privilegedPortSysctl() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        try sh(["ip", "netns", "exec", ns.name, "sysctl", "-q", "-w", "net.ipv4.ip_unprivileged_port_start=3000"])
        let trace = try TraceSession([])
        let f = try peer(ns, unprivileged: true, ["bind", "127.0.0.1", "2000"])
        #expect(f[1] == Int(EACCES))
        let r = try #require(record(trace, ns, kind: "bind_failure", reason: "privileged_port", port: 2000),
                             "stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.pid("process") == f[0])
        #expect(r.evidence["ip_unprivileged_port_start"] as? Int == 3000)
    }

    @Test("address not available: bind 192.0.2.1")
    func addressNotAvailable() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let trace = try TraceSession([])
        let f = try peer(ns, ["bind", "192.0.2.1", String(port)])
        #expect(f[1] == Int(EADDRNOTAVAIL))
        let r = try #require(record(trace, ns, kind: "bind_failure", reason: "address_not_available", port: port),
                             "stderr: \(trace.stderr)")
        trace.stop()
        assertCommon(r)
        #expect(r.pid("process") == f[0])
        #expect(r.evidence["addr"] as? String == "192.0.2.1")
        #expect((r.object("local")?["addr"] as? String) == "192.0.2.1")
        #expect(r.string("hint")?.contains("ip_nonlocal_bind") == true)
    }

    @Test("Landlock-restricted process denied bind and connect: lsm_denied / landlock")
    func landlock() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "127.0.0.1", port: port + 1)
        _ = listener
        let trace = try TraceSession([])
        let b = try peer(ns, unprivileged: true, ["landlock", String(port + 2), "bind", "127.0.0.1", String(port)])
        #expect(b[1] == Int(EACCES))
        let c = try peer(ns, unprivileged: true, ["landlock", String(port + 2), "connect", "127.0.0.1", String(port + 1)])
        #expect(c[1] == Int(EACCES))
        let rb = try #require(record(trace, ns, kind: "denial", reason: "lsm_denied", port: port, pid: b[0]),
                              "stderr: \(trace.stderr) stdout: \(trace.stdout)")
        let rc = try #require(record(trace, ns, kind: "denial", reason: "lsm_denied", port: port + 1, pid: c[0]),
                              "stdout: \(trace.stdout)")
        trace.stop()
        for (r, op) in [(rb, "bind"), (rc, "connect")] {
            assertCommon(r)
            #expect(r.string("cause") == "landlock", "\(r)")
            #expect(r.evidence["operation"] as? String == op)
        }
        #expect(rb.evidence["sandboxed_pid"] as? Int == b[0])
        #expect(rc.pid("client") == c[0])
        #expect((rc.object("remote")?["port"] as? Int) == port + 1)
    }

    @Test("raw tp_btf/sys_enter+sys_exit entry (no tracefs needed) reports the same failures")
    func rawSyscallEntry() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-raw-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TraceSession.binary)
        p.arguments = ["trace", "--json", "--duration", "20", "--force-hook", "syscall=raw"]
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = p.standardOutput
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) }; p.waitUntilExit() }
        let text = { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }
        #expect(waitUntil(timeout: 20) { text().contains("synsight: tracing") })
        let b = try peer(ns, ["bind", "192.0.2.1", String(port)])
        #expect(b[1] == Int(EADDRNOTAVAIL))
        let l = try peer(ns, unprivileged: true, ["landlock", String(port + 2), "bind", "127.0.0.1", String(port)])
        #expect(l[1] == Int(EACCES))
        // connect() is seen at its exit only: the destination comes from the
        // saved user registers (sys_exit's regs here).
        let listener = try Peer(listenIn: ns, addr: "127.0.0.1", port: port + 1)
        _ = listener
        let c = try peer(ns, unprivileged: true, ["landlock", String(port + 2), "connect", "127.0.0.1", String(port + 1)])
        #expect(c[1] == Int(EACCES))
        #expect(waitUntil(timeout: 10) {
            let lines = text().split(separator: "\n")
            return lines.contains { $0.contains("\"address_not_available\"") && $0.contains("\"pid\":\(b[0])") }
                && lines.contains { $0.contains("\"cause\":\"landlock\"") && $0.contains("\"pid\":\(l[0])") }
                && lines.contains {
                    $0.contains("\"cause\":\"landlock\"") && $0.contains("\"pid\":\(c[0])")
                        && $0.contains("\"operation\":\"connect\"") && $0.contains("\"port\":\(port + 1)")
                }
        }, "\(text())")
        kill(p.processIdentifier, SIGINT)
        #expect(waitUntil(timeout: 10) { !p.isRunning })
        RecordSchema.check(lines: text(), "synsight trace --json (raw syscall entry)", objectsOnly: true)
    }

    @Test("ephemeral ports exhausted: connect() -> EADDRNOTAVAIL with a 2-port ip_local_port_range")
    func ephemeralExhausted() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        try sh(["ip", "netns", "exec", ns.name, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40000 40001"])
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "127.0.0.1", port: port)
        _ = listener
        let trace = try TraceSession([])
        let f = try peer(ns, ["exhaust", "127.0.0.1", String(port), "2"])
        #expect(f[1] == Int(EADDRNOTAVAIL))
        #expect(f.count == 3 && f[2] == 2)
        let r = try #require(record(trace, ns, kind: "connect_failure", reason: "ephemeral_ports_exhausted",
                                    port: port, pid: f[0], key: "client"),
                             "stderr: \(trace.stderr) stdout: \(trace.stdout)")
        trace.stop()
        assertCommon(r)
        #expect(r.pid("process") == f[0])
        #expect((r.object("remote")?["port"] as? Int) == port)
        #expect(r.evidence["ip_local_port_range"] as? String == "40000 40001")
        #expect(r.evidence["ports_in_range"] as? Int == 2)
    }
}
