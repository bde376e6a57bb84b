import Foundation
@testable import SynsightBase
import Testing
import SynsightTestSupport






@Suite("gzip (zlib)")
struct GzipTests {
    /// Data that crosses several 64 KiB buffers on both sides.
    static let sample: [UInt8] = (0..<300_000).map { i in
        i % 97 == 96 ? 0x0A : UInt8(truncatingIfNeeded: (i * 7919) >> (i % 5))
    }

    @Test func roundTripsAndGzipToolAgrees() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/a.jsonl"
        writeFile(path, Self.sample)
        guard case .complete(let raw, let packed) = gzipWithSynsight(path) else { Issue.record("deflate failed"); return }
        #expect(raw == Int64(Self.sample.count))
        #expect(packed == Int64(readBytes(path + ".gz").count))
        // Our reader...
        let (back, end) = inflateAll(path + ".gz")
        #expect(end == .complete)
        #expect(back == Self.sample)
        #expect(Gzip.verifiedLength(path: path + ".gz") == Int64(Self.sample.count))
        // ...and the independent gzip tool read the same bytes.
        #expect(shell("gzip -t '\(path).gz'") == 0)
        #expect(shell("gzip -dc '\(path).gz' | cmp -s - '\(path)'") == 0)
    }

    @Test func readsWhatGzipWroteIncludingConcatenatedMembers() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        writeFile(dir + "/a", Array("first member\n".utf8))
        writeFile(dir + "/b", Self.sample)
        try #require(shell("cd '\(dir)' && gzip -c a > ab.gz && gzip -9c b >> ab.gz") == 0)
        let (back, end) = inflateAll(dir + "/ab.gz")
        #expect(end == .complete)
        #expect(back == Array("first member\n".utf8) + Self.sample)
    }

    @Test func truncatedDataIsReportedAsTruncated() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        writeFile(dir + "/a", Self.sample)
        _ = gzipWithSynsight(dir + "/a")
        let whole = readBytes(dir + "/a.gz")
        for cut in [0, 2, 10, whole.count / 2, whole.count - 4, whole.count - 1] {
            writeFile(dir + "/cut.gz", Array(whole.prefix(cut)))
            let (back, end) = inflateAll(dir + "/cut.gz")
            guard case .truncated = end else { Issue.record("cut at \(cut): \(end)"); continue }
            // What was decoded is a prefix of the original.
            #expect(Array(Self.sample.prefix(back.count)) == back)
            #expect(Gzip.verifiedLength(path: dir + "/cut.gz") == nil)
        }
    }

    @Test func corruptDataIsReportedAsCorrupt() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        writeFile(dir + "/a", Self.sample)
        _ = gzipWithSynsight(dir + "/a")
        var bytes = readBytes(dir + "/a.gz")
        // A flipped byte in the CRC trailer, in the deflate data, and in the magic.
        for at in [bytes.count - 6, bytes.count / 2, 0] {
            var b = bytes
            b[at] ^= 0x55
            writeFile(dir + "/bad.gz", b)
            let (_, end) = inflateAll(dir + "/bad.gz")
            guard case .corrupt(_, let msg) = end else { Issue.record("flip at \(at): \(end)"); continue }
            #expect(!msg.isEmpty)
        }
        // Plain text named .gz is not gzip.
        bytes = Array("{\"v\":1}\n".utf8)
        writeFile(dir + "/plain.gz", bytes)
        if case .corrupt = inflateAll(dir + "/plain.gz").1 {} else { Issue.record("plain text accepted as gzip") }
    }
}
