import SynsightBase
import SynsightModel
/// `lsm_denied/cgroup_bpf`: bind() or connect() refused by a cgroup BPF
/// program in effect on the caller's cgroup (BPF_CGROUP_INET{4,6}_BIND,
/// _POST_BIND, _CONNECT): systemd's SocketBindDeny=/SocketBindAllow=
/// (`sd_bind4`, `sd_bind6`), a policy agent's socket hooks. Such a program
/// refuses with EPERM, or with what it set through bpf_set_retval (EACCES
/// among them). The programs in effect are read when the failure is
/// attributed, from the caller's cgroup (its /proc entry while it lives,
/// else the cgroup id its event carried); synsight's own are never named.

extension AttributionEngine {
    mutating func cgroupProgramDenial(_ e: SocketCallFailure) -> Record? {
        guard e.call == .bind || e.call == .connect, let source = drops.programs else { return nil }
        let q = BPFProgramQuery(netns: e.netns, ifindex: 0, ifname: "", ingress: false, tc: false,
                                cgroupOf: e.task.pid, cgroupHooks: e.call == .bind ? BPFAttachKind.bindHooks : BPFAttachKind.connectHooks,
                                cgroupID: e.task.cgroupID)
        let found = source.programs(q)
        guard !found.programs.isEmpty else { return nil }
        var r = denialRecord(e, cause: .cgroupBPF)
        var ev = LSMDeniedEvidence(call: e)
        ev.bpfPrograms = found.programs.map(Self.programJSON)
        if !found.unavailable.isEmpty { ev.bpfProgramsUnavailable = found.unavailable.joined(separator: "; ") }
        r.evidence = ev.fields
        let (inspect, detach) = Self.programCommands(found.programs)
        r.hint = "\(e.call.name)() on port \(e.port) by \(who(e)) was refused with \(ErrnoName.name(e.errno)) by "
            + "\(Self.programsNamed(found.programs)) (inspect: \(inspect.joined(separator: ", ")); detach: \(detach.joined(separator: ", "))): "
            + Advice.for(reason: .lsmDenied, cause: r.cause,
                         facts: cgroupFacts(e, owner: found.programs.compactMap(\.owner).first, unit: r.process?.workload?.unit)).fix
        return r
    }

    func cgroupFacts(_ e: SocketCallFailure, owner: BPFProgramOwner?, unit: String?) -> Advice.Facts {
        var f = Advice.Facts(port: e.port, call: e.call, bpfOwner: owner)
        f.unit = unit
        return f
    }
}
