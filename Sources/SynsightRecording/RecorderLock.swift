import Glibc
import SynsightBase
import SynsightModel

/// One recorder per directory: an exclusive `flock` on `<dir>/.synsight.lock`,
/// held for as long as the recorder runs. The kernel drops it when the
/// process ends however it ends (SIGKILL, a crash), so it never outlives a
/// recorder; the file itself stays and only holds the holder's pid, for the
/// refusal message. Its name does not start with `synsight-` and does not
/// end with `.jsonl`: rotation, retention, compression and `report` never
/// see it.
///
/// The file is opened O_NOFOLLOW (a symlink planted there is refused, never
/// followed) and O_CLOEXEC (a child process never inherits the lock).
public final class RecorderLock {
    public static let fileName = ".synsight.lock"

    /// Who holds a lock this process could not take.
    public struct Holder: Sendable, Equatable {
        /// The pid the holder wrote into the lock file (nil: not known yet).
        public var pid: Int32?

        public init(pid: Int32?) { self.pid = pid }
    }

    package var fd: Int32

    /// Takes the lock on `directory`, which must exist. Throws a
    /// `RecorderError` with `lockedBy` set when another process holds it.
    public init(directory: String) throws(RecorderError) {
        let path = directory + "/" + Self.fileName
        // O_NONBLOCK: a FIFO planted there cannot block the open.
        let f = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o640)
        guard f >= 0 else { throw RecorderError(what: "opening the lock file \(path)", errno: errno) }
        var st = stat()
        guard fstat(f, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            close(f)
            throw RecorderError(what: "\(path) is not a regular file (remove it)", errno: EINVAL)
        }
        if retryingEINTR({ flock(f, LOCK_EX | LOCK_NB) }) != 0 {
            let e = errno
            let holder = e == EWOULDBLOCK ? Holder(pid: Self.readPid(f)) : nil
            close(f)
            throw RecorderError(what: "locking \(path)", errno: e, lockedBy: holder)
        }
        // Ours now: record who holds it.
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(f, 0)
        _ = pwrite(f, text, text.count, 0)
        fd = f
    }

    deinit { release() }

    /// Gives the lock up (also when the process ends, by the kernel).
    public func release() {
        guard fd >= 0 else { return }
        // Clear the pid while still holding the lock, then let go.
        _ = ftruncate(fd, 0)
        close(fd)
        fd = -1
    }

    /// The pid written by the holder, if it wrote one.
    static func readPid(_ f: Int32) -> Int32? {
        var buf = [UInt8](repeating: 0, count: 32)
        let n = pread(f, &buf, buf.count, 0)
        guard n > 0 else { return nil }
        let digits = buf.prefix(n).prefix { $0 >= 0x30 && $0 <= 0x39 }
        return Int32(String(decoding: digits, as: UTF8.self)).flatMap { $0 > 0 ? $0 : nil }
    }
}
