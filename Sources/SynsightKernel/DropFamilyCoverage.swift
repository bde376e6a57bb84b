import SynsightBase
import SynsightModel

/// What this kernel lets synsight see of one `packet_dropped` cause family
/// (`doctor`, under reasons): which of its reasons the running kernel's BTF
/// names, and how the actor is named (the route state, the BPF programs).
/// Built from the probe plan (the packet-drop area's programs, or why it
/// cannot run) and DropCause.reasons: no second table of families.
public struct DropFamilyCoverage: Sendable {
    public var cause: DropCause
    /// What is seen; for a degraded family, what is missing and why.
    public var detail: String
    /// The family cannot be told on this kernel (or this run).
    public var unavailable: Bool

    /// The environment the actors are read from, probed once.
    public struct Readers: Sendable {
        /// rtnetlink RTM_GETROUTE (rp_filter's route back, no_route's lookup).
        public var routeLookup: ProbeResult
        /// A cgroup v2 hierarchy (the cgroup inet programs of a socket's owner).
        public var cgroupV2: Bool

        public init(routeLookup: ProbeResult, cgroupV2: Bool) {
            self.routeLookup = routeLookup
            self.cgroupV2 = cgroupV2
        }

        public static func probe() -> Readers {
            Readers(routeLookup: RouteReader.probe(), cgroupV2: CgroupRoot.path != nil)
        }
    }

    public static func of(_ plan: ProbePlan, names: DropReasonNames, readers: Readers) -> [DropFamilyCoverage] {
        DropCause.allCases.map { (cause: DropCause) -> DropFamilyCoverage in
            if case .cannotRun(let why) = plan.plan(for: .packetDrops) {
                return DropFamilyCoverage(cause: cause, detail: "needs \(why.needs): \(why.probe.detail)", unavailable: true)
            }
            if names.isEmpty {
                return DropFamilyCoverage(cause: cause, detail: "no enum skb_drop_reason in BTF: every drop is reported by number, its family unknown",
                                          unavailable: true)
            }
            return family(cause, names: names, readers: readers)
        }
    }

    static func family(_ cause: DropCause, names: DropReasonNames, readers: Readers) -> DropFamilyCoverage {
        switch cause {
        case .openvswitch:
            guard names.subsystemNames.contains("openvswitch") else {
                return DropFamilyCoverage(cause: cause, detail: "no openvswitch drop-reason subsystem in this kernel's BTF (6.4+)", unavailable: true)
            }
            return DropFamilyCoverage(cause: cause, detail: "the openvswitch subsystem's reasons (named when its module is loaded)", unavailable: false)
        case .other:
            let more = names.unlisted
            return DropFamilyCoverage(cause: cause, detail: "any other reason, by its BTF name (\(more.count) in this kernel"
                + (more.isEmpty ? ")" : ": \(more.prefix(6).joined(separator: ", "))\(more.count > 6 ? ", ..." : ""))"), unavailable: false)
        default:
            break
        }
        let listed = DropCause.reasons[cause] ?? []
        let have = names.named(listed)
        guard !have.isEmpty else {
            return DropFamilyCoverage(cause: cause, detail: "none of its reasons (\(listed.joined(separator: ", "))) is in this kernel's "
                + "enum skb_drop_reason: such drops come without a reason (unspecified) or not at all", unavailable: true)
        }
        let missing = listed.filter { !have.contains($0) }
        var parts = ["reason\(have.count == 1 ? "" : "s") \(have.joined(separator: ", "))"
            + (missing.isEmpty ? "" : " (not in this kernel: \(missing.joined(separator: ", ")))")]
        if let actor = actor(cause, readers: readers) { parts.append(actor) }
        return DropFamilyCoverage(cause: cause, detail: parts.joined(separator: "; "), unavailable: false)
    }

    /// How the family's actor is named, or why it is not (degraded).
    static func actor(_ cause: DropCause, readers: Readers) -> String? {
        let route = readers.routeLookup
        switch cause {
        case .rpFilter:
            return route.isSupported
                ? "the interface, its rp_filter and net.ipv4.conf.all.rp_filter (effective: the larger) and the route back to the source, read by RTM_GETROUTE in the drop's namespace when it is decoded"
                : "the interface and its sysctl; the sysctls' values and the route back UNAVAILABLE (\(route.detail))"
        case .noRoute:
            return route.isSupported
                ? "the failed lookup replayed by RTM_GETROUTE in the drop's namespace when it is decoded (input on the arrival interface for a forwarded packet): the destination, source, interface and result"
                : "the lookup that failed UNAVAILABLE (\(route.detail))"
        case .bpfProgram:
            let cgroup = readers.cgroupV2 ? "cgroup inet egress (bpf_prog_query)" : "cgroup programs UNAVAILABLE (no cgroup v2 hierarchy mounted)"
            return "the program named: tc filters (rtnetlink), tcx (bpf_prog_query, 6.6+), XDP (bpf_xdp_query), \(cgroup)"
        case .socketFilter:
            return readers.cgroupV2 ? "the receiving socket's cgroup inet ingress programs named (bpf_prog_query)"
                : "the cgroup ingress programs UNAVAILABLE (no cgroup v2 hierarchy mounted)"
        case .unspecified:
            return "the dropping function (location) tells tc, cgroup and XDP hooks apart and names their programs"
        default:
            return nil
        }
    }
}
