import ArgumentParser
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

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what this kernel lets synsight see: the hook serving each reason, and what is degraded.",
        discussion: "Probes by loading small BPF programs and reading kernel BTF; run it as root for conclusive answers."
    )

    @Option(help: ArgumentHelp("Also attach what `trace` attaches for this many seconds, with the kernel's BPF statistics on, "
                               + "and print what each program costs on this host's traffic.", valueName: "seconds"))
    var measure: Double?

    func validate() throws {
        if let measure, !(measure > 0 && measure <= 3600) {
            throw ValidationError("--measure must be a number of seconds between 0 and 3600, got \(measure)")
        }
    }

    @OptionGroup(title: "Diagnostics")
    var diagnostics: DiagnosticOptions

    func run() throws {
        diagnostics.apply()
        // Probed once; the report and --measure read this one plan.
        let plan = ProbePlan.probe(diagnostics.hookChoices)
        let f = plan.features
        try Output.stdoutOrFail(DoctorReport.render(plan) + "\n"
            + DoctorReport.workloadLines(WorkloadSources.probe(podLogRoot: diagnostics.podLogDir), node: NodeIdentityReader.read())
                .joined(separator: "\n") + "\n")
        if !f.privileges.isSupported || !f.btf.isSupported { throw ExitCode.failure }
        if let measure { try Output.stdoutOrFail(try DoctorReport.measure(seconds: measure, plan: plan) + "\n") }
    }
}

enum DoctorReport {
    /// "?": the probe could not run without privileges; it says nothing about the kernel.
    static func mark(_ r: ProbeResult) -> String { r.isSupported ? "yes" : r.isInconclusive ? "?  " : "no " }

    static let reasons = ([.noListener, .firewallReject, .firewallDrop, .acceptQueueFull, .synQueueFull,
                           .fdExhausted, .addressInUse, .privilegedPort, .addressNotAvailable, .lsmDenied,
                           .ephemeralPortsExhausted, .noRoute, .noRouteBack] as [Reason]).map(\.rawValue)

    static func hooks(_ f: KernelFeatures) -> [(String, ProbeResult)] {
        [("tp_btf/tcp_send_reset (no-socket)", f.tcpSendResetNoSocket),
         ("fentry/tcp_v{4,6}_send_reset", f.fentrySendReset),
         ("kprobe/tcp_v{4,6}_send_reset", f.kprobeSendReset),
         ("tp_btf/kfree_skb (NO_SOCKET)", f.kfreeSkbNoSocket),
         ("tp_btf/inet_sock_set_state", f.inetSockSetState),
         ("tp_btf/sched_process_exit", f.schedProcessExit)]
    }

    /// What could not be probed without privileges, each named once
    /// ("tp_btf/kfree_skb", "/proc/kallsyms", "tracefs", ...).
    static func unprobed(_ f: KernelFeatures) -> [String] {
        var seen = Set<String>()
        return f.allResults.compactMap { r in
            guard case .inconclusive(let i) = r else { return nil }
            return seen.insert(i.what).inserted ? i.what : nil
        }
    }

