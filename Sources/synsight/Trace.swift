import ArgumentParser
import Glibc
import Synchronization
import SynsightCore
import SynsightKernel


struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trace refused TCP connections live (needs root).",
        discussion: """
            Prints one line per refused connection: the port, the reason and its cause, \
            the connecting process when it is on this host, the process the refusal is \
            attributed to, and a hint. Ctrl-C (or the end of --duration / --count) prints \
            a summary to stderr.

            Examples:
              sudo synsight trace
              sudo synsight trace --port 8080 --port 8443
              sudo synsight trace --json --duration 60 > refusals.jsonl
            """
    )

    @Flag(help: "Print JSON Lines (schema v1) instead of text.")
    var json = false

    @Option(help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Option(help: ArgumentHelp("Stop after this many refusals.", valueName: "n"))
    var count: Int?

    @Option(name: .customLong("port"),
            help: ArgumentHelp("Only report refusals on this local port (repeatable, at most 16).", valueName: "port"))
    var ports: [Int] = []

    @Option(help: ArgumentHelp(
        "Use this hook for no-listener resets instead of the probed one: tcp_send_reset, fentry, kprobe, kfree_skb.",
        valueName: "hook"))
    var resetHook: String?

    @Option(help: ArgumentHelp("How long a refusal waits for the local client's side before it is printed without it.",
                               valueName: "ms"))
    var joinWindowMs: Int = 200

    @Flag(help: "Show libbpf's log (verifier output on load failures).")
    var verbose = false

    @OptionGroup(title: "Metrics")
    var metrics: MetricsOptions

    @OptionGroup(title: "Self-overhead")
    var cost: SelfCostOptions

    static let maxDuration: Double = 366 * 86400

    static func parseHook(_ s: String) -> ResetHook? {
        switch s {
        case "tcp_send_reset", "tp_btf/tcp_send_reset": return .tcpSendReset
        case "kfree_skb", "tp_btf/kfree_skb": return .kfreeSkb
        case "fentry": return .fentry
        case "kprobe": return .kprobe
        default: return nil
        }
    }

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
        if let resetHook, Self.parseHook(resetHook) == nil {
            throw ValidationError("--reset-hook must be one of tcp_send_reset, fentry, kprobe, kfree_skb; got '\(resetHook)'")
        }
        if !(0...10_000).contains(joinWindowMs) {
            throw ValidationError("--join-window-ms must be between 0 and 10000, got \(joinWindowMs)")
        }
    }

    func run() throws {
        var settings = TraceSettings()
        settings.ports = Array(Set(ports.map { UInt16($0) })).sorted()
        settings.resetHook = resetHook.flatMap(Self.parseHook)
        settings.verbose = verbose
        settings.joinWindowMs = joinWindowMs
        settings.duration = duration
        settings.count = count
        let metricsEndpoint = try metrics.start(command: "trace", ports: settings.ports)
        defer { metricsEndpoint?.stop() }
        settings.metrics = metricsEndpoint?.counters
        settings.costMetrics = metricsEndpoint?.cost
        settings.bpfStats = cost.bpfStats

        var out: [UInt8] = []
        out.reserveCapacity(1 << 16)
        var readerGone = false
        let json = self.json
        let summary = try TraceRunner.run(
            settings,
            emit: { r in
                if json {
                    JSONLines.append(r, to: &out)
                } else {
                    out.append(contentsOf: TextFormat.line(r).utf8)
                    out.append(0x0A)
                }
            },
            tick: {
                if !out.isEmpty {
                    if !Output.write(fd: STDOUT_FILENO, out) { readerGone = true }
                    out.removeAll(keepingCapacity: true)
                }
                return !readerGone
            })
        Output.stderr(summary + "\n")
    }
}
