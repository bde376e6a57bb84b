import CLibBPF
import CSynsightABI
import SynsightModel

extension Tracer {
    /// The `.data.trs` section's map (bpf/config.bpf.h).
    static let textRangeSection = ".data.trs"

    /// Writes tcp_rcv_state_process's text range for the consume_skb filter
    /// (bpf/overflow.bpf.h), after the programs loaded and before any is
    /// attached: /proc/kallsyms has been read in the background meanwhile
    /// (PendingSymbols). Waits only when the plan has the consume_skb
    /// program. The probe chose it because the function is in the kernel's
    /// BTF and kallsyms shows addresses; should kallsyms still lack it, the
    /// program matches nothing and the overflow area says what is lost.
    static func writeTextRanges(_ objects: BPFObjectSet, plan: ProbePlan) throws(KernelError) {
        guard plan.programs.contains(.ovfConsumeSkb) else { return }
        guard let r = plan.features.tcpRcvStateProcess else {
            Diagnostics.log.warning("tcp_rcv_state_process is not in /proc/kallsyms: \(ArmingPurpose.without(.ovfConsumeSkb))")
            return
        }
        let map = try sectionMap(objects, textRangeSection)
        var key: UInt32 = 0
        var range = syn_text_range(start: r.start, end: r.end)
        let rc = bpf_map_update_elem(bpf_map__fd(map), &key, &range, 0)
        if rc != 0 { throw KernelError.sys("writing tcp_rcv_state_process's address range", code: rc) }
    }

    /// The `.data.ports` section's map (bpf/config.bpf.h).
    static let portFilterSection = ".data.ports"

    /// The --port filter, written with `ports` before anything is attached;
    /// nil without ports (the filter's code is then not even verified).
    static func portFilter(_ objects: BPFObjectSet, ports: [UInt16]) throws(KernelError) -> PortFilter? {
        guard !ports.isEmpty else { return nil }
        let map = try sectionMap(objects, portFilterSection)
        let filter = PortFilter(fd: bpf_map__fd(map))
        try filter.add(ports)
        return filter
    }

    /// The map of one of the object's own data sections (`.data.trs`, `.data.ports`).
    static func sectionMap(_ objects: BPFObjectSet, _ name: String) throws(KernelError) -> OpaquePointer {
        guard let map = objects.map(name) else {
            throw KernelError(what: "BPF object", why: "map `\(name)` missing", fix: "rebuild synsight")
        }
        return map
    }
}
