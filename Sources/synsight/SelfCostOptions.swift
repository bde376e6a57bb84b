import SynsightBase
import ArgumentParser

/// `--bpf-stats`, shared by `trace`, `record` and `doctor --measure`.
struct SelfCostOptions: ParsableArguments {
    @Flag(help: ArgumentHelp(
        "Turn on the kernel's BPF statistics while synsight runs (BPF_ENABLE_STATS, never the sysctl), so that the summary "
            + "and the metrics show each of its BPF programs' run count and run time. They add two clock reads to every "
            + "BPF program run on the host while on."))
    var bpfStats = false
}
