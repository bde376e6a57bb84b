import Glibc
import SynsightKernel

/// What became of a write to standard output (or any descriptor).
enum WriteOutcome: Equatable {
    case ok
    /// EPIPE: the reader went away (`| head -1`). Not an error: the command ends quietly.
    case closedPipe
    /// Any other error (ENOSPC on a full disk or /dev/full, EIO, EBADF...).
    case failed(errno: Int32)

    /// "No space left on device (ENOSPC)", for the one-line error.
    static func describe(_ e: Int32) -> String {
        "\(String(cString: strerror(e))) (\(Errno.name(e)))"
    }
}

extension Output {
    /// Writes all of `bytes` (short writes and EINTR are retried). `written`
    /// says how many bytes made it, so a caller can count the lines that did not.
    static func writeAll(fd: Int32, _ bytes: [UInt8], written: inout Int) -> WriteOutcome {
        written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                return e == EPIPE ? .closedPipe : .failed(errno: e)
            }
            written += n
        }
        return .ok
    }

    static func writeAll(fd: Int32, _ bytes: [UInt8]) -> WriteOutcome {
        var written = 0
        return writeAll(fd: fd, bytes, written: &written)
    }
}
