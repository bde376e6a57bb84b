import Glibc
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightReport
import Testing
import SynsightTestSupport

// The report's reading path on hostile input (issue 13): timestamps outside
// the Int64-nanosecond range, counts that are not integers or would wrap,
// files that are not regular files, gzip bombs and giant lines.

func summary(count: String, ts: String = "2026-11-22T03:17:31Z", port: Int = 9) -> String {
    #"{"v":1,"ts":"\#(ts)","kind":"summary","reason":"no_listener","port":\#(port),"count":\#(count)}"#
}

/// A temporary directory, removed by `remove()`.
struct ScratchDir {
    let path: String

    init() {
        var template = Array("/tmp/synsight-fault-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    func file(_ name: String, _ text: String) {
        let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    func remove() { _ = system("rm -rf '\(path)'") }
}

@Suite("Report: hostile input")
struct ReportFaultTests {
    @Test func rfc3339AcceptsExactlyTheInt64NanosecondRange() {
        #expect(RFC3339.parse("1677-09-21T00:12:43.145224192Z") == Int64.min)
        #expect(RFC3339.parse("2262-04-11T23:47:16.854775807Z") == Int64.max)
        for s in ["1677-09-21T00:12:43.145224191Z", "2262-04-11T23:47:16.854775808Z", "2300-01-01T00:00:00Z",
                  "9999-12-31T23:59:59.999999999Z", "0000-01-01T00:00:00Z", "2262-04-11T23:47:16.854775807-00:01",
                  "1677-09-21T00:12:43.145224192+00:01"] {
            #expect(RFC3339.parseChecked(s) == .failure(.outOfRange), "\(s)")
        }
        #expect(RFC3339.parseChecked("2026-13-01T00:00:00Z") == .failure(.syntax))
    }

    @Test func formattingNeverTraps() {
        #expect(RFC3339.format(nanosecondsSinceEpoch: .min) == "1677-09-21T00:12:43.145224192Z")
        #expect(RFC3339.format(nanosecondsSinceEpoch: .max) == "2262-04-11T23:47:16.854775807Z")
        #expect(RFC3339.format(nanosecondsSinceEpoch: -1) == "1969-12-31T23:59:59.999999999Z")
        // A bucket edge past the last representable nanosecond.
        #expect(RFC3339.format(secondsSinceEpoch: 9_223_372_037 + 86400) == "2262-04-12T23:47:17.000000000Z")
        #expect(ReportTimeline.floorDiv(.min, 1_000_000_000) == -9_223_372_037)
        #expect(ReportTimeline.floorDiv(-1, 60) == -1 && ReportTimeline.floorDiv(59, 60) == 0)
    }

    @Test(arguments: ["ts", "first_ts", "last_ts"])
    func anOutOfRangeTimestampIsABadLine(_ field: String) {
        var f = ["ts": "2026-11-22T03:17:31Z", "first_ts": "2026-11-22T03:17:30Z", "last_ts": "2026-11-22T03:17:31Z"]
        f[field] = "2300-01-01T00:00:00Z"
        let bad = #"{"v":1,"ts":"\#(f["ts"]!)","kind":"summary","count":2,"first_ts":"\#(f["first_ts"]!)","last_ts":"\#(f["last_ts"]!)"}"#
        var s = ReportSession()
        s.read(text: summary(count: "5") + "\n" + bad + "\n" + summary(count: "7") + "\n", name: "r.jsonl")
        #expect(s.builder.totals.events == 12)
        #expect(s.skippedLines == 1)
        #expect(s.exitStatus == 2)
        #expect(s.messages == ["r.jsonl:2: skipped: field '\(field)' is outside the range synsight can represent "
                               + "(1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z)"])
    }

