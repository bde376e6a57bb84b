import Foundation
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightRecording
import Testing
import SynsightTestSupport

func names(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
}

/// Every record line in a recording directory, plain and compressed.
func recordedLines(_ dir: String) -> [String] {
    var out: [String] = []
    for n in names(dir) {
        let path = dir + "/" + n
        if n.hasSuffix(".jsonl.gz") {
            let (bytes, end) = inflateAll(path)
            #expect(end == .complete, "\(n): \(end)")
            out += String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        } else if n.hasSuffix(".jsonl") {
            out += lines(path)
        }
    }
    return out
}

func poll(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

@Suite("Recorder: compressed rotation")
struct RecorderCompressionTests {
    func recorder(_ dir: String, maxFiles: Int = 1000, compress: Bool = true) -> Recorder {
        var o = Recorder.Options(directory: dir)
        o.maxFileSize = 4096
        o.maxFiles = maxFiles
        o.compress = compress
        o.bufferLimit = 1024
        return Recorder(options: o)
    }

    @Test func rotatedFilesAreGzippedAndNothingIsLost() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = recorder(dir)
        try r.open()
        var clock: Int64 = 1_700_000_000_000_000_000
        r.now = { clock += 1_000_000; return clock }
        for i in 0..<2000 { r.append(sampleRecord(i)) }
        r.flush()
        // The compressor runs on its own thread: wait until it caught up.
        #expect(poll { !names(dir).contains { RecordingFiles.rotatedBase($0)?.compressed == false } }, "\(names(dir))")
        r.close()
        let files = names(dir)
        let gz = files.filter { $0.hasSuffix(".jsonl.gz") }
        #expect(gz.count > 10, "\(files)")
        #expect(!files.contains { $0.hasSuffix(".tmp") })
        #expect(files.contains(Recorder.activeName))  // the active file is never compressed
        #expect(r.compressor?.compressed == gz.count)
        for g in gz {
            var st = stat()
            stat(dir + "/" + g, &st)
            #expect(st.st_mode & 0o777 == 0o640)
            #expect(shell("gzip -t '\(dir)/\(g)'") == 0, "\(g) is not valid gzip")
        }
        let all = recordedLines(dir)
        #expect(all.count == 2000)
        #expect(Set(all).count == 2000)
        for l in all { #expect((try? JSONSerialization.jsonObject(with: Data(l.utf8))) is [String: Any]) }
    }

    /// One flush bigger than a file may be is cut at line ends across files.
    @Test func aBurstIsSplitSoEveryFileStaysWithinTheSize() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = Recorder.Options(directory: dir)
        o.maxFileSize = 4096
        o.maxFiles = 1000
        o.bufferLimit = 1 << 20  // one batch for everything
        let r = Recorder(options: o)
        try r.open()
        var clock: Int64 = 1_700_000_000_000_000_000
        r.now = { clock += 1_000_000; return clock }
        for i in 0..<300 { r.append(sampleRecord(i)) }
        // And one line longer than a whole file: written alone, not dropped.
        var huge = sampleRecord(300)
        huge.hint = String(repeating: "x", count: 5000)
        r.append(huge)
        r.flush()
        r.close()
        #expect(r.linesWritten == 301 && r.linesLost == 0)
        let files = names(dir).filter { $0.hasSuffix(".jsonl") }
        #expect(files.count > 20, "\(files.count) files")
        var oversize = 0
        for f in files {
            var st = stat()
            stat(dir + "/" + f, &st)
            let ls = lines(dir + "/" + f)
            if st.st_size > 4096 {
                oversize += 1
                #expect(ls.count == 1)
            }
        }
        #expect(oversize == 1)
        #expect(recordedLines(dir).count == 301)
    }

    @Test func retentionCountsCompressedFiles() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = recorder(dir, maxFiles: 3)
        try r.open()
        var clock: Int64 = 1_700_000_000_000_000_000
        r.now = { clock += 1_000_000; return clock }
        for i in 0..<2000 { r.append(sampleRecord(i)) }
        r.flush()
        #expect(poll { !names(dir).contains { RecordingFiles.rotatedBase($0)?.compressed == false } })
        r.prune()
        r.close()
        let rotated = names(dir).filter { RecordingFiles.rotatedBase($0) != nil }
        #expect(rotated.count == 3, "\(names(dir))")
        #expect(rotated.allSatisfy { $0.hasSuffix(".jsonl.gz") })
        // The newest three were kept (names sort by time).
        #expect(rotated == rotated.sorted())
    }

    @Test func aPlainFileAndItsCopyCountAsOneForRetention() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for n in ["synsight-20260101T000000Z.jsonl", "synsight-20260101T000000Z.jsonl.gz",
                  "synsight-20260102T000000Z.jsonl.gz", "synsight-20260103T000000Z.jsonl"] {
            writeFile(dir + "/" + n, [])
        }
        var o = Recorder.Options(directory: dir)
        o.maxFiles = 2
        let r = Recorder(options: o)
        r.prune()
        #expect(names(dir) == ["synsight-20260102T000000Z.jsonl.gz", "synsight-20260103T000000Z.jsonl"])
    }

    @Test func startupCleansCrashLeftovers() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = (0..<300).map { JSONLines.line(sampleRecord($0)) }.joined()
        // A: compression was interrupted before the rename.
        writeFile(dir + "/synsight-20260101T000000Z.jsonl", Array(text.utf8))
        writeFile(dir + "/synsight-20260101T000000Z.jsonl.gz.tmp", [0x1f, 0x8b, 0x08])
        // B: interrupted after the rename, before the unlink: the .gz is complete.
        writeFile(dir + "/synsight-20260102T000000Z.jsonl", Array(text.utf8))
        _ = gzipWithSynsight(dir + "/synsight-20260102T000000Z.jsonl")
        // C: a .gz next to its plain file that is cut short (disk trouble).
        writeFile(dir + "/synsight-20260103T000000Z.jsonl", Array(text.utf8))
        _ = gzipWithSynsight(dir + "/synsight-20260103T000000Z.jsonl")
        let cgz = dir + "/synsight-20260103T000000Z.jsonl.gz"
        writeFile(cgz, Array(readBytes(cgz).dropLast(10)))

        let r = recorder(dir, compress: false)
        try r.open()
        r.close()
        // The lock file stays (it only holds a pid); the lock itself went with close().
        #expect(names(dir) == [RecorderLock.fileName, "synsight-20260101T000000Z.jsonl", "synsight-20260102T000000Z.jsonl.gz",
                               "synsight-20260103T000000Z.jsonl", "synsight.jsonl"])
        #expect(r.startupNotes.count == 3, "\(r.startupNotes)")
        #expect(r.startupNotes.contains { $0.contains("20260101T000000Z.jsonl.gz.tmp") && $0.contains("unfinished") })
        #expect(r.startupNotes.contains { $0.contains("kept") && $0.contains("20260102T000000Z.jsonl.gz") })
        #expect(r.startupNotes.contains { $0.contains("removed") && $0.contains("20260103T000000Z.jsonl.gz") })

        // With compression on, the plain rotated files left behind are compressed at start.
        let r2 = recorder(dir)
        try r2.open()
        #expect(poll { !names(dir).contains { RecordingFiles.rotatedBase($0)?.compressed == false } }, "\(names(dir))")
        r2.close()
        // Compression and retention leave the lock file alone.
        #expect(names(dir) == [RecorderLock.fileName, "synsight-20260101T000000Z.jsonl.gz", "synsight-20260102T000000Z.jsonl.gz",
                               "synsight-20260103T000000Z.jsonl.gz", "synsight.jsonl"])
        #expect(recordedLines(dir).count == 900)
    }

    @Test func compressionKeepsTheRotationTimeForMaxAge() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plain = dir + "/synsight-20260101T000000Z.jsonl"
        writeFile(plain, Array(JSONLines.line(sampleRecord(1)).utf8))
        var times = [timespec(tv_sec: 1_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000, tv_nsec: 0)]
        utimensat(AT_FDCWD, plain, &times, 0)
        let r = recorder(dir)
        try r.open()
        #expect(poll { names(dir).contains("synsight-20260101T000000Z.jsonl.gz") })
        r.close()
        var st = stat()
        stat(plain + ".gz", &st)
        #expect(st.st_mtim.tv_sec == 1_000_000)
    }

    @Test func stopAbandonsAFileBeingCompressedCleanly() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Big enough that compression takes a while.
        let line = Array(JSONLines.line(sampleRecord(1)).utf8)
        var big: [UInt8] = []
        for _ in 0..<50_000 { big += line }
        writeFile(dir + "/synsight-20260101T000000Z.jsonl", big)
        let r = recorder(dir)
        try r.open()
        r.close()  // stops the compressor at once
        let files = names(dir)
        #expect(!files.contains { $0.hasSuffix(".tmp") }, "\(files)")
        // Either it finished (only the .gz) or it was abandoned (only the plain file).
        let a = files.contains("synsight-20260101T000000Z.jsonl"), b = files.contains("synsight-20260101T000000Z.jsonl.gz")
        #expect(a != b, "\(files)")
        #expect(recordedLines(dir).count == 50_000)
    }
}
