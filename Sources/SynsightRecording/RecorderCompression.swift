import Glibc
import Synchronization
import SynsightBase
import SynsightModel

/// Names of the files a `Recorder` directory holds.
public enum RecordingFiles {
    public static let rotatedPrefix = "synsight-"
    public static let plainSuffix = ".jsonl"
    public static let gzSuffix = ".jsonl.gz"
    public static let tmpSuffix = ".jsonl.gz.tmp"

    /// The rotated file's base (`synsight-<time>`) if `name` is a rotated
    /// plain or compressed file; nil for the active file and anything else.
    public static func rotatedBase(_ name: String) -> (base: String, compressed: Bool)? {
        guard name.hasPrefix(rotatedPrefix) else { return nil }
        if name.hasSuffix(gzSuffix) { return (String(name.dropLast(gzSuffix.count)), true) }
        if name.hasSuffix(plainSuffix) { return (String(name.dropLast(plainSuffix.count)), false) }
        return nil
    }

    package static func list(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            names.append(withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        }
        return names.sorted()
    }

    static func fsyncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}

/// Compresses rotated recordings on a thread of its own, so the recording
/// loop never waits for zlib. It is bounded: one thread, one file at a time,
/// fixed buffers. The queue is the directory itself (every rotated plain
/// `synsight-*.jsonl`, oldest first), so a backlog costs no memory and
/// survives a restart; retention still counts those files.
///
/// Crash safety, per file: write `<name>.jsonl.gz.tmp`, fsync it, rename it
/// to `<name>.jsonl.gz`, fsync the directory, then unlink `<name>.jsonl`. A
/// crash at any point leaves either a `.tmp` (deleted at the next start) or
/// a complete `.gz` next to the complete original (one of them is kept at the
/// next start): never a half-written `.gz` and never no copy.
///
/// `@unchecked Sendable`: the mutable state (`pending`, `stopping`) is only
/// touched under `mutex`; `lock()`/`unlock()` also let the recorder's
/// retention exclude the compressor's rename (so a file pruned while it was
/// being compressed is not brought back as `.gz`).
public final class RotationCompressor: @unchecked Sendable {
    public let directory: String
    public let level: Int32
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let cond: UnsafeMutablePointer<pthread_cond_t>
    var pending = false
    var stopping = false
    package var thread: pthread_t?
    let stopFlag = Atomic<Bool>(false)
    let compressedCount = Atomic<Int>(0)
    /// One-line messages (a file that could not be compressed); called on the compressor's thread.
    package let onError: @Sendable (String) -> Void

    /// Files compressed since start.
    public var compressed: Int { compressedCount.load(ordering: .relaxed) }

    public init(directory: String, level: Int32 = 6, onError: @escaping @Sendable (String) -> Void = { _ in }) {
        self.directory = directory
        self.level = level
        self.onError = onError
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        stop()
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    /// Starts the thread; it looks for work at once (files left by an earlier run).
    public func start() {
        guard thread == nil else { return }
        pending = true
        var t = pthread_t()
        let ctx = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&t, nil, { ctx in
            let me = Unmanaged<RotationCompressor>.fromOpaque(ctx!).takeRetainedValue()
            me.loop()
            return nil
        }, ctx)
        if rc == 0 {
            thread = t
        } else {
            Unmanaged<RotationCompressor>.fromOpaque(ctx).release()
            onError("cannot start the compression thread (\(String(cString: strerror(rc)))): rotated files stay uncompressed")
        }
    }

    /// A file was rotated: look for work.
    public func wake() {
        lock()
        pending = true
        pthread_cond_signal(cond)
        unlock()
    }

    /// Stops promptly: a file being compressed is abandoned (its `.tmp`
    /// removed; the plain file stays and is compressed at the next start).
    public func stop() {
        guard let t = thread else { return }
        stopFlag.store(true, ordering: .relaxed)
        lock()
        stopping = true
        pthread_cond_signal(cond)
        unlock()
        pthread_join(t, nil)
        thread = nil
    }

    package func loop() {
        while true {
            lock()
            while !pending && !stopping { pthread_cond_wait(cond, mutex) }
            if stopping { unlock(); return }
            pending = false
            unlock()
            // Oldest first; re-listed after each file, since retention may
            // have deleted some meanwhile.
            while !stopFlag.load(ordering: .relaxed) {
                guard let next = nextPlainRotated() else { break }
                if !compress(next) { break }  // failed: retry at the next rotation
            }
        }
    }

    func nextPlainRotated() -> String? {
        RecordingFiles.list(directory).first { RecordingFiles.rotatedBase($0)?.compressed == false }
    }

    /// Compresses one rotated file. Returns false if it failed (reported).
    package func compress(_ name: String) -> Bool {
        let src = directory + "/" + name
        let gz = src + ".gz"
        let tmp = gz + ".tmp"
        let input = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard input >= 0 else {
            if errno == ENOENT { return true }  // pruned meanwhile
            onError("cannot compress \(src): \(String(cString: strerror(errno)))")
            return false
        }
        defer { close(input) }
        var st = stat()
        fstat(input, &st)
        _ = unlink(tmp)  // a leftover; unlink never follows a symlink
        let out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o640)
        guard out >= 0 else {
            onError("cannot compress \(src): creating \(tmp): \(String(cString: strerror(errno)))")
            return false
        }
        fchmod(out, 0o640)
        let end = Gzip.deflate(from: input, to: out, level: level) { stopFlag.load(ordering: .relaxed) }
        var ok = false
        switch end {
        case .complete:
            // Keep the original's times: --max-age counts from the rotation.
            var times = [st.st_atim, st.st_mtim]
            futimens(out, &times)
            if fsync(out) == 0 { ok = true } else {
                onError("cannot compress \(src): fsync \(tmp): \(String(cString: strerror(errno)))")
            }
        case .stopped:
            break
        case .failed(let why):
            onError("cannot compress \(src): \(why) (the plain file is kept)")
        }
        close(out)
        guard ok else {
            _ = unlink(tmp)
            return false
        }
        // Under the lock: retention may have deleted the original while it
        // was compressed; then the copy must not reappear.
        lock()
        var still = stat()
        let present = lstat(src, &still) == 0 && still.st_ino == st.st_ino
        let renamed = present && rename(tmp, gz) == 0
        let renameErrno = errno
        unlock()
        guard renamed else {
            _ = unlink(tmp)
            if present { onError("cannot compress \(src): rename to \(gz): \(String(cString: strerror(renameErrno)))") }
            return present ? false : true
        }
        RecordingFiles.fsyncDirectory(directory)
        _ = unlink(src)
        compressedCount.add(1, ordering: .relaxed)
        return true
    }
}