    static func render(_ plan: ProbePlan) -> String {
        let f = plan.features
        var l: [String] = []
        l.append("synsight \(SynsightVersion.string) on Linux \(f.release)")
        l.append("")
        let privileged = f.privileges.isSupported
        if !privileged {
            let missed = unprobed(f)
            l.append("synsight doctor needs root (or CAP_BPF and CAP_PERFMON) to probe this kernel: "
                + "\(missed.count) check\(missed.count == 1 ? "" : "s") could not run (\(missed.joined(separator: ", "))).")
            l.append("Marked ? below: not known, not missing. Run `sudo synsight doctor` for conclusive answers.")
            l.append("")
        }
        l.append("environment")
        l.append("  \(mark(f.btf))  kernel BTF            \(f.btf.detail)")
        l.append("  \(mark(f.privileges))  privileges            \(f.privileges.detail)")
        l.append("")
        l.append("hooks")
        for (name, r) in hooks(f) {
            l.append("  \(mark(r))  \(name.padding(36)) \(r.detail)")
        }
        l.append("")
        l.append("reasons")
        guard privileged else {
            // Which hook serves a reason is known only once its programs could load.
            return (l + reasons.map { "  \($0.padding(24)) UNKNOWN -- not probed without root" }).joined(separator: "\n")
        }
        switch (plan.plan(for: .noListener), plan.resetHook) {
        case (.run, let hook?):
            let fidelity: String
            switch hook {
            case .tcpSendReset: fidelity = "full: every no-socket RST, with the kernel's reset reason"
            case .fentry, .kprobe: fidelity = "full: the function that sends the no-socket RST"
            case .kfreeSkb: fidelity = "full, at higher cost: filters every dropped packet for NO_SOCKET"
            }
            l.append("  no_listener              \(hook.name) -- \(fidelity); the SYN's arrival device and VRF and "
                     + "each listener's bound device named in BPF (device- and VRF-bound listeners); a stopped Docker "
                     + "container's published port from its hostconfig.json")
        case (.cannotRun(let why), _):
            l.append("  no_listener              UNAVAILABLE -- \(why.error.why)")
        case (.run, nil):
            l.append("  no_listener              UNAVAILABLE -- no hook planned")
        }
        let stateless = f.connectWithoutStateHook
        let registry = stateless.isSupported
            ? "listen() exits + /proc snapshot at start; closes found when a refusal or a SYN to the port needs them, else by a sweep every 5 s"
            : f.inetSockSetState.isSupported ? "tp_btf/inet_sock_set_state + /proc snapshot at start" : "UNAVAILABLE: \(f.inetSockSetState.detail)"
        l.append("    listener registry      \(registry)")
        l.append("    listener exits         " + (f.schedProcessExit.isSupported ? "tp_btf/sched_process_exit (exit status and signal)" : "UNAVAILABLE: \(f.schedProcessExit.detail)"))
        l.append("    local client identity  " + (stateless.isSupported
            ? "cgroup/connect{4,6} on the root cgroup v2 (\(stateless.detail); process context), joined by 4-tuple"
            : f.inetSockSetState.isSupported ? "tp_btf/inet_sock_set_state CLOSE->SYN_SENT (process context), joined by 4-tuple (no state-change-free way: \(stateless.detail))" : "UNAVAILABLE"))
        l.append(contentsOf: firewallLines(f))
        l.append(contentsOf: packetDropLines(plan))
        l.append(connectTimeoutLine(f))
        l.append(abandonedConnectLine(plan))
        l.append(injectedResetLine(f))
        l.append(contentsOf: overflowLines(f, armed: plan.armsOverflow))
        l.append(contentsOf: syscallLines(f))
        l.append(contentsOf: planLines(plan))
        l.append(contentsOf: costLines(plan))
        return l.joined(separator: "\n")
    }

    /// packet_dropped, then a line per cause family: what this kernel's BTF
    /// names of it and how its actor is named (DropFamilyCoverage, from the plan).
    static func packetDropLines(_ plan: ProbePlan) -> [String] {
        let f = plan.features
        let probe = f.packetDropProbe
        let head = probe.isSupported
            ? "  packet_dropped           tp_btf/kfree_skb, a SYN or SYN-ACK with any reason but NETFILTER_DROP, NO_SOCKET, "
                + "TCP_LISTEN_OVERFLOW; the final ACK, or the RST or ICMP error answering a SYN, with a reason of "
                + "\(DropCause.answerFailures.map(\.rawValue).sorted().joined(separator: ", ")) "
                + "(\(f.dropReasons.codes(of: DropCause.answerFailures).count) on this kernel) -- \(f.packetDropDetail())"
            : "  packet_dropped           UNAVAILABLE -- \(probe.detail)"
        let families = DropFamilyCoverage.of(plan, names: plan.features.dropReasons, readers: .probe())
        return [head] + families.map { c in
            "    \(c.cause.rawValue.padding(22)) " + (c.unavailable ? "UNAVAILABLE -- " : "") + c.detail
        }
    }

