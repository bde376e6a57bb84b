import Foundation
import Testing

/// A recording of two nodes with workloads: node-a's nginx (unit
/// nginx.service) refuses curl 10 times on 8080; on node-b the container
/// `web`'s httpd refuses a client in pod shop/api-7d9f once on 8080, the
/// pod's java overflows 5 times on 9090 (a client of a pod with hostile names),
/// and a process and client with hostile workload names are refused once on
/// 7070. node-a also lost 3 events.
enum WorkloadFixture {
    static let nodeA = #"{"hostname":"node-a","machine_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","boot_id":"11111111-2222-3333-4444-555555555555"}"#
    static let nodeB = #"{"hostname":"node-b","machine_id":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","boot_id":"66666666-2222-3333-4444-555555555555"}"#
    static let webID = String(repeating: "3f2a", count: 16)
    static let podUID = "0d5c5f43-6b0e-4c3e-9c43-1f1e5d1d2b7a"
    static let hostileUnit = #"<script>alert(1)</script>&x.service"#
    static let hostileContainer = #""><img src=x onerror=alert(2)>"#
    static let hostilePod = "ns\u{1b}[31m\u{202e}evil"

    static var lines: [String] {
        let pod = #"{"namespace":"shop","name":"api-7d9f","uid":"\#(podUID)","container":"api"}"#
        let container = #"{"runtime":"docker","id":"\#(webID)","name":"web"}"#
        let hostile = #"{"pid":9,"comm":"evil","unit":"<script>alert(1)</script>&x.service","container":{"id":"\#(String(repeating: "e", count: 64))","name":"\"><img src=x onerror=alert(2)>"}}"#
        let hostileClient = #"{"pid":10,"comm":"c","unit":"<script>alert(1)</script>&x.service"}"#
        let hostilePodClient = #"{"pid":11,"comm":"k","pod":{"namespace":"ns\u001b[31m\u202eevil","name":"p<b>","uid":"u"}}"#
        return [
            #"{"v":1,"ts":"2026-11-22T03:10:11.000000000Z","kind":"refusal","reason":"no_listener","cause":"listener_exited","port":8080,"process":{"pid":4410,"comm":"nginx","unit":"nginx.service","cgroup":"/system.slice/nginx.service"},"client":{"pid":4702,"comm":"curl"},"node":\#(nodeA),"evidence":{"signal":9},"hint":"restart nginx"}"#,
            #"{"v":1,"ts":"2026-11-22T03:11:12.000000000Z","kind":"summary","reason":"no_listener","cause":"listener_exited","port":8080,"process":{"pid":4410,"comm":"nginx","unit":"nginx.service"},"count":9,"first_ts":"2026-11-22T03:10:12.000000000Z","last_ts":"2026-11-22T03:11:12.000000000Z","node":\#(nodeA)}"#,
            #"{"v":1,"ts":"2026-11-22T03:12:00.000000000Z","kind":"lost","count":3,"node":\#(nodeA)}"#,
            #"{"v":1,"ts":"2026-11-22T03:10:30.000000000Z","kind":"refusal","reason":"no_listener","cause":"listener_exited","port":8080,"process":{"pid":200,"comm":"httpd","container":\#(container)},"client":{"pid":300,"comm":"curl","pod":\#(pod)},"node":\#(nodeB)}"#,
            #"{"v":1,"ts":"2026-11-22T03:10:40.000000000Z","kind":"overflow","reason":"accept_queue_full","port":9090,"process":{"pid":77,"comm":"java","pod":{"namespace":"shop","name":"api-7d9f","uid":"\#(podUID)","container":"app"}},"node":\#(nodeB),"future_field":{"x":1}}"#,
            #"{"v":1,"ts":"2026-11-22T03:11:40.000000000Z","kind":"summary","reason":"accept_queue_full","port":9090,"process":{"pid":77,"comm":"java","pod":{"namespace":"shop","name":"api-7d9f","uid":"\#(podUID)","container":"app"}},"client":\#(hostilePodClient),"count":4,"first_ts":"2026-11-22T03:10:41.000000000Z","last_ts":"2026-11-22T03:11:40.000000000Z","node":\#(nodeB)}"#,
            #"{"v":1,"ts":"2026-11-22T03:11:50.000000000Z","kind":"refusal","reason":"no_listener","cause":"never_listened","port":7070,"process":\#(hostile),"client":\#(hostileClient),"node":\#(nodeB)}"#,
        ]
    }