    @Test func recordsAtTheEdgesOfTheRangeRenderInEveryFormat() {
        var s = ReportSession()
        s.read(text: summary(count: "1", ts: "1677-09-21T00:12:43.145224192Z") + "\n"
                   + summary(count: "1", ts: "2262-04-11T23:47:16.854775807Z") + "\n", name: "edges")
        #expect(s.exitStatus == 0)
        let r = s.builder.report()
        for format in ReportFormat.allCases { #expect(!r.render(format).isEmpty) }
        #expect(r.render(.html).contains("2262-04-1"))
    }

    @Test(arguments: ["1e30", "1.5", "-5", #""7""#, "true", "null", "{}", "18446744073709551616", "0.0", "1E2"])
    func aCountThatIsNotANonNegativeIntegerIsABadLine(_ count: String) {
        for kind in ["summary", "lost"] {
            var line = #"{"v":1,"ts":"2026-11-22T03:17:31Z","kind":"\#(kind)","count":\#(count)}"#
            guard case .failure(let e) = line.withUTF8({ ReportEvent.decode(line: $0) })
            else { Issue.record("\(kind) count \(count) accepted"); continue }
            #expect(e.message.hasPrefix("field 'count' is not a non-negative integer up to 18446744073709551615"), "\(e.message)")
        }
    }

    @Test func countsUpToUInt64MaxAreRead() {
        var s = ReportSession()
        s.read(text: [summary(count: "0"), summary(count: "9223372036854775808"), summary(count: "18446744073709551615")]
            .joined(separator: "\n"), name: "r")
        #expect(s.exitStatus == 0)
        #expect(s.builder.report().ports.first?.groups.first?.records == 3)
    }

    /// 3 x Int64.max wrapped the total; 2 crashed the HTML chart's axis.
    @Test func totalsSaturateInsteadOfWrapping() {
        var s = ReportSession()
        let big = summary(count: "9223372036854775807")
        s.read(text: [big, big, big, summary(count: "5", port: 10)].joined(separator: "\n") + "\n", name: "r")
        let r = s.builder.report()
        #expect(r.totals.events == .max)
        #expect(r.ports.first?.events == .max)
        #expect(r.timeline.buckets.values.first?["no_listener"] == .max)
        #expect(r.chart.bars(maxBars: 120)?.total == .max)
        #expect(r.render(.text).hasPrefix("synsight report: 18446744073709551615 events in 4 records"))
        let html = r.render(.html)
        #expect(html.contains(#"data-total="18446744073709551615""#))
        // The axis tops out at a round number above the tallest bar (computed in UInt128).
        #expect(html.contains(">20000000000000000000</text>"))
        #expect(JSONReader.parse(r.render(.json)) != nil)
        #expect(Report.axisStep(UInt128(UInt64.max) * 12) == 50_000_000_000_000_000_000)
        #expect(UInt64.max.saturatingAdd(1) == .max && [UInt64.max, 2].saturatingSum == .max)
    }

    @Test func fifosAndDevicesInADirectoryAreSkippedNotRead() throws {
        let d = ScratchDir()
        defer { d.remove() }
        d.file("a.jsonl", summary(count: "4") + "\n")
        #expect(mkfifo(d.path + "/fifo.jsonl", 0o600) == 0)
        #expect(symlink("/dev/zero", d.path + "/zero.jsonl") == 0)
        #expect(symlink(d.path + "/a.jsonl", d.path + "/link.jsonl") == 0)
        #expect(mkdir(d.path + "/sub.jsonl", 0o700) == 0)
        var s = ReportSession()
        s.addInput(d.path)
        #expect(s.builder.totals.events == 8)  // a.jsonl and the symlink to it
        #expect(s.skippedFiles == 3)
        #expect(s.unreadableInputs == 0)
        #expect(s.exitStatus == 2)
        #expect(s.messages.contains("\(d.path)/fifo.jsonl: skipped: a FIFO, not a regular file "
                                    + "(report reads only regular files and symlinks to them)"))
        #expect(s.messages.contains { $0.hasPrefix("\(d.path)/zero.jsonl: skipped: a character device") })
        #expect(s.messages.contains { $0.hasPrefix("\(d.path)/sub.jsonl: skipped: a directory") })
    }

    @Test func aFifoNamedExplicitlyIsUnreadable() {
        let d = ScratchDir()
        defer { d.remove() }
        #expect(mkfifo(d.path + "/f.jsonl.gz", 0o600) == 0)
        var s = ReportSession()
        s.addInput(d.path + "/f.jsonl.gz")
        s.addInput("/dev/zero")
        #expect(s.unreadableInputs == 2)
        #expect(s.exitStatus == 1)
        #expect(s.messages == ["\(d.path)/f.jsonl.gz: cannot read: a FIFO, not a regular file; report reads only regular files "
                               + "(save the data to a file first)",
                               "/dev/zero: cannot read: a character device, not a regular file; report reads only regular files "
                               + "(save the data to a file first)"])
    }

    /// What the jsonl fuzz target found within 2,000 runs on the code before
    /// these fixes, from the fixture recording alone: a year mutated to 5026
    /// trapped the RFC 3339 parser. Kept in Tests/Fixtures/fuzz/jsonl.
    @Test func theFuzzersYear5026IsOneBadLine() throws {
        let path = String(#filePath.dropLast("SynsightReportTests/ReportFaultTests.swift".count))
            + "Fixtures/fuzz/jsonl/crash-acddaf1337dddf35d33b1de107c3d627b16629f8"
        var s = ReportSession()
        s.addInput(path)
        #expect(s.messages.first == "\(path):2: skipped: field 'ts' is outside the range synsight can represent "
                + "(1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z)")
        #expect(s.builder.totals.events == 28)
        #expect(s.exitStatus == 2)
    }

    /// 8 MiB of zeros in 8 KiB of gzip: one bad line (too long), read in
    /// fixed buffers; and a giant line given in one piece is bounded too.
    @Test func aGzipBombIsOneOverlongLine() throws {
        let d = ScratchDir()
        defer { d.remove() }
        #expect(system("head -c 8388608 /dev/zero | gzip -c > '\(d.path)/bomb.jsonl.gz'") == 0)
        var s = ReportSession()
        s.addInput(d.path + "/bomb.jsonl.gz")
        #expect(s.skippedLines == 1)
        #expect(s.messages == ["\(d.path)/bomb.jsonl.gz:1: skipped: line longer than 1048576 bytes"])
        #expect(s.exitStatus == 2)

        var t = ReportSession()
        let giant = [UInt8](repeating: 0x20, count: ReportSession.maxLineBytes + 1) + [0x0A] + Array((summary(count: "2") + "\n").utf8)
        giant.withUnsafeBytes { t.read(bytes: $0, name: "g") }
        #expect(t.messages == ["g:1: skipped: line longer than 1048576 bytes"])
        #expect(t.builder.totals.events == 2)
    }
}
