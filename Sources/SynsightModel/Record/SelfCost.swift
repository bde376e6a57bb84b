import SynsightBase
/// What synsight itself costs the host while it runs (issue 16): the run
/// count and run time of each of its BPF programs (counted by the kernel only
/// while BPF statistics are on: `--bpf-stats`), the CPU of its own process
/// (the ring-buffer consumer and everything it feeds), and how full its ring
/// buffer got. Sampled by SynsightKernel, shown by the trace/record summary,
/// the metrics endpoint and `doctor --measure`.
public struct SelfCost: Sendable, Equatable {
    public struct Program: Sendable, Equatable {
        /// The BPF program's function name in bpf/ (not the kernel's 15-character name).
        public var name: String
        /// Its section: the hook, e.g. `tp_btf/inet_sock_set_state`.
        public var hook: String
        /// run_cnt and run_time_ns since the program was loaded.
        public var runs: UInt64
        public var runNs: UInt64

        public init(name: String, hook: String, runs: UInt64, runNs: UInt64) {
            self.name = name
            self.hook = hook
            self.runs = runs
            self.runNs = runNs
        }
    }

    public var programs: [Program]
    /// The kernel counted runs for this sample (BPF statistics on, through
    /// --bpf-stats or the kernel.bpf_stats_enabled sysctl). Off, every count is 0.
    public var bpfStatsEnabled: Bool
    /// User + system CPU of synsight's process since it started.
    public var cpuSeconds: Double
    /// The ring buffer's size and the most it held unread (sampled before each read).
    public var ringBytes: UInt64
    public var ringUnreadPeak: UInt64

    public init(programs: [Program] = [], bpfStatsEnabled: Bool = false, cpuSeconds: Double = 0,
                ringBytes: UInt64 = 0, ringUnreadPeak: UInt64 = 0) {
        self.programs = programs
        self.bpfStatsEnabled = bpfStatsEnabled
        self.cpuSeconds = cpuSeconds
        self.ringBytes = ringBytes
        self.ringUnreadPeak = ringUnreadPeak
    }

    public var totalRuns: UInt64 { programs.reduce(0) { $0 &+ $1.runs } }
    public var totalRunNs: UInt64 { programs.reduce(0) { $0 &+ $1.runNs } }

    /// The peak unread share of the ring buffer, 0...1.
    public var ringFillRatio: Double {
        ringBytes == 0 ? 0 : min(1, Double(ringUnreadPeak) / Double(ringBytes))
    }

    /// What ran between `earlier` and this sample (programs matched by name;
    /// counters never go back, a program absent before counts from zero).
    public func since(_ earlier: SelfCost) -> SelfCost {
        var before: [String: Program] = [:]
        for p in earlier.programs { before[p.name] = p }
        var d = self
        d.programs = programs.map { p in
            let b = before[p.name]
            return Program(name: p.name, hook: p.hook, runs: p.runs &- min(p.runs, b?.runs ?? 0),
                           runNs: p.runNs &- min(p.runNs, b?.runNs ?? 0))
        }
        d.cpuSeconds = max(0, cpuSeconds - earlier.cpuSeconds)
        return d
    }
}

/// The text form of a SelfCost (the end-of-trace summary, `doctor --measure`).
public enum SelfCostFormat {
    /// The lines printed after a trace's summary: CPU and ring buffer always;
    /// the per-program table with BPF statistics, else how to get it.
    public static func render(_ c: SelfCost, durationSeconds: Double) -> String {
        var lines: [String] = []
        lines.append("synsight's own cost: \(seconds(c.cpuSeconds)) of CPU (user+system), ring buffer at most "
            + "\(percent(c.ringFillRatio)) full (\(bytes(c.ringUnreadPeak)) of \(bytes(c.ringBytes)))")
        guard c.bpfStatsEnabled else {
            lines.append("  BPF programs: run counts and times not measured (the kernel's BPF statistics are off; "
                + "--bpf-stats turns them on for the run)")
            return lines.joined(separator: "\n")
        }
        lines.append("  BPF programs: \(grouped(c.totalRuns)) runs, \(seconds(Double(c.totalRunNs) / 1e9)) "
            + "(kernel BPF statistics, which add a little to every run)")
        lines.append(contentsOf: table(c, durationSeconds: durationSeconds).map { "  " + $0 })
        return lines.joined(separator: "\n")
    }

    /// One line per program that ran, costliest first, and a count of those that did not.
    public static func table(_ c: SelfCost, durationSeconds: Double) -> [String] {
        let ran = c.programs.filter { $0.runs > 0 }
            .sorted { ($0.runNs, $0.runs, $1.name) > ($1.runNs, $1.runs, $0.name) }
        var lines: [String] = []
        if !ran.isEmpty {
            let nameW = max(7, ran.map(\.name.count).max() ?? 0) + 2
            let hookW = max(4, ran.map(\.hook.count).max() ?? 0) + 2
            lines.append(pad("PROGRAM", nameW) + pad("HOOK", hookW) + lpad("RUNS", 12) + lpad("RUNS/S", 10)
                + lpad("NS/RUN", 8) + lpad("TOTAL MS", 10))
            let secs = max(durationSeconds, 1e-9)
            for p in ran {
                lines.append(pad(p.name, nameW) + pad(p.hook, hookW) + lpad(grouped(p.runs), 12)
                    + lpad(grouped(UInt64((Double(p.runs) / secs).rounded())), 10)
                    + lpad(grouped(p.runNs / max(p.runs, 1)), 8)
                    + lpad(fixed(Double(p.runNs) / 1e6, 1), 10))
            }
        }
        let idle = c.programs.count - ran.count
        if idle > 0 {
            lines.append("\(idle) other program\(idle == 1 ? "" : "s") attached that did not run")
        }
        return lines
    }

    // MARK: - numbers

    /// 1234567 -> "1,234,567".
    public static func grouped(_ n: UInt64) -> String {
        let s = String(n)
        var out = ""
        for (i, ch) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return out
    }

    /// Seconds with a unit that keeps three significant digits readable.
    public static func seconds(_ s: Double) -> String {
        if s >= 1 { return fixed(s, 2) + " s" }
        if s >= 1e-3 { return fixed(s * 1e3, 1) + " ms" }
        return fixed(s * 1e6, 1) + " µs"
    }

    public static func percent(_ ratio: Double) -> String { fixed(ratio * 100, 1) + "%" }

    public static func bytes(_ n: UInt64) -> String {
        if n >= 1 << 20 { return fixed(Double(n) / Double(1 << 20), 1) + " MB" }
        if n >= 1 << 10 { return fixed(Double(n) / Double(1 << 10), 1) + " KB" }
        return "\(n) B"
    }

    /// `v` with `digits` decimals (no Foundation in this module).
    public static func fixed(_ v: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (v * scale).rounded()
        guard r.isFinite, abs(r) < 9e18 else { return String(v) }
        let n = Int64(r)
        let sign = n < 0 ? "-" : ""
        let a = n.magnitude
        guard digits > 0 else { return sign + String(a) }
        let unit = UInt64(scale)
        let frac = String(a % unit)
        return sign + String(a / unit) + "." + String(repeating: "0", count: digits - frac.count) + frac
    }

    static func pad(_ s: String, _ w: Int) -> String {
        s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count)
    }

    static func lpad(_ s: String, _ w: Int) -> String {
        s.count >= w ? " " + s : String(repeating: " ", count: w - s.count) + s
    }
}