    static func dir() throws -> ReportFixtureDir {
        try ReportFixtureDir(files: ["synsight.jsonl": lines.joined(separator: "\n") + "\n"])
    }
}

@Suite("synsight report: nodes and workloads")
struct ReportWorkloadCLITests {
    func report(_ args: String...) throws -> RunResult { try report(args) }

    func report(_ args: [String]) throws -> RunResult {
        let d = try WorkloadFixture.dir()
        defer { d.remove() }
        return try run(["report"] + args + [d.url.path])
    }

    func json(_ r: RunResult) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    func events(_ args: String...) throws -> (events: Int, lost: Int) {
        let r = try report(["--format", "json"] + args)
        #expect(r.status == 0, "\(r.stderr)")
        let totals = try #require(try json(r)["totals"] as? [String: Any])
        return (totals["events"] as? Int ?? -1, totals["lost"] as? Int ?? -1)
    }

    @Test func filtersByNodeAndWorkload() throws {
        #expect(try events() == (17, 3))
        #expect(try events("--node", "node-a") == (10, 3))
        #expect(try events("--node", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb") == (7, 0))
        #expect(try events("--node", "node-a", "--node", "node-b") == (17, 3))
        #expect(try events("--node", "node-c") == (0, 0))
        #expect(try events("--workload", "nginx.service") == (10, 3))
        #expect(try events("--workload", "web") == (1, 3))
        #expect(try events("--workload", "3f2a3f2a") == (1, 3))  // container id prefix
        #expect(try events("--workload", "shop/api-7d9f") == (6, 3))  // the pod as process (5) and as client (1)
        #expect(try events("--workload", "nginx.service", "--workload", "web") == (11, 3))
        #expect(try events("--workload", "web", "--node", "node-a") == (0, 3))
        #expect(try events("--workload", "api-7d9f") == (0, 3))  // a pod needs its namespace
    }

    @Test("a Compose service: --workload project/service selects every replica; the text names the service")
    func composeService() throws {
        func line(_ container: String, _ id: Character) -> String {
            let service = #"{"orchestrator":"compose","project":"shop","name":"web","config_files":["/srv/shop/compose.yaml"]}"#
            return #"{"v":1,"ts":"2026-11-22T03:10:30.000000000Z","kind":"refusal","reason":"no_listener","cause":"starting","port":8080,"#
                + #""process":{"pid":200,"comm":"httpd","container":{"runtime":"docker","id":"\#(String(repeating: id, count: 64))","#
                + #""name":"\#(container)","service":\#(service)}},"evidence":{}}"#
        }
        let d = try ReportFixtureDir(files: ["a.jsonl": [line("shop_web_1", "a"), line("shop_web_2", "b")].joined(separator: "\n") + "\n"])
        defer { d.remove() }
        let selected = try run(["report", "--format", "json", "--workload", "shop/web", d.url.path])
        #expect(selected.status == 0, "\(selected.stderr)")
        let totals = try #require(try json(selected)["totals"] as? [String: Any])
        #expect(totals["events"] as? Int == 2, "\(selected.stdout)")
        let text = try run(["report", d.url.path])
        #expect(text.stdout.contains("compose service shop/web container shop_web_1"), "\(text.stdout)")
    }

    @Test func textNamesWorkloadsAndNodes() throws {
        let r = try report()
        #expect(r.status == 0, "\(r.stderr)")
        for s in ["nginx[4410] (unit nginx.service) ×10", "curl[4702] ×1", "httpd[200] (container web) ×1",
                  "curl[300] (pod shop/api-7d9f container api) ×1", "java[77] (pod shop/api-7d9f container app) ×5",
                  "    nodes:     node-a ×10, node-b ×1", "NODES (events per node)",
                  "  node-a (machine id aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa): 10 events in 2 records",
                  "  node-b (machine id bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb): 7 events in 4 records"] {
            #expect(r.stdout.contains(s), "text lacks \(s):\n\(r.stdout)")
        }
        // Hostile names reach the terminal escaped.
        #expect(!r.stdout.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x202e })
        #expect(r.stdout.contains(#"k[11] (pod ns\x1b[31m\u{202e}evil/p<b>) ×4"#), "\(r.stdout)")
        // One node: no per-node lines.
        let one = try report("--node", "node-a")
        #expect(one.stdout.contains("nginx[4410] (unit nginx.service) ×10"))
        #expect(!one.stdout.contains("NODES"))
        #expect(!one.stdout.contains("nodes:"))
        #expect(one.stdout.contains("filter: node node-a"))
    }

