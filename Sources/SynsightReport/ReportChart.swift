import SynsightBase
import SynsightModel
/// Events per second by reason, for the HTML report's timeline chart.
///
/// Bounded whatever the input: at most `maxBuckets` non-empty buckets (when
/// more would be needed the width grows along `ladder`, whose widths each
/// divide the next, so coarser buckets are exact sums of finer ones) and at
/// most `maxSeries` reasons (a later new reason is counted as "other").
/// A summary record adds its `count` at its `ts`, like the text timeline.
public struct ReportChartTimeline: Sendable {
    /// Bucket widths in seconds; past a day the width doubles.
    public static let ladder: [Int64] = [1, 2, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400]
    public static let otherSeries = "(other reasons)"

    public let maxBuckets: Int
    public let maxSeries: Int
    public private(set) var widthIndex = 0
    /// Reasons in order of first appearance; the last may be `otherSeries`.
    public private(set) var series: [String] = []
    /// Bucket start (seconds since the epoch) -> events per series index.
    public private(set) var buckets: [Int64: [UInt64]] = [:]
    /// First and last second with an event.
    public private(set) var firstSecond: Int64?
    public private(set) var lastSecond: Int64?
    var seriesIndex: [String: Int] = [:]

    public init(maxBuckets: Int = 4096, maxSeries: Int = 12) {
        self.maxBuckets = maxBuckets
        self.maxSeries = maxSeries
    }

    public static func width(at index: Int) -> Int64 {
        index < ladder.count ? ladder[index] : 86400 << Int64(min(index - ladder.count + 1, 40))
    }

    public var bucketSeconds: Int64 { Self.width(at: widthIndex) }

    public mutating func add(ts: Int64, reason: String, _ n: UInt64) {
        let second = ReportTimeline.floorDiv(ts, 1_000_000_000)
        firstSecond = min(firstSecond ?? second, second)
        lastSecond = max(lastSecond ?? second, second)
        let idx: Int
        if let i = seriesIndex[reason] {
            idx = i
        } else if series.count < maxSeries {
            idx = series.count
            series.append(reason)
            seriesIndex[reason] = idx
        } else if let i = seriesIndex[Self.otherSeries] {
            idx = i
        } else {
            // Make room: the newest real series becomes part of "other".
            idx = series.count - 1
            let folded = series[idx]
            series[idx] = Self.otherSeries
            seriesIndex[Self.otherSeries] = idx
            seriesIndex[folded] = idx
        }
        let start = ReportTimeline.floorDiv(second, bucketSeconds) * bucketSeconds
        var row = buckets[start] ?? []
        if row.count < series.count { row += [UInt64](repeating: 0, count: series.count - row.count) }
        row[idx].saturate(adding: n)
        buckets[start] = row
        while buckets.count > maxBuckets { coarsen() }
    }

    mutating func coarsen() {
        widthIndex += 1
        let w = bucketSeconds
        var merged: [Int64: [UInt64]] = [:]
        for (start, row) in buckets {
            let s = ReportTimeline.floorDiv(start, w) * w
            var m = merged[s] ?? []
            if m.count < row.count { m += [UInt64](repeating: 0, count: row.count - m.count) }
            for (i, n) in row.enumerated() { m[i].saturate(adding: n) }
            merged[s] = m
        }
        buckets = merged
    }

    /// The chart's bars: the smallest width (at least the stored one) that
    /// covers first..last second in at most `maxBars` bars, and every bar's
    /// count per series (empty bars included, so time is linear).
    public struct Bars: Sendable {
        public var bucketSeconds: Int64
        /// Start of the first bar (seconds since the epoch).
        public var start: Int64
        /// `counts[bar][series]`.
        public var counts: [[UInt64]]
        public var series: [String]

        public var total: UInt64 { counts.reduce(0) { $0.saturatingAdd($1.saturatingSum) } }
        public var tallest: UInt64 { counts.map(\.saturatingSum).max() ?? 0 }
    }

    public func bars(maxBars: Int) -> Bars? {
        guard let first = firstSecond, let last = lastSecond else { return nil }
        var i = widthIndex
        var w = Self.width(at: i)
        while ReportTimeline.floorDiv(last, w) - ReportTimeline.floorDiv(first, w) + 1 > Int64(maxBars) {
            i += 1
            w = Self.width(at: i)
        }
        let start = ReportTimeline.floorDiv(first, w) * w
        let n = Int(ReportTimeline.floorDiv(last, w) - ReportTimeline.floorDiv(first, w) + 1)
        var counts = [[UInt64]](repeating: [UInt64](repeating: 0, count: series.count), count: n)
        for (s, row) in buckets {
            let bar = Int((ReportTimeline.floorDiv(s, w) * w - start) / w)
            guard bar >= 0, bar < n else { continue }
            for (k, v) in row.enumerated() { counts[bar][k].saturate(adding: v) }
        }
        return Bars(bucketSeconds: w, start: start, counts: counts, series: series)
    }
}
