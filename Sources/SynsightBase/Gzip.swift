import CSynsightZlib
import Glibc

/// Streaming gzip (RFC 1952) through zlib, with fixed-size buffers: memory
/// does not depend on the size of the data.
public enum Gzip {
    public static let chunkSize = 1 << 16

    /// How reading a gzip file ended.
    public enum ReadEnd: Equatable, Sendable {
        /// Every member decompressed and its CRC and length checked.
        case complete
        /// The data stops before the end of a member (a file cut short).
        case truncated(compressedOffset: Int64)
        /// Not gzip, a bad checksum, or bad deflate data.
        case corrupt(compressedOffset: Int64, message: String)
        /// read(2) failed.
        case readError(errno: Int32)
        /// Should not happen: zlib could not allocate its state.
        case zlibFailed(code: Int32)

        public var description: String {
            switch self {
            case .complete: return "complete"
            case .truncated(let off):
                return "truncated gzip data (the stream ends at compressed byte \(off) before its end; the file was cut short)"
            case .corrupt(let off, let msg):
                return "corrupt gzip data at or before compressed byte \(off) (\(msg))"
            case .readError(let e): return "read error: \(String(cString: strerror(e)))"
            case .zlibFailed(let c): return "zlib could not start (code \(c))"
            }
        }
    }

    /// A heap-allocated `z_stream`: zlib keeps a pointer back to the stream
    /// in its state and refuses calls from a moved copy.
    final class Stream {
        let z: UnsafeMutablePointer<z_stream>
        let deflating: Bool
        var live = false

        package init(deflating: Bool) {
            self.deflating = deflating
            z = .allocate(capacity: 1)
            z.initialize(to: z_stream())
        }

        deinit {
            if live { _ = deflating ? deflateEnd(z) : inflateEnd(z) }
            z.deinitialize(count: 1)
            z.deallocate()
        }

        package var message: String { z.pointee.msg.map { String(cString: $0) } ?? "no detail" }
    }

    /// Decompresses the gzip data read from `fd` (all members: `cat a.gz b.gz`
    /// is valid gzip) and hands each decompressed chunk to `output`. Data
    /// decoded before an error has been handed over when this returns it.
    public static func inflate(fd: Int32, _ output: (UnsafeBufferPointer<UInt8>) -> Void) -> ReadEnd {
        inflate(read: { Glibc.read(fd, $0, $1) }, output)
    }

    /// `inflate(fd:)` on gzip data in memory (for tests and fuzzing).
    public static func inflate(bytes: UnsafeRawBufferPointer, _ output: (UnsafeBufferPointer<UInt8>) -> Void) -> ReadEnd {
        var at = 0
        return inflate(read: { buf, max in
            let n = min(max, bytes.count - at)
            if n > 0 { UnsafeMutableRawPointer(buf).copyMemory(from: bytes.baseAddress! + at, byteCount: n) }
            at += n
            return n
        }, output)
    }

    /// The decompression loop; `read` fills a buffer like read(2) (bytes
    /// read, 0 at the end, -1 with errno set).
    package static func inflate(read: (UnsafeMutablePointer<UInt8>, Int) -> Int,
                        _ output: (UnsafeBufferPointer<UInt8>) -> Void) -> ReadEnd {
        let s = Stream(deflating: false)
        let rc = synsight_inflate_init_gzip(s.z)
        guard rc == Z_OK else { return .zlibFailed(code: rc) }
        s.live = true
        let input = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
        let out = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
        defer { input.deallocate(); out.deallocate() }
        var consumedTotal: Int64 = 0  // compressed bytes given to zlib and used
        var inMember = false          // a member has started and not ended
        var sawAny = false
        while true {
            let n = retryingEINTR { read(input, chunkSize) }
            if n < 0 {
                return .readError(errno: errno)
            }
            if n == 0 { break }
            sawAny = true
            s.z.pointee.next_in = input
            s.z.pointee.avail_in = UInt32(n)
            while s.z.pointee.avail_in > 0 {
                inMember = true
                let before = s.z.pointee.avail_in
                s.z.pointee.next_out = out
                s.z.pointee.avail_out = UInt32(chunkSize)
                let r = zInflate(s.z)
                let produced = chunkSize - Int(s.z.pointee.avail_out)
                if produced > 0 { output(UnsafeBufferPointer(start: out, count: produced)) }
                consumedTotal += Int64(before - s.z.pointee.avail_in)
                switch r {
                case Z_STREAM_END:
                    // A member ended (CRC and length checked); another may follow.
                    inMember = false
                    _ = inflateReset(s.z)
                case Z_OK, Z_BUF_ERROR:
                    // No progress with input and a whole output buffer: never
                    // loop on it (zlib should not do this; checked, not trusted).
                    if produced == 0, before == s.z.pointee.avail_in {
                        return .corrupt(compressedOffset: consumedTotal, message: "zlib made no progress")
                    }
                case Z_DATA_ERROR, Z_NEED_DICT:
                    return .corrupt(compressedOffset: consumedTotal, message: s.message)
                case Z_MEM_ERROR:
                    return .zlibFailed(code: r)
                default:
                    return .corrupt(compressedOffset: consumedTotal, message: "zlib error \(r)")
                }
            }
            // Output may still be pending inside zlib with all input consumed.
            while inMember {
                s.z.pointee.next_out = out
                s.z.pointee.avail_out = UInt32(chunkSize)
                let r = zInflate(s.z)
                let produced = chunkSize - Int(s.z.pointee.avail_out)
                if produced > 0 { output(UnsafeBufferPointer(start: out, count: produced)) }
                if r == Z_STREAM_END {
                    inMember = false
                    _ = inflateReset(s.z)
                    break
                }
                if r == Z_DATA_ERROR || r == Z_NEED_DICT {
                    return .corrupt(compressedOffset: consumedTotal, message: s.message)
                }
                if produced == 0 { break }  // needs more input
            }
        }
        if !sawAny { return .truncated(compressedOffset: 0) }
        return inMember ? .truncated(compressedOffset: consumedTotal) : .complete
    }

