import ArgumentParser
import SynsightCore
import SynsightKernel

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what this kernel lets synsight see: the hook serving each reason, and what is degraded.",
        discussion: "Probes by loading small BPF programs and reading kernel BTF; run it as root for conclusive answers."
    )

    func run() throws {
        let f = KernelFeatures.probe()
        print(DoctorReport.render(f))
        if !f.privileges.isSupported || !f.btf.isSupported { throw ExitCode.failure }
    }
}

enum DoctorReport {
    static func mark(_ r: ProbeResult) -> String { r.isSupported ? "yes" : "no " }

    static func render(_ f: KernelFeatures) -> String {
        var l: [String] = []
        l.append("synsight \(SynsightVersion.string) on Linux \(f.release)")
        l.append("")
        l.append("environment")
        l.append("  \(mark(f.btf))  kernel BTF            \(f.btf.detail)")
        l.append("  \(mark(f.privileges))  privileges            \(f.privileges.detail)")
        if !f.privileges.isSupported {
            l.append("       (program-load probes below are inconclusive without privileges: run `sudo synsight doctor`)")
        }
        l.append("")
        l.append("hooks")
        for (name, r) in [("tp_btf/tcp_send_reset (no-socket)", f.tcpSendResetNoSocket),
                          ("fentry/tcp_v{4,6}_send_reset", f.fentrySendReset),
                          ("kprobe/tcp_v{4,6}_send_reset", f.kprobeSendReset),
                          ("tp_btf/kfree_skb (NO_SOCKET)", f.kfreeSkbNoSocket),
                          ("tp_btf/inet_sock_set_state", f.inetSockSetState),
                          ("tp_btf/sched_process_exit", f.schedProcessExit)] {
            l.append("  \(mark(r))  \(name.padding(36)) \(r.detail)")
        }
        l.append("")
        l.append("reasons")
        switch f.chooseResetHook() {
        case .success(let hook):
            let fidelity: String
            switch hook {
            case .tcpSendReset: fidelity = "full: every no-socket RST, with the kernel's reset reason"
            case .fentry, .kprobe: fidelity = "full: the function that sends the no-socket RST"
            case .kfreeSkb: fidelity = "full, at higher cost: filters every dropped packet for NO_SOCKET"
            }
            l.append("  no_listener              \(hook.name) -- \(fidelity)")
        case .failure(let e):
            l.append("  no_listener              UNAVAILABLE -- \(e.why)")
        }
        let registry = f.inetSockSetState.isSupported ? "tp_btf/inet_sock_set_state + /proc snapshot at start" : "UNAVAILABLE: \(f.inetSockSetState.detail)"
        l.append("    listener registry      \(registry)")
        l.append("    listener exits         " + (f.schedProcessExit.isSupported ? "tp_btf/sched_process_exit (exit status and signal)" : "UNAVAILABLE: \(f.schedProcessExit.detail)"))
        l.append("    local client identity  " + (f.inetSockSetState.isSupported ? "tp_btf/inet_sock_set_state CLOSE->SYN_SENT (process context), joined by 4-tuple" : "UNAVAILABLE"))
        for reason in ["accept_queue_full", "syn_queue_full", "firewall_reject", "firewall_drop",
                       "address_in_use", "privileged_port", "address_not_available", "lsm_denied",
                       "fd_exhausted", "ephemeral_ports_exhausted"] {
            l.append("  \(reason.padding(24)) not implemented in synsight \(SynsightVersion.string)")
        }
        return l.joined(separator: "\n")
    }
}
