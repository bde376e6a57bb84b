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

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarize recorded JSON Lines files per port and reason (no root needed).",
        discussion: """
            Reads JSON Lines (schema v1) written by `synsight record` or `synsight trace --json`. \
            A directory means every *.jsonl and *.jsonl.gz file in it (rotated files first; a \
            file present both plain and compressed is read once). .gz files are decompressed \
            as they are read; a corrupt or truncated one is named on stderr and the rest of the \
            input is still reported. Files are streamed: memory does not grow with their size.

            For each port and reason: the number of events (a summary record counts its \
            `count`), first and last seen, the processes and clients involved, the evidence \
            and hint of the most recent record, and the steps to fix it. Then a timeline \
            per minute by reason, and the totals, including events lost in the ring buffer.

            --format html writes one self-contained HTML file (inline CSS and SVG, no script, \
            nothing loaded from elsewhere) with a chart of events over time by reason, the bar \
            width chosen from the time span (at most \(Report.chartMaxBars) bars, stated on the \
            chart), and the same per-port sections.

            Records carry the node they come from and the workload of their processes, so \
            recordings of many nodes can be reported together: --node keeps the records of a \
            node (its hostname or machine id), --workload those whose process or client \
            belongs to a workload: a systemd unit (nginx.service), a container (its name, or \
            its id or a prefix of it), a Compose service (project/service: all its \
            containers) or a Kubernetes pod (namespace/name). Both repeat; a \
            record matches any of the values given. The sections name the workload next to \
            each process and client, and, when the records come from several nodes, the \
            nodes of each reason and the events per node.

            Lines that cannot be used (truncated, not JSON, missing fields, a newer schema \
            version, a timestamp outside 1677-2262, a `count` that is not a non-negative \
            integer, longer than 1 MiB) are reported on stderr as file:line and skipped; the \
            rest is reported. Totals saturate at 18446744073709551615 rather than wrap. From a \
            directory only regular files (and symlinks to them) are read: a FIFO, device or \
            socket is named on stderr and skipped; named on the command line it is an error.

            Exit status: 0 if every line was read, 2 if some lines or files were skipped, \
            1 on a usage error, when an input could not be read, or when the report could not \
            be written (a full disk; a closed pipe, as with `| head`, is not an error).

            Examples:
              synsight report /var/log/synsight
              synsight report --port 8080 --since 2026-11-22T03:00:00Z refusals.jsonl
              synsight report --since 2h /var/log/synsight
              synsight report --node web-3 --workload shop/api node-*/synsight
              synsight report --format markdown /var/log/synsight > incident.md
              synsight report --format html /var/log/synsight > incident.html
            """
    )

    @Argument(help: ArgumentHelp("JSON Lines files, or directories of *.jsonl files.", valueName: "file-or-dir"))
    var inputs: [String] = []

    @Option(help: ArgumentHelp("Only records at or after this time: RFC 3339 (e.g. 2026-11-22T03:00:00Z), or how long "
                               + "before now (e.g. 90s, 30m, 2h, 7d).", valueName: "time"))
    var since: String?

    @Option(help: ArgumentHelp("Only records at or before this time: RFC 3339, or how long before now (e.g. 10m).",
                               valueName: "time"))
    var until: String?

    @Option(name: .customLong("port"), help: ArgumentHelp("Only records at this port, or whose client used it before a DNAT (repeatable).", valueName: "port"))
    var ports: [Int] = []

    @Option(name: .customLong("node"),
            help: ArgumentHelp("Only records from this node: hostname or machine id (repeatable).", valueName: "name"))
    var nodes: [String] = []

    @Option(name: .customLong("workload"),
            help: ArgumentHelp("Only records whose process or client is in this workload: a systemd unit, a container "
                               + "name or id prefix, or a pod as namespace/name (repeatable).", valueName: "workload"))
    var workloads: [String] = []

    @Option(help: ArgumentHelp("Output format: text, markdown, json or html.", valueName: "format"))
    var format: String = "text"

    static func parseTime(_ s: String, _ option: String) throws -> Int64 {
        switch RFC3339.parseChecked(s) {
        case .success(let t):
            return t
        case .failure(.syntax):
            // "2h": that long before now (a unit is required: a bare number is no time).
            if let unit = s.last, !unit.isNumber, case .value(let seconds) = RecordCommand.parseAge(s) {
                var now = timespec()
                clock_gettime(CLOCK_REALTIME, &now)
                return (Int64(now.tv_sec) - seconds) * 1_000_000_000 + Int64(now.tv_nsec)
            }
            throw ValidationError("\(option) must be an RFC 3339 timestamp like 2026-11-22T03:00:00Z or a duration before now "
                                  + "like 30m, 2h or 7d, got '\(TerminalText.escape(s))'")
        case .failure(.outOfRange):
            throw ValidationError("\(option) must be from \(RFC3339.representableRangeText) (the range of synsight's "
                                  + "nanosecond timestamps), got '\(TerminalText.escape(s))'")
        }
    }

    /// A --node or --workload value: not empty, no spaces or control characters.
    static func checkName(_ s: String, _ option: String, _ what: String) throws {
        if s.isEmpty || s.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7f }) {
            throw ValidationError("\(option) must be \(what), without spaces or control characters; got '\(TerminalText.escape(s))'")
        }
    }

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one file or directory to report on") }
        let s = try since.map { try Self.parseTime($0, "--since") }
        let u = try until.map { try Self.parseTime($0, "--until") }
        if let s, let u, s > u { throw ValidationError("--since (\(since!)) is after --until (\(until!))") }
        for p in ports where !(1...65535).contains(p) {
            throw ValidationError("--port must be between 1 and 65535, got \(p)")
        }
        for n in nodes { try Self.checkName(n, "--node", "a hostname or a machine id") }
        for w in workloads {
            try Self.checkName(w, "--workload", "a unit, a container name or id prefix, a Compose service or a pod as namespace/name")
            let parts = w.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count > 2 || (parts.count == 2 && parts.contains { $0.isEmpty }) {
                throw ValidationError("--workload: a pod is given as namespace/name (a Compose service as project/service), "
                                      + "got '\(TerminalText.escape(w))'")
            }
        }
        if ReportFormat(rawValue: format) == nil {
            throw ValidationError("--format must be one of text, markdown, json, html; got '\(TerminalText.escape(format))'")
        }
    }

    func run() throws {
        let options = ReportOptions(since: try since.map { try Self.parseTime($0, "--since") },
                                    until: try until.map { try Self.parseTime($0, "--until") },
                                    ports: Set(ports), nodes: nodes, workloads: workloads)
        var session = ReportSession(options: options)
        for input in inputs { session.addInput(input) }
        for d in session.diagnostics { Output.stderr("synsight: \(TerminalText.escape(d))\n") }
        let text = session.builder.report().render(ReportFormat(rawValue: format) ?? .text)
        // A closed pipe (`| head`) is a quiet success; any other failed write
        // (a full disk, /dev/full) is an error: the report is incomplete.
        try Output.stdoutOrFail(text, what: "the report to standard output",
                                consequence: "; it is incomplete: check the disk or the file it is redirected to")
        let status = session.exitStatus
        if status != 0 { throw ExitCode(status) }
    }
}