    /// Timeouts explained: where an unanswered connect()'s SYNs went (bpf/timeouts.bpf.h).
    static func connectTimeoutLine(_ f: KernelFeatures) -> String {
        let report = f.firewall.softError, retransmit = f.firewall.retransmit
        guard report.isSupported else { return "  connect_timeout          UNAVAILABLE -- \(report.detail) (timeouts stay unknown/timed_out)" }
        let ipv6 = retransmit.isSupported
            ? "IPv6 route from tp_btf/tcp_retransmit_skb" : "IPv6 route UNAVAILABLE (\(retransmit.detail))"
        return "  connect_timeout          tp_btf/inet_sk_error_report (ETIMEDOUT): egress device, gateway, SYN retransmissions "
            + "from the socket; \(ipv6); joined with this host's drops of the same attempt"
    }

    /// A connect() its application gives up on, unanswered (bpf/timeouts.bpf.h).
    static func abandonedConnectLine(_ plan: ProbePlan) -> String {
        let f = plan.features
        let head = "    abandoned_by           "
        guard f.firewall.retransmit.isSupported else {
            return head + "UNAVAILABLE -- needs tp_btf/tcp_retransmit_skb: \(f.firewall.retransmit.detail) "
                + "(a connect() the application gives up on is not reported; the kernel's ETIMEDOUT is)"
        }
        if plan.programs.contains(.tmoDestroySock) {
            return head + "tp_btf/tcp_destroy_sock (a socket closed in SYN_SENT, unanswered, no error), "
                + "\(ArmingPurpose.abandonedConnects.periodText) watch; attached only while a connect()'s SYN is unanswered "
                + "(it runs for every TCP socket destroyed meanwhile), or a close with SO_LINGER 0 at its tp_btf/inet_sk_error_report; "
                + "an application that gives up within 1 s is not seen"
        }
        if plan.programs.contains(.sockState) {
            return head + "tp_btf/inet_sock_set_state (SYN_SENT -> CLOSE with no error, after a SYN retransmission)"
        }
        return head + "UNAVAILABLE -- \(f.tcpDestroySock.detail) (a connect() the application gives up on is not reported)"
    }

    /// Injected resets: the refusing RST's TTL against the peer's (bpf/resets.bpf.h).
    static func injectedResetLine(_ f: KernelFeatures) -> String {
        let r = f.resetTTL
        guard r.hook != nil else {
            return "  injected_reset_suspected UNAVAILABLE -- needs fentry or kprobe on tcp_reset: \(r.reset.detail) "
                + "(refusals by remote peers stay unknown/connection_refused, without the reset's TTL)"
        }
        return "  injected_reset_suspected \(r.reset.hook!.name): the refusing RST's TTL or hop limit; baseline from "
            + "\(r.baseline.hook!.name) (watched peers' SYN-ACKs), attached after a refusal, detached after 10 min without one"
    }

    /// Where process objects get their unit, container and pod names, and
    /// the node identity every record carries.
    static func workloadLines(_ w: WorkloadSources, node: NodeIdentity) -> [String] {
        var l = ["", "workload identity (process objects: cgroup, unit, container, pod; records: netns_name, node)"]
        l += w.doctorLines.map { "  " + $0 }
        let parts = [node.hostname.map { "hostname \($0)" }, node.machineID.map { "machine-id \($0)" },
                     node.bootID.map { "boot-id \($0)" }].compactMap { $0 }
        l.append("  node                     " + (parts.isEmpty ? "UNAVAILABLE: no hostname, /etc/machine-id or boot_id" : parts.joined(separator: ", ")))
        return l.map(TerminalText.escape)
    }

