/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight: the connection and listener handlers of the no-listener area.
 * Who called connect() (captured in process context), a connection's
 * failure (SYN_EV_CONNECT_ERROR), listener births and deaths, and the exit
 * of a process that once listened (SYN_EV_EXIT).
 *
 * Two ways, one of them loaded (SYN_CFG_NO_STATE_HOOK):
 *  - inet_sock_set_state (conn_on_state_change): every state change;
 *  - without it (issue 16; it runs about 10 times per TCP connection on the
 *    host): the connect() caller, once per connect() in its own context,
 *    from cgroup/connect4 and cgroup/connect6 on the root cgroup v2, kept in
 *    `connecting` with the socket's cookie (entries are not deleted at
 *    CLOSE: a full set gives up its oldest; socket-local storage costs an
 *    allocation per connect(), measured at about 1 us); connection errors
 *    from inet_sk_error_report, which fires only on errors: refused, reset,
 *    timed out, unreachable; listener births from listen()'s exit
 *    (syscalls.bpf.h), deaths found when a refusal or a SYN to the port
 *    needs them (listeners_reap).
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "conntab.bpf.h"
#include "listeners.bpf.h"
#include "ringbuf.bpf.h"
#include "task.bpf.h"
#include "timeouts.bpf.h"

/* inet_sock_set_state. Runs ~10 times per TCP connection on the host: a
 * direct load (sk is a BTF pointer here), not a bpf_probe_read_kernel call. */
static __always_inline int conn_on_state_change(const struct sock *sk, const int oldstate,
						const int newstate)
{
	__u16 proto = BPF_CORE_READ_BITFIELD(sk, sk_protocol);

	if (proto != IPPROTO_TCP)
		return 0;

	if (newstate == TCP_LISTEN && oldstate == TCP_CLOSE)
		return on_listen_change(sk, SYN_EV_LISTEN);
	if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE)
		return on_listen_change(sk, SYN_EV_LISTEN_CLOSE);

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		/* connect(): process context, the only moment the caller is known.
		 * The destination port is set already, the source port not yet. */
		struct connect_info ci = {};
		__u64 key = sk_key(sk);
		fill_task(&ci.task);
		ci.ts_ns = bpf_ktime_get_boot_ns();
		conn_put(key, bpf_ntohs(sk->__sk_common.skc_dport), &ci);
		conn_mark_cpu(key);
		return 0;
	}
	struct conn_set *set;
	int way;
	if (oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED) {
		/* Healthy. Remembered until CLOSE: the client of an ACK-stage
		 * overflow is ESTABLISHED already, and a reset right after setup
		 * is a failure of its own. */
		struct connect_info *ci = conn_ref(sk_key(sk), &set, &way);
		if (ci)
			ci->established_ns = bpf_ktime_get_boot_ns();
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;

	__u64 key = sk_key(sk);
	struct connect_info *ref = conn_ref(key, &set, &way);
	if (!ref)
		return 0;
	struct connect_info ci = *ref;
	barrier();
	if (!conn_del(set, way, key))
		return 0;
	int err = BPF_CORE_READ(sk, sk_err);
	if (oldstate == TCP_SYN_SENT && err == 0) {
		/* Closed while connecting: given up, if its SYN went unanswered. */
		struct tmo_stash s;
		if (tmo_take_abandoned(sk, &s))
			tmo_emit_abandoned(sk, &s, &ci, false);
		return 0;
	}
	bool failed = oldstate == TCP_SYN_SENT && err != 0;
	bool reset_after_setup = ci.established_ns != 0 && err == ECONNRESET &&
		bpf_ktime_get_boot_ns() - ci.established_ns < RESET_AFTER_SETUP_NS;
	if (failed || reset_after_setup)
		emit_connect_error(sk, &ci, SYN_EV_CONNECT_ERROR, err, false);
	return 0;
}

/* cgroup/connect{4,6}: a connect() on any socket of the host. */
static __always_inline int conn_on_connect(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	struct bpf_sock *bsk = ctx->sk;
	if (!bsk)
		return 1;
	struct connect_info ci = {};
	fill_task_direct(&ci.task);
	ci.ts_ns = bpf_ktime_get_boot_ns();
	ci.cookie = bpf_get_socket_cookie(ctx);
	__u64 key = sk_key((const struct sock *)bsk);
	conn_put(key, bpf_ntohs((__u16)ctx->user_port), &ci);
	conn_mark_cpu(key);
	return 1; /* never refuse a connect() */
}


/* What conn_take found. */
enum conn_taken {
	CONN_RACED = -1, /* another CPU took it: one report per connection */
	CONN_NONE = 0,   /* no entry: given up before a SYN retransmission kept a
			  * copy (more connect()s than the table holds within a
			  * second), or its connect() came before synsight */
	CONN_TAKEN = 1,
};

/* The entry of the connect() of `sk`, removed: from `connecting`, else
 * (given up there) from `connecting_retry`. */