    @Test func markdownAndJSONNameWorkloadsAndNodes() throws {
        let md = try report("--format", "markdown")
        #expect(md.status == 0)
        for s in ["nginx[4410] (unit nginx.service) ×10", #"curl[300] (pod shop/api\-7d9f container api) ×1"#,
                  "- Nodes: node\\-a ×10, node\\-b ×1", "## Nodes", "10 events in 2 records"] {
            #expect(md.stdout.contains(s), "markdown lacks \(s):\n\(md.stdout)")
        }
        // Every < of a hostile name is escaped for Markdown.
        #expect(md.stdout.contains(#"evil[9] (container \"\>\<img src=x onerror=alert\(2\)\>) ×1"#), "\(md.stdout)")
        #expect(md.stdout.range(of: #"(?<!\\)<"#, options: .regularExpression) == nil)

        let j = try json(try report("--format", "json"))
        let nodes = try #require(j["nodes"] as? [[String: Any]])
        #expect(nodes.map { ($0["node"] as? [String: Any])?["hostname"] as? String } == ["node-a", "node-b"])
        #expect(nodes.map { $0["events"] as? Int } == [10, 7])
        let ports = try #require(j["ports"] as? [[String: Any]])
        let p8080 = try #require(ports.first { $0["port"] as? Int == 8080 })
        let g = try #require((p8080["reasons"] as? [[String: Any]])?.first)
        let procs = try #require(g["processes"] as? [[String: Any]])
        let nginx = try #require(procs.first { $0["comm"] as? String == "nginx" })
        #expect(nginx["workload"] as? String == "unit nginx.service")
        #expect(nginx["unit"] as? String == "nginx.service")
        #expect(nginx["count"] as? Int == 10)
        let httpd = try #require(procs.first { $0["comm"] as? String == "httpd" })
        #expect((httpd["container"] as? [String: Any])?["id"] as? String == WorkloadFixture.webID)
        let client = try #require((g["clients"] as? [[String: Any]])?.first { $0["pid"] as? Int == 300 })
        #expect((client["pod"] as? [String: Any])?["uid"] as? String == WorkloadFixture.podUID)
        #expect((g["nodes"] as? [[String: Any]])?.map { $0["events"] as? Int } == [10, 1])
        // The hostile names arrive intact (JSON-escaped, parsed back).
        let p7070 = try #require(ports.first { $0["port"] as? Int == 7070 })
        let evil = try #require(((p7070["reasons"] as? [[String: Any]])?.first?["processes"] as? [[String: Any]])?.first)
        #expect(evil["unit"] as? String == WorkloadFixture.hostileUnit)
        #expect((evil["container"] as? [String: Any])?["name"] as? String == WorkloadFixture.hostileContainer)
        let p9090 = try #require(ports.first { $0["port"] as? Int == 9090 })
        let k = try #require(((p9090["reasons"] as? [[String: Any]])?.first?["clients"] as? [[String: Any]])?.first)
        #expect((k["pod"] as? [String: Any])?["namespace"] as? String == WorkloadFixture.hostilePod)
    }

