// SPDX-License-Identifier: GPL-2.0
/*
 * synsight: every BPF program, one per kernel hook.
 *
 * Decide in the kernel, report little: a healthy connection crosses to user
 * space as no record at all. Records cross only for a refusal, a drop, an
 * overflow, a failed syscall, listener births and deaths, and the exit of a
 * process that once listened.
 *
 * Layout (docs/architecture.md, "BPF"): the programs are here and only
 * here, each a few lines that dispatch to the areas' static handlers
 * (no_listener.bpf.h, connect.bpf.h, syscalls.bpf.h, firewall.bpf.h,
 * drops.bpf.h, overflow.bpf.h, timeouts.bpf.h, resets.bpf.h); the maps and helpers the areas share are in
 * library headers (defs, config, ringbuf, task, sock, skb, skb_where,
 * conntab, listeners, compat). Every header includes what it uses and
 * compiles alone (scripts/check-bpf-headers.sh).
 *
 * Where a hook serves several areas (kfree_skb, tcp_send_reset,
 * inet_sk_error_report, sched_process_exit) it has one program: a second
 * program on the same hook would cost a second run per event. Handlers an
 * area does not want on this kernel are switched off by a cfg flag or a CO-RE
 * existence test, both constants to the verifier. Several hooks serve the
 * same purpose on different kernels (docs/kernel-notes.md §1, §2, §10): a
 * tp_btf program and its fentry/kprobe fallback are different hooks, and
 * user space probes the running kernel and loads exactly one of them
 * (bpf_program__set_autoload), never choosing by kernel version.
 */
#include "defs.bpf.h"
#include "compat.bpf.h"
#include "config.bpf.h"
#include "connect.bpf.h"
#include "drops.bpf.h"
#include "firewall.bpf.h"
#include "listeners.bpf.h"
#include "no_listener.bpf.h"
#include "overflow.bpf.h"
#include "resets.bpf.h"
#include "syscalls.bpf.h"
#include "timeouts.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* ---- Packets ---- */

/* Every freed skb with a drop reason (5.17+). Only the first three
 * arguments are declared, so the program loads with and without rx_sk
 * (compat_kfree_skb_rx_sk). The reason's numbering differs between kernels:
 * CO-RE resolves each name from the running kernel's BTF. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(on_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	if (!skb)
		return 0;
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET))
		return cfg_flag(SYN_CFG_RST_KFREE_SKB) ? rst_on_kfree_skb(skb) : 0;
	if (ovf_ack_overflow_reason(reason))
		return ovf_on_kfree_skb(skb, compat_kfree_skb_rx_sk(ctx, ovf_ack_overflow_traced()));
	return drops_on_kfree_skb(skb, location, reason);
}

/* Every RST the host sends (6.10+ fires for sk==NULL too; tp_btf pointers
 * may be NULL, docs/kernel-notes.md §9). */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_tcp_send_reset, const struct sock *sk, const struct sk_buff *skb,
	     enum sk_rst_reason reason)
{
	if (!skb)
		return 0;
	if (!sk)
		return cfg_flag(SYN_CFG_RST_SEND_RESET) ? rst_on_send_reset(sk, skb, reason) : 0;
	return ovf_on_send_reset(sk, skb, reason);
}

/* Before 6.10, with BPF trampolines: the function that sends the RST. Only
 * the first two arguments are declared (compat.bpf.h). */
SEC("fentry/tcp_v4_send_reset")
int BPF_PROG(rst_fentry_v4, const struct sock *sk, struct sk_buff *skb)
{
	return rst_on_send_reset_fn(sk, skb, SYN_RST_SRC_FENTRY);
}

SEC("fentry/tcp_v6_send_reset")
int BPF_PROG(rst_fentry_v6, const struct sock *sk, struct sk_buff *skb)
{
	return rst_on_send_reset_fn(sk, skb, SYN_RST_SRC_FENTRY);
}

/* Kernels with kprobes but without BPF trampolines. */
SEC("kprobe/tcp_v4_send_reset")
int BPF_KPROBE(rst_kprobe_v4, const struct sock *sk, struct sk_buff *skb)
{
	return rst_on_send_reset_fn(sk, skb, SYN_RST_SRC_KPROBE);
}

SEC("kprobe/tcp_v6_send_reset")
int BPF_KPROBE(rst_kprobe_v6, const struct sock *sk, struct sk_buff *skb)
{
	return rst_on_send_reset_fn(sk, skb, SYN_RST_SRC_KPROBE);
}

