import Glibc

/// The one retry-on-EINTR loop: runs `call` (read, write, recv, flock,
/// waitpid…) again while it fails because a signal interrupted it, and
/// returns its first result that is not that (errno still set on failure).
/// Hand-written because Glibc has no TEMP_FAILURE_RETRY for Swift and
/// swift-system's `FileDescriptor` does not cover recv, flock or waitpid.
@inline(__always)
public func retryingEINTR<T: SignedInteger>(_ call: () -> T) -> T {
    while true {
        let r = call()
        if r >= 0 || errno != EINTR { return r }
    }
}

/// Reads `fd` to its end or to `limit` bytes, whichever comes first; a read
/// error ends it with what was read so far (the callers read /proc files and
/// pipes, where a short answer is treated like a missing one).
public func readToEnd(fd: Int32, limit: Int, chunk: Int = 1 << 16) -> [UInt8] {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: max(1, min(limit, chunk)))
    while out.count < limit {
        let want = min(buf.count, limit - out.count)
        let n = retryingEINTR { buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, want) } }
        if n <= 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}
