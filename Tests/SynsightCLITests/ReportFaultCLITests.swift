import Foundation
import Testing

// `synsight report` against hostile and careless input (issue 13): the
// built binary, each case a way it used to trap, hang, wrap or stay silent.

/// Runs `command` with bash (`$SYNSIGHT` is the binary), stderr captured.
/// Killed after `timeout` seconds: a hang is a failure, not a stuck suite.
func bashRun(_ command: String, timeout: TimeInterval = 30) throws -> RunResult {
    try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", command],
                   environment: ["SYNSIGHT": try synsightExecutable().path], timeout: timeout, label: ["bash", "-c", command])
}

func summaryLine(count: String, port: Int = 9) -> String {
    #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"summary","reason":"no_listener","port":\#(port),"count":\#(count),"first_ts":"2026-11-22T03:17:30Z","last_ts":"2026-11-22T03:17:31Z"}"#
}

@Suite("synsight report: hostile and careless input")
struct ReportFaultCLITests {
    /// One record in 2300 in a directory of good recordings used to trap the
    /// RFC 3339 parser (exit 132, no output at all).
    @Test(arguments: ["ts", "first_ts", "last_ts"])
    func anOutOfRangeTimestampIsOneBadLine(_ field: String) throws {
        var bad = [String: String]()
        bad["ts"] = "2026-11-22T03:17:31Z"
        bad["first_ts"] = "2026-11-22T03:17:30Z"
        bad["last_ts"] = "2026-11-22T03:17:31Z"
        bad[field] = "2300-01-01T00:00:00Z"
        let line = #"{"v":1,"ts":"\#(bad["ts"]!)","kind":"summary","reason":"no_listener","port":9,"count":5,"first_ts":"\#(bad["first_ts"]!)","last_ts":"\#(bad["last_ts"]!)"}"#
        let dir = try ReportFixtureDir(files: [
            "synsight-20261122T031200.000000000Z.jsonl": rotatedFixture,
            "synsight.jsonl": activeFixture + line + "\n",
        ])
        defer { dir.remove() }
        let r = try synsight("report", dir.url.path)
        #expect(r.status == 2)
        #expect(r.stdout.contains("synsight report: 102 events in 4 records from 2 files"), "\(r.stdout)")
        #expect(r.stderr.contains("synsight.jsonl:2: skipped: field '\(field)' is outside the range synsight can represent"),
                "\(r.stderr)")
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Backtrac"))
    }

    @Test(arguments: [("--since", "9999-12-31T00:00:00Z"), ("--until", "2300-01-01T00:00:00Z"), ("--since", "1600-01-01T00:00:00Z")])
    func anOutOfRangeTimeOptionIsAValidationError(_ option: String, _ value: String) throws {
        let dir = try ReportFixtureDir(files: ["a.jsonl": rotatedFixture])
        defer { dir.remove() }
        let r = try synsight("report", option, value, dir.path("a.jsonl"))
        #expect(r.status == usageError)
        #expect(r.stderr.contains("\(option) must be from 1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z"), "\(r.stderr)")
        #expect(r.stderr.contains(value))
    }

    @Test func theEdgesOfTheRangeAreReportedInEveryFormat() throws {
        let dir = try ReportFixtureDir(files: ["a.jsonl": """
            {"v":1,"ts":"1677-09-21T00:12:43.145224192Z","kind":"refusal","reason":"no_listener","port":9}
            {"v":1,"ts":"2262-04-11T23:47:16.854775807Z","kind":"refusal","reason":"no_listener","port":9}

            """])
        defer { dir.remove() }
        for format in ["text", "markdown", "json", "html"] {
            let r = try synsight("report", "--format", format, dir.path("a.jsonl"))
            #expect(r.status == 0, "\(format): \(r.stderr)")
            #expect(r.stdout.contains("1677-09-21") && r.stdout.contains("2262-04-11"), "\(format)")
        }
    }

    /// A FIFO used to block report forever; a symlink to /dev/zero spun a CPU.
    @Test func fifosDevicesAndSocketsInADirectoryAreSkipped() throws {
        let dir = try ReportFixtureDir(files: ["a.jsonl": rotatedFixture])
        defer { dir.remove() }
        #expect(mkfifo(dir.path("fifo.jsonl"), 0o600) == 0)
        try FileManager.default.createSymbolicLink(atPath: dir.path("zero.jsonl"), withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: dir.path("to-fifo.jsonl.gz"), withDestinationPath: dir.path("fifo.jsonl"))
        try FileManager.default.createSymbolicLink(atPath: dir.path("link.jsonl"), withDestinationPath: dir.path("a.jsonl"))
        let r = try synsight("report", dir.url.path, timeout: 20)
        #expect(r.status == 2)
        // a.jsonl and the symlink to it are both read.
        #expect(r.stdout.contains("from 2 files"), "\(r.stdout)")
        for name in ["fifo.jsonl: skipped: a FIFO", "zero.jsonl: skipped: a character device", "to-fifo.jsonl.gz: skipped: a FIFO"] {
            #expect(r.stderr.contains(name), "\(r.stderr)")
        }
    }

    @Test(arguments: ["fifo", "/dev/zero", "/dev/null"])
    func aNonRegularFileNamedExplicitlyIsAnError(_ what: String) throws {
        let dir = try ReportFixtureDir(files: [:])
        defer { dir.remove() }
        var path = what
        if what == "fifo" {
            path = dir.path("fifo.jsonl")
            #expect(mkfifo(path, 0o600) == 0)
        }
        let r = try synsight("report", path, timeout: 20)
        #expect(r.status == 1)
        #expect(r.stderrLines.count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("\(path): cannot read:") && r.stderr.contains("not a regular file"), "\(r.stderr)")
    }

    /// Three summaries of Int64.max events wrapped the text total; two
    /// crashed --format html (chart axis arithmetic).
    @Test(arguments: ["text", "markdown", "json", "html"])
    func hugeCountsSaturateInEveryFormat(_ format: String) throws {
        let line = summaryLine(count: "9223372036854775807")
        let dir = try ReportFixtureDir(files: ["a.jsonl": [line, line, line, summaryLine(count: "18446744073709551615", port: 10)]
            .joined(separator: "\n") + "\n"])
        defer { dir.remove() }
        let r = try synsight("report", "--format", format, dir.path("a.jsonl"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
        #expect(r.stdout.contains("18446744073709551615"))
        if format == "text" {
            #expect(r.stdout.hasPrefix("synsight report: 18446744073709551615 events in 4 records"), "\(r.stdout)")
            // Port 9 alone: 3 x (2^63 - 1) saturates too.
            #expect(r.stdout.contains("PORT 9: 18446744073709551615 events"))
        }
        if format == "html" { #expect(r.stdout.contains(#"data-total="18446744073709551615""#)) }
    }

    /// The issue's exact case: two summaries of Int64.max events trapped in
    /// the HTML chart's axis arithmetic (exit 132, no output).
    @Test func twoInt64MaxSummariesDrawAChart() throws {
        let line = summaryLine(count: "9223372036854775807")
        let dir = try ReportFixtureDir(files: ["a.jsonl": line + "\n" + line + "\n"])
        defer { dir.remove() }
        let r = try synsight("report", "--format", "html", dir.path("a.jsonl"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains(#"data-total="18446744073709551614""#))
        #expect(r.stdout.contains(#"data-count="18446744073709551614""#))
    }

    /// 1e30 and 1.5 used to be read as 1 while -5 was refused.
    @Test(arguments: ["1e30", "1.5", "-5", #""7""#, "true", "null", "18446744073709551616", "1E2"])
    func aCountThatIsNotANonNegativeIntegerMakesTheLineBad(_ count: String) throws {
        let dir = try ReportFixtureDir(files: ["a.jsonl": summaryLine(count: "3") + "\n" + summaryLine(count: count) + "\n"])
        defer { dir.remove() }
        let r = try synsight("report", dir.path("a.jsonl"))
        #expect(r.status == 2)
        #expect(r.stderr.contains("a.jsonl:2: skipped: field 'count' is not a non-negative integer"), "\(count): \(r.stderr)")
        #expect(r.stdout.hasPrefix("synsight report: 3 events in 1 record"), "\(count): \(r.stdout)")
    }

    @Test func writeErrorsEndReportWithOneLine() throws {
        let dir = try ReportFixtureDir(files: ["a.jsonl": rotatedFixture])
        defer { dir.remove() }
        let r = try bashRun(#""$SYNSIGHT" report "\#(dir.path("a.jsonl"))" > /dev/full"#)
        #expect(r.status == 1)
        #expect(r.stderrLines.count == 1, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("synsight: error: cannot write the report to standard output: No space left on device"), "\(r.stderr)")
    }

    /// A report larger than a pipe's buffer, read by `head -1`: the closed
    /// pipe is a quiet success (it used to die of SIGPIPE, status 141).
    @Test func aClosedPipeIsAQuietSuccess() throws {
        let lines = (1...3000).map { summaryLine(count: "1", port: $0) }.joined(separator: "\n") + "\n"
        let dir = try ReportFixtureDir(files: ["a.jsonl": lines])
        defer { dir.remove() }
        let r = try bashRun(#""$SYNSIGHT" report "\#(dir.path("a.jsonl"))" | head -1; exit ${PIPESTATUS[0]}"#)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("synsight report: 3000 events"))
    }

    /// Every input that once crashed a fuzz target (and the seeds) stays in
    /// Tests/Fixtures/fuzz/<target>; SynsightFuzz replays them in the normal build.
    @Test(arguments: ["jsonl", "gzip", "http"])
    func theFuzzRegressionCorpusReplays(_ target: String) throws {
        let fuzz = try synsightExecutable().deletingLastPathComponent().appendingPathComponent("SynsightFuzz")
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/fuzz/\(target)").standardizedFileURL
        let r = try bashRun("'\(fuzz.path)' \(target) '\(corpus.path)'", timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("replayed"), "\(r.stdout)")
    }
}