/* 6.12+: consume_skb carries its call site (overflow.bpf.h). */
SEC("tp_btf/consume_skb")
int BPF_PROG(ovf_consume_skb, struct sk_buff *skb, void *location)
{
	return ovf_on_consume_skb(skb, location);
}

/* Where BPF trampolines or kprobes exist: every SYN to a listener. */
SEC("fentry/tcp_conn_request")
int BPF_PROG(ovf_fentry_conn_request, struct request_sock_ops *rsk_ops,
	     const struct tcp_request_sock_ops *af_ops, struct sock *sk, struct sk_buff *skb)
{
	return ovf_on_conn_request(sk, skb, SYN_OVF_M_CONN_REQUEST);
}

SEC("kprobe/tcp_conn_request")
int BPF_KPROBE(ovf_kprobe_conn_request, struct request_sock_ops *rsk_ops,
	       const struct tcp_request_sock_ops *af_ops, struct sock *sk, struct sk_buff *skb)
{
	return ovf_on_conn_request(sk, skb, SYN_OVF_M_CONN_REQUEST_KPROBE);
}

/* Beside them: a SYN tcp_conn_request dropped past its queue checks (no
 * route back, the SYN backlog's reserve; overflow.bpf.h). */
SEC("fexit/tcp_conn_request")
int BPF_PROG(ovf_fexit_conn_request, struct request_sock_ops *rsk_ops,
	     const struct tcp_request_sock_ops *af_ops, struct sock *sk, struct sk_buff *skb)
{
	return ovf_on_conn_request_done(sk, skb, SYN_OVF_M_CONN_REQUEST_FEXIT);
}

SEC("kretprobe/tcp_conn_request")
int BPF_KRETPROBE(ovf_kretprobe_conn_request)
{
	return ovf_on_conn_request_done(NULL, NULL, SYN_OVF_M_CONN_REQUEST_KRETPROBE);
}

/* ACK stage where no tracepoint reports it. The return value is read with
 * bpf_get_func_ret: the argument count differs between kernels (compat.bpf.h). */
SEC("fexit/tcp_v4_syn_recv_sock")
int BPF_PROG(ovf_fexit_syn_recv_v4, const struct sock *sk, struct sk_buff *skb)
{
	__u64 ret = 0;
	bpf_get_func_ret(ctx, &ret);
	return ovf_on_syn_recv_done(sk, skb, (const struct sock *)ret, SYN_OVF_M_SYN_RECV_FEXIT);
}

SEC("fexit/tcp_v6_syn_recv_sock")
int BPF_PROG(ovf_fexit_syn_recv_v6, const struct sock *sk, struct sk_buff *skb)
{
	__u64 ret = 0;
	bpf_get_func_ret(ctx, &ret);
	return ovf_on_syn_recv_done(sk, skb, (const struct sock *)ret, SYN_OVF_M_SYN_RECV_FEXIT);
}

SEC("kprobe/tcp_v4_syn_recv_sock")
int BPF_KPROBE(ovf_kprobe_syn_recv_v4, const struct sock *sk, struct sk_buff *skb)
{
	return ovf_on_syn_recv_enter(sk, skb);
}

SEC("kretprobe/tcp_v4_syn_recv_sock")
int BPF_KRETPROBE(ovf_kretprobe_syn_recv_v4, struct sock *ret)
{
	return ovf_on_syn_recv_exit(ret);
}

SEC("kprobe/tcp_v6_syn_recv_sock")
int BPF_KPROBE(ovf_kprobe_syn_recv_v6, const struct sock *sk, struct sk_buff *skb)
{
	return ovf_on_syn_recv_enter(sk, skb);
}

SEC("kretprobe/tcp_v6_syn_recv_sock")
int BPF_KRETPROBE(ovf_kretprobe_syn_recv_v6, struct sock *ret)
{
	return ovf_on_syn_recv_exit(ret);
}

/* IPv4 ICMP errors the host sends (6.10+; backported to 6.6.81 and 6.1). */
SEC("tp_btf/icmp_send")
int BPF_PROG(fw_icmp_send, const struct sk_buff *skb, int type, int code)
{
	return fw_on_icmp_send(skb, type, code);
}

/* ---- Sockets ---- */

/* A RST a socket accepted (every state; the handler keeps SYN_SENT): the
 * RST's TTL against the peer's usual one (resets.bpf.h). fentry where BPF
 * trampolines load, else kprobe. */
