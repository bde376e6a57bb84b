/// When each of synsight's BPF programs runs: for healthy traffic (a cost
/// every host pays all the time) or only when something fails or on rare
/// events. One entry per program of bpf/; `doctor` prints it per hook.
public struct HookCadence: Sendable, Equatable {
    /// Runs for traffic that never fails (per connection, packet or syscall).
    public var healthy: Bool
    /// What makes it run.
    public var trigger: String

    static func h(_ t: String) -> HookCadence { HookCadence(healthy: true, trigger: t) }
    static func f(_ t: String) -> HookCadence { HookCadence(healthy: false, trigger: t) }

    public static func of(program name: String) -> HookCadence {
        if let c = table[name] { return c }
        if name.hasPrefix("sc_fx_") || name.hasPrefix("sc_tp_") {
            return name.contains("connect") ? .h("every connect() on the host (one compare unless it failed)")
                : .f("every bind(), listen() or landlock_restrict_self() on the host")
        }
        if name.hasPrefix("rst_") { return .f("every RST the host sends without a socket") }
        return .f("see bpf/")
    }

    static let table: [String: HookCadence] = [
        "sock_state": .h("every TCP state change on the host (both ends of a local connection: about 10)"),
        "conn_connect4": .h("every IPv4 connect() on the host (TCP: the caller is remembered)"),
        "conn_connect6": .h("every IPv6 connect() on the host (TCP: the caller is remembered)"),
        "run_reap_listeners": .f("every 5 s, run by synsight: a walk of its listener registry"),
        "on_sk_error_report": .f("every socket error report (refused, reset, timed out, unreachable)"),
        "ovf_consume_skb": .h("every packet consumed on the host (two compares unless tcp_rcv_state_process consumed it)"),
        "on_kfree_skb": .h("every packet freed with a drop reason (a closing connection frees one)"),
        "ovf_fentry_conn_request": .h("every SYN to a listener"),
        "ovf_kprobe_conn_request": .h("every SYN to a listener"),
        "ovf_fexit_syn_recv_v4": .h("every handshake a listener completes"),
        "ovf_fexit_syn_recv_v6": .h("every handshake a listener completes"),
        "ovf_kprobe_syn_recv_v4": .h("every handshake a listener completes"),
        "ovf_kprobe_syn_recv_v6": .h("every handshake a listener completes"),
        "ovf_kretprobe_syn_recv_v4": .h("every handshake a listener completes"),
        "ovf_kretprobe_syn_recv_v6": .h("every handshake a listener completes"),
        "ovf_exit_accept": .h("every accept() on the host (one compare unless EMFILE/ENFILE)"),
        "ovf_exit_accept4": .h("every accept4() on the host (one compare unless EMFILE/ENFILE)"),
        "ovf_fx_exit_accept4": .h("every accept() on the host (one compare unless EMFILE/ENFILE)"),
        "sc_raw_enter": .h("every system call on the host"),
        "sc_raw_exit": .h("every system call on the host"),
        "sc_cap_capable": .h("every capability check on the host (one compare unless CAP_NET_BIND_SERVICE)"),
        "on_tcp_send_reset": .f("every RST the host sends"),
        "rst_fentry_v4": .f("every IPv4 RST sent without a socket"),
        "rst_fentry_v6": .f("every IPv6 RST sent without a socket"),
        "rst_kprobe_v4": .f("every IPv4 RST sent without a socket"),
        "rst_kprobe_v6": .f("every IPv6 RST sent without a socket"),
        "fw_icmp_send": .f("every ICMP error the host sends"),
        "fw_syn_retransmit": .f("every TCP retransmission (a state read; reports SYN_SENT only)"),
        "sc_selinux_audited": .f("every audited SELinux decision"),
        "sc_landlock_fork": .f("every fork on the host (a lookup)"),
        "on_process_exit": .f("every thread exit on the host (two loads unless it is a process's last thread)"),
    ]
}
