import CSynsightShim
import Synchronization

/// The probes that load a BPF program (CSynsightShim's syn_probe_*), counted:
/// the probe-plan tests check that reading a plan again loads nothing.
enum ProgramProbe {
    static let loads = Atomic<Int>(0)

    /// 0 when a tp_btf program attached to raw tracepoint `name` loads, else a negative errno.
    static func tpBtf(_ name: String) -> Int32 {
        loads.add(1, ordering: .relaxed)
        return syn_probe_tp_btf(name)
    }

    static func fentry(_ function: String) -> Int32 {
        loads.add(1, ordering: .relaxed)
        return syn_probe_fentry(function)
    }

    static func fexit(_ function: String) -> Int32 {
        loads.add(1, ordering: .relaxed)
        return syn_probe_fexit(function)
    }
}