SEC("fentry/tcp_reset")
int BPF_PROG(rttl_fentry_reset, struct sock *sk, struct sk_buff *skb)
{
	return rttl_on_reset(sk, skb, SYN_RTTL_SRC_FENTRY);
}

SEC("kprobe/tcp_reset")
int BPF_KPROBE(rttl_kprobe_reset, struct sock *sk, struct sk_buff *skb)
{
	return rttl_on_reset(sk, skb, SYN_RTTL_SRC_KPROBE);
}

/* A local client's completed handshake (the SYN-ACK): the baseline of a
 * watched peer. Attached by user space only after a refusal (Tracer+ResetTTL.swift). */
SEC("fentry/tcp_finish_connect")
int BPF_PROG(rttl_fentry_finish_connect, struct sock *sk, struct sk_buff *skb)
{
	return rttl_on_finish_connect(sk, skb);
}

SEC("kprobe/tcp_finish_connect")
int BPF_KPROBE(rttl_kprobe_finish_connect, struct sock *sk, struct sk_buff *skb)
{
	return rttl_on_finish_connect(sk, skb);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	return conn_on_state_change(sk, oldstate, newstate);
}

SEC("cgroup/connect4")
int conn_connect4(struct bpf_sock_addr *ctx) { return conn_on_connect(ctx); }

SEC("cgroup/connect6")
int conn_connect6(struct bpf_sock_addr *ctx) { return conn_on_connect(ctx); }

/* A socket's error report: the firewall's ICMP soft error (sk_err still 0)
 * and, without the state-change hook, a connection's failure (sk_err set).
 * The TCP error is read once for both readers of it (tmo_reported_error). */
SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(on_sk_error_report, const struct sock *sk)
{
	if (!sk)
		return 0;
	fw_on_soft_error(sk);
	/* Called from tp_btf/inet_sk_error_report only: a BTF-typed socket,
	 * read with direct loads (see BTF_READ). */
	if (BPF_CORE_READ_BITFIELD(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	int err = tmo_reported_error(sk); /* sk_err, or the timeout the application took first */
	if (err == 0)
		return 0; /* an ICMP soft error: the connect() may still be answered */
	if (tmo_linger_abort(sk, err))
		return conn_on_linger_abort(sk); /* its application's abort: no failure */
	timeout_on_error_report(sk, err); /* an unanswered connect()'s ETIMEDOUT: where its SYNs went */
	return conn_on_error_report(sk, err);
}

/* Only the first argument is declared: 6.18 has (sk, skb, err). */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(fw_syn_retransmit, const struct sock *sk)
{
	timeout_on_syn_retransmit(sk); /* the route a retransmitted SYN took */
	return fw_on_syn_retransmit(sk);
}

/* Listeners that predate tracing: user space runs this iterator once in
 * each network namespace (an iterator walks its creator's netns) and reads
 * one struct syn_seed_listener per listener from it. */
SEC("iter/tcp")
int iter_listeners(struct bpf_iter__tcp *ctx)
{
	struct syn_seed_listener out = {};
	if (listeners_seed(ctx->sk_common, &out))
		bpf_seq_write(ctx->meta->seq, &out, sizeof(out));
	return 0;
}

/* Run by user space (BPF_PROG_TEST_RUN) every few seconds, not attached. */
SEC("raw_tp")
int run_reap_listeners(void *ctx)
{
	listeners_sweep();
	return 0;
}

/* A TCP socket's destruction: attached only while a connecting socket's
 * SYN is unanswered (run_tmo_watch), to see the connect() its application
 * gives up (connect.bpf.h, conn_on_destroy). */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tmo_destroy_sock, struct sock *sk)
{
	return conn_on_destroy(sk);
}

/* Run by user space (BPF_PROG_TEST_RUN) every 100 ms while the destroy
 * program is armed on demand; returns the connecting sockets with an
 * unanswered SYN (timeouts.bpf.h, tmo_watch). */
SEC("raw_tp")
int run_tmo_watch(void *ctx)
{
	return tmo_watch();
}

/* Run by user space (BPF_PROG_TEST_RUN) every few hundred ms where the
 * per-SYN overflow hook is armed on anomaly; returns the anomalous
 * listeners' count (overflow.bpf.h, ovf_watch). */
SEC("raw_tp")
int run_ovf_watch(void *ctx)
{
	return ovf_watch();
}

/* ---- Processes ---- */

/* Only the first argument is declared: 6.18 added group_dead, 6.12 has (p). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_process_exit, struct task_struct *p)
{
	/* do_exit() decrements signal->live before this tracepoint: zero means
	 * this is the last thread of the process. */
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	__u32 tgid = BPF_CORE_READ(p, tgid);
	conn_on_process_exit(p, tgid);
	return sc_on_process_exit(tgid);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sc_landlock_fork, struct task_struct *parent, struct task_struct *child)
{
	return sc_on_process_fork(parent, child);
}

