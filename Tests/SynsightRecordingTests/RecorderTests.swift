import Foundation
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightRecording
import Testing
import SynsightTestSupport




@Suite("Recorder")
struct RecorderTests {
    @Test func writesWholeParsableLinesWith0640() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Recorder(options: .init(directory: dir))
        try r.open()
        for i in 0..<100 { r.append(sampleRecord(i)) }
        r.close()
        let path = dir + "/" + Recorder.activeName
        let ls = lines(path)
        #expect(ls.count == 100)
        for l in ls { #expect((try? JSONSerialization.jsonObject(with: Data(l.utf8))) is [String: Any]) }
        var st = stat()
        stat(path, &st)
        #expect(st.st_mode & 0o777 == 0o640)
        #expect(r.linesWritten == 100 && r.linesLost == 0)
    }

    @Test func repairsAPartialLastLineOnOpen() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/" + Recorder.activeName
        let whole = JSONLines.line(sampleRecord(1))
        try (whole + String(whole.prefix(30))).write(toFile: path, atomically: false, encoding: .utf8)
        let r = Recorder(options: .init(directory: dir))
        let cut = try r.open()
        #expect(cut == 30)
        r.append(sampleRecord(2))
        r.close()
        let ls = lines(path)
        #expect(ls.count == 2)
        for l in ls { #expect((try? JSONSerialization.jsonObject(with: Data(l.utf8))) is [String: Any]) }
    }

    @Test func refusesASymlinkAtTheActivePath() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let victim = dir + "/victim"
        _ = FileManager.default.createFile(atPath: victim, contents: Data("keep\n".utf8))
        symlink(victim, dir + "/" + Recorder.activeName)
        let r = Recorder(options: .init(directory: dir))
        #expect(throws: RecorderError.self) { try r.open() }
        #expect(lines(victim) == ["keep"])
    }

    @Test func rotatesBySizeAndKeepsMaxFiles() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var opts = Recorder.Options(directory: dir)
        opts.maxFileSize = 8192
        opts.maxFiles = 3
        opts.bufferLimit = 2048
        let r = Recorder(options: opts)
        var clock: Int64 = 1_700_000_000_000_000_000
        r.now = { clock += 1_000_000; return clock }
        try r.open()
        for i in 0..<400 { r.append(sampleRecord(i)) }
        r.close()
        let rotated = r.rotatedFiles()
        #expect(rotated.count == 3)
        var total = lines(dir + "/" + Recorder.activeName).count
        for f in rotated {
            var st = stat()
            stat(dir + "/" + f, &st)
            #expect(st.st_size <= 8192)
            total += lines(dir + "/" + f).count
        }
        // Older files were pruned: fewer lines remain than were written, all whole.
        #expect(total < 400 && total > 0)
        #expect(r.linesWritten == 400)
    }

    @Test func reopenAfterTheFileWasMovedAway() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Recorder(options: .init(directory: dir))
        try r.open()
        r.append(sampleRecord(1))
        r.flush()
        rename(dir + "/" + Recorder.activeName, dir + "/moved.jsonl")
        r.reopen()
        r.append(sampleRecord(2))
        r.close()
        #expect(lines(dir + "/moved.jsonl").count == 1)
        #expect(lines(dir + "/" + Recorder.activeName).count == 1)
    }

    @Test func directoryRemovedUnderUsIsRecreatedAndNothingIsSilentlyLost() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Recorder(options: .init(directory: dir))
        try r.open()
        r.append(sampleRecord(1))
        r.flush()
        try FileManager.default.removeItem(atPath: dir)
        r.append(sampleRecord(2))
        r.close()
        let ls = lines(dir + "/" + Recorder.activeName)
        #expect(ls.count == 1)
        #expect(r.linesLost == 0)
    }
}

@Suite("StormAggregator")
struct StormAggregatorTests {
    @Test func foldsAStormIntoOneSummaryWithoutLosingCounts() throws {
        var a = StormAggregator(perKeyPerWindow: 10)
        var out: [Record] = []
        for i in 0..<100 { out += a.add(sampleRecord(i * 1000)) }
        #expect(out.count == 10)
        out += a.expire(nowEpochNs: 1_700_000_000_000_000_000 + 2_000_000_000)
        #expect(out.count == 11)
        let s = try #require(out.last)
        #expect(s.kind == .summary)
        #expect(s.count == 90)
        #expect(s.reason == .noListener && s.port == 8080 && s.process?.pid == 7)
        let base: Int64 = 1_700_000_000_000_000_000
        #expect(s.firstTs.map { $0 - base } == 10_000)
        #expect(s.lastTs.map { $0 - base } == 99_000)
        let json = JSONLines.line(s)
        #expect(json.contains("\"first_ts\":") && json.contains("\"last_ts\":") && json.contains("\"count\":90"))
        #expect(a.trackedKeys == 0)
    }

    @Test func differentPortsOrProcessesAreNotMerged() {
        var a = StormAggregator(perKeyPerWindow: 1)
        #expect(a.add(sampleRecord(1, port: 1)).count == 1)
        #expect(a.add(sampleRecord(2, port: 2)).count == 1)
        #expect(a.add(sampleRecord(3, port: 1, pid: 8)).count == 1)
        #expect(a.add(sampleRecord(4, port: 1)).isEmpty)
        #expect(a.finish().first?.count == 1)
    }

    @Test func aNewWindowPassesRecordsAgain() {
        var a = StormAggregator(perKeyPerWindow: 1)
        #expect(a.add(sampleRecord(0)).count == 1)
        #expect(a.add(sampleRecord(1)).isEmpty)
        // Next second: the folded one comes out as a summary, then the new record.
        let next = a.add(sampleRecord(1_000_000_001))
        #expect(next.map(\.kind) == [.summary, .refusal])
        #expect(next.first?.count == 1)
    }

    @Test func lostRecordsAlwaysPass() {
        var a = StormAggregator(perKeyPerWindow: 1)
        for _ in 0..<5 { #expect(a.add(Record(ts: 1, kind: .lost, count: 3)).count == 1) }
    }
}
