import SynsightCore

extension KernelFeatures {
    /// Optional programs of bpf/syscall*.bpf.h, by program name, with their probe.
    var syscallOptionalPrograms: [String: ProbeResult] { [:] }
}
