import Glibc
import SynsightBase
import SynsightModel

/// Writes JSON Lines to a directory for `synsight record`: the active file
/// `synsight.jsonl`, rotated by size to `synsight-<UTC time>.jsonl`, with
/// retention by count and age.
///
/// Crash safety: lines are buffered and written in whole lines (a flush is cut
/// at line ends where a file fills up), so a process killed between writes
/// leaves only whole lines; a write cut short (power loss, a fatal signal
/// inside write) can leave a partial last line, which `open` truncates away
/// on the next start. After
/// SIGKILL nothing already written is lost (the page cache outlives the
/// process); after a power loss, what was not yet fsynced is (fsync policy).
///
/// Faults: a failed write (disk full, directory removed) drops the batch,
/// counts its lines as lost and reports once per episode; the next flush
/// retries (re-creating the directory and file) and, once writing works
/// again, first writes a `lost` record with the count, so the gap is visible.
///
/// Compression (`compress`): rotated files are gzipped by a
/// `RotationCompressor` thread (never the active file); retention counts a
/// file and its `.gz` as one. `open` cleans up what a crash during
/// compression left (see `recoverCompressionLeftovers`).
public final class Recorder {
    public enum FsyncPolicy: String, Sendable, CaseIterable {
        case never, rotate, always
    }

    public struct Options: Sendable {
        public var directory: String
        public var maxFileSize: Int64 = 64 << 20
        public var maxFiles: Int = 10
        /// Rotated files older than this are deleted (nil: keep by count only).
        public var maxAgeSeconds: Int64? = nil
        public var fsync: FsyncPolicy = .rotate
        /// Buffered bytes that force a write before the periodic flush.
        public var bufferLimit: Int = 256 << 10
        /// Gzip rotated files (off the recording thread).
        public var compress = false

        public init(directory: String) {
            self.directory = directory
        }
    }

    public static let activeName = "synsight.jsonl"

    public let options: Options
    package var fd: Int32 = -1
    package var size: Int64 = 0
    var buffer: [UInt8] = []
    var bufferedLines: UInt64 = 0
    public private(set) var linesWritten: UInt64 = 0
    public private(set) var linesLost: UInt64 = 0
    var unreportedLost: UInt64 = 0
    package var failing = false
    /// Called with a one-line message when writing starts or stops failing.
    public var onError: (String) -> Void = { _ in }
    /// Messages about files cleaned up by `open` (crash leftovers).
    public private(set) var startupNotes: [String] = []
    /// Held from `open` to `close`: no other recorder writes this directory.
    package var lock: RecorderLock?
    /// Runs while `options.compress` is on and the recorder is open.
    public private(set) var compressor: RotationCompressor?
    /// Called on the compressor's thread when a file cannot be compressed.
    public var onCompressionError: @Sendable (String) -> Void = { _ in }
    /// Wall clock, for rotated-file names and retention (tests replace it).
    public var now: () -> Int64 = {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }

    public init(options: Options) {
        self.options = options
        buffer.reserveCapacity(options.bufferLimit + 4096)
    }

    deinit {
        _ = flush()
        if fd >= 0 { Glibc.close(fd) }
        compressor?.stop()
    }

    var activePath: String { options.directory + "/" + Recorder.activeName }

    /// Creates the directory (0750), takes its lock (one recorder per
    /// directory: a second one is refused before it touches a file) and
    /// opens the active file, repairing a partial last line left by a
    /// crash. Returns the bytes truncated.
    @discardableResult
    public func open() throws(RecorderError) -> Int64 {
        if mkdir(options.directory, 0o750) != 0 && errno != EEXIST {
            throw RecorderError(what: "creating \(options.directory)", errno: errno)
        }
        var st = stat()
        guard stat(options.directory, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw RecorderError(what: "\(options.directory) is not a directory", errno: ENOTDIR)
        }
        if lock == nil { lock = try RecorderLock(directory: options.directory) }
        recoverCompressionLeftovers()
        let truncated = try openActive()
        if options.compress && compressor == nil {
            let c = RotationCompressor(directory: options.directory, onError: onCompressionError)
            compressor = c
            c.start()  // also compresses rotated files an earlier run left plain
        }
        return truncated
    }

