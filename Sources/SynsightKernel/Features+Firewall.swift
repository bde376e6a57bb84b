import SynsightCore

extension KernelFeatures {
    /// Optional programs of bpf/firewall*.bpf.h, by program name, with their probe.
    var firewallOptionalPrograms: [String: ProbeResult] { [:] }
}