static __always_inline enum conn_taken conn_take(const struct sock *sk, struct connect_info *out)
{
	/* The table keeps entries past CLOSE: the cookie tells this socket's
	 * own connect() from an earlier socket's at the same address. */
	__u64 key = sk_key(sk);
	struct conn_set *set;
	int way;
	struct connect_info *ref = conn_ref(key, &set, &way);
	if (ref) {
		*out = *ref;
		barrier();
		if (out->cookie == bpf_get_socket_cookie((void *)sk)) {
			if (!conn_del(set, way, key))
				return CONN_RACED;
			/* A copy kept at a SYN retransmission must not report it again. */
			if (conn_maybe_kept(out->ts_ns))
				bpf_map_delete_elem(&connecting_retry, &key);
			return CONN_TAKEN;
		}
	}
	if (!bpf_map_lookup_elem(&connecting_retry, &key))
		return CONN_NONE;
	return conn_kept(sk, key, out, true) ? CONN_TAKEN : CONN_RACED;
}

/* inet_sk_error_report of a socket its application closed with SO_LINGER 0
 * (tmo_linger_abort), in the closer's context: while connecting, a
 * connect() given up, as at destroy, when its SYN went unanswered. Never a
 * failure of the connection: no SYN_EV_CONNECT_ERROR (its ECONNRESET read
 * as a reset by the peer, at port 0: a health check that connects and
 * aborts, as HAProxy's with option nolinger, was reported as refused after
 * the handshake). The caller's entry goes with it. */
static __always_inline int conn_on_linger_abort(const struct sock *sk)
{
	if (!no_state_hook())
		return 0; /* conn_on_state_change saw it at SYN_SENT -> CLOSE */
	struct tmo_stash s;
	bool pending = tmo_take_unanswered(sk, &s);
	struct connect_info ci = {};
	if (conn_take(sk, &ci) == CONN_RACED || !pending)
		return 0;
	tmo_emit_abandoned(sk, &s, &ci, true);
	return 0;
}

/* inet_sk_error_report, with SYN_CFG_NO_STATE_HOOK. A TCP socket's error
 * `err` (not 0, not its application's abort: refusals.bpf.c): sk_err, set
 * before the report (an application may take it first:
 * tmo_reported_error). A connection that never saw the peer's
 * SYN-ACK has rcv_nxt 0 (tcp_connect_init): a failed connect(); otherwise a
 * reset within RESET_AFTER_SETUP_NS of connect() is a setup failure of its
 * own (reset_by_peer). */
static __always_inline int conn_on_error_report(const struct sock *sk, int err)
{
	if (!no_state_hook())
		return 0; /* conn_on_state_change reports it at CLOSE */
	/* A refusal the kernel folded (a storm): its client is counted with it
	 * before the table is searched (a cookie, a compare-and-swap: ~100 ns
	 * per refusal). ECONNREFUSED is set only in SYN_SENT: a failed
	 * connect(). Its entry stays until the set gives it up, as a healthy
	 * connection's does. */
	struct syn_tuple t = {};
	sock_local_of(sk, &t, true);
	if (connect_error_folded(&t, err))
		return 0;
	struct connect_info ci = {};
	enum conn_taken taken = conn_take(sk, &ci);
	if (taken == CONN_RACED)
		return 0;
	bool failed = BPF_CORE_READ((struct tcp_sock *)sk, rcv_nxt) == 0;
	/* A failed connect() without its entry is still reported, with no task
	 * (pid 0) and no connect() time: never a silent loss. */
	if (taken == CONN_NONE && !failed)
		return 0;
	bool reset_after_setup = taken == CONN_TAKEN && !failed && err == ECONNRESET &&
		bpf_ktime_get_boot_ns() - ci.ts_ns < RESET_AFTER_SETUP_NS;
	if (failed || reset_after_setup)
		emit_connect_error_of(sk, &t, &ci, SYN_EV_CONNECT_ERROR, err, false);
	return 0;
}

/* tcp_destroy_sock, with SYN_CFG_NO_STATE_HOOK (armed by user space while
 * a connecting socket's SYN is unanswered: run_tmo_watch): a socket closed
 * while connecting, unanswered, with no error, is a connect() its
 * application gave up; the caller's entry goes with it. */
static __always_inline int conn_on_destroy(const struct sock *sk)
{
	struct tmo_stash s;
	if (!sk || !tmo_take_abandoned(sk, &s))
		return 0;
	struct connect_info ci = {};
	if (conn_take(sk, &ci) == CONN_RACED)
		return 0;
	tmo_emit_abandoned(sk, &s, &ci, false);
	return 0;
}

/* sched_process_exit: the last thread of a process that once listened
 * (`tgid`; `p` is the exiting task). */
static __always_inline int conn_on_process_exit(struct task_struct *p, __u32 tgid)
{
	if (!bpf_map_lookup_elem(&listener_pids, &tgid))
		return 0;
	struct syn_ev_exit *e = reserve(sizeof(*e), SYN_EV_EXIT);
	if (e) {
		fill_task(&e->task);
		e->task.pid = tgid;
		e->exit_code = BPF_CORE_READ(p, exit_code);
		e->_pad = 0;
		submit(e);
	}
	bpf_map_delete_elem(&listener_pids, &tgid);
	return 0;
}
