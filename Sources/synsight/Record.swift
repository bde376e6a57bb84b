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

struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Record refusals continuously to rotated JSON Lines files (needs root).",
        discussion: """
            Writes the JSON Lines contract (schema v1) to DIR/synsight.jsonl, rotated by size to \
            DIR/synsight-<UTC time>.jsonl and pruned by count and age. Files are created 0640 and \
            never written through a symlink.

            Durability: lines are written whole, at least every --flush-interval-ms; after a crash \
            the next start removes a partial last line. Nothing written is lost when the process \
            is killed; after a power loss, what was not yet fsynced is (--fsync: never, rotate \
            [default], always).

            Storms: per port, reason, cause and process, at most --aggregate events per second are \
            written one by one; the rest of that second becomes one `summary` record with `count`, \
            `first_ts` and `last_ts`. No event is ever dropped from the totals.

            Faults: when the directory is full or gone, recording pauses (reported on stderr), \
            events are counted, and a `lost` record with the count is written when it works again.

            One recorder per directory: a second one is refused (a lock on DIR/.synsight.lock, \
            released by the kernel when the recorder ends, even by SIGKILL).

            Compression (--compress, default off): each rotated file is gzipped to \
            synsight-<UTC time>.jsonl.gz by a background thread (never the active file), written to a \
            .tmp file, fsynced and renamed, then the plain file is removed; leftovers of a crash are \
            cleaned at start. --max-files and --max-age count compressed files. `synsight report` \
            reads .gz files directly.

            Signals: SIGTERM/SIGINT flush and exit; SIGHUP reopens the file (logrotate `copytruncate` \
            is not needed: rotate by moving the file, then send SIGHUP).

            Example:
              sudo synsight record --dir /var/log/synsight --max-file-size 100M --max-files 20 --max-age 14d
            """
    )

    @Option(help: ArgumentHelp("Directory to record into (created if missing).", valueName: "dir"))
    var dir: String

    @Option(parsing: .unconditional, help: ArgumentHelp("Rotate the active file at this size (bytes, or with K/M/G).", valueName: "size"))
    var maxFileSize: String = "64M"

    @Option(parsing: .unconditional, help: ArgumentHelp("Keep at most this many rotated files.", valueName: "n"))
    var maxFiles: Int = 10

    @Option(parsing: .unconditional, help: ArgumentHelp("Delete rotated files older than this (e.g. 3600, 30m, 12h, 7d).", valueName: "age"))
    var maxAge: String?

    @Option(help: ArgumentHelp("When to fsync: never, rotate, always.", valueName: "policy"))
    var fsync: String = "rotate"

    @Option(parsing: .unconditional, help: ArgumentHelp("Write buffered lines at least this often.", valueName: "ms"))
    var flushIntervalMs: Int = 1000

    @Option(parsing: .unconditional, help: ArgumentHelp("Identical events per second written one by one before folding into a summary (0: never fold).",
                               valueName: "n"))
    var aggregate: Int = 10

    @Flag(help: "Gzip rotated files in the background (default: off).")
    var compress = false

    @Option(name: .customLong("port"), parsing: .unconditionalSingleValue, help: ArgumentHelp("Only record events at this port, behind it when a Docker container publishes it, or whose client used it before a DNAT (repeatable, at most 16).", valueName: "port"))
    var ports: [Int] = []

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Flag(help: "Show libbpf's log.")
    var verbose = false

    @OptionGroup(title: "Diagnostics")
    var diagnostics: DiagnosticOptions

    @OptionGroup(title: "Metrics")
    var metrics: MetricsOptions

    @OptionGroup(title: "Storms")
    var kernelFoldOptions: KernelFoldOptions

    @OptionGroup(title: "Self-overhead")
    var cost: SelfCostOptions

    /// A number with an optional unit suffix, as the size and age options take it.
    enum Amount: Equatable {
        case value(Int64)
        /// Not a positive whole number with a known suffix.
        case invalid
        /// More than `limit` (also when it does not fit in 64 bits).
        case tooLarge
    }

    /// The largest --max-file-size: 1 TiB (rotation is there to keep files small).
    static let maxFileSizeLimit: Int64 = 1 << 40
    /// The largest --max-age: 100 years.
    static let maxAgeLimit: Int64 = 36_500 * 86_400

    static func parseAmount(_ s: String, units: [Character: Int64], limit: Int64) -> Amount {
        guard let last = s.last else { return .invalid }
        var digits = Substring(s)
        var mult: Int64 = 1
        if let m = units[last] {
            mult = m
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return .invalid }
        guard let v = Int64(digits) else { return .tooLarge }  // all digits: only overflow fails
        guard v > 0 else { return .invalid }
        let (r, overflow) = v.multipliedReportingOverflow(by: mult)
        return overflow || r > limit ? .tooLarge : .value(r)
    }

    static func parseSize(_ s: String) -> Amount {
        parseAmount(s, units: ["K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "m": 1 << 20, "G": 1 << 30, "g": 1 << 30],
                    limit: maxFileSizeLimit)
    }

    static func parseAge(_ s: String) -> Amount {
        parseAmount(s, units: ["s": 1, "m": 60, "h": 3600, "d": 86400], limit: maxAgeLimit)
    }

    func validate() throws {
        guard !dir.isEmpty else { throw ValidationError("--dir must not be empty") }
        switch Self.parseSize(maxFileSize) {
        case .value(let size) where size >= 4096: break
        case .tooLarge:
            throw ValidationError("--max-file-size is too large: at most \(Self.maxFileSizeLimit >> 30)G, got '\(TerminalText.escape(maxFileSize))'")
        default:
            throw ValidationError("--max-file-size must be at least 4096 bytes (e.g. 64M), got '\(TerminalText.escape(maxFileSize))'")
        }
        guard maxFiles >= 1 else { throw ValidationError("--max-files must be at least 1, got \(maxFiles)") }
        switch maxAge.map(Self.parseAge) {
        case nil, .value: break
        case .tooLarge:
            throw ValidationError("--max-age is too large: at most \(Self.maxAgeLimit / 86400)d, got '\(TerminalText.escape(maxAge ?? ""))'")
        case .invalid:
            throw ValidationError("--max-age must be a positive duration (e.g. 3600, 30m, 12h, 7d), got '\(TerminalText.escape(maxAge ?? ""))'")
        }
        guard Recorder.FsyncPolicy(rawValue: fsync) != nil else {
            throw ValidationError("--fsync must be one of never, rotate, always; got '\(fsync)'")
        }
        guard (10...60_000).contains(flushIntervalMs) else {
            throw ValidationError("--flush-interval-ms must be between 10 and 60000, got \(flushIntervalMs)")
        }
        guard aggregate >= 0 else { throw ValidationError("--aggregate must be 0 or more, got \(aggregate)") }
        for p in ports where !(1...65535).contains(p) {
            throw ValidationError("--port must be between 1 and 65535, got \(p)")
        }
        if Set(ports).count > 16 { throw ValidationError("at most 16 different --port values are supported") }
        if let duration, !(duration > 0 && duration <= Trace.maxDuration) {
            throw ValidationError("--duration must be a positive number of seconds up to \(Int(Trace.maxDuration)), got \(duration)")
        }
    }

    func run() throws {
        diagnostics.apply()
        var opts = Recorder.Options(directory: dir)
        if case .value(let size) = Self.parseSize(maxFileSize) { opts.maxFileSize = size }
        opts.maxFiles = maxFiles
        if let maxAge, case .value(let age) = Self.parseAge(maxAge) { opts.maxAgeSeconds = age }
        opts.fsync = Recorder.FsyncPolicy(rawValue: fsync) ?? .rotate
        opts.compress = compress
        let recorder = Recorder(options: opts)
        recorder.onError = { Output.stderr("synsight: \($0)\n") }
        recorder.onCompressionError = { Output.stderr("synsight: \(TerminalText.escape($0))\n") }
        do {
            let repaired = try recorder.open()
            if repaired > 0 {
                Output.stderr("synsight: removed a partial last line (\(repaired) bytes) left by an earlier crash in \(dir)/\(Recorder.activeName)\n")
            }
        } catch where error.lockedBy != nil {
            throw fail("cannot record to \(TerminalText.escape(dir)): \(error); stop it or use another --dir")
        } catch {
            throw fail("cannot record to \(dir): \(error) (choose a writable directory with --dir)")
        }
        for note in recorder.startupNotes { Output.stderr("synsight: \(TerminalText.escape(note))\n") }
        recorder.prune()

        var settings = TraceSettings()
        settings.ports = Array(Set(ports.map { UInt16($0) })).sorted()
        settings.verbose = verbose
        settings.hooks = diagnostics.hookChoices
        settings.podLogDir = diagnostics.podLogDir
        settings.followPublishedPorts()
        settings.duration = duration
        settings.aggregate = aggregate > 0 ? aggregate : nil
        settings.reopenOnHUP = true
        let metricsEndpoint = try metrics.start(command: "record", ports: settings.ports)
        defer { metricsEndpoint?.stop() }
        settings.metrics = metricsEndpoint?.counters
        settings.costMetrics = metricsEndpoint?.cost
        settings.bpfStats = cost.bpfStats
        settings.kernelFold = !kernelFoldOptions.noKernelFold

        let flushEvery = UInt64(flushIntervalMs) * 1_000_000
        var lastFlush = bootTimeNow()
        var (summary, seconds, cost) = try orFail {
            try TraceRunner.run(
                settings,
                emit: { recorder.append($0) },
                tick: {
                    if reopenRequested.exchange(false, ordering: .relaxed) { recorder.reopen() }
                    let now = bootTimeNow()
                    if now - lastFlush >= flushEvery {
                        recorder.flush()
                        lastFlush = now
                        metricsEndpoint?.counters.recorderTotals(written: recorder.linesWritten, lost: recorder.linesLost)
                    }
                    return true
                })
        }
        recorder.close()
        if recorder.linesLost > 0 { summary.addUnwritten(recorder.linesLost, target: TerminalText.escape(dir)) }
        Output.stderr(summary.render(durationSeconds: seconds) + "\n" + cost + "\n")
    }
}
