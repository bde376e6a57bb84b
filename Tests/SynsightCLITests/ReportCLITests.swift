import Foundation
import Testing

/// A temp directory with recorder-style files, removed afterwards.
struct ReportFixtureDir {
    let url: URL

    init(files: [String: String]) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, text) in files {
            try Data(text.utf8).write(to: url.appendingPathComponent(name))
        }
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Runs a shell command line (gzip and friends); returns its exit status.
@discardableResult
func shell(_ command: String) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try? p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

let rotatedFixture = """
    {"v":1,"ts":"2026-11-22T03:10:11.000000000Z","kind":"refusal","reason":"no_listener","cause":"listener_exited","port":8080,"family":"ipv4","local":{"addr":"10.0.0.1","port":8080},"remote":{"addr":"10.0.0.2","port":40000},"process":{"pid":1234,"comm":"nginx","exe":"/usr/sbin/nginx"},"client":{"pid":55,"comm":"curl"},"evidence":{"exited_at":"2026-11-22T03:10:00.000000000Z","signal":9},"hint":"the listener was killed by signal 9; restart it"}
    {"v":1,"ts":"2026-11-22T03:11:12.000000000Z","kind":"summary","reason":"no_listener","cause":"listener_exited","port":8080,"process":{"pid":1234,"comm":"nginx"},"count":100,"first_ts":"2026-11-22T03:10:12.000000000Z","last_ts":"2026-11-22T03:11:12.000000000Z","evidence":{"signal":9},"hint":"the listener was killed by signal 9; restart it"}
    {"v":1,"ts":"2026-11-22T03:12:00.000000000Z","kind":"lost","count":7,"evidence":{}}

    """

let activeFixture = """
    {"v":1,"ts":"2026-11-22T03:12:30.000000000Z","kind":"overflow","reason":"accept_queue_full","port":9090,"process":{"pid":77,"comm":"java"},"evidence":{"backlog":5,"max_backlog":4,"somaxconn":4096},"hint":"raise the backlog","added_field":true}

    """

@Suite("synsight report CLI")
struct ReportCLITests {
    @Test func helpDescribesOptionsAndExitStatus() throws {
        let r = try synsight("report", "--help")
        #expect(r.status == 0)
        for option in ["--since <time>", "--until <time>", "--port <port>", "--format <format>", "<file-or-dir>"] {
            #expect(r.stdout.contains(option), "report --help does not mention \(option)")
        }
        #expect(r.stdout.contains("Exit status: 0"))
        #expect(r.stdout.contains("no root"))
    }

    @Test func topLevelHelpListsReport() throws {
        let r = try synsight("--help")
        #expect(r.stdout.range(of: #"(?m)^\s+report\s"#, options: .regularExpression) != nil)
    }

