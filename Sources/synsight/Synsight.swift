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

    static func main() {
        ProcessMemory.useOneArena()  // before any thread exists
        _ = CgroupNamespace.state     // joins the host's, before any thread exists
        main(nil)
    }
}

enum SynsightVersion {
    static let string = "0.1.0"
}

/// Print `synsight: error: ...` and exit non-zero: one line, no stack, no libbpf dump.
func fail(_ message: String) -> ExitCode {
    Output.stderr("synsight: error: \(message)\n")
    return ExitCode.failure
}

/// Runs a trace session, turning its one-line error into `fail`'s.
func orFail<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as TraceError {
        throw fail(e.description)
    }
}

extension Output {
    /// Writes a command's whole answer to stdout: a closed pipe (`| head`) is
    /// a quiet end; any other failed write ends the command with one line.
    /// `what` and `consequence` word the error line.
    static func stdoutOrFail(_ text: String, what: String = "to standard output", consequence: String = "") throws {
        signal(SIGPIPE, SIG_IGN)
        if case .failed(let e) = writeAll(fd: STDOUT_FILENO, Array(text.utf8)) {
            throw fail(WriteResult.message(e, writing: what) + " (\(ErrnoName.name(e)))" + consequence)
        }
    }
}
