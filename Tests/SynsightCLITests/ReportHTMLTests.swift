import Foundation
import Testing

/// Tests/Fixtures/report: a recording (rotated .gz + active file, made by
/// make-recording.py) and the expected report in every format.
enum ReportFixture {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/report").standardizedFileURL
    static var recording: String { root.appendingPathComponent("recording").path }
    static func golden(_ name: String) -> URL { root.appendingPathComponent("golden/" + name) }

    /// The test tools' venv made by scripts/install-deps.sh. Missing is a
    /// failure, not a skip: these checks must run.
    static func venvPython() throws -> String {
        // Not standardized: that resolves symlinks, and the venv's python is one.
        let py = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/../../.venv-tests/bin/python"
        try #require(FileManager.default.isExecutableFile(atPath: py),
                     "\(py) is missing: run scripts/install-deps.sh (it creates the venv with html5lib and kubernetes-validate)")
        return py
    }
}

/// Runs `executable args`, returning status and stdout (stderr appended on
/// failure). Through /usr/bin/env: Process resolves symlinks, and a venv's
/// python must be started by its own path to find the venv.
func runTool(_ executable: String, _ args: [String]) throws -> (status: Int32, out: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [executable] + args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    var text = String(decoding: o, as: UTF8.self)
    if p.terminationStatus != 0 { text += String(decoding: e, as: UTF8.self) }
    return (p.terminationStatus, text)
}

/// Parses the HTML with html5lib in strict mode (any HTML5 parse error
/// fails), lists what would load from elsewhere, reads the chart's bars, and
/// counts the fixture's events per bar and reason on its own (Python's gzip
/// and json, not synsight's reader) for comparison.
let htmlChecker = #"""
import gzip, json, os, sys, html5lib
from html5lib.html5parser import ParseError

path, recording = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
result = {"parse_error": None, "external": [], "forbidden": [], "bars": [], "svg": {}, "text": "", "svg_text": ""}
try:
    tree = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(raw)
except ParseError as e:
    result["parse_error"] = str(e)
    print(json.dumps(result)); sys.exit(0)

SVG = "{http://www.w3.org/2000/svg}"
loaders = {"script", "link", "iframe", "img", "object", "embed", "audio", "video", "source", "track", "base",
           "form", "frame", "frameset", "image", SVG + "image", SVG + "use", SVG + "script", SVG + "foreignObject",
           SVG + "feImage", SVG + "a"}
for el in tree.iter():
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in loaders:
        result["forbidden"].append(tag)
    for k, v in el.attrib.items():
        name = k.split("}")[-1].lower()
        if name in ("src", "srcset", "action", "formaction", "poster", "data", "ping", "background"):
            result["external"].append(f"{tag} {k}={v}")
        if name == "href" and not v.startswith("#"):
            result["external"].append(f"{tag} {k}={v}")
        if name == "style" and ("url(" in v or "@import" in v):
            result["external"].append(f"{tag} style={v}")
        if name.startswith("on"):
            result["external"].append(f"{tag} handler {k}")
    if tag == "style" and el.text and ("url(" in el.text or "@import" in el.text):
        result["external"].append("style element loads a resource")
    if tag == "meta" and el.attrib.get("http-equiv", "").lower() == "refresh":
        result["external"].append("meta refresh")

svgs = [el for el in tree.iter() if el.tag == SVG + "svg"]
if svgs:
    svg = svgs[0]
    result["svg"] = {k: v for k, v in svg.attrib.items() if k.startswith("data-")}
    result["svg_text"] = " ".join(t.text or "" for t in svg.iter(SVG + "text"))
    for r in svg.iter(SVG + "rect"):
        if "bar" in r.attrib.get("class", "").split():
            result["bars"].append({"start": int(r.attrib["data-start"]), "reason": r.attrib["data-reason"],
                                   "count": int(r.attrib["data-count"]), "height": float(r.attrib["height"])})
body = tree.find("body")
result["text"] = "".join(body.itertext())

# Independent expectation from the fixture recording.
width = int(result["svg"].get("data-bucket-seconds", "0") or 0)
expected, total = {}, 0
if width:
    import calendar
    for name in sorted(os.listdir(recording)):
        p = os.path.join(recording, name)
        if name.endswith(".jsonl.gz"):
            data = gzip.open(p, "rt").read()
        elif name.endswith(".jsonl"):
            data = open(p).read()
        else:
            continue
        for line in data.splitlines():
            o = json.loads(line)
            if o["kind"] == "lost":
                continue
            n = o.get("count", 1) if o["kind"] == "summary" else 1
            t = o["ts"]
            sec = calendar.timegm((int(t[0:4]), int(t[5:7]), int(t[8:10]), int(t[11:13]), int(t[14:16]), int(t[17:19])))
            key = f"{sec // width * width} {o.get('reason') or o['kind']}"
            expected[key] = expected.get(key, 0) + n
            total += n
got = {}
for b in result["bars"]:
    key = f"{b['start']} {b['reason']}"
    got[key] = got.get(key, 0) + b["count"]
