import ArgumentParser
import Glibc
import SynsightCore
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

    /// Returns false when the write failed (the reader went away, or an
    /// error: `writeAll` tells them apart).
    @discardableResult
    static func write(fd: Int32, _ bytes: [UInt8]) -> Bool {
        writeAll(fd: fd, bytes) == .ok
    }
}
