import SynsightBase
import Glibc

/// `trace`'s standard output: one line per record, buffered and written
/// once per tick. A closed pipe (`| head -1`) ends the trace quietly; any
/// other write error (a full disk, /dev/full) ends it with an error, and
/// every record that did not make it out is counted for the summary.
public final class StdoutSink {
    public let fd: Int32
    public private(set) var outcome: Output.WriteResult = .ok
    /// Records that could not be written because writing failed (not
    /// those after a closed pipe: nobody was reading them).
    public private(set) var unwritten: UInt64 = 0
    private var buffer: [UInt8] = []

    public init(fd: Int32 = STDOUT_FILENO) {
        self.fd = fd
        buffer.reserveCapacity(1 << 16)
    }

    /// Queues one record: `write` appends its line (ending with a newline,
    /// holding no other) to the buffer; it is not even formatted once the
    /// output is gone.
    public func append(_ write: (inout [UInt8]) -> Void) {
        switch outcome {
        case .ok: write(&buffer)
        case .closedPipe: break
        case .failed: unwritten += 1
        }
    }

    /// Writes what is queued; false once the output is gone (stop tracing).
    @discardableResult
    public func flush() -> Bool {
        guard outcome == .ok else { return false }
        guard !buffer.isEmpty else { return true }
        var written = 0
        outcome = Output.writeAll(fd: fd, buffer, written: &written)
        if case .failed = outcome {
            // Each record is one line: those not written whole are lost.
            unwritten += UInt64(buffer[written...].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
        }
        buffer.removeAll(keepingCapacity: true)
        return outcome == .ok
    }
}