result["expected_total"] = total
result["mismatches"] = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
print(json.dumps(result))
"""#

@Suite("synsight report --format html")
struct ReportHTMLCLITests {
    /// `recording`: the recording the bars are compared with (default: the fixture's).
    func check(_ html: String, recording: String = ReportFixture.recording) throws -> [String: Any] {
        let py = try ReportFixture.venvPython()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-html-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("report.html")
        try Data(html.utf8).write(to: file)
        let script = dir.appendingPathComponent("check.py")
        try Data(htmlChecker.utf8).write(to: script)
        let r = try runTool(py, [script.path, file.path, recording])
        try #require(r.status == 0, "checker failed: \(r.out)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
    }

    @Test func strictHTML5SelfContainedAndTheBarsMatchTheRecording() throws {
        let r = try synsight("report", "--format", "html", ReportFixture.recording)
        #expect(r.status == 0, "\(r.stderr)")
        let c = try check(r.stdout)
        #expect(c["parse_error"] is NSNull, "html5lib (strict): \(c["parse_error"] ?? "")")
        #expect((c["external"] as? [String]) == [], "loads from elsewhere: \(c["external"] ?? "")")
        #expect((c["forbidden"] as? [String]) == [], "elements that load or run things: \(c["forbidden"] ?? "")")
        #expect(r.stdout.contains("Content-Security-Policy\" content=\"default-src 'none'"))
        // The bars, read back from the SVG, count exactly what the recording holds.
        #expect((c["mismatches"] as? [String]) == [], "bars differ from the recording: \(c["mismatches"] ?? "")")
        let bars = c["bars"] as? [[String: Any]] ?? []
        let total = bars.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
        #expect(total == 2089)
        #expect(c["expected_total"] as? Int == 2089)
        // Bounded bars, and the width is stated on the chart.
        let svg = c["svg"] as? [String: String] ?? [:]
        #expect(svg["data-bucket-seconds"] == "2")
        #expect(Int(svg["data-bars"] ?? "") ?? 999 <= 120)
        #expect((c["svg_text"] as? String ?? "").contains("each bar = 2 seconds"), "\(c["svg_text"] ?? "")")
        #expect(bars.allSatisfy { ($0["height"] as? Double ?? 0) > 0 })
        // Same per-port content as the text report.
        let text = c["text"] as? String ?? ""
        for s in ["Port 8080: 1212 events", "no_listener / listener_exited", "nginx[1234] ×1212",
                  "Port 9090: 870 events", "accept_queue129" /* evidence table: key cell, value cell */, "Port 5432: 6 events",
                  "tcp dport 5432 ip saddr != 10.0.0.0/29 drop", "semanage port -a -t",
                  "7 events LOST in the ring buffer", "Restart it, and make the supervisor restart it"] {
            #expect(text.contains(s), "HTML text lacks \(s)")
        }
    }

    @Test func untrustedStringsAreEscaped() throws {
        let r = try synsight("report", "--format", "html", ReportFixture.recording)
        let c = try check(r.stdout)
        #expect(c["parse_error"] is NSNull)
        // The comm `<script>alert("x")</script> & 'q' ESC[31m RLO evil` is text, not markup.
        let text = c["text"] as? String ?? ""
        #expect(text.contains(#"<script>alert("x")</script> & 'q' \x1b[31m\u{202e}evil[666]"#), "\(text)")
        #expect(text.contains("/tmp/a&b<c>"))
        #expect(text.contains("a&b <i>not html</i>"))
        #expect(!r.stdout.contains("<script"))
        #expect(!r.stdout.contains("<i>"))
        #expect(r.stdout.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"))
        #expect(!r.stdout.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
        #expect(!r.stdout.unicodeScalars.contains { (0x202A...0x202E).contains($0.value) || (0x2066...0x2069).contains($0.value) })
    }

    @Test func emptyInputStillMakesAValidPage() throws {
        let dir = try ReportFixtureDir(files: ["a.jsonl": #"{"v":1,"ts":"2026-11-22T03:12:00Z","kind":"lost","count":2}"# + "\n"])
        defer { dir.remove() }
        let r = try synsight("report", "--format", "html", dir.url.path)
        #expect(r.status == 0)
        let c = try check(r.stdout)
        #expect(c["parse_error"] is NSNull, "\(c["parse_error"] ?? "")")
        #expect((c["text"] as? String ?? "").contains("No events in the selected range."))
        #expect((c["bars"] as? [Any])?.isEmpty == true)
    }

    /// The whole output of every format on the fixture recording, byte for
    /// byte. After an intended change: SYNSIGHT_UPDATE_GOLDEN=1 swift test
    /// --filter goldens, then review the diff.
    @Test(arguments: [("text", "report.txt"), ("markdown", "report.md"), ("json", "report.json"), ("html", "report.html")])
    func goldens(_ format: String, _ file: String) throws {
        let r = try synsight("report", "--format", format, ReportFixture.recording)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
        let url = ReportFixture.golden(file)
        if ProcessInfo.processInfo.environment["SYNSIGHT_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(r.stdout.utf8).write(to: url)
            return
        }
        let golden = try String(contentsOf: url, encoding: .utf8)
        if r.stdout != golden {
            let a = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            let b = golden.split(separator: "\n", omittingEmptySubsequences: false)
            let i = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
            Issue.record("\(file) differs at line \(i + 1):\n got: \(i < a.count ? String(a[i]) : "<end>")\nwant: \(i < b.count ? String(b[i]) : "<end>")")
        }
    }
}
