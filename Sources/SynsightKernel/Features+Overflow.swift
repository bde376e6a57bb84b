import SynsightCore

extension KernelFeatures {
    /// Optional programs of bpf/overflow*.bpf.h, by program name, with their probe.
    var overflowOptionalPrograms: [String: ProbeResult] { [:] }
}