    @Test func htmlIsStrictAndEscapesWorkloads() throws {
        let d = try WorkloadFixture.dir()
        defer { d.remove() }
        let r = try run(["report", "--format", "html", d.url.path])
        #expect(r.status == 0, "\(r.stderr)")
        let c = try ReportHTMLCLITests().check(r.stdout, recording: d.url.path)
        #expect(c["parse_error"] is NSNull, "html5lib (strict): \(c["parse_error"] ?? "")")
        #expect((c["external"] as? [String]) == [], "loads from elsewhere: \(c["external"] ?? "")")
        #expect((c["forbidden"] as? [String]) == [], "elements that load or run things: \(c["forbidden"] ?? "")")
        #expect((c["mismatches"] as? [String]) == [], "bars differ from the recording: \(c["mismatches"] ?? "")")
        let text = c["text"] as? String ?? ""
        for s in ["nginx[4410] (unit nginx.service) ×10", "httpd[200] (container web) ×1",
                  "curl[300] (pod shop/api-7d9f container api) ×1", "node-a ×10, node-b ×1",
                  "node-b (machine id bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb): 7 events in 4 records",
                  // The container wins over the unit; every name is shown as text, controls escaped.
                  #"evil[9] (container "><img src=x onerror=alert(2)>) ×1"#,
                  "c[10] (unit <script>alert(1)</script>&x.service) ×1",
                  #"k[11] (pod ns\x1b[31m\u{202e}evil/p<b>) ×4"#] {
            #expect(text.contains(s), "HTML text lacks \(s)")
        }
        #expect(!r.stdout.contains("<script"))
        #expect(!r.stdout.contains("<img"))
        #expect(!r.stdout.contains("p<b>"))  // the page's own <b> is markup; the pod's name is not
        #expect(r.stdout.contains("/p&lt;b&gt;"))
        #expect(r.stdout.contains("c[10] (unit &lt;script&gt;alert(1)&lt;/script&gt;&amp;x.service) ×1"))
        #expect(r.stdout.contains("(container &quot;&gt;&lt;img src=x onerror=alert(2)&gt;) ×1"))
        #expect(!r.stdout.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
        #expect(!r.stdout.unicodeScalars.contains { (0x202A...0x202E).contains($0.value) })
    }

    @Test(arguments: [
        (["--workload", ""], "--workload must be"),
        (["--workload", "a b"], "--workload must be"),
        (["--workload", "shop/"], "namespace/name"),
        (["--workload", "a/b/c"], "namespace/name"),
        (["--node", ""], "--node must be"),
        (["--node", "x\u{1b}y"], "--node must be"),
    ])
    func badValuesAreUsageErrors(_ args: [String], _ mention: String) throws {
        let r = try run(["report"] + args + ["x"])
        #expect(r.status == usageError)
        #expect(r.stderr.contains(mention), "stderr: \(r.stderr)")
        #expect(!r.stderr.contains("\u{1b}"))
        #expect(r.stdout.isEmpty)
    }

    /// The identity fields are shaped as synsight writes them: each record's
    /// `node`, `process` and `client` validate against the contract's schema
    /// (the records are otherwise minimal, so only these parts are checked).
    @Test func identityFieldsValidateAgainstTheSchema() throws {
        let py = try ReportFixture.venvPython()
        let d = try WorkloadFixture.dir()
        defer { d.remove() }
        let schema = ReportFixture.root.appendingPathComponent("../../../docs/schema/synsight-record-v1.schema.json")
            .standardizedFileURL.path
        let script = #"""
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            def validator(sub):
                return jsonschema.Draft202012Validator(dict(sub, **{"$defs": schema["$defs"]}))
            parts = {"node": validator(schema["properties"]["node"]),
                     "process": validator({"$ref": "#/$defs/process"}), "client": validator({"$ref": "#/$defs/process"})}
            errors, checked = [], 0
            for n, line in enumerate(open(sys.argv[2]), 1):
                rec = json.loads(line)
                for key, v in parts.items():
                    if key in rec:
                        checked += 1
                        errors += [f"line {n} {key}: {e.message}" for e in v.iter_errors(rec[key])]
            print("\n".join(errors) or f"ok {checked}")
            sys.exit(1 if errors else 0)
            """#
        try Data(script.utf8).write(to: d.url.appendingPathComponent("check.py"))
        let r = try runTool(py, [d.path("check.py"), schema, d.path("synsight.jsonl")])
        #expect(r.status == 0, "\(r.out)")
        #expect(r.out.hasPrefix("ok 17"), "\(r.out)")
    }

    @Test func helpDocumentsTheFilters() throws {
        let r = try synsight("report", "--help")
        for s in ["--node <name>", "--workload <workload>", "namespace/name"] {
            #expect(r.stdout.contains(s), "report --help lacks \(s)")
        }
    }
}
