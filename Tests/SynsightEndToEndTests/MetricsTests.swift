import Foundation
import Testing

/// `--metrics-address` against the real kernel and real Prometheus tools:
/// refusals generated in test namespaces, `/metrics` scraped over loopback,
/// checked by `promtool check metrics`, and scraped by a real Prometheus
/// server whose HTTP API must report the same count. Every process started
/// here is killed on every path out of the test.
@Suite("metrics, end to end", .serialized, .enabled(if: Privileged.enabled))
struct MetricsTests {
    init() throws {
        try Privileged.check()
        NetNS.removeStale()
    }

    // MARK: - helpers

    /// A loopback port nobody listens on right now.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: sa.sin_port))
    }

    struct HTTPResponse {
        var status: Int
        var headers: String
        var body: String
    }

    /// One HTTP/1.1 request on a raw socket (no client library between the
    /// test and the server's bytes).
    static func http(_ host: String = "127.0.0.1", port: Int, _ method: String = "GET", _ path: String = "/metrics",
                     timeout: Int = 10) throws -> HTTPResponse {
        let c = try RawClient(host: host, port: port, timeout: timeout)
        c.send("\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
        let text = String(decoding: c.readAll().bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else {
            throw CommandFailure(description: "no HTTP response from \(host):\(port): '\(text)'")
        }
        let head = String(text[..<end.lowerBound])
        return HTTPResponse(status: Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0,
                            headers: head, body: String(text[end.upperBound...]))
    }

    /// Sum of the samples of `name` whose labels include `match` (text exposition format).
    static func sum(_ exposition: String, _ name: String, _ match: [String: String]) -> Double? {
        var total: Double?
        for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
            guard line.hasPrefix(name + "{") || line.hasPrefix(name + " ") else { continue }
            var labels: [String: String] = [:]
            if let open = line.firstIndex(of: "{"), let close = line.lastIndex(of: "}") {
                for pair in line[line.index(after: open)..<close].split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    labels[String(kv[0])] = String(kv[1].dropFirst().dropLast())
                }
            }
            guard match.allSatisfy({ labels[$0.key] == $0.value }),
                  let v = Double(line.split(separator: " ").last ?? "") else { continue }
            total = (total ?? 0) + v
        }
        return total
    }

    static var repoRoot: URL {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }

    static func tool(_ name: String) throws -> String {
        let path = repoRoot.appendingPathComponent(".tools/prometheus/usr/bin/\(name)").path
        try #require(FileManager.default.isExecutableFile(atPath: path),
                     "\(path) is missing: run scripts/fetch-prometheus.sh (scripts/install-deps.sh does)")
        return path
    }

    static func promtool(_ exposition: String) throws -> (status: Int32, output: String) {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/scrape.prom"
        try exposition.write(toFile: file, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try tool("promtool"))
        p.arguments = ["check", "metrics"]
        p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
        let out = dir + "/out"
        FileManager.default.createFile(atPath: out, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = p.standardOutput
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    /// A real Prometheus server on loopback scraping `target` every second,
    /// with its storage in a temporary directory. Killed and removed on deinit.
    final class PrometheusServer {
        let process = Process()
        let dir = tempDir()
        let port = MetricsTests.freePort()

        init(target: String) throws {
            let config = """
                global:
                  scrape_interval: 1s
                  scrape_timeout: 1s
                scrape_configs:
                  - job_name: synsight
                    static_configs:
                      - targets: ['\(target)']
                """
            try config.write(toFile: dir + "/prometheus.yml", atomically: true, encoding: .utf8)
            FileManager.default.createFile(atPath: dir + "/log", contents: nil)
            process.executableURL = URL(fileURLWithPath: try MetricsTests.tool("prometheus"))
            process.arguments = ["--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/data",
                                 "--web.listen-address=127.0.0.1:\(port)"]
            process.currentDirectoryURL = URL(fileURLWithPath: dir)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/log"))
            process.standardError = process.standardOutput
            try process.run()
            let ready = waitUntil(timeout: 30) {
                !process.isRunning || ((try? MetricsTests.http(port: port, "GET", "/-/ready", timeout: 2))?.status == 200)
            }
            guard ready, process.isRunning else {
                throw CommandFailure(description: "prometheus did not become ready: \(log)")
            }
        }

        var log: String { (try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? "" }

        /// An instant query's single value, or nil when the result is empty.
        func query(_ promql: String) throws -> Double? {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            let q = promql.addingPercentEncoding(withAllowedCharacters: allowed) ?? promql
            let r = try MetricsTests.http(port: port, "GET", "/api/v1/query?query=\(q)")
            guard r.status == 200,
                  let obj = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any],
                  obj["status"] as? String == "success",
                  let data = obj["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else {
                throw CommandFailure(description: "prometheus query \(promql) failed: \(r.status) \(r.body)")
            }
            guard let first = result.first, let value = first["value"] as? [Any], value.count == 2,
                  let s = value[1] as? String else { return nil }
            return Double(s)
        }

        deinit {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// `synsight trace` started through `ip netns exec` (its metrics socket
    /// lives in that namespace). Killed on deinit.
    final class TraceInNamespace {
        let process = Process()
        let errFile = URL(fileURLWithPath: tempDir() + "/stderr")

        init(_ ns: NetNS, _ args: [String]) throws {
            FileManager.default.createFile(atPath: errFile.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", ns.name, TraceSession.binary, "trace", "--json"] + args
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: errFile)
            try process.run()
            let started = waitUntil(timeout: 20) { stderr.contains("synsight: tracing") || !process.isRunning }
            guard started, process.isRunning else { throw CommandFailure(description: "trace did not start: \(stderr)") }
        }

        var stderr: String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
            try? FileManager.default.removeItem(at: errFile.deletingLastPathComponent())
        }
    }

    /// `curl`-like GET from inside a namespace (python's urllib), printing the status or the error.
    static func get(from ns: NetNS, _ url: String) throws -> String {
        try sh(["ip", "netns", "exec", ns.name, "/usr/bin/python3", "-c", """
            import sys, urllib.request
            try:
                print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
            except Exception as e:
                print("error", getattr(e, "reason", e))
            """, url]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: - tests

    @Test("real refusals: the scrape counts them per port, passes promtool with no warning, and a Prometheus server scrapes the same count")
    func scrapePromtoolAndPrometheus() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let metricsPort = Self.freePort()
        let trace = try TraceSession(["--port", String(port), "--metrics-address", "127.0.0.1:\(metricsPort)"])
        #expect(trace.stderr.contains("serving Prometheus metrics at http://127.0.0.1:\(metricsPort)/metrics"))

        let refusals = 7
        for i in 0..<refusals {
            let c = try Peer.connect(from: ns, addr: i % 2 == 0 ? "127.0.0.1" : "::1", port: port)
            #expect(c.errno == Int(ECONNREFUSED))
        }
        let reported = waitUntil(timeout: 15) {
            trace.records.filter { $0.string("kind") == "refusal" && $0.int("port") == port && $0.int("netns") == ns.inode }
                .count == refusals
        }
        #expect(reported, "trace reported \(trace.records.count) records; stderr: \(trace.stderr)")

        let scrape = try Self.http(port: metricsPort)
        #expect(scrape.status == 200)
        #expect(scrape.headers.contains("Content-Type: text/plain; version=0.0.4"))
        let match = ["kind": "refusal", "reason": "no_listener", "port": String(port)]
        #expect(Self.sum(scrape.body, "synsight_refusals_total", match) == Double(refusals), "\(scrape.body)")
        #expect(Self.sum(scrape.body, "synsight_refusals_total", match.merging(["cause": "never_listened"]) { $1 })
                == Double(refusals))
        #expect(Self.sum(scrape.body, "synsight_records_written_total", [:]) == Double(trace.records.count))
        #expect(Self.sum(scrape.body, "synsight_ring_buffer_lost_events_total", [:]) == 0)
        #expect(Self.sum(scrape.body, "synsight_build_info", ["command": "trace"]) == 1)

        let lint = try Self.promtool(scrape.body)
        #expect(lint.status == 0, "promtool: \(lint.output)")
        #expect(lint.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "promtool: \(lint.output)")

        let prometheus = try PrometheusServer(target: "127.0.0.1:\(metricsPort)")
        let query = "sum(synsight_refusals_total{reason=\"no_listener\",port=\"\(port)\"})"
        var value: Double?
        let scraped = waitUntil(timeout: 30) {
            value = try? prometheus.query(query)
            return value != nil
        }
        #expect(scraped, "prometheus never had \(query); its log: \(prometheus.log)")
        #expect(value == Double(refusals), "prometheus says \(String(describing: value))")
        #expect(try prometheus.query("up{job=\"synsight\"}") == 1)

        // More refusals reach Prometheus too: the counter is live, not a snapshot.
        for _ in 0..<3 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        let updated = waitUntil(timeout: 20) { (try? prometheus.query(query)) == Double(refusals + 3) }
        #expect(updated, "prometheus says \(String(describing: try? prometheus.query(query)))")
        trace.stop()
    }

    @Test("port label bound: the first --metrics-max-ports ports get a label, the next ones count as port=\"other\"")
    func portBound() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        var ports: [Int] = []
        while ports.count < 3 {
            let p = randomPort()
            if !ports.contains(p) { ports.append(p) }
        }
        let metricsPort = Self.freePort()
        let trace = try TraceSession(ports.flatMap { ["--port", String($0)] }
                                     + ["--metrics-address", String(metricsPort), "--metrics-max-ports", "2"])
        for (i, p) in ports.enumerated() {
            for _ in 0...i { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: p) }
            // In order: the label goes to the ports seen first.
            #expect(waitUntil(timeout: 10) {
                trace.records.filter { $0.int("port") == p && $0.string("kind") == "refusal" }.count == i + 1
            })
        }
        let body = try Self.http(port: metricsPort).body
        #expect(Self.sum(body, "synsight_refusals_total", ["port": String(ports[0])]) == 1)
        #expect(Self.sum(body, "synsight_refusals_total", ["port": String(ports[1])]) == 2)
        #expect(Self.sum(body, "synsight_refusals_total", ["port": String(ports[2])]) == nil)
        #expect(Self.sum(body, "synsight_refusals_total", ["port": "other"]) == 3)
        trace.stop()
    }

    @Test("workload labels: refusals and folded storms counted by the systemd unit of the killed listener; the second unit past --metrics-max-workloads 1 is \"other\"")
    func workloadLabels() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy mounted")
        let tag = randomTag()
        let units = ["synsight-e2e-metrics-a-\(tag).service", "synsight-e2e-metrics-b-\(tag).service"]
        let cgroups = try units.map { try CgroupTree(root: root, components: ["system.slice", $0]) }
        // The second tree shares the first's system.slice: removed first.
        defer { cgroups.reversed().forEach { $0.remove() } }
        let ns = try NetNS()
        defer { ns.remove() }
        let ports = [randomPort(), randomPort() + 10_000]
        let metricsPort = Self.freePort()
        // --fold 1: past one refusal a second per port and process, the rest is folded into summaries.
        let trace = try TraceSession(ports.flatMap { ["--port", String($0)] }
                                     + ["--fold", "1", "--metrics-address", String(metricsPort), "--metrics-max-workloads", "1"])
        // A listener in each unit's cgroup, killed: its refusals are attributed to it, and to its unit.
        for (cgroup, port) in zip(cgroups, ports) {
            let listener = try Peer(listenIn: ns, addr: "127.0.0.1", port: port, cgroup: cgroup)
            listener.killHard()
        }
        let storm = 6
        func counted(_ port: Int) -> (records: Int, events: Int) {
            let rs = trace.records.filter { $0.int("port") == port && ["refusal", "summary"].contains($0.string("kind") ?? "") }
            return (rs.count, rs.reduce(0) { $0 + (($1.string("kind") == "summary") ? ($1.int("count") ?? 0) : 1) })
        }
        // Unit a first: it gets the one workload label.
        for _ in 0..<storm { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: ports[0]) }
        #expect(waitUntil(timeout: 15) { counted(ports[0]).events == storm }, "records: \(trace.stdout)")
        _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: ports[1])
        #expect(waitUntil(timeout: 15) { counted(ports[1]).events == 1 }, "records: \(trace.stdout)")
        let folded = trace.records.filter { $0.int("port") == ports[0] && $0.string("kind") == "summary" }
            .reduce(0) { $0 + ($1.int("count") ?? 0) }
        #expect(folded > 0, "a storm of \(storm) in about a second folds with --fold 1: \(trace.stdout)")
        let unit = trace.records.first { $0.int("port") == ports[0] }?.object("process")?["unit"] as? String
        #expect(unit == units[0], "records: \(trace.stdout)")

        let body = try Self.http(port: metricsPort).body
        let a = "unit:\(units[0])"
        #expect(Self.sum(body, "synsight_refusals_total", ["workload": a, "port": String(ports[0])]) == Double(storm), "\(body)")
        #expect(Self.sum(body, "synsight_summarized_events_total", ["workload": a, "kind": "refusal"]) == Double(folded), "\(body)")
        #expect(Self.sum(body, "synsight_refusals_total", ["workload": "other", "port": String(ports[1])]) == 1, "\(body)")
        #expect(!body.contains(units[1]), "the second unit is past the bound: \(body)")
        let lint = try Self.promtool(body)
        #expect(lint.status == 0, "promtool: \(lint.output)")
        trace.stop()
    }

    @Test("listener gauges: a stalled listener's accept queue and backlog, in its namespace; gone when it exits")
    func listenerGauges() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let server = try Peer(runIn: ns, ["stall", "127.0.0.1", String(port), "--backlog", "3"])
        var holders: [Peer] = []
        for _ in 0..<2 {
            holders.append(try Peer(runIn: ns, ["hold", "127.0.0.1", String(port), "--seconds", "30"], readyPrefix: "connected"))
        }
        let metricsPort = Self.freePort()
        let trace = try TraceSession(["--port", String(port), "--metrics-address", "127.0.0.1:\(metricsPort)"])
        let series = ["netns": String(ns.inode), "port": String(port), "address": "127.0.0.1"]
        let body = try Self.http(port: metricsPort).body
        #expect(Self.sum(body, "synsight_listener_accept_queue", series) == 2, "\(body)")
        #expect(Self.sum(body, "synsight_listener_max_backlog", series) == 3)
        // --port limits the gauges to that port.
        #expect(Self.sum(body, "synsight_listeners", [:]) == 1)

        let third = try Peer(runIn: ns, ["hold", "127.0.0.1", String(port), "--seconds", "30"], readyPrefix: "connected")
        usleep(600_000)  // past the sample reuse window
        #expect(Self.sum(try Self.http(port: metricsPort).body, "synsight_listener_accept_queue", series) == 3)

        server.killHard()
        usleep(600_000)
        let after = try Self.http(port: metricsPort).body
        #expect(Self.sum(after, "synsight_listener_accept_queue", series) == nil, "the closed listener is still exported")
        #expect(Self.sum(after, "synsight_listeners", [:]) == 0)
        _ = (holders, third)
        trace.stop()
    }

    @Test("listener gauges name the workload holding the socket: a listener in a systemd-shaped unit cgroup, and none for one outside")
    func listenerGaugeWorkload() throws {
        let root = try #require(CgroupTree.v2Root, "no cgroup v2 hierarchy mounted")
        let tag = randomTag()
        let unit = "synsight-e2e-gauge-\(tag).service"
        let cgroup = try CgroupTree(root: root, components: ["system.slice", unit])
        defer { cgroup.remove() }
        let ns = try NetNS()
        defer { ns.remove() }
        let ports = [randomPort(), randomPort() + 10_000]
        let inUnit = try Peer(listenIn: ns, addr: "127.0.0.1", port: ports[0], cgroup: cgroup)
        let outside = try Peer(listenIn: ns, addr: "127.0.0.1", port: ports[1])
        let metricsPort = Self.freePort()
        let trace = try TraceSession(ports.flatMap { ["--port", String($0)] } + ["--metrics-address", String(metricsPort)])
        let body = try Self.http(port: metricsPort).body
        let series = { (port: Int) in ["netns": String(ns.inode), "port": String(port), "address": "127.0.0.1"] }
        #expect(Self.sum(body, "synsight_listener_max_backlog", series(ports[0]).merging(["workload": "unit:\(unit)"]) { $1 })
                != nil, "\(body)")
        #expect(Self.sum(body, "synsight_listener_accept_queue", series(ports[0]).merging(["workload": "unit:\(unit)"]) { $1 })
                == 0, "\(body)")
        #expect(Self.sum(body, "synsight_listener_accept_queue", series(ports[1]).merging(["workload": ""]) { $1 }) == 0,
                "\(body)")
        let lint = try Self.promtool(body)
        #expect(lint.status == 0, "promtool: \(lint.output)")
        inUnit.killHard()
        outside.killHard()
        trace.stop()
    }

    @Test("HTTP: 404 and 405; half-open and slow clients neither stall a scrape nor the tracing loop, and are cut off")
    func slowClients() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let metricsPort = Self.freePort()
        let trace = try TraceSession(["--port", String(port), "--metrics-address", String(metricsPort)])
        #expect(try Self.http(port: metricsPort, "GET", "/").status == 404)
        #expect(try Self.http(port: metricsPort, "POST", "/metrics").status == 405)
        #expect(try Self.http(port: metricsPort, "HEAD", "/metrics").status == 200)

        // Sixteen slots' worth of clients that never finish a request.
        var stalled: [RawClient] = []
        for i in 0..<20 {
            let c = try RawClient(host: "127.0.0.1", port: metricsPort, timeout: 15)
            if i % 2 == 0 { c.send("GET /metrics HTTP/1.1\r\nHost: slow") }
            stalled.append(c)
        }
        let t0 = Date()
        // The tracing loop is not held up: a refusal is reported at once.
        _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port)
        let seen = trace.waitForRecord(timeout: 5) { $0.int("port") == port && $0.string("kind") == "refusal" }
        #expect(seen != nil)
        #expect(Date().timeIntervalSince(t0) < 3)
        // They are cut off at the 5 s request deadline, then a scrape is served.
        let r = try Self.http(port: metricsPort, timeout: 15)
        #expect(r.status == 200)
        #expect(Self.sum(r.body, "synsight_refusals_total", ["port": String(port)]) == 1)
        let waited = Date().timeIntervalSince(t0)
        #expect(waited < 12, "a scrape waited \(waited) s behind stalled clients")
        for c in stalled {
            let (bytes, closed) = c.readAll()
            #expect(closed && bytes.isEmpty)
        }
        trace.stop()
    }

    @Test("[::1]:PORT serves over IPv6 loopback")
    func ipv6Loopback() throws {
        let metricsPort = Self.freePort()
        let trace = try TraceSession(["--port", "9", "--metrics-address", "[::1]:\(metricsPort)"])
        #expect(trace.stderr.contains("http://[::1]:\(metricsPort)/metrics"))
        let r = try Self.http("::1", port: metricsPort)
        #expect(r.status == 200 && r.body.contains("synsight_build_info"))
        #expect(throws: (any Error).self) { try RawClient(host: "127.0.0.1", port: metricsPort, timeout: 2) }
        trace.stop()
    }

    @Test("0.0.0.0:PORT is reachable from another host; a bare PORT only on loopback")
    func wildcardAndLoopbackOnly() throws {
        let server = try NetNS(), client = try NetNS()
        defer { server.remove(); client.remove() }
        try server.link(to: client)
        let wildcard = try TraceInNamespace(server, ["--port", "9", "--metrics-address", "0.0.0.0:9464"])
        #expect(try Self.get(from: client, "http://198.18.0.1:9464/metrics") == "200", "\(wildcard.stderr)")
        let bare = try TraceInNamespace(server, ["--port", "9", "--metrics-address", "9465"])
        #expect(try Self.get(from: server, "http://127.0.0.1:9465/metrics") == "200", "\(bare.stderr)")
        #expect(try Self.get(from: client, "http://198.18.0.1:9465/metrics").hasPrefix("error"))
        // A second process on the same port: the error names the port and a free one.
        let clash = try sh(["ip", "netns", "exec", server.name, TraceSession.binary, "trace", "--duration", "5",
                            "--metrics-address", "9465"], allowFailure: true)
        #expect(clash.contains("port 9465 is already in use"), "\(clash)")
        #expect(clash.contains("--metrics-address 127.0.0.1:9466 (free now)"), "\(clash)")
    }

    @Test("permission: binding a privileged port without CAP_NET_BIND_SERVICE is a one-line error that says what to do")
    func privilegedPort() throws {
        let ns = try NetNS()  // ip_unprivileged_port_start is 1024 in a new namespace
        defer { ns.remove() }
        let out = try sh(["ip", "netns", "exec", ns.name, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "--inh-caps=-all", TraceSession.binary, "trace", "--duration", "1", "--metrics-address", "80"],
                         allowFailure: true)
        #expect(out.contains("synsight: error: cannot serve metrics on 127.0.0.1:80: permission denied"), "\(out)")
        #expect(out.contains("CAP_NET_BIND_SERVICE"), "\(out)")
        #expect(out.split(separator: "\n").count == 1, "\(out)")
    }

    @Test("record: records written and events lost to a full disk are counted apart")
    func recordCounters() throws {
        let ns = try NetNS()
        defer { ns.remove() }
        let port = randomPort()
        let metricsPort = Self.freePort()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errFile = URL(fileURLWithPath: dir + ".stderr")
        FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errFile) }
        // A 64 KiB tmpfs that exists only in the recorder's own mount namespace.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        p.arguments = ["-m", "--propagation", "private", "/bin/sh", "-c",
                       "mount -t tmpfs -o size=64k tmpfs '\(dir)' && exec '\(TraceSession.binary)' record --dir '\(dir)' "
                       + "--aggregate 0 --flush-interval-ms 50 --port \(port) --metrics-address \(metricsPort)"]
        p.standardError = try FileHandle(forWritingTo: errFile)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        var stderr: String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }
        #expect(waitUntil(timeout: 20) { stderr.contains("synsight: tracing") || !p.isRunning }, "\(stderr)")

        for _ in 0..<4 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        #expect(waitUntil(timeout: 10) {
            Self.sum((try? Self.http(port: metricsPort).body) ?? "", "synsight_records_written_total", [:]) == 4
        })
        let inside = "/proc/\(p.processIdentifier)/root\(dir)"
        let filler = inside + "/filler"
        FileManager.default.createFile(atPath: filler, contents: nil)
        let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
        let chunk = Data(repeating: 0x41, count: 4096)
        while (try? fh.write(contentsOf: chunk)) != nil {}
        try? fh.close()
        for _ in 0..<10 { _ = try Peer.connect(from: ns, addr: "127.0.0.1", port: port) }
        #expect(waitUntil(timeout: 10) { stderr.contains("recording paused") }, "\(stderr)")
        // Every event is either written or counted lost once its batch was tried.
        var body = ""
        var written = -1.0, lost = -1.0
        #expect(waitUntil(timeout: 10) {
            body = (try? Self.http(port: metricsPort).body) ?? ""
            written = Self.sum(body, "synsight_records_written_total", [:]) ?? -1
            lost = Self.sum(body, "synsight_recorder_lost_events_total", [:]) ?? -1
            return Self.sum(body, "synsight_refusals_total", ["port": String(port)]) == 14 && written + lost == 14
        }, "written \(written), lost \(lost): \(body)")
        // The filler leaves less than a page free: a few lines may still fit.
        #expect(lost > 0, "nothing counted lost after the disk filled")
        #expect(Self.sum(body, "synsight_ring_buffer_lost_events_total", [:]) == 0)
        #expect(Self.sum(body, "synsight_build_info", ["command": "record"]) == 1)
        let lint = try Self.promtool(body)
        #expect(lint.status == 0 && lint.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(lint.output)")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
    }
}

/// A blocking TCP client on a raw socket, able to misbehave (send half a
/// request, never read).
final class RawClient {
    let fd: Int32

    init(host: String, port: Int, timeout: Int) throws {
        let v6 = host.contains(":")
        fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc: Int32
        if v6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host, &sa.sin6_addr)
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &sa.sin_addr)
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw CommandFailure(description: "connect to \(host):\(port): \(String(cString: strerror(e)))")
        }
    }

    deinit { close(fd) }

    func send(_ s: String) {
        let b = Array(s.utf8)
        _ = b.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until the peer closes (or the timeout).
    func readAll() -> (bytes: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { out += buf[0..<n]; continue }
            return (out, n == 0 || (n < 0 && errno == ECONNRESET))
        }
    }
}
