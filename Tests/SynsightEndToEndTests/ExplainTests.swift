import Foundation
import Testing

/// `synsight explain <port> --json` against the real kernel: real listeners,
/// queues, limits and nft rules in namespaces each test creates and deletes,
/// and a short real trace. Each test asserts the verdict and the findings
/// (codes, severities, numbers, PIDs, rule handles), and the healthy case
/// asserts "healthy", so every verdict can fail.
@Suite("explain, end to end", .serialized, .enabled(if: Privileged.enabled))
struct ExplainTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    /// `explain --json PORT --netns NS` while one client in `ns` connects to
    /// `addr`: the client's (pid, errno) and the report.
    func explainWhileConnecting(_ ns: NetNS, port: Int, to addr: String, duration: String = "2",
                                timeout: Double = 3) throws -> (client: (pid: Int, errno: Int), report: Report) {
        let run = try Run(["--json", String(port), "--netns", ns.name, "--duration", duration])
        try run.waitForTrace()
        let c = try Peer.connect(from: ns, addr: addr, port: port, timeout: timeout)
        let (_, r) = try run.finish()
        return (c, r)
    }

    /// One run of `synsight explain`, started in the background so a test can
    /// act while its short trace runs.
    final class Run {
        let process = Process()
        let outFile: URL
        let errFile: URL

        /// `environment`: added to synsight's own.
        init(_ args: [String], asUser: Int? = nil, environment: [String: String] = [:]) throws {
            let tmp = FileManager.default.temporaryDirectory
            outFile = tmp.appendingPathComponent("synsight-explain-out-\(UUID().uuidString)")
            errFile = tmp.appendingPathComponent("synsight-explain-err-\(UUID().uuidString)")
            _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
            if let uid = asUser {
                process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--inh-caps=-all",
                                     TraceSession.binary, "explain"] + args
            } else {
                process.executableURL = URL(fileURLWithPath: TraceSession.binary)
                process.arguments = ["explain"] + args
            }
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            }
            process.standardOutput = try FileHandle(forWritingTo: outFile)
            process.standardError = try FileHandle(forWritingTo: errFile)
            try process.run()
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
            try? FileManager.default.removeItem(at: outFile)
            try? FileManager.default.removeItem(at: errFile)
        }

        var stdout: String { (try? String(contentsOf: outFile, encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }

        /// Waits until the short trace is attached (its banner is on stderr).
        func waitForTrace() throws {
            let ok = waitUntil(timeout: 20) { stderr.contains("synsight: explain: watching port") || !process.isRunning }
            guard ok, process.isRunning else { throw CommandFailure(description: "explain's trace did not start: \(stderr)") }
        }

        /// Waits for the exit; returns the status and the parsed JSON object.
        func finish(timeout: Double = 30) throws -> (status: Int32, report: Report) {
            if !waitUntil(timeout: timeout, { !process.isRunning }) {
                kill(process.processIdentifier, SIGKILL)
                throw CommandFailure(description: "explain did not exit within \(timeout) s: \(stderr)")
            }
            process.waitUntilExit()
            let text = stdout
            guard let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw CommandFailure(description: "explain printed no JSON object (status \(process.terminationStatus)): \(text) \(stderr)")
            }
            #expect(text.hasSuffix("}\n") && text.filter { $0 == "\n" }.count == 1, "one JSON object on one line")
            if let records = (obj["recent"] as? [String: Any])?["records"] as? [Any] {
                RecordSchema.check(objects: records, "explain --json recent.records")
            }
            return (process.terminationStatus, Report(raw: obj, text: text))
        }
    }

    /// explain's JSON output, with lookups for the assertions.
    struct Report: CustomStringConvertible {
        let raw: [String: Any]
        let text: String
        var description: String { text }

        var verdict: [String: Any] { raw["verdict"] as? [String: Any] ?? [:] }
        var status: String? { verdict["status"] as? String }
        var summary: String { verdict["summary"] as? String ?? "" }
        var findings: [[String: Any]] { raw["findings"] as? [[String: Any]] ?? [] }
        var listeners: [[String: Any]] { raw["listeners"] as? [[String: Any]] ?? [] }
        var recent: [String: Any] { raw["recent"] as? [String: Any] ?? [:] }
        var namespaces: [[String: Any]] { raw["namespaces"] as? [[String: Any]] ?? [] }

        func finding(_ code: String, where match: ([String: Any]) -> Bool = { _ in true }) -> [String: Any]? {
            findings.first { $0["code"] as? String == code && match($0) }
        }

        func evidence(_ f: [String: Any]?) -> [String: Any] { f?["evidence"] as? [String: Any] ?? [:] }

        /// The recent_refusals finding for this reason and cause.
        func recentFinding(reason: String, cause: String? = nil) -> [String: Any]? {
            finding("recent_refusals") { f in
                let ev = evidence(f)
                return ev["reason"] as? String == reason && (cause == nil || ev["cause"] as? String == cause)
            }
        }

        var serious: [[String: Any]] { findings.filter { ($0["severity"] as? String) != "info" } }
    }

    func explain(_ args: [String]) throws -> (status: Int32, report: Report) {
        try Run(["--json"] + args).finish()
    }

    func pid(_ obj: Any?) -> Int? { (obj as? [String: Any])?["pid"] as? Int }

    // MARK: no listener

    @Test("closed port: not_listening (critical), and the refusal the short trace saw with the client's pid")
    func closedPort() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let run = try Run(["--json", String(port), "--netns", ns.name, "--duration", "2"])
        try run.waitForTrace()
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let (status, r) = try run.finish()

        #expect(status == 2)
        #expect(r.raw["v"] as? Int == 1)
        #expect(r.raw["port"] as? Int == port)
        #expect(r.status == "broken", "\(r)")
        #expect(r.listeners.isEmpty)
        let f = try #require(r.finding("not_listening"), "\(r)")
        #expect(f["severity"] as? String == "critical")
        #expect((f["message"] as? String)?.contains("nothing listens on port \(port)") == true)
        #expect(r.summary.contains("nothing listens on port \(port)"))
        #expect(r.recent["status"] as? String == "ran")
        let recent = try #require(r.recentFinding(reason: "no_listener", cause: "never_listened"), "\(r)")
        let latest = r.evidence(recent)["latest"] as? [String: Any]
        #expect(pid(latest?["client"]) == c.pid)
        #expect(latest?["netns"] as? Int == ns.inode)
        #expect(r.evidence(f)["refused"] as? Int ?? 0 >= 1)
        let viewpoint = r.raw["viewpoint"] as? [String: Any]
        #expect(viewpoint?["netns"] as? Int == ns.inode)
        #expect(viewpoint?["name"] as? String == ns.name)
    }

    @Test("listener killed during the short trace: not_listening names the last listener, killed by SIGKILL")
    func listenerKilled() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "127.0.0.1", port: port)
        let run = try Run(["--json", String(port), "--netns", ns.name, "--duration", "2.5"])
        try run.waitForTrace()
        listener.killHard()
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let (status, r) = try run.finish()

        #expect(status == 2)
        #expect(r.status == "broken", "\(r)")
        #expect(r.listeners.isEmpty, "the listener is gone: \(r)")
        let f = try #require(r.finding("not_listening"), "\(r)")
        #expect(pid(r.evidence(f)["last_listener"]) == listener.pid, "\(r)")
        #expect(r.evidence(f)["cause"] as? String == "listener_exited")
        #expect((f["message"] as? String)?.contains("pid \(listener.pid)") == true)
        #expect((f["message"] as? String)?.contains("SIGKILL") == true, "\(f)")
        let recent = try #require(r.recentFinding(reason: "no_listener", cause: "listener_exited"), "\(r)")
        let latest = r.evidence(recent)["latest"] as? [String: Any]
        #expect(pid(latest?["process"]) == listener.pid)
        #expect(pid(latest?["client"]) == c.pid)
    }

    @Test("loopback-only listener, client in another namespace: loopback_only, and the refused connect")
    func loopbackOnly() throws {
        let server = try NetNS()
        defer { server.remove() }
        let client = try NetNS()
        defer { client.remove() }
        try server.link(to: client)
        let port = randomPort()
        let listener = try Peer(listenIn: server, addr: "127.0.0.1", port: port)
        let run = try Run(["--json", String(port), "--netns", client.name, "--duration", "2"])
        try run.waitForTrace()
        let c = try Peer.connect(from: client, addr: "198.18.0.1", port: port)
        #expect(c.errno == Int(ECONNREFUSED))
        let (status, r) = try run.finish()

        #expect(status == 2)
        let f = try #require(r.finding("loopback_only"), "\(r)")
        #expect(f["severity"] as? String == "warning")
        #expect(f["netns"] as? Int == server.inode)
        #expect((f["message"] as? String)?.contains("127.0.0.1:\(port) only") == true)
        #expect((f["remediation"] as? String)?.contains("0.0.0.0") == true)
        let l = try #require(r.listeners.first)
        #expect(r.listeners.count == 1)
        #expect(l["addr"] as? String == "127.0.0.1")
        #expect(l["netns"] as? Int == server.inode)
        #expect(pid((l["processes"] as? [Any])?.first) == listener.pid)
        // Seen from the client's namespace, nothing listens there.
        #expect(r.finding("other_netns_only") { $0["netns"] as? Int == client.inode } != nil)
        let recent = try #require(r.recentFinding(reason: "no_listener", cause: "bound_to_other_address"), "\(r)")
        #expect(pid((r.evidence(recent)["latest"] as? [String: Any])?["process"]) == listener.pid)
        #expect(r.status == "broken")
    }

    @Test("IPv6-only listener reached over IPv4: ipv6_only from IPV6_V6ONLY, family_mismatch in the trace")
    func ipv6Only() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "::", port: port, extra: ["--v6only"])
        let (c, r) = try explainWhileConnecting(ns, port: port, to: "127.0.0.1", duration: "2")
        #expect(c.errno == Int(ECONNREFUSED))

        let f = try #require(r.finding("ipv6_only"), "\(r)")
        #expect(f["severity"] as? String == "warning")
        #expect(r.evidence(f)["ipv6only"] as? Bool == true)
        #expect((f["message"] as? String)?.contains("IPv4 clients are refused") == true)
        let l = try #require(r.listeners.first)
        #expect(l["family"] as? String == "ipv6")
        #expect(l["addr"] as? String == "::")
        #expect(l["ipv6only"] as? Bool == true)
        #expect(pid((l["processes"] as? [Any])?.first) == listener.pid)
        #expect(r.recentFinding(reason: "no_listener", cause: "family_mismatch") != nil, "\(r)")
        #expect(r.status == "broken")
    }

    @Test("\"localhost\" split: a listener on [::1], a client on 127.0.0.1: ipv6_only naming 127.0.0.1, family_mismatch with a 127.0.0.1 fix")
    func localhostSplit() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "::1", port: port)
        let (c, r) = try explainWhileConnecting(ns, port: port, to: "127.0.0.1", duration: "2")
        #expect(c.errno == Int(ECONNREFUSED))
        let f = try #require(r.finding("ipv6_only"), "\(r)")
        #expect(f["severity"] as? String == "warning")
        #expect((f["message"] as? String)?.contains("127.0.0.1:\(port)") == true, "\(f)")
        #expect((f["remediation"] as? String)?.contains("also listen on 127.0.0.1:\(port)") == true, "\(f)")
        #expect(r.finding("loopback_only") != nil)
        let recent = try #require(r.recentFinding(reason: "no_listener", cause: "family_mismatch"), "\(r)")
        let latest = try #require(r.evidence(recent)["latest"] as? [String: Any])
        #expect((latest["hint"] as? String)?.contains("also listen on 127.0.0.1:\(port)") == true, "\(latest)")
        #expect(pid(latest["process"]) == listener.pid)
        #expect(pid(latest["client"]) == c.pid)
    }

    @Test("listener bound to a device (SO_BINDTODEVICE), client on loopback: bound_to_device names the device from sock_diag, bound_to_other_device in the trace")
    func boundToDevice() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        // A second device of the namespace's own (ifb: a dummy without dummy.ko).
        let dev = "ssdev\(getpid() % 100_000)"
        if (try? sh(["ip", "-n", ns.name, "link", "add", dev, "type", "dummy"])) == nil {
            _ = try sh(["ip", "-n", ns.name, "link", "add", dev, "type", "ifb"])
        }
        _ = try sh(["ip", "-n", ns.name, "addr", "add", "198.19.0.1/24", "dev", dev])
        _ = try sh(["ip", "-n", ns.name, "link", "set", dev, "up"])
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "0.0.0.0", port: port, extra: ["--device", dev])
        let (c, r) = try explainWhileConnecting(ns, port: port, to: "127.0.0.1", duration: "2")
        #expect(c.errno == Int(ECONNREFUSED))
        let f = try #require(r.finding("bound_to_device"), "\(r)")
        #expect(f["severity"] as? String == "warning")
        #expect((f["message"] as? String)?.contains("0.0.0.0:\(port)%\(dev)") == true, "\(f)")
        #expect((f["remediation"] as? String)?.contains("SO_BINDTODEVICE \(dev)") == true, "\(f)")
        let devices = r.evidence(f)["bound_devices"] as? [[String: Any]]
        #expect(devices?.first?["name"] as? String == dev, "\(f)")
        let recent = try #require(r.recentFinding(reason: "no_listener", cause: "bound_to_other_device"), "\(r)")
        let latest = try #require(r.evidence(recent)["latest"] as? [String: Any])
        #expect(pid(latest["process"]) == listener.pid)
        #expect(pid(latest["client"]) == c.pid)
        #expect(((latest["evidence"] as? [String: Any])?["syn_device"] as? [String: Any])?["name"] as? String == "lo", "\(latest)")
        // The listener as explain lists it carries its device too.
        let listed = r.listeners.first { ($0["port"] as? Int) == port }
        #expect((listed?["bound_device"] as? [String: Any])?["name"] as? String == dev, "\(r.listeners)")
    }

    @Test("listener only in another namespace: other_netns_only names it")
    func otherNetns() throws {
        let server = try NetNS()
        defer { server.remove() }
        let client = try NetNS()
        defer { client.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: server, addr: "0.0.0.0", port: port)
        let (status, r) = try explain([String(port), "--netns", client.name, "--duration", "0"])

        #expect(status == 2)
        #expect(r.status == "degraded", "\(r)")
        let f = try #require(r.finding("other_netns_only"), "\(r)")
        #expect(f["netns"] as? Int == client.inode)
        #expect((r.evidence(f)["listener_netns"] as? [Int]) == [server.inode])
        #expect((f["message"] as? String)?.contains("pid \(listener.pid)") == true)
        #expect(r.finding("not_listening") == nil)
        #expect(r.recent["status"] as? String == "skipped")
        // Every namespace of the host was scanned, the two of this test among them.
        let scanned = Set(r.namespaces.compactMap { $0["netns"] as? Int })
        #expect(scanned.isSuperset(of: [server.inode, client.inode]))
    }

    @Test("a local connect() whose SYNs an nft rule drops: connects_unanswered names the destination, its retransmissions and the client")
    func unansweredConnect() throws {
        let client = try NetNS(), server = try NetNS()
        defer { client.remove(); server.remove() }
        try server.link(to: client)  // server 198.18.0.1, client .2
        let port = randomPort()
        try server.loadNft("""
            table inet explain_test {
              chain input { type filter hook input priority 0; policy accept; tcp dport \(port) drop; }
            }
            """)
        let connecting = try Peer(runIn: client, ["connect", "198.18.0.1", String(port), "--timeout", "30"], readyPrefix: "")
        let waiting = Process()
        waiting.executableURL = URL(fileURLWithPath: "/bin/sh")
        waiting.arguments = ["-c", waitForSYNRetransmitShell(in: client, port: port)]
        try waiting.run()
        waiting.waitUntilExit()
        let (_, r) = try explain([String(port), "--netns", client.name, "--duration", "0"])
        let f = try #require(r.finding("connects_unanswered"), "\(r)")
        #expect(f["severity"] as? String == "warning" && f["netns"] as? Int == client.inode, "\(f)")
        let dest = try #require((r.evidence(f)["destinations"] as? [[String: Any]])?.first, "\(f)")
        #expect(dest["addr"] as? String == "198.18.0.1" && dest["port"] as? Int == port, "\(dest)")
        #expect((dest["max_syn_retransmits"] as? Int ?? 0) >= 1 && dest["pids"] as? [Int] == [connecting.pid], "\(dest)")
        #expect((f["message"] as? String)?.contains("pid \(connecting.pid)") == true, "\(f)")
    }

    @Test("a port this host only uses: no listener anywhere, a connection established to a server elsewhere: not_served_here, not critical")
    func notServedHere() throws {
        let client = try NetNS(), server = try NetNS()
        defer { client.remove(); server.remove() }
        try server.link(to: client)  // server 198.18.0.1, client .2
        let port = randomPort()
        // The server accepts one connection and closes its listening socket:
        // a connected client and no listener on the host, as on a client host.
        let served = try Peer(listenIn: server, addr: "0.0.0.0", port: port, extra: ["--accept-one"])
        let held = try Peer(runIn: client, ["hold", "198.18.0.1", String(port), "--seconds", "30"], readyPrefix: "connected")
        #expect(waitUntil(timeout: 5) { served.output.contains("served") }, "\(served.output)")
        let (status, r) = try explain([String(port), "--netns", client.name, "--duration", "1"])

        let f = try #require(r.finding("not_served_here"), "\(r)")
        #expect(f["severity"] as? String == "info", "\(f)")
        #expect((f["message"] as? String)?.contains("1 connection established to 198.18.0.1:\(port)") == true, "\(f)")
        #expect((f["message"] as? String)?.contains("pid \(held.pid)") == true, "\(f)")
        #expect(r.evidence(f)["servers"] as? [String] == ["198.18.0.1:\(port)"], "\(f)")
        #expect(r.finding("not_listening") == nil, "\(r)")
        #expect(r.status == "healthy" && status == 0, "\(r)")
    }

    // MARK: queues and limits

    /// A stalled server (backlog 1: the accept queue holds 2) and two held connections.
    func stalledServer(_ ns: NetNS, port: Int, emfile: Bool = false) throws -> (Peer, [Peer]) {
        let server = try Peer(runIn: ns, ["stall", "127.0.0.1", String(port), "--backlog", "1"] + (emfile ? ["--emfile"] : []))
        var holders: [Peer] = []
        for _ in 0..<2 {
            holders.append(try Peer(runIn: ns, ["hold", "127.0.0.1", String(port), "--seconds", "20"], readyPrefix: "connected"))
        }
        return (server, holders)
    }

    @Test("full accept queue: accept_queue_full with the queue, the backlog and that namespace's somaxconn")
    func acceptQueueFull() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        try sh(["ip", "netns", "exec", ns.name, "sysctl", "-qw", "net.core.somaxconn=100"])
        let port = randomPort()
        let (server, holders) = try stalledServer(ns, port: port)
        let (status, r) = try explain([String(port), "--netns", ns.name, "--duration", "0"])
        _ = holders

        #expect(status == 2)
        #expect(r.status == "broken")
        let f = try #require(r.finding("accept_queue_full"), "\(r)")
        #expect(f["severity"] as? String == "critical")
        let ev = r.evidence(f)
        #expect(ev["accept_queue"] as? Int == 2)
        #expect(ev["max_backlog"] as? Int == 1)
        #expect(ev["somaxconn"] as? Int == 100)
        #expect(ev["pid"] as? Int == server.pid)
        #expect((f["message"] as? String)?.contains("2/1") == true)
        #expect((f["remediation"] as? String)?.contains("backlog") == true)
        let l = try #require(r.listeners.first)
        #expect(l["accept_queue"] as? Int == 2)
        #expect(l["max_backlog"] as? Int == 1)
        #expect(l["somaxconn"] as? Int == 100)
        // Not an fd problem here.
        #expect(r.finding("fd_limit_reached") == nil)
    }

    @Test("a stopped listener (SIGSTOP): listener_stopped names it and kill -CONT, its threads in the listener's process")
    func stoppedListener() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let (server, holders) = try stalledServer(ns, port: port)
        kill(pid_t(server.pid), SIGSTOP)
        defer { kill(pid_t(server.pid), SIGCONT) }
        #expect(waitUntil(timeout: 5) { (try? String(contentsOfFile: "/proc/\(server.pid)/stat", encoding: .utf8))?.contains(") T ") == true })
        let (_, r) = try explain([String(port), "--netns", ns.name, "--duration", "0"])
        _ = holders
        let f = try #require(r.finding("listener_stopped"), "\(r)")
        #expect(f["severity"] as? String == "critical")
        #expect((f["remediation"] as? String)?.contains("kill -CONT \(server.pid)") == true, "\(f)")
        #expect((r.evidence(f)["listener_state"] as? [String: Any])?["threads"] as? [String: Int] == ["T": 1], "\(f)")
        let procs = r.listeners.first?["processes"] as? [[String: Any]]
        #expect(procs?.first?["threads"] as? [String: Int] == ["T": 1], "\(r.listeners)")
    }

    @Test("fd exhaustion: fd_limit_reached with the limit and the open fds; the full queue blames EMFILE")
    func fdExhausted() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let (server, holders) = try stalledServer(ns, port: port, emfile: true)
        let (_, r) = try explain([String(port), "--netns", ns.name, "--duration", "1.5"])
        _ = holders

        #expect(r.status == "broken")
        let f = try #require(r.finding("fd_limit_reached"), "\(r)")
        #expect(f["severity"] as? String == "critical")
        let ev = r.evidence(f)
        #expect(ev["pid"] as? Int == server.pid)
        let soft = try #require(ev["nofile_soft"] as? Int)
        #expect(soft > 0 && soft < 64)
        #expect(ev["open_fds"] as? Int ?? 0 >= soft)
        let q = try #require(r.finding("accept_queue_full"), "\(r)")
        #expect((q["message"] as? String)?.contains("EMFILE") == true)
        let p = try #require((r.listeners.first?["processes"] as? [[String: Any]])?.first)
        #expect(p["nofile_soft"] as? Int == soft)
        // The short trace saw accept() fail.
        #expect(r.recentFinding(reason: "fd_exhausted") != nil, "\(r)")
    }

    // MARK: firewall

    @Test("nft drop and reject rules on the port: firewall_drop / firewall_reject naming the rule handle")
    func firewallRules() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let base = randomPort()
        let (pDrop, pReject, pCond) = (base, base + 1, base + 2)
        var listeners: [Peer] = []
        for p in [pDrop, pReject, pCond] { listeners.append(try Peer(listenIn: ns, addr: "0.0.0.0", port: p)) }
        try sh(["ip", "netns", "exec", ns.name, "nft",
                "add table inet filter; "
                + "add chain inet filter input { type filter hook input priority 0; policy accept; }; "
                + "add rule inet filter input tcp dport \(pDrop) counter drop; "
                + "add rule inet filter input tcp dport \(pReject) reject with tcp reset; "
                + "add rule inet filter input ip saddr 10.0.0.0/8 tcp dport \(pCond) drop"])
        let rules = try sh(["ip", "netns", "exec", ns.name, "nft", "-a", "list", "ruleset"])
        func handle(_ text: String) -> Int? {
            for line in rules.split(separator: "\n") where line.contains(text) {
                if let r = line.range(of: "# handle ") { return Int(line[r.upperBound...].trimmingCharacters(in: .whitespaces)) }
            }
            return nil
        }
        let hDrop = try #require(handle("dport \(pDrop)")), hReject = try #require(handle("dport \(pReject)"))
        // The test's namespace only: the host's own rules (Docker's, while a
        // Docker test runs in parallel) are reported too, in the host's.
        let here: ([String: Any]) -> Bool = { $0["netns"] as? Int == ns.inode }

        let (_, drop) = try explain([String(pDrop), "--netns", ns.name, "--duration", "0"])
        let d = try #require(drop.finding("firewall_drop", where: here), "\(drop)")
        #expect(d["severity"] as? String == "critical")
        #expect(d["netns"] as? Int == ns.inode)
        #expect(drop.evidence(d)["handle"] as? Int == hDrop)
        #expect(drop.evidence(d)["table"] as? String == "inet filter")
        #expect(drop.evidence(d)["chain"] as? String == "input")
        #expect(drop.evidence(d)["confidence"] as? String == "certain")
        #expect(drop.evidence(d)["direction"] as? String == "inbound")
        #expect((d["message"] as? String)?.contains("nft rule inet filter input handle \(hDrop) drops tcp dport \(pDrop)") == true, "\(d)")
        #expect((d["remediation"] as? String)?.contains("handle \(hDrop)") == true)
        #expect(drop.status == "broken")

        let (_, reject) = try explain([String(pReject), "--netns", ns.name, "--duration", "0"])
        let j = try #require(reject.finding("firewall_reject", where: here), "\(reject)")
        #expect(j["severity"] as? String == "critical")
        #expect(reject.evidence(j)["handle"] as? Int == hReject)
        #expect(reject.evidence(j)["reject_with"] as? String == "tcp-reset")
        #expect(reject.finding("firewall_drop", where: here) == nil, "the drop rule is for another port: \(reject)")

        // A rule limited to some sources applies to some clients only.
        let (_, cond) = try explain([String(pCond), "--netns", ns.name, "--duration", "0"])
        let c = try #require(cond.finding("firewall_drop", where: here), "\(cond)")
        #expect(c["severity"] as? String == "warning")
        #expect(cond.evidence(c)["confidence"] as? String == "conditional")
        #expect((cond.evidence(c)["conditions"] as? [String])?.contains { $0.contains("10.0.0.0/8") } == true, "\(c)")
        _ = listeners
    }

    @Test("syncookies off and a listen backlog above three quarters of tcp_max_syn_backlog: a warning that new clients are dropped before the queue is full; a smaller backlog: none")
    func synBacklogReserve() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        try sh(["ip", "netns", "exec", ns.name, "sysctl", "-qw", "net.ipv4.tcp_syncookies=0", "net.ipv4.tcp_max_syn_backlog=16"])
        let (wide, narrow) = (randomPort(), randomPort() + 1)
        let a = try Peer(runIn: ns, ["stall", "127.0.0.1", String(wide), "--backlog", "64"])
        let b = try Peer(runIn: ns, ["stall", "127.0.0.1", String(narrow), "--backlog", "8"])
        let here: ([String: Any]) -> Bool = { $0["netns"] as? Int == ns.inode }
        let (_, r) = try explain([String(wide), "--netns", ns.name, "--duration", "0"])
        let f = try #require(r.finding("syn_backlog_reserve", where: here), "\(r)")
        #expect(f["severity"] as? String == "warning", "\(f)")
        #expect((f["message"] as? String)?.contains("from 13 half-open connections on, the kernel drops new clients' SYNs unanswered") == true, "\(f)")
        #expect(r.evidence(f)["tcp_max_syn_backlog"] as? Int == 16 && r.evidence(f)["tcp_syncookies"] as? Int == 0, "\(f)")
        #expect((f["remediation"] as? String)?.contains("tcp_syncookies=1") == true, "\(f)")
        let (_, n) = try explain([String(narrow), "--netns", ns.name, "--duration", "0"])
        #expect(n.finding("syn_backlog_reserve", where: here) == nil, "\(n)")
        a.killHard()
        b.killHard()
    }

    @Test("kube-router's NetworkPolicy reject in front of the port: the finding names the pod and gives the NetworkPolicy fix, not the rule's")
    func kubeRouterPolicy() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "0.0.0.0", port: port)
        _ = try KubeProxyRuleTests.installKubeRouterPolicy(in: ns, pod: "127.0.0.1", port: port, allowed: "127.0.0.2")
        let here: ([String: Any]) -> Bool = { $0["netns"] as? Int == ns.inode }
        let (_, r) = try explain([String(port), "--netns", ns.name, "--duration", "0"])
        let f = try #require(r.finding("firewall_reject", where: here), "\(r)")
        #expect(r.evidence(f)["cause"] as? String == "network_policy" && r.evidence(f)["policy_pod"] as? String == "shop/web-7d9f", "\(f)")
        #expect(r.evidence(f)["rule_owner"] as? String == "kube-router", "\(f)")
        #expect(r.evidence(f)["rule_comment"] as? String == "rule to REJECT traffic destined for POD name:web-7d9f namespace: shop", "\(f)")
        // A comment match is no condition: the finding is conditional on the mark and the jump only.
        #expect(r.evidence(f)["confidence"] as? String == "conditional", "\(f)")
        let fix = f["remediation"] as? String ?? ""
        #expect(fix.contains("NetworkPolicy that selects pod web-7d9f in namespace shop") && fix.contains("kube-router writes its rules again"),
                "\(fix)")
        _ = listener
    }

    @Test("iptables' \"stealth\" rule (OUTPUT drops RSTs) where nothing listens: a warning that refusals become timeouts, the trace names the rule")
    func stealthRSTRule() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        try sh(["ip", "netns", "exec", ns.name, "iptables", "-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "DROP"])
        let (c, r) = try explainWhileConnecting(ns, port: port, to: "127.0.0.1", duration: "3", timeout: 1.5)
        #expect(c.errno == Int(ETIMEDOUT), "the RST is dropped: the client times out instead of being refused")
        let here: ([String: Any]) -> Bool = { $0["netns"] as? Int == ns.inode }
        let f = try #require(r.finding("firewall_drop", where: here), "\(r)")
        #expect(f["severity"] as? String == "warning")
        #expect(r.evidence(f)["direction"] as? String == "reply")
        #expect(r.evidence(f)["confidence"] as? String == "conditional")
        #expect(r.evidence(f)["iptables"] as? Bool == true)
        #expect((f["message"] as? String)?.contains("the RSTs refusing connections to port \(port)") == true, "\(f)")
        // The trace saw the dropped RST and named the same rule, exactly.
        let recent = try #require(r.recentFinding(reason: "firewall_drop"), "\(r)")
        let latest = try #require(r.evidence(recent)["latest"] as? [String: Any])
        let ev = try #require(latest["evidence"] as? [String: Any])
        #expect(ev["segment"] as? String == "rst")
        #expect(ev["rule"] as? String == "tcp flags & rst == rst drop", "\(ev)")
        #expect(ev["table"] as? String == "ip filter" && ev["chain"] as? String == "OUTPUT")
        #expect(ev["rule_method"] as? String == "ruleset_match")
        #expect(pid(latest["client"]) == c.pid)
        // One attempt refused: its retransmitted SYN (the RST was dropped) is refused
        // again with the same ISN, and is not a second refusal.
        let notListening = try #require(r.finding("not_listening"), "\(r)")
        #expect(r.evidence(notListening)["refused"] as? Int == 1, "\(notListening)")
    }

    @Test("an iptables-legacy REJECT (nft does not show it): a certain finding naming the rule by position, and the trace names it")
    func iptablesLegacyReject() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        try sh(["ip", "netns", "exec", ns.name, "iptables-legacy", "-w", "-A", "INPUT", "-p", "tcp", "--dport", String(port),
                "-j", "REJECT", "--reject-with", "icmp-admin-prohibited"])
        let (c, r) = try explainWhileConnecting(ns, port: port, to: "127.0.0.1", duration: "3", timeout: 1.5)
        #expect(c.errno == Int(EHOSTUNREACH), "admin-prohibited reaches the client as EHOSTUNREACH")
        let here: ([String: Any]) -> Bool = { $0["netns"] as? Int == ns.inode }
        let f = try #require(r.finding("firewall_reject", where: here), "\(r)")
        #expect(r.evidence(f)["table"] as? String == "iptables-legacy filter")
        #expect(r.evidence(f)["chain"] as? String == "INPUT" && r.evidence(f)["handle"] as? Int == 1)
        #expect(r.evidence(f)["confidence"] as? String == "certain")
        #expect(r.evidence(f)["reject_with"] as? String == "icmp admin-prohibited")
        #expect((f["remediation"] as? String)?.contains("iptables-legacy -D INPUT 1") == true, "\(f)")
        #expect(!r.namespaces.contains { ($0["problems"] as? [String])?.isEmpty == false },
                "legacy tables were read: no problem is reported: \(r)")
        let recent = try #require(r.recentFinding(reason: "firewall_reject"), "\(r)")
        let latest = try #require(r.evidence(recent)["latest"] as? [String: Any])
        let ev = try #require(latest["evidence"] as? [String: Any])
        #expect(ev["table"] as? String == "iptables-legacy filter" && ev["handle"] as? Int == 1, "\(ev)")
        #expect(pid(latest["client"]) == c.pid)
    }

    @Test("a forward chain with policy drop and a local listener: healthy, no firewall finding (forward sees routed traffic only)")
    func forwardPolicyLocalListener() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "0.0.0.0", port: port)
        try sh(["ip", "netns", "exec", ns.name, "nft",
                "add table inet filter; "
                + "add chain inet filter input { type filter hook input priority 0; policy accept; }; "
                + "add chain inet filter forward { type filter hook forward priority 0; policy drop; }; "
                + "add chain inet filter fwd_user; "
                + "add rule inet filter forward jump fwd_user; "
                + "add rule inet filter fwd_user tcp dport \(port) drop"])
        let run = try Run(["--json", String(port), "--netns", ns.name, "--duration", "1.5"])
        try run.waitForTrace()
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == 0, "the forward chain must not stop a local connection")
        let (status, r) = try run.finish()

        #expect(r.status == "healthy", "\(r)")
        #expect(status == 0)
        #expect(r.serious.isEmpty, "\(r.serious)")
        // The test's namespace only (the host's own rules are reported in the host's).
        let fw = r.findings.filter { ($0["code"] as? String)?.hasPrefix("firewall_") == true && $0["netns"] as? Int == ns.inode }
        #expect(fw.isEmpty, "forward-hook rules reported for a local listener: \(fw)")
        #expect(r.summary.contains("no firewall rule stops it"), "\(r.summary)")
        #expect(r.summary.contains("pid \(listener.pid)"))
        let me = try #require(r.namespaces.first { $0["netns"] as? Int == ns.inode })
        let firewall = me["firewall"] as? [String: Any]
        #expect(firewall?["checked"] as? Bool == true, "the ruleset was read: \(me)")
        #expect((firewall?["rules"] as? [Any])?.isEmpty == true, "\(me)")
    }

    // MARK: healthy, degraded modes, errors

    @Test("a healthy dual-stack listener: verdict healthy, exit status 0, no problem findings")
    func healthy() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "::", port: port)
        let run = try Run(["--json", String(port), "--netns", ns.name, "--duration", "1.5"])
        try run.waitForTrace()
        let c = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        #expect(c.errno == 0)
        let (status, r) = try run.finish()

        #expect(r.status == "healthy", "\(r)")
        #expect(status == 0)
        #expect(r.serious.isEmpty, "\(r.serious)")
        #expect(r.summary.hasPrefix("healthy:"))
        #expect(r.summary.contains("pid \(listener.pid)"))
        let l = try #require(r.listeners.first)
        #expect(l["ipv6only"] as? Bool == false)
        #expect(l["accept_queue"] as? Int == 1, "the test's connection, never accepted by peer.py listen")
        #expect(l["max_backlog"] as? Int == 16)
        #expect(r.recent["status"] as? String == "ran")
        #expect((r.recent["records"] as? [Any])?.isEmpty == true)
        let me = r.namespaces.first { $0["netns"] as? Int == ns.inode }
        #expect((me?["firewall"] as? [String: Any])?["checked"] as? Bool == true)
    }

    @Test("no BPF for the short trace: the static state is still explained, and why the trace was unavailable")
    func traceUnavailable() throws {
        let doctor = try sh([TraceSession.binary, "doctor"], allowFailure: true)
        let fentryWorks = doctor.split(separator: "\n").contains { $0.contains("fentry/tcp_v{4,6}_send_reset") && $0.contains("yes") }
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let listener = try Peer(listenIn: ns, addr: "127.0.0.1", port: port)
        // Forcing a hook this kernel refuses makes the tracer fail to load, as on a kernel without BPF.
        let (_, r) = try explain([String(port), "--netns", ns.name, "--duration", "1", "--reset-hook", "fentry"])
        if fentryWorks {
            #expect(r.recent["status"] as? String == "ran")
            return
        }
        #expect(r.recent["status"] as? String == "unavailable", "\(r)")
        #expect((r.recent["reason"] as? String)?.contains("fentry") == true, "\(r.recent)")
        #expect(r.finding("trace_unavailable") != nil)
        #expect(r.finding("loopback_only") != nil)
        #expect(pid((r.listeners.first?["processes"] as? [Any])?.first) == listener.pid)
    }

    @Test("not root: a clear error naming what needs root and why")
    func notRoot() throws {
        let run = try Run([String(randomPort()), "--duration", "0"], asUser: 65534)
        _ = waitUntil(timeout: 20) { !run.process.isRunning }
        run.process.waitUntilExit()
        #expect(run.process.terminationStatus == 1)
        #expect(run.stdout.isEmpty)
        let err = run.stderr
        #expect(err.hasPrefix("synsight: error: explain needs root"), "\(err)")
        for needed in ["CAP_SYS_ADMIN", "CAP_BPF", "network namespace", "sudo"] {
            #expect(err.contains(needed), "\(err)")
        }
    }
}