/* ---- System calls (syscalls.bpf.h; one of three entry groups loads) ---- */

/* Classic per-syscall tracepoints (need tracefs for attaching). */
SEC("tracepoint/syscalls/sys_enter_bind")
int sc_tp_enter_bind(struct trace_event_raw_sys_enter *ctx)
{
	return sockcall_enter(SYN_CALL_BIND, ctx->args[0], (const void *)ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_bind")
int sc_tp_exit_bind(struct trace_event_raw_sys_exit *ctx)
{
	return sockcall_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_listen")
int sc_tp_enter_listen(struct trace_event_raw_sys_enter *ctx)
{
	return sockcall_enter(SYN_CALL_LISTEN, ctx->args[0], NULL, 0);
}

SEC("tracepoint/syscalls/sys_exit_listen")
int sc_tp_exit_listen(struct trace_event_raw_sys_exit *ctx)
{
	return sockcall_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int sc_tp_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	return sockcall_enter(SYN_CALL_CONNECT, ctx->args[0], (const void *)ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int sc_tp_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	return sc_on_tp_exit_connect(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_landlock_restrict_self")
int sc_tp_exit_landlock(struct trace_event_raw_sys_exit *ctx)
{
	return landlock_restricted(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int ovf_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return ovf_on_tp_exit_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int ovf_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return ovf_on_tp_exit_accept(ctx->ret);
}

/*
 * BPF trampolines on the syscalls' own functions, where the kernel allows
 * them (not on every VM: docs/kernel-notes.md §10). Preferred: attaching any
 * syscall tracepoint, classic or raw, puts every syscall of every task on
 * the slow path (TIF_SYSCALL_TRACEPOINT), about 2% of a Connection: close
 * web server's requests/s (docs/benchmarks.md); a trampoline costs only the
 * calls it is on. bind() and listen() are rare: entry and exit, as with the
 * tracepoints. connect() at exit only, its arguments from the trampoline.
 */
SEC("fentry/__sys_bind")
int BPF_PROG(sc_fx_enter_bind, int fd, void *uaddr, int addrlen)
{
	return sockcall_enter(SYN_CALL_BIND, fd, uaddr, addrlen);
}

SEC("fexit/__sys_bind")
int BPF_PROG(sc_fx_exit_bind, int fd, void *uaddr, int addrlen, int ret)
{
	return sockcall_exit(ret);
}

SEC("fentry/__sys_listen")
int BPF_PROG(sc_fx_enter_listen, int fd, int backlog)
{
	return sockcall_enter(SYN_CALL_LISTEN, fd, NULL, 0);
}

SEC("fexit/__sys_listen")
int BPF_PROG(sc_fx_exit_listen, int fd, int backlog, int ret)
{
	return sockcall_exit(ret);
}

SEC("fexit/__sys_connect")
int BPF_PROG(sc_fx_exit_connect, int fd, void *uaddr, int addrlen, int ret)
{
	return sc_on_fx_exit_connect(fd, uaddr, addrlen, ret);
}

SEC("fexit/" SYN_SYSCALL_FN("landlock_restrict_self"))
int BPF_PROG(sc_fx_exit_landlock, const struct pt_regs *regs, long ret)
{
	return landlock_restricted(ret);
}

/* With the sc_fx_ group, so that no syscall tracepoint is attached. */
SEC("fexit/__sys_accept4")
int BPF_PROG(ovf_fx_exit_accept4, int fd, void *upeer, void *upeer_len, int flags, int ret)
{
	return ovf_on_fx_exit_accept(fd, ret);
}

/* Raw syscall tracepoints: every syscall, filtered by number. */
SEC("tp_btf/sys_enter")
int BPF_PROG(sc_raw_enter, struct pt_regs *regs, long nr)
{
	return sc_on_raw_enter(regs, nr);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sc_raw_exit, struct pt_regs *regs, long ret)
{
	return sc_on_raw_exit(regs, ret);
}

SEC("tp_btf/selinux_audited")
int BPF_PROG(sc_selinux_audited, struct selinux_audit_data *sad, char *scontext,
	     char *tcontext, const char *tclass)
{
	return sc_on_selinux_audited(sad, scontext, tcontext, tclass);
}