    static func firewallLines(_ f: KernelFeatures) -> [String] {
        let drop = f.firewall.drop, icmp = f.firewall.icmp, retrans = f.firewall.retransmit
        guard drop.isSupported else {
            return ["  firewall_reject          UNAVAILABLE -- \(drop.detail)",
                    "  firewall_drop            UNAVAILABLE -- \(drop.detail)"]
        }
        let rules = "rule named from the netns ruleset (read in-process with libnftables, read-only; iptables-legacy tables with "
            + "iptables-legacy-save; IPVS virtual services from /proc/net/ip_vs where ip_vs is loaded, for SYNs IPVS refused)"
        return [
            "  firewall_reject          tp_btf/kfree_skb NETFILTER_DROP + client errno"
                + (icmp.isSupported ? " + tp_btf/icmp_send (IPv4 ICMP)" : " (no icmp_send: \(icmp.detail))") + "; \(rules)",
            "  firewall_drop            tp_btf/kfree_skb NETFILTER_DROP + retransmitted SYN"
                + (retrans.isSupported ? " (and tp_btf/tcp_retransmit_skb for local clients)" : " (no tcp_retransmit_skb: \(retrans.detail))"),
            conntrackLine(f),
        ]
    }

    /// Conntrack's own drops and `ct state invalid` rules (bpf/conntrack.bpf.h).
    static func conntrackLine(_ f: KernelFeatures) -> String {
        let ct = f.firewall.conntrack
        guard ct.isSupported else { return "    conntrack              UNAVAILABLE -- \(ct.detail)" }
        return "    conntrack              at NETFILTER_DROP: ct state from skb->_nfct, the namespace's table use from "
            + "nf_conntrack_net.count (net->gen), \(ConntrackLimits.maxSysctl) from /proc -- a `ct state invalid` rule: "
            + "cause conntrack_invalid; a full table (no rule): cause conntrack_full (\(ct.detail))"
    }
}

extension DoctorReport {
    /// Listen-queue overflow and accept() failures (bpf/overflow.bpf.h).
    /// `armed`: the plan attaches the overflow programs on anomaly (ProbePlan.armsOverflow).
    static func overflowLines(_ f: KernelFeatures, armed: Bool) -> [String] {
        let o = f.overflow
        let syn = o.perSYN, ackDrop = o.ackDrop, ackReset = o.ackReset
        let seed = o.iterTCP.isSupported ? "" : "; listeners that predate synsight are not watched (\(o.iterTCP.detail))"
        let synStage = syn.isSupported
            ? "per SYN: \(syn.detail)" + (armed ? ", \(HookCadence.armedOnAnomaly)" : "")
            : "SYN stage UNAVAILABLE (\(syn.detail))"
        let synRecv = o.synRecv
        let ackStage = [ackDrop.isSupported ? "ACK stage: \(ackDrop.detail)"
                            : synRecv.isSupported ? "ACK stage: \(synRecv.detail)"
                            : "ACK-stage drops UNAVAILABLE (\(ackDrop.detail); \(synRecv.detail))",
                        ackReset.isSupported ? "abort_on_overflow RST: \(ackReset.detail)"
                            : synRecv.isSupported ? "abort_on_overflow RST: \(synRecv.hook!.name) with tcp_abort_on_overflow set"
                            : "abort_on_overflow RST UNAVAILABLE (\(ackReset.detail); \(synRecv.detail))"]
        let accept = o.accept
        let acceptHook = o.acceptFexit.isSupported ? "fexit/__sys_accept4" : "syscalls:sys_exit_accept{,4}"
        return [
            "  accept_queue_full        \(synStage); " + ackStage.joined(separator: "; ") + seed
                + "; the listener's threads read as the overflow is attributed (stopped, blocked in the kernel)"
                + (CPUThrottleReader.host().sources.map { ", and the CPU limit over it (throttled: \($0))" }
                    ?? "; CPU throttling not judged: no cgroup hierarchy has the cpu controller"),
            "  syn_queue_full           " + (syn.isSupported ? "per SYN: drop (syncookies off) or cookie sent (on, rate-limited per listener)"
                + (armed ? "; armed on anomaly as above: drops before it is attached are counted, cookies sent before it are not reported" : "")
                + (o.unanswered.isSupported
                    ? "; with syncookies off, a SYN dropped to keep tcp_max_syn_backlog's last quarter (queue not full) as a SYN left unanswered with a route back (\(o.unanswered.hook?.name ?? ""))"
                    : "; with syncookies off, a SYN dropped to keep tcp_max_syn_backlog's last quarter (queue not full) is not seen: the per-SYN hook runs before that decision")
                : "UNAVAILABLE (\(syn.detail))") + seed,
            "  no_route_back            " + (o.unanswered.isSupported
                ? "per SYN a listener drops with neither queue full (" + (o.unanswered == o.consumeSkb
                    ? "its drop counter rose as tp_btf/consume_skb saw the SYN consumed)"
                    : "its drop counter rose during tcp_conn_request and no request was queued: \(o.unanswered.hook?.name ?? ""))")
                    + (armed ? ", armed on anomaly as above (an attempt's first SYN arms it, its retransmission is reported)" : "")
                    + ": the SYN-ACK's route back replayed in the listener's namespace (RTM_GETROUTE); reported only when it fails"
                : "UNAVAILABLE (\(o.unanswered.detail))") + seed,
            "  fd_exhausted             " + (accept.isSupported ? "\(acceptHook) EMFILE/ENFILE on a listener (1 report/s per process), and as the cause of its overflows"
                + (armed ? "; armed with the per-SYN program: seen once a listener's queue fills (an EMFILE before that does not stop a handshake)" : "")
                : "UNAVAILABLE (\(accept.detail))"),
        ]
    }