    /// After a crash during compression: a `.gz.tmp` is deleted; where both
    /// `<name>.jsonl` and `<name>.jsonl.gz` exist, the `.gz` is kept only if
    /// it decompresses completely (CRCs checked) to the plain file's length,
    /// else the plain file is kept. At most one file was being compressed,
    /// so this costs at most one decompression. Runs whether or not
    /// compression is on now.
    func recoverCompressionLeftovers() {
        let dir = options.directory
        let names = RecordingFiles.list(dir)
        let present = Set(names)
        for name in names where name.hasPrefix(RecordingFiles.rotatedPrefix) {
            let path = dir + "/" + name
            if name.hasSuffix(RecordingFiles.tmpSuffix) {
                _ = unlink(path)
                startupNotes.append("removed \(path), an unfinished compression left by an earlier run")
                continue
            }
            guard let (base, compressed) = RecordingFiles.rotatedBase(name), compressed,
                  present.contains(base + RecordingFiles.plainSuffix) else { continue }
            let plain = dir + "/" + base + RecordingFiles.plainSuffix
            var st = stat()
            guard lstat(plain, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            if let n = Gzip.verifiedLength(path: path), n == Int64(st.st_size) {
                _ = unlink(plain)
                startupNotes.append("kept \(path) and removed \(plain): an earlier run was interrupted after compressing it")
            } else {
                _ = unlink(path)
                startupNotes.append("removed \(path), incomplete or not matching \(plain): an earlier run was interrupted while compressing it")
            }
        }
        RecordingFiles.fsyncDirectory(dir)
    }

    func openActive() throws(RecorderError) -> Int64 {
        // O_NOFOLLOW: a symlink planted at the active path is refused, never written through.
        let f = Glibc.open(activePath, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o640)
        guard f >= 0 else { throw RecorderError(what: "opening \(activePath)", errno: errno) }
        fchmod(f, 0o640)
        var st = stat()
        fstat(f, &st)
        var end = Int64(st.st_size)
        var truncated: Int64 = 0
        if end > 0 {
            // Find the last newline; anything after it is a partial line.
            var pos = end
            var byte: UInt8 = 0
            while pos > 0 {
                if pread(f, &byte, 1, off_t(pos - 1)) != 1 { break }
                if byte == 0x0A { break }
                pos -= 1
            }
            if pos < end {
                truncated = end - pos
                _ = ftruncate(f, off_t(pos))
                end = pos
            }
        }
        fd = f
        size = end
        return truncated
    }

    /// Queues one record (as one line).
    public func append(_ r: Record) {
        JSONLines.append(r, to: &buffer)
        bufferedLines += 1
        if buffer.count >= options.bufferLimit { _ = flush() }
    }

    /// Writes the buffered lines; rotates and prunes as needed. Returns false
    /// if the batch could not be written (its lines are counted as lost).
    @discardableResult
    public func flush() -> Bool {
        if unreportedLost > 0 && !failing {
            // Writing works again: make the gap visible before new lines.
            var lost = Record(ts: now(), kind: .lost, evidence: [EvidenceKey.lostWhere(.string("recorder: write failed"))],
                              hint: "the recording directory was full or unavailable: free space or fix the directory",
                              count: unreportedLost)
            lost.evidence.append(("directory", .string(options.directory)))
            var line: [UInt8] = []
            JSONLines.append(lost, to: &line)
            if writeAll(line[...]) { unreportedLost = 0 }
        }
        guard !buffer.isEmpty else { return true }
        // A batch can be larger than a file may be (a burst, a small
        // --max-file-size): it is cut at line ends so every file stays within
        // the size, except a single line longer than it.
        var start = 0
        var remaining = bufferedLines
        var justRotated = false
        while start < buffer.count {
            let room = options.maxFileSize - size
            var end = buffer.count
            if Int64(end - start) > room {
                let fit = room > 0 ? lastNewline(in: start..<(start + Int(room))) : nil
                if let fit {
                    end = fit + 1
                } else if size > 0 && !justRotated {
                    rotate()
                    justRotated = true
                    continue
                } else {
                    end = (buffer[start...].firstIndex(of: 0x0A) ?? (buffer.count - 1)) + 1
                }
            }
            justRotated = false
            let lines = UInt64(buffer[start..<end].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
            guard writeAll(buffer[start..<end]) else {
                linesLost += remaining
                unreportedLost += remaining
                break
            }
            if failing {
                failing = false
                onError("recording to \(options.directory) works again")
            }
            linesWritten += lines
            remaining -= min(lines, remaining)
            start = end
        }
        if start >= buffer.count, options.fsync == .always, fd >= 0 { fsync(fd) }
        buffer.removeAll(keepingCapacity: true)
        bufferedLines = 0
        return !failing
    }

    func lastNewline(in range: Range<Int>) -> Int? {
        var i = range.upperBound - 1
        while i >= range.lowerBound {
            if buffer[i] == 0x0A { return i }
            i -= 1
        }
        return nil
    }

    package func writeAll(_ bytes: ArraySlice<UInt8>) -> Bool {
        // The directory or file may have been removed under us: lines written
        // to a file without a name are lost at close, uncounted. Reopen first.
        if fd >= 0 && access(activePath, F_OK) != 0 {
            Glibc.close(fd)
            fd = -1
        }
        if fd < 0 {
            // The directory vanished or the file could not be opened: retry.
            if mkdir(options.directory, 0o750) == 0 {
                // Re-created: the old lock file went with the directory.
                if let l = try? RecorderLock(directory: options.directory) { lock = l }
            }
            do { _ = try openActive() } catch {
                noteFailure("\(error)")
                return false
            }
        }
        var off = 0
        while off < bytes.count {
            let n = retryingEINTR { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) } }
            if n < 0 {
                let e = errno
                // Take back a partial line so the file stays whole lines.
                if off > 0 { _ = ftruncate(fd, off_t(size)) }
                noteFailure("writing \(activePath): \(String(cString: strerror(e)))")
                if e == ESTALE || e == ENOENT || e == EIO { Glibc.close(fd); fd = -1 }
                return false
            }
            off += n
        }
        size += Int64(bytes.count)
        return true
    }

