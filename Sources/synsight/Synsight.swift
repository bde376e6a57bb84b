import ArgumentParser
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables
import SynsightAttribution
import SynsightRecording
import SynsightReport
import SynsightExplain
import SynsightPipeline
import SynsightKernel

@main
struct Synsight: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synsight",
        abstract: "Why was this TCP connection refused? Which process, which port, and why.",
        discussion: """
            synsight watches the kernel's TCP connection-setup paths with eBPF and attributes \
            every refusal to a process, a port and a reason, with the evidence and the fix.

            Examples:
              sudo synsight trace                 live, one line per refusal
              sudo synsight trace --json --port 8080 --duration 30
              sudo synsight explain 8080          what is wrong with port 8080 right now
              sudo synsight doctor                which hook serves each reason on this kernel
            """,
        version: SynsightVersion.string,
        subcommands: [Trace.self, RecordCommand.self, ReportCommand.self, Explain.self, Doctor.self]
    )
}

enum SynsightVersion {
    static let string = "0.1.0"
}

/// Print `synsight: error: ...` and exit non-zero: one line, no stack, no libbpf dump.
func fail(_ message: String) -> ExitCode {
    Output.stderr("synsight: error: \(message)\n")
    return ExitCode.failure
}

/// Unbuffered writes to stdout/stderr through write(2). Swift 6 forbids the
/// C `stdout` global; this also lets a closed pipe end the trace cleanly.
enum Output {
    static func stderr(_ s: String) {
        write(fd: STDERR_FILENO, Array(s.utf8))
    }

    /// How writing all of a buffer ended.
    enum WriteResult: Equatable {
        case ok
        /// The reader went away (EPIPE, with SIGPIPE ignored): as with
        /// `| head`, a quiet end, not an error.
        case closedPipe
        /// Any other failure (ENOSPC on a full disk, EIO, EBADF...): the
        /// command must say so and exit non-zero.
        case failed(errno: Int32)

        /// "cannot write <what>: <reason>", for the one-line error.
        static func message(_ err: Int32, writing what: String) -> String {
            "cannot write \(what): \(String(cString: strerror(err)))"
        }
    }

    /// Writes every byte of `bytes` to `fd` (retrying short writes and EINTR).
    static func writeAll(fd: Int32, _ bytes: [UInt8]) -> WriteResult {
        var written = 0
        return writeAll(fd: fd, bytes, written: &written)
    }

    /// Writes a command's whole answer to stdout: a closed pipe (`| head`) is
    /// a quiet end; any other failed write ends the command with one line.
    /// `what` and `consequence` word the error line.
    static func stdoutOrFail(_ text: String, what: String = "to standard output", consequence: String = "") throws {
        signal(SIGPIPE, SIG_IGN)
        if case .failed(let e) = writeAll(fd: STDOUT_FILENO, Array(text.utf8)) {
            throw fail(WriteResult.message(e, writing: what) + " (\(ErrnoName.name(e)))" + consequence)
        }
    }

    /// Returns false when the write failed (the reader went away, or any
    /// other error); `writeAll` says which.
    @discardableResult
    static func write(fd: Int32, _ bytes: [UInt8]) -> Bool {
        writeAll(fd: fd, bytes) == .ok
    }
}
