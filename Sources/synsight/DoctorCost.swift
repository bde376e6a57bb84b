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

/// `doctor`'s cost section: which of the hooks `trace` attaches here run for
/// healthy traffic and which only on failures; with `--measure`, what each
/// costs on this host's live traffic.
extension DoctorReport {
    /// The probe plan: each reason area with the number of programs it
    /// loads, or what it needs and why this kernel cannot give it.
    static func planLines(_ plan: ProbePlan) -> [String] {
        var l = ["", "plan (each area's programs; an area that cannot run loads nothing)"]
        for (area, p) in plan.areas {
            switch p {
            case .run(let programs):
                let names = BPFProgram.allCases.filter(programs.contains).map(\.rawValue)
                l.append("  \(area.rawValue.padding(14)) \(names.joined(separator: ", "))")
            case .cannotRun(let why):
                let state = why.probe.isInconclusive ? "NOT PROBED" : "CANNOT RUN"
                l.append("  \(area.rawValue.padding(14)) \(state) -- needs \(why.needs): \(why.probe.detail)")
            }
        }
        return l
    }

    static func costLines(_ plan: ProbePlan) -> [String] {
        let planned = plan.orderedPrograms.filter { !$0.runOnDemand }
        guard !planned.isEmpty, plan.resetHook != nil else { return [] }
        var byHook: [String: [BPFProgram]] = [:]
        for p in planned { byHook[p.section, default: []].append(p) }
        let hooks = byHook.keys.sorted()
        let w = (hooks.map(\.count).max() ?? 0) + 2
        func line(_ hook: String) -> String {
            let programs = byHook[hook]!
            return "    " + hook.padding(w) + programs.map(\.rawValue).joined(separator: ", ") + ": " + programs[0].cadence.trigger
        }
        let healthy = hooks.filter { byHook[$0]!.contains { $0.cadence.healthy } }
        let other = hooks.filter { !healthy.contains($0) }
        var l = ["", "cost (the \(planned.count) programs trace and record attach here)"]
        l.append("  run for healthy traffic:")
        l.append(contentsOf: healthy.map(line))
        l.append("  run only on failures or rare events:")
        l.append(contentsOf: other.map(line))
        if hooks.contains(where: { $0.hasPrefix("tracepoint/syscalls/") || $0.hasPrefix("tp_btf/sys_") }) {
            l.append("  while a syscall tracepoint is attached, every system call of every task on the host takes the kernel's "
                + "slow path: a cost BPF statistics do not count")
        }
        l.append("  `synsight doctor --measure 10` attaches them for 10 s with BPF statistics on and prints what each costs here")
        return l
    }

    /// Attaches what `trace` attaches for `seconds` with BPF statistics on,
    /// reads (and discards) the ring buffer, and reports each program's runs
    /// and run time on this host's traffic meanwhile.
    static func measure(seconds: Double, plan: ProbePlan) throws -> String {
        let stats: BPFStatistics
        let tracer: Tracer
        do {
            stats = try BPFStatistics.enable()
            tracer = try Tracer(options: TracerOptions(), plan: plan)
        } catch {
            throw fail(error.description)
        }
        let start = tracer.costSample()
        let deadline = bootTimeNow() + UInt64(seconds * 1e9)
        do {
            try tracer.run(onRecord: { _ in }, onTick: {}, shouldStop: { bootTimeNow() >= deadline })
        } catch {
            throw fail(error.description)
        }
        let cost = withExtendedLifetime(stats) { tracer.costSample().since(start) }
        var l = ["", "measured for \(SelfCostFormat.fixed(seconds, 1)) s on this host's traffic (BPF statistics on; "
            + "records read and discarded, so the consumer's attribution work is not in it)"]
        l.append("  BPF programs: \(SelfCostFormat.grouped(cost.totalRuns)) runs, "
            + SelfCostFormat.seconds(Double(cost.totalRunNs) / 1e9)
            + " (\(SelfCostFormat.fixed(Double(cost.totalRunNs) / 1e9 / seconds * 100, 3))% of one CPU)")
        l.append(contentsOf: SelfCostFormat.table(cost, durationSeconds: seconds).map { "  " + $0 })
        return l.joined(separator: "\n")
    }
}
