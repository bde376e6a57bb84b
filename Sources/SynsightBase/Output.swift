import Glibc

/// Unbuffered writes to stdout/stderr through write(2). Swift 6 forbids the
/// C `stdout` global; this also lets a closed pipe end the trace cleanly.
public enum Output {
    public static func stderr(_ s: String) {
        write(fd: STDERR_FILENO, Array(s.utf8))
    }

    /// How writing all of a buffer ended.
    public enum WriteResult: Equatable, Sendable {
        case ok
        /// The reader went away (EPIPE, with SIGPIPE ignored): as with
        /// `| head`, a quiet end, not an error.
        case closedPipe
        /// Any other failure (ENOSPC on a full disk, EIO, EBADF...): the
        /// command must say so and exit non-zero.
        case failed(errno: Int32)

        /// "cannot write <what>: <reason>", for the one-line error.
        public static func message(_ err: Int32, writing what: String) -> String {
            "cannot write \(what): \(String(cString: strerror(err)))"
        }
    }

    /// Returns false when the write failed (the reader went away, or any
    /// other error); `writeAll` says which.
    @discardableResult
    public static func write(fd: Int32, _ bytes: [UInt8]) -> Bool {
        writeAll(fd: fd, bytes) == .ok
    }

    /// Writes every byte of `bytes` to `fd` (retrying short writes and EINTR).
    public static func writeAll(fd: Int32, _ bytes: [UInt8]) -> WriteResult {
        var written = 0
        return writeAll(fd: fd, bytes, written: &written)
    }
}

extension Output {
    /// Writes every byte of `bytes` to `fd` (retrying short writes and
    /// EINTR); `written` says how many bytes made it, so a caller can count
    /// the lines that did not (`StdoutSink`).
    public static func writeAll(fd: Int32, _ bytes: [UInt8], written: inout Int) -> WriteResult {
        written = 0
        while written < bytes.count {
            let n = retryingEINTR { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) } }
            if n < 0 {
                let e = errno
                return e == EPIPE ? .closedPipe : .failed(errno: e)
            }
            written += n
        }
        return .ok
    }
}
