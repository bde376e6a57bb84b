import Foundation
import Testing

/// bind(), listen() and connect() failures against the real kernel, in
/// network namespaces created (and always deleted) by each test; sysctls are
/// changed only inside them. Each failure itself (address_in_use on bind and
/// listen, privileged_port, address_not_available, Landlock, ephemeral ports)
/// is a kernel-matrix scenario (sc_bind_in_use ... sc_ephemeral), run on this
/// kernel too; here a namespace's own sysctl and the forced raw syscall entry.
@Suite("bind/listen/connect failures, end to end", .serialized, .enabled(if: Privileged.enabled))
struct BindFailureTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    static let nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all"]

    /// Runs a peer.py helper subcommand in `ns`, under `wrap` (setpriv,
    /// unshare, ...); returns its printed integers (pid, errno, ...).
    @discardableResult
    func peer(_ ns: NetNS, unprivileged: Bool = false, wrap: [String] = [], _ args: [String]) throws -> [Int] {
        var cmd = ["ip", "netns", "exec", ns.name]
        if unprivileged { cmd += Self.nobody }
        cmd += wrap + ["/usr/bin/python3", Peer.script] + args
        let out = try sh(cmd)
        let f = out.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
        guard f.count >= 2 else { throw CommandFailure(description: "bad peer output: \(out)") }
        return f
    }

    func record(_ trace: TraceSession, _ ns: NetNS, kind: String, reason: String, port: Int) -> JSONRecord? {
        trace.waitForRecord {
            $0.string("kind") == kind && $0.string("reason") == reason && $0.int("netns") == ns.inode
                && $0.int("port") == port
        }
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

    @Test("root of its own user namespace binding port 80 of a namespace it does not own: privileged_port, other user namespace")
    func privilegedPortOtherUserNamespace() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let trace = try TraceSession([])
        // uid 0 with every capability, but in a new user namespace: the
        // network namespace belongs to the initial one (a rootless container
        // on the host's network).
        let f = try peer(ns, wrap: ["unshare", "--user", "--map-root-user"], ["bind", "0.0.0.0", "80"])
        #expect(f[1] == Int(EACCES))
        let r = try #require(record(trace, ns, kind: "bind_failure", reason: "privileged_port", port: 80),
                             "stderr: \(trace.stderr)")
        trace.stop()
        #expect(r.pid("process") == f[0])
        #expect(r.evidence["uid"] as? Int == 0)
        #expect(r.evidence["capability_check"] as? String == "held only in the process's own user namespace, not in the one owning the network namespace")
        #expect((r.string("hint") ?? "").contains("network namespace created inside its user namespace"))
    }

    @Test("CAP_NET_BIND_SERVICE granted but Landlock refuses port 80: lsm_denied (landlock), not privileged_port")
    func grantedCapabilityLandlockRefuses() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let trace = try TraceSession([])
        let wrap = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                    "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"]
        // Allowed to bind 81 only; without Landlock, binding 80 succeeds (the
        // capability is in the effective set).
        let ok = try peer(ns, wrap: wrap, ["bind", "127.0.0.1", "80"])
        #expect(ok[1] == 0)
        let f = try peer(ns, wrap: wrap, ["landlock", "81", "bind", "127.0.0.1", "80"])
        #expect(f[1] == Int(EACCES))
        let r = try #require(record(trace, ns, kind: "denial", reason: "lsm_denied", port: 80), "stderr: \(trace.stderr)")
        let wrong = trace.records.first { $0.string("reason") == "privileged_port" && $0.int("netns") == ns.inode }
        trace.stop()
        #expect(r.string("cause") == "landlock")
        #expect(r.pid("process") == f[0])
        #expect(wrong == nil)
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
}
