import ArgumentParser
import Glibc
import Synchronization
import SynsightBase
import SynsightModel
import SynsightNftables
import SynsightAttribution
import SynsightRecording
import SynsightReport
import SynsightExplain
import SynsightPipeline
import SynsightKernel


struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trace refused TCP connections live (needs root).",
        discussion: """
            Prints one line per refused connection: the port, the reason and its cause, \
            the connecting process when it is on this host, the process the refusal is \
            attributed to, and a hint. Ctrl-C (or the end of --duration / --count) prints \
            a summary to stderr.

            On a terminal, storms are folded (--fold, --no-fold): per port, reason, cause and \
            process, at most \(terminalFold) events a second are printed, then one line with the count of \
            the rest. A write error on standard output ends the trace with an error (exit 1); \
            a closed pipe (| head) ends it quietly.

            Examples:
              sudo synsight trace
              sudo synsight trace --port 8080 --port 8443
              sudo synsight trace --json --duration 60 > refusals.jsonl
            """
    )

    @Flag(help: "Print JSON Lines (schema v1) instead of text.")
    var json = false

    // Numbers are read with `.unconditional`: `--count -1` is the value -1
    // (and gets a message saying what is wrong with it), not a missing value.
    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many refusals.", valueName: "n"))
    var count: Int?

    @Option(name: .customLong("port"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("Only events at this port, behind it when a Docker container publishes it, or whose client used it before a DNAT (repeatable, at most 16).", valueName: "port"))
    var ports: [Int] = []

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Fold repeats: per port, reason, cause and process, print at most n events a second one by one, then one line "
            + "with the count of the rest (default: \(Self.terminalFold) when standard output is a terminal and not --json, "
            + "else off). The summary's totals count every event.",
        valueName: "n"))
    var fold: Int?

    @Flag(help: "Print every event, even on a terminal.")
    var noFold = false

    @Option(help: ArgumentHelp(
        "Use this hook for no-listener resets instead of the probed one: tcp_send_reset, fentry, kprobe, kfree_skb.",
        valueName: "hook"))
    var resetHook: String?

    @Option(parsing: .unconditional,
            help: ArgumentHelp("How long a refusal waits for the local client's side before it is printed without it.",
                               valueName: "ms"))
    var joinWindowMs: Int = 200

    @Flag(help: "Show libbpf's log (verifier output on load failures).")
    var verbose = false

    @Option(help: .hidden)
    var testRulesetDelayMs: Int = 0

    @Option(help: .hidden)
    var testConnectTableSets: Int = 0
    /// Tests only: the overflow program is detached after this much quiet (OverflowArming).
    @Option(help: .hidden)
    var testOverflowQuietMs: Int? = nil

    @OptionGroup(title: "Diagnostics")
    var diagnostics: DiagnosticOptions

    @OptionGroup(title: "Metrics")
    var metrics: MetricsOptions

    @OptionGroup(title: "Storms")
    var kernelFoldOptions: KernelFoldOptions

    @OptionGroup(title: "Self-overhead")
    var cost: SelfCostOptions

    static let maxDuration: Double = 366 * 86400
    /// Events per key and second printed one by one on a terminal.
    static let terminalFold = 10

    /// How many identical events a second pass before folding (nil: never fold).
    static func foldLimit(fold: Int?, noFold: Bool, json: Bool, isTerminal: Bool) -> Int? {
        if noFold { return nil }
        if let fold { return fold }
        return isTerminal && !json ? terminalFold : nil
    }

    static func parseHook(_ s: String) -> ResetHook? { HookChoices.resetHook(named: s) }

    func validate() throws {
        if let duration, !(duration > 0 && duration <= Self.maxDuration) {
            throw ValidationError("--duration must be a positive number of seconds up to \(Int(Self.maxDuration)) (one year), got \(duration)")
        }
        if let count, count <= 0 {
            throw ValidationError("--count must be a positive number, got \(count)")
        }
        for p in ports where !(1...65535).contains(p) {
            throw ValidationError("--port must be between 1 and 65535, got \(p)")
        }
        if Set(ports).count > 16 {
            throw ValidationError("at most 16 different --port values are supported, got \(Set(ports).count)")
        }
        let sets = testConnectTableSets
        if sets != 0, !(1...TracerOptions.connectTableSets).contains(sets) || sets & (sets - 1) != 0 {
            throw ValidationError("--test-connect-table-sets must be a power of two up to \(TracerOptions.connectTableSets), got \(sets)")
        }
        if let resetHook, Self.parseHook(resetHook) == nil {
            throw ValidationError("--reset-hook must be one of tcp_send_reset, fentry, kprobe, kfree_skb; got '\(resetHook)'")
        }
        if let fold, fold < 1 {
            throw ValidationError("--fold must be at least 1 (--no-fold prints every event), got \(fold)")
        }
        if fold != nil && noFold {
            throw ValidationError("--fold and --no-fold cannot be used together")
        }
        if !(0...10_000).contains(joinWindowMs) {
            throw ValidationError("--join-window-ms must be between 0 and 10000, got \(joinWindowMs)")
        }
    }

    func run() throws {
        diagnostics.apply()
        var settings = TraceSettings()
        settings.ports = Array(Set(ports.map { UInt16($0) })).sorted()
        settings.hooks = diagnostics.hookChoices(resetHook: resetHook)
        settings.podLogDir = diagnostics.podLogDir
        settings.verbose = verbose
        settings.joinWindowMs = joinWindowMs
        settings.followPublishedPorts()
        settings.duration = duration
        settings.count = count
        settings.rulesetDelayMs = testRulesetDelayMs
        settings.connectTableSetsInUse = testConnectTableSets
        settings.overflowQuietNs = testOverflowQuietMs.map { UInt64(max(0, $0)) * 1_000_000 }
        let metricsEndpoint = try metrics.start(command: "trace", ports: settings.ports)
        defer { metricsEndpoint?.stop() }
        settings.metrics = metricsEndpoint?.counters
        settings.aggregate = Self.foldLimit(fold: fold, noFold: noFold, json: json, isTerminal: isatty(STDOUT_FILENO) == 1)
        settings.costMetrics = metricsEndpoint?.cost
        settings.bpfStats = cost.bpfStats
        settings.kernelFold = !kernelFoldOptions.noKernelFold

        let sink = StdoutSink()
        let json = self.json
        var (summary, seconds, cost) = try orFail {
            try TraceRunner.run(
                settings,
                emit: { r in
                    sink.append { out in
                        if json {
                            JSONLines.append(r, to: &out)
                        } else {
                            out.append(contentsOf: TextFormat.line(r).utf8)
                            out.append(0x0A)
                        }
                    }
                },
                tick: { sink.flush() })
        }
        if case .failed(let e) = sink.outcome {
            summary.addUnwritten(sink.unwritten, target: "standard output")
            Output.stderr(summary.render(durationSeconds: seconds) + "\n" + cost + "\n")
            throw fail(Output.WriteResult.message(e, writing: "to standard output") + " (\(ErrnoName.name(e))); "
                + "\(sink.unwritten) record\(sink.unwritten == 1 ? "" : "s") not written (free space, or write elsewhere)")
        }
        Output.stderr(summary.render(durationSeconds: seconds) + "\n" + cost + "\n")
    }
}