    func noteFailure(_ why: String) {
        if !failing {
            failing = true
            onError("recording paused: \(why); events are counted as lost until it works again")
        }
    }

    /// Closes the active file under a rotated name and opens a new one.
    public func rotate() {
        guard fd >= 0 else { return }
        if options.fsync != .never { fsync(fd) }
        Glibc.close(fd)
        fd = -1
        let stamp = RFC3339.format(nanosecondsSinceEpoch: now())
        // 2026-11-22T03:10:11.123456789Z -> 20261122T031011.123456789Z
        let compact = stamp.filter { $0 != "-" && $0 != ":" }
        var target = options.directory + "/synsight-\(compact).jsonl"
        var n = 1
        while access(target, F_OK) == 0 || access(target + ".gz", F_OK) == 0 {
            n += 1
            target = options.directory + "/synsight-\(compact)-\(n).jsonl"
        }
        // Make room first, so the directory never holds more than
        // `maxFiles` rotated files, not even between the rename and the prune.
        prune(reserve: 1)
        _ = Glibc.rename(activePath, target)
        do { _ = try openActive() } catch { noteFailure("\(error)") }
        compressor?.wake()
    }

    /// The rotated files (plain or compressed), oldest first (their names
    /// sort by time).
    public func rotatedFiles() -> [String] {
        RecordingFiles.list(options.directory).filter { RecordingFiles.rotatedBase($0) != nil }
    }

    /// Retention: at most `maxFiles` rotated files, none older than
    /// `maxAgeSeconds`. A file and its compressed copy (both exist for a
    /// moment while it is compressed) count as one and go together.
    /// `reserve` leaves room for that many files about to be rotated.
    public func prune(reserve: Int = 0) {
        compressor?.lock()
        defer { compressor?.unlock() }
        var bases: [String] = []
        var seen = Set<String>()
        for name in rotatedFiles() {
            if let b = RecordingFiles.rotatedBase(name)?.base, seen.insert(b).inserted { bases.append(b) }
        }
        let dir = options.directory + "/"
        func remove(_ base: String) {
            _ = unlink(dir + base + RecordingFiles.plainSuffix)
            _ = unlink(dir + base + RecordingFiles.gzSuffix)
        }
        while bases.count > max(0, options.maxFiles - reserve) { remove(bases.removeFirst()) }
        if let maxAge = options.maxAgeSeconds {
            let cutoff = now() / 1_000_000_000 - maxAge
            for base in bases {
                var st = stat()
                let old = [RecordingFiles.plainSuffix, RecordingFiles.gzSuffix].contains {
                    stat(dir + base + $0, &st) == 0 && Int64(st.st_mtim.tv_sec) < cutoff
                }
                if old { remove(base) }
            }
        }
    }

    /// SIGHUP: reopen the active path (after logrotate moved the file).
    public func reopen() {
        _ = flush()
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        do { _ = try openActive() } catch { noteFailure("\(error)") }
    }

    /// Flush, fsync (unless `never`) and close; stops the compressor (a file
    /// it was compressing stays plain and is compressed at the next start).
    public func close() {
        _ = flush()
        if fd >= 0 {
            if options.fsync != .never { fsync(fd) }
            Glibc.close(fd)
            fd = -1
        }
        compressor?.stop()
        lock?.release()
        lock = nil
    }
}

public struct RecorderError: Error, CustomStringConvertible, Sendable {
    public var what: String
    public var errno: Int32
    /// Set when another recorder holds the directory (see `RecorderLock`).
    public var lockedBy: RecorderLock.Holder? = nil

    public var description: String {
        if let lockedBy {
            return "another synsight record" + (lockedBy.pid.map { " (pid \($0))" } ?? "") + " is writing there"
        }
        return "\(what): \(String(cString: strerror(errno)))"
    }
}