    /// How compressing a file ended.
    public enum WriteEnd: Equatable, Sendable {
        case complete(uncompressed: Int64, compressed: Int64)
        case stopped
        case failed(String)
    }

    /// Compresses everything readable from `source` into `dest` as one gzip
    /// member. `shouldStop` is asked between chunks so a shutdown is prompt.
    public static func deflate(from source: Int32, to dest: Int32, level: Int32 = 6,
                               shouldStop: () -> Bool = { false }) -> WriteEnd {
        let s = Stream(deflating: true)
        let rc = synsight_deflate_init_gzip(s.z, level)
        guard rc == Z_OK else { return .failed("zlib could not start (code \(rc))") }
        s.live = true
        let input = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
        let out = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
        defer { input.deallocate(); out.deallocate() }
        var readTotal: Int64 = 0
        var written: Int64 = 0
        var finishing = false
        while true {
            if shouldStop() { return .stopped }
            var n = 0
            if !finishing {
                n = retryingEINTR { Glibc.read(source, input, chunkSize) }
                if n < 0 {
                    return .failed("reading: \(String(cString: strerror(errno)))")
                }
                if n == 0 { finishing = true }
                readTotal += Int64(n)
            }
            s.z.pointee.next_in = input
            s.z.pointee.avail_in = UInt32(n)
            var r: Int32
            repeat {
                s.z.pointee.next_out = out
                s.z.pointee.avail_out = UInt32(chunkSize)
                r = zDeflate(s.z, finishing ? Z_FINISH : Z_NO_FLUSH)
                if r == Z_STREAM_ERROR { return .failed("zlib deflate failed") }
                let produced = chunkSize - Int(s.z.pointee.avail_out)
                var off = 0
                while off < produced {
                    let w = retryingEINTR { Glibc.write(dest, out + off, produced - off) }
                    if w < 0 {
                        return .failed("writing: \(String(cString: strerror(errno)))")
                    }
                    off += w
                }
                written += Int64(produced)
            } while s.z.pointee.avail_out == 0
            if finishing && r == Z_STREAM_END { break }
        }
        return .complete(uncompressed: readTotal, compressed: written)
    }

    /// Decompresses `path` completely, checking every CRC: the number of
    /// uncompressed bytes, or nil if it is not complete, valid gzip.
    public static func verifiedLength(path: String) -> Int64? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var total: Int64 = 0
        let end = inflate(fd: fd) { total += Int64($0.count) }
        return end == .complete ? total : nil
    }
}

// Module-qualified: `Gzip.inflate`/`Gzip.deflate` would otherwise shadow zlib's.
@inline(__always) func zInflate(_ z: UnsafeMutablePointer<z_stream>) -> Int32 { CSynsightZlib.inflate(z, Z_NO_FLUSH) }
@inline(__always) func zDeflate(_ z: UnsafeMutablePointer<z_stream>, _ flush: Int32) -> Int32 { CSynsightZlib.deflate(z, flush) }
