@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightReport
import Testing
import SynsightTestSupport

@Suite("Report: HTML and chart")
struct ReportHTMLTests {
    @Test func htmlEscapingCoversMarkupControlsBidiAndNoncharacters() {
        let s = "<script>alert(\"x\")</script> & 'q' \u{1b}[31m\u{202e}evil\u{2066}\u{0}\u{85}"
            + String(String.UnicodeScalarView([Unicode.Scalar(0xFDD0)!, Unicode.Scalar(0xFFFE)!]))  // no literal for noncharacters
        let e = HTMLText.escape(s)
        #expect(e == #"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39; \x1b[31m\u{202e}evil\u{2066}\x00\x85\u{fdd0}\u{fffe}"#)
        #expect(HTMLText.escape("plain ümlaut ×") == "plain ümlaut ×")
    }

    @Test func chartPicksTheSmallestWidthWithBoundedBars() throws {
        var c = ReportChartTimeline()
        // 10 minutes of one event per second: 1 s would need 600 bars, 2 s 300, 10 s 60.
        for s in 0..<600 { c.add(ts: reportBase + Int64(s) * 1_000_000_000, reason: "no_listener", 1) }
        let bars = try #require(c.bars(maxBars: 120))
        #expect(bars.bucketSeconds == 10)
        #expect(bars.counts.count == 60)
        #expect(bars.counts.allSatisfy { $0 == [10] })
        #expect(bars.start == reportBase / 1_000_000_000)
        // A short span stays per second.
        var d = ReportChartTimeline()
        d.add(ts: reportBase, reason: "a", 3)
        d.add(ts: reportBase + 5_500_000_000, reason: "b", 4)
        let short = try #require(d.bars(maxBars: 120))
        #expect(short.bucketSeconds == 1)
        #expect(short.counts.count == 6)
        #expect(short.counts[0] == [3, 0] && short.counts[5] == [0, 4])
        #expect(ReportChartTimeline().bars(maxBars: 120) == nil)
    }

    @Test func chartStateIsBoundedAndCountsStayExact() throws {
        var c = ReportChartTimeline(maxBuckets: 256, maxSeries: 4)
        var total: UInt64 = 0
        // A year of sparse events over 30 reasons: buckets coarsen, reasons fold into "other".
        for i in 0..<50_000 {
            let ts = reportBase + Int64(i) * 631 * 1_000_000_000
            c.add(ts: ts, reason: "r\(i % 30)", UInt64(i % 3 + 1))
            total += UInt64(i % 3 + 1)
        }
        #expect(c.buckets.count <= 256)
        #expect(c.series.count == 4)
        #expect(c.series.last == ReportChartTimeline.otherSeries)
        let bars = try #require(c.bars(maxBars: 120))
        #expect(bars.counts.count <= 120)
        #expect(bars.total == total)
        // Widths divide each other, so coarsening never splits a bucket.
        for i in 1..<20 { #expect(ReportChartTimeline.width(at: i) % ReportChartTimeline.width(at: i - 1) == 0) }
    }

    @Test func summariesCountTheirCountInTheChart() throws {
        let s = session([reportLine(at: 1), reportLine(at: 2, kind: "summary", count: 41, first: 1, last: 2),
                         lostLine(at: 3, count: 5)])
        let bars = try #require(s.builder.report().chart.bars(maxBars: 120))
        #expect(bars.total == 42)
        #expect(bars.counts == [[1], [41]])
    }

    @Test func htmlHasTheSameSectionsAsTheTextReport() {
        let html = session(ReportFormatTests.fixture).builder.report().html()
        #expect(html.hasPrefix("<!DOCTYPE html>\n<html lang=\"en\">"))
        #expect(html.hasSuffix("</html>\n"))
        #expect(html.contains("<h2>Port 8080: 42 events</h2>"))
        #expect(html.contains("<h3>no_listener / listener_exited: 42 events</h3>"))
        #expect(html.contains("nginx[1234] ×42"))
        #expect(html.contains("<dd class=\"hint\">the listener was killed by signal 9; restart it</dd>"))
        #expect(html.contains("3 events LOST in the ring buffer"))
        #expect(html.contains("data-bucket-seconds=\"1\""))
        #expect(html.contains("each bar = 1 second"))
        #expect(!html.contains("<script"))
    }
}