    @Test func reportsADirectory() throws {
        let dir = try ReportFixtureDir(files: ["synsight-20261122T031200Z.jsonl": rotatedFixture,
                                               "synsight.jsonl": activeFixture,
                                               "notes.txt": "not a record\n"])
        defer { dir.remove() }
        let r = try synsight("report", dir.url.path)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.isEmpty)
        #expect(r.stdout.hasPrefix("synsight report: 102 events in 4 records from 2 files"))
        #expect(r.stdout.contains("WARNING: 7 events LOST"))
        #expect(r.stdout.contains("PORT 8080: 101 events"))
        #expect(r.stdout.contains("  no_listener/listener_exited: 101 events"))
        #expect(r.stdout.contains("    processes: nginx[1234] ×101"))
        #expect(r.stdout.contains("PORT 9090: 1 event"))
        #expect(r.stdout.contains("    evidence:  backlog=5 max_backlog=4 somaxconn=4096"))
        #expect(r.stdout.contains("TOTALS: 4 records read from 2 files, 102 events, 7 lost"))
    }

    @Test func portAndTimeFiltersAndJSON() throws {
        let dir = try ReportFixtureDir(files: ["a.jsonl": rotatedFixture, "b.jsonl": activeFixture])
        defer { dir.remove() }
        let r = try synsight("report", "--format", "json", "--port", "9090", "--since", "2026-11-22T03:12:00Z",
                             dir.path("a.jsonl"), dir.path("b.jsonl"))
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let totals = obj?["totals"] as? [String: Any]
        #expect(totals?["events"] as? Int == 1)
        #expect(totals?["lost"] as? Int == 7)
        #expect(totals?["files"] as? Int == 2)
        let ports = obj?["ports"] as? [[String: Any]]
        #expect(ports?.count == 1)
        #expect(ports?.first?["port"] as? Int == 9090)
    }

    @Test("--since and --until as a duration before now: 1h keeps the record of 30 minutes ago, not the one of 3 hours ago")
    func relativeTimes() throws {
        let stamp = ISO8601DateFormatter()
        func line(_ ago: TimeInterval, port: Int) -> String {
            #"{"v":1,"ts":"\#(stamp.string(from: Date().addingTimeInterval(-ago)))","kind":"refusal","reason":"no_listener","port":\#(port)}"#
        }
        let dir = try ReportFixtureDir(files: ["a.jsonl": line(3 * 3600, port: 7001) + "\n" + line(1800, port: 7002) + "\n"])
        defer { dir.remove() }
        let recent = try synsight("report", "--format", "json", "--since", "1h", dir.path("a.jsonl"))
        #expect(recent.status == 0, "stderr: \(recent.stderr)")
        let ports = ((try JSONSerialization.jsonObject(with: Data(recent.stdout.utf8)) as? [String: Any])?["ports"] as? [[String: Any]])
        #expect(ports?.map { $0["port"] as? Int } == [7002], "\(recent.stdout)")
        let older = try synsight("report", "--format", "json", "--until", "60m", dir.path("a.jsonl"))
        let old = ((try JSONSerialization.jsonObject(with: Data(older.stdout.utf8)) as? [String: Any])?["ports"] as? [[String: Any]])
        #expect(old?.map { $0["port"] as? Int } == [7001], "\(older.stdout)")
    }

    @Test func markdownFormat() throws {
        let dir = try ReportFixtureDir(files: ["a.jsonl": rotatedFixture])
        defer { dir.remove() }
        let r = try synsight("report", "--format", "markdown", dir.url.path)
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("# synsight report\n"))
        #expect(r.stdout.contains("## Port 8080: 101 events"))
    }

    @Test func badLinesExitTwoWithFileAndLine() throws {
        let bad = rotatedFixture
            + "garbage\n"
            + #"{"v":2,"ts":"2026-11-22T03:13:00Z","kind":"refusal"}"# + "\n"
            + #"{"v":1,"ts":"2026-11-22T03:13:00Z","kind":"refusal","reason":"no_lis"#
        let dir = try ReportFixtureDir(files: ["synsight.jsonl": bad, "empty.jsonl": "",
                                               "old.jsonl.gz": "\u{1f}\u{8b}"])
        defer { dir.remove() }
        let r = try synsight("report", dir.url.path)
        #expect(r.status == 2, "stderr: \(r.stderr)")
        let file = dir.path("synsight.jsonl")
        #expect(r.stderr.contains("\(file):4: skipped: invalid JSON"))
        #expect(r.stderr.contains("\(file):5: skipped: schema version 2"))
        #expect(r.stderr.contains("\(file):6: skipped: truncated line"))
        #expect(r.stderr.contains("empty.jsonl: empty file"))
        #expect(r.stderr.contains("old.jsonl.gz: skipped the rest: corrupt gzip data"))  // not gzip: the string is UTF-8
        #expect(r.stdout.contains("PORT 8080: 101 events"))
        #expect(r.stdout.contains("3 lines skipped"))
    }

    @Test func readsGzippedRotatedFiles() throws {
        let dir = try ReportFixtureDir(files: ["synsight-20261122T031200Z.jsonl": rotatedFixture,
                                               "synsight.jsonl": activeFixture])
        defer { dir.remove() }
        let gz = Process()
        gz.executableURL = URL(fileURLWithPath: "/bin/sh")
        gz.arguments = ["-c", "gzip -q \"$0\"", dir.path("synsight-20261122T031200Z.jsonl")]
        try gz.run()
        gz.waitUntilExit()
        try #require(gz.terminationStatus == 0, "gzip is needed for this test")
        let r = try synsight("report", dir.url.path)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("PORT 8080: 101 events"))
        #expect(r.stdout.contains("TOTALS: 4 records read from 2 files, 102 events, 7 lost"))
    }

    /// A corrupt .gz in the middle of a directory: named with the damage,
    /// exit status 2, and every other file (and the lines before the damage)
    /// still reported.
    @Test func corruptAndTruncatedGzipAreNamedAndTheRestIsRead() throws {
        let dir = try ReportFixtureDir(files: ["synsight-20261122T031100Z.jsonl": rotatedFixture,
                                               "synsight-20261122T031200Z.jsonl": rotatedFixture,
                                               "synsight.jsonl": activeFixture])
        defer { dir.remove() }
        let a = dir.path("synsight-20261122T031100Z.jsonl"), b = dir.path("synsight-20261122T031200Z.jsonl")
        try #require(shell("gzip -q '\(a)' '\(b)'") == 0, "gzip is needed for this test")
        // a: cut short after its first line's worth of compressed data; b: a flipped byte in the CRC.
        var bytesA = try Data(contentsOf: URL(fileURLWithPath: a + ".gz"))
        bytesA = bytesA.prefix(bytesA.count - 12)
        try bytesA.write(to: URL(fileURLWithPath: a + ".gz"))
        var bytesB = try Data(contentsOf: URL(fileURLWithPath: b + ".gz"))
        bytesB[bytesB.count - 6] ^= 0xFF
        try bytesB.write(to: URL(fileURLWithPath: b + ".gz"))
        let r = try synsight("report", dir.url.path)
        #expect(r.status == 2, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("\(a).gz: skipped the rest: truncated gzip data"), "\(r.stderr)")
        #expect(r.stderr.contains("\(b).gz: skipped the rest: corrupt gzip data"), "\(r.stderr)")
        #expect(r.stderr.contains("incorrect data check"), "\(r.stderr)")
        // The active file is reported; b's records were all decoded before its bad trailer.
        #expect(r.stdout.contains("PORT 9090: 1 event"))
        #expect(r.stdout.contains("from 3 files"))
    }

    @Test func aFileBothPlainAndCompressedIsReadOnce() throws {
        let dir = try ReportFixtureDir(files: ["synsight-20261122T031200Z.jsonl": rotatedFixture,
                                               "synsight.jsonl": activeFixture])
        defer { dir.remove() }
        try #require(shell("gzip -kq '\(dir.path("synsight-20261122T031200Z.jsonl"))'") == 0)
        let r = try synsight("report", dir.url.path)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("TOTALS: 4 records read from 2 files, 102 events, 7 lost"))
    }

    /// Memory stays flat: reading 40x more compressed data must not need
    /// noticeably more memory (max RSS of the report process, measured by
    /// its parent).
    @Test func gzipReadingMemoryIsFlat() throws {
        let dir = try ReportFixtureDir(files: [:])
        defer { dir.remove() }
        let line = rotatedFixture.split(separator: "\n")[0]
        let gen = """
            import gzip, sys
            line = sys.argv[1].encode() + b"\\n"
            for name, n in (("small", 5000), ("big", 200000)):
                with gzip.open(sys.argv[2] + "/" + name + ".jsonl.gz", "wb", compresslevel=1) as f:
                    for i in range(n // 1000):
                        f.write(line * 1000)
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", gen, String(line), dir.url.path]
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0)
        func maxRSS(_ file: String) throws -> (kb: Int, out: String) {
            let q = Process()
            q.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            q.arguments = ["-c", """
                import resource, subprocess, sys
                r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)
                print(r.stdout.decode().splitlines()[0])
                """, try synsightExecutable().path, "report", file]
            let pipe = Pipe()
            q.standardOutput = pipe
            try q.run()
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            q.waitUntilExit()
            let first = out.split(separator: "\n").first?.split(separator: " ") ?? []
            #expect(first.count == 2 && first[1] == "0", "\(out)")
            return (Int(first.first ?? "") ?? 0, out)
        }
        let small = try maxRSS(dir.path("small.jsonl.gz"))
        let big = try maxRSS(dir.path("big.jsonl.gz"))
        #expect(small.out.contains("synsight report: 5000 events"), "\(small.out)")
        #expect(big.out.contains("synsight report: 200000 events"), "\(big.out)")
        // ~100 MB decompressed vs ~2.5 MB: allow a few MB of noise, not growth.
        #expect(big.kb < small.kb + 8 * 1024, "max RSS \(small.kb) KiB for 5000 lines, \(big.kb) KiB for 200000 lines")
    }

    @Test func unreadableInputExitsOne() throws {
        let dir = try ReportFixtureDir(files: ["a.jsonl": rotatedFixture])
        defer { dir.remove() }
        let r = try synsight("report", dir.path("a.jsonl"), dir.path("missing.jsonl"))
        #expect(r.status == 1)
        #expect(r.stderr.contains("missing.jsonl: cannot read"))
        #expect(r.stdout.contains("PORT 8080: 101 events"))
    }

    @Test(arguments: [
        (["report"], "at least one file"),
        (["report", "--since", "yesterday", "x"], "--since"),
        (["report", "--since", "3600", "x"], "duration before now"),
        (["report", "--since", "0h", "x"], "--since"),
        (["report", "--until", "2026-11-22", "x"], "--until"),
        (["report", "--since", "2026-11-22T04:00:00Z", "--until", "2026-11-22T03:00:00Z", "x"], "--since"),
        (["report", "--port", "0", "x"], "--port"),
        (["report", "--format", "pdf", "x"], "--format"),
    ])
    func usageErrors(_ args: [String], _ mention: String) throws {
        let r = try run(args)
        #expect(r.status == usageError)
        #expect(r.stderr.contains(mention), "stderr: \(r.stderr)")
        #expect(r.stdout.isEmpty)
    }
}
