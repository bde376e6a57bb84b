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

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain the live state of one TCP port and what is wrong with it (needs root).",
        discussion: """
            Looks at the port in every network namespace of the host: who listens on it (process, \
            addresses, families, IPV6_V6ONLY, namespace), its accept and SYN queues against the \
            backlog and that namespace's somaxconn, the sysctls and kernel counters that matter, \
            nftables rules that would drop or reject it, the listeners' open-file limits, and the \
            refusals a short trace sees on it. Ends with a verdict and what to do.

            Exit status: 0 healthy, 2 problems found (degraded or broken), 1 error.

            Examples:
              sudo synsight explain 8080
              sudo synsight explain 8080 --json --duration 0
              sudo synsight explain 5432 --netns web     # as seen from /run/netns/web
            """
    )

    @Argument(help: ArgumentHelp("The TCP port (1-65535).", valueName: "port"))
    var port: Int

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Trace refusals on the port for this many seconds first (0 skips the trace).",
                               valueName: "seconds"))
    var duration: Double = 3

    @Option(help: ArgumentHelp(
        "The network namespace clients connect from: a name in /run/netns, an inode, pid:<pid>, or a path (default: synsight's own).",
        valueName: "netns"))
    var netns: String?

    @Option(help: ArgumentHelp(
        "Use this hook for no-listener resets in the short trace: tcp_send_reset, fentry, kprobe, kfree_skb.",
        valueName: "hook"))
    var resetHook: String?

    @Flag(help: "Show libbpf's log (verifier output on load failures).")
    var verbose = false

    @OptionGroup(title: "Diagnostics")
    var diagnostics: DiagnosticOptions

    static let maxDuration: Double = 3600

    func validate() throws {
        if !(1...65535).contains(port) {
            throw ValidationError("the port must be between 1 and 65535, got \(port)")
        }
        if !(duration >= 0 && duration <= Self.maxDuration) {
            throw ValidationError("--duration must be between 0 and \(Int(Self.maxDuration)) seconds, got \(duration)")
        }
        if let resetHook, Trace.parseHook(resetHook) == nil {
            throw ValidationError("--reset-hook must be one of tcp_send_reset, fentry, kprobe, kfree_skb; got '\(resetHook)'")
        }
    }

    func run() throws {
        diagnostics.apply()
        guard geteuid() == 0 else {
            throw fail("explain needs root: it enters every network namespace to read sockets, sysctls and counters "
                + "(CAP_SYS_ADMIN), reads other processes' sockets, fds and limits under /proc (CAP_SYS_PTRACE), lists "
                + "nftables rules (CAP_NET_ADMIN) and loads BPF programs for the short trace (CAP_BPF, CAP_PERFMON): "
                + "run it with sudo")
        }
        let port = UInt16(self.port)
        let viewpoint: UInt32
        if let netns {
            guard let v = PortState.resolveNetns(netns) else {
                throw fail("--netns \(netns): no such network namespace (not a name in /run/netns, a namespace inode in use, pid:<pid>, or a namespace file)")
            }
            viewpoint = v
        } else {
            guard let own = PortState.ownNetns() else { throw fail("cannot read /proc/self/ns/net: is /proc mounted?") }
            viewpoint = own
        }

        let namespaces = PortState.namespaces()
        var countersAtStart: [UInt32: [String: UInt64]]?
        let recent: RecentActivity
        do {
            if duration > 0 {
                countersAtStart = try PortState.counters(of: namespaces)
                recent = shortTrace(port)
            } else {
                recent = RecentActivity(status: .skipped)
            }
            let state = try ExplainSnapshot.gather(port: port, namespaces: namespaces, countersAtStart: countersAtStart,
                                                   podLogRoot: diagnostics.podLogDir)
            let input = ExplainInput(port: port, ts: currentClockMapping().epoch(bootTimeNow()), viewpoint: viewpoint,
                                     namespaces: state.namespaces, listeners: state.listeners,
                                     recent: recent, notes: state.notes, stoppedPublishers: state.stoppedPublishers,
                                     connecting: state.connecting, published: state.published,
                                     publishers: state.publishers)
            let report = SynsightExplain.Explain.analyze(input)
            let text = json ? ExplainFormat.jsonLine(report) : ExplainFormat.text(report)
            try Output.stdoutOrFail(text)
            if report.status != .healthy { throw ExitCode(2) }
        } catch let e as KernelError {
            throw fail(e.description)
        }
    }

    /// Traces refusals on the port for `duration` seconds with the shared
    /// trace loop. A tracer that cannot load makes the trace unavailable,
    /// not the explanation.
    func shortTrace(_ port: UInt16) -> RecentActivity {
        var settings = TraceSettings()
        settings.ports = [port]
        settings.hooks = diagnostics.hookChoices(resetHook: resetHook)
        settings.podLogDir = diagnostics.podLogDir
        settings.verbose = verbose
        settings.duration = duration
        settings.startNote = "explain: watching port \(port) for \(ExplainFormat.seconds(duration)) s "
            + "before reading its state; Ctrl-C ends the watch early"
        settings.followPublishedPorts()
        let tracer: Tracer
        do {
            tracer = try Tracer(options: TraceRunner.options(for: settings))
        } catch {
            return RecentActivity(status: .unavailable, detail: error.description)
        }
        var records: [Record] = []
        let started = bootTimeNow()
        let hook = tracer.resetHook.name
        do {
            _ = try TraceRunner.run(settings, tracer: tracer, emit: { records.append($0) }, tick: { true })
        } catch {
            Output.stderr("synsight: error: \(error)\n")
            return RecentActivity(status: .failed, seconds: Double(bootTimeNow() - started) / 1e9,
                                  detail: "the trace stopped with an error (printed above)", hook: hook, records: records)
        }
        // Ctrl-C ended the trace early; the explanation goes on, and a second Ctrl-C ends the process.
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        return RecentActivity(status: .ran, seconds: Double(bootTimeNow() - started) / 1e9, hook: hook, records: records)
    }
}