    /// bind/listen/connect failures and LSM denials (bpf/syscalls.bpf.h).
    static func syscallLines(_ f: KernelFeatures) -> [String] {
        let s = f.syscalls
        guard s.entry.isSupported else {
            let why = "\(s.classic.detail); \(s.raw.detail)"
            return ["address_in_use", "privileged_port", "address_not_available", "lsm_denied", "ephemeral_ports_exhausted", "no_route"]
                .map { "  \($0.padding(24)) UNAVAILABLE -- \(why)" }
        }
        let entry = s.entryName
        let cost = s.trampoline.isSupported ? ""
            : s.classic.isSupported ? " (every syscall takes the slow path while attached; no BPF trampolines: \(s.trampoline.detail))"
            : " (runs on every syscall: mount tracefs for the cheaper per-syscall tracepoints)"
        let cap = "full: CAP_NET_BIND_SERVICE judged from the caller's credentials at the failing bind()'s exit "
            + "(effective set, user namespace of the socket's network namespace); no hook on capability checks"
        let selinux = s.selinuxAudited.isSupported
            ? "SELinux via tp_btf/selinux_audited (\(s.selinuxState))" : "SELinux UNAVAILABLE (\(s.selinuxAudited.detail))"
        let landlock = s.landlock.isSupported ? "Landlock via landlock_restrict_self + fork inheritance" : "Landlock UNAVAILABLE (\(s.landlock.detail))"
        return [
            "  address_in_use           \(entry)\(cost) -- full: requested address from bind()/listen(), holder from the listener registry, else /proc (LISTEN, TIME_WAIT, ...)",
            "  privileged_port          \(entry) -- \(cap)",
            "  address_not_available    \(entry) -- full: requested address, ip_nonlocal_bind of the netns, and the netns's addresses "
                + "read when the failure is decoded (/proc/net/if_inet6 with IPv6 DAD state, getifaddrs): not configured, added since, tentative, DAD failed",
            "  lsm_denied               \(entry) on bind/connect -- \(selinux); \(landlock); cgroup BPF programs named "
                + "(bind4/6, post_bind4/6, connect4/6 of the caller's cgroup, bpf_prog_query); other LSMs by elimination",
            "  ephemeral_ports_exhausted \(entry) connect() EADDRNOTAVAIL -- full: destination, ip_local_port_range of the netns",
            "  no_route                 \(entry) connect() ENETUNREACH, EHOSTUNREACH, EACCES, EINVAL -- full: the destination's route "
                + "lookup replayed in the caller's netns (RTM_GETROUTE) with the socket's device, mark and owner: no route, "
                + "an unreachable, prohibit or blackhole route or rule, or a bound device that is down",
        ]
    }
}
