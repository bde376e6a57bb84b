import Glibc

extension Output {
    /// Writes every byte of `bytes` to `fd` (retrying short writes and
    /// EINTR); `written` says how many bytes made it, so a caller can count
    /// the lines that did not (`StdoutSink`).
    static func writeAll(fd: Int32, _ bytes: [UInt8], written: inout Int) -> WriteResult {
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
}
