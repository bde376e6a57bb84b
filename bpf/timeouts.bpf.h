/* SPDX-License-Identifier: GPL-2.0 */
/* synsight: where an unanswered connect()'s SYNs went (issue 17, "timeouts
 * explained"), whether the kernel timed it out or its application gave up.
 * A library header: refusals.bpf.c's inet_sk_error_report and
 * tcp_retransmit_skb programs call it, and connect.bpf.h at a connecting
 * socket's close; its map (tmo_pending) and records
 * (SYN_EV_CONNECT_TIMEOUT, SYN_EV_CONNECT_ABANDONED) are nobody else's.
 *
 * A connect() that is never answered fails in tcp_write_err /
 * tcp_done_with_error with sk_err ETIMEDOUT (when no ICMP error set
 * sk_err_soft) and rcv_nxt still 0 (tcp_connect_init): its SYNs left this
 * host, or were dropped on it (user space joins the drop records). The
 * record says through which device and next hop they left (the socket's
 * cached route, sk_dst_cache) and how many SYNs were retransmitted.
 *
 * Most clients do not wait for that (about 130 s with tcp_syn_retries 6):
 * curl --connect-timeout, a dialer's deadline, a proxy's connect timeout
 * close the socket in SYN_SENT, and the kernel reports no error. A socket
 * whose SYN was retransmitted (unanswered for a second) is kept in
 * tmo_pending until its outcome: an error report takes it; a close in
 * SYN_SENT with no error, never answered (rcv_nxt 0), is the abandoned
 * attempt (SYN_EV_CONNECT_ABANDONED), seen where the socket is destroyed
 * (tcp_destroy_sock, armed by user space only while tmo_pending holds a
 * connecting socket: run_tmo_watch) or, with the state-change hook, at
 * SYN_SENT -> CLOSE. An application that gives up before the first
 * retransmission (1 s) is not seen.
 *
 * Kernel differences: before 6.10 the report comes before tcp_done (state
 * still SYN_SENT), since then after it (state CLOSE); the cached route
 * survives both for IPv4, but IPv6 resets it at each retransmission timeout
 * (ip6_negative_advice for a non-cached route) and only routes again when it
 * sends: the route of the last retransmitted SYN is stashed here, by
 * socket, and used when the socket's own is gone.
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "conntab.bpf.h"
#include "ringbuf.bpf.h"
#include "sock.bpf.h"
#include "task.bpf.h"

#ifndef ETIMEDOUT
#define ETIMEDOUT 110
#endif
#define RTF_GATEWAY 0x0002
#define IFF_LOOPBACK 0x8
#define PF_EXITING 0x00000004

/* A connecting socket whose SYN was retransmitted, until its outcome. */
struct tmo_stash {
	__u64 cookie;            /* bpf_get_socket_cookie: the entry is this socket's */
	struct syn_egress route; /* of its last retransmitted SYN */
	struct syn_tuple t;      /* its addresses and ports then (a close with SO_LINGER 0 clears them) */
	__u32 syn_retransmits;   /* icsk_retransmits then (the same) */
	__u8 closed_seen;        /* run_tmo_watch found it closed once: forgotten at the next sweep */
	__u8 _pad[3];
};

/* Connecting sockets with a retransmitted SYN (rare: a SYN is retransmitted
 * only when unanswered for a second), by socket. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tmo_stash);
} tmo_pending SEC(".maps");

/* enum syn_tmo_gate_entry: user space runs run_tmo_watch only when a socket
 * was added since a walk found none pending (HookArming's gate), so an idle
 * host pays one map read per period, not a walk of tmo_pending's buckets
 * (about 110 us with BPF statistics on); the error report skips its lookup
 * while nothing can be pending (a refusal storm's errors). Two entries, not
 * one struct: user space writes its own without touching the count. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} tmo_gate SEC(".maps");

/* Can a socket be in tmo_pending? (two inlined array lookups) */
static __always_inline bool tmo_maybe_pending(void)
{
	__u32 a = SYN_TMO_GATE_ADDED, q = SYN_TMO_GATE_QUIET_AT;
	__u64 *added = bpf_map_lookup_elem(&tmo_gate, &a);
	__u64 *quiet = bpf_map_lookup_elem(&tmo_gate, &q);
	return !added || !quiet || READ_ONCE_U64(*added) != READ_ONCE_U64(*quiet);
}

/* The socket's cached route: device, and gateway if it has one. */
static __always_inline bool tmo_read_route(const struct sock *sk, struct syn_egress *r)
{
	struct dst_entry *dst = BPF_CORE_READ(sk, sk_dst_cache);
	if (!dst)
		return false;
	struct net_device *dev = BPF_CORE_READ(dst, dev);
	if (!dev)
		return false;
	r->ifindex = BPF_CORE_READ(dev, ifindex);
	bpf_core_read_str(r->ifname, sizeof(r->ifname), &dev->name);
	r->flags = SYN_TMO_F_ROUTE;
	if (BPF_CORE_READ(dev, flags) & IFF_LOOPBACK)
		r->flags |= SYN_TMO_F_LOOPBACK;
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET) {
		/* dst is the first member of struct rtable. rt_gw_family (5.2)
		 * predates inet_sk_error_report (5.14); tested all the same. */
		struct rtable *rt = (struct rtable *)dst;
		if (!bpf_core_field_exists(rt->rt_gw_family))
			return true;
		__u8 gwf = BPF_CORE_READ(rt, rt_gw_family);
		if (gwf == AF_INET) {
			v4_mapped(r->gateway, BPF_CORE_READ(rt, rt_gw4));
		} else if (gwf == AF_INET6) {
			bpf_core_read(r->gateway, 16, &rt->rt_gw6);
		} else {
			return true;
		}
		r->gw_family = gwf;
		r->flags |= SYN_TMO_F_GATEWAY;
	} else {
		struct rt6_info *rt = (struct rt6_info *)dst;
		if (!(BPF_CORE_READ(rt, rt6i_flags) & RTF_GATEWAY))
			return true;
		bpf_core_read(r->gateway, 16, &rt->rt6i_gateway);
		r->gw_family = AF_INET6;
		r->flags |= SYN_TMO_F_GATEWAY;
	}
	return true;
}

/* The route at the outcome: the socket's own, else (IPv6, reset on
 * retransmission) the last retransmitted SYN's from `stashed`. */
static __always_inline void tmo_route_at_outcome(const struct sock *sk, const struct tmo_stash *stashed,
						 struct syn_egress *r)
{
	if (tmo_read_route(sk, r) || !stashed)
		return;
	*r = stashed->route;
	r->flags |= SYN_TMO_F_STASHED;
}

/* SYN retransmissions so far: icsk_retransmits, else (a kernel without the
 * field) the socket's total retransmissions, which in SYN_SENT are SYNs. */
static __always_inline __u32 tmo_syn_retransmits(const struct sock *sk)
{
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
	if (bpf_core_field_exists(icsk->icsk_retransmits))
		return BPF_CORE_READ(icsk, icsk_retransmits);
	return BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
}

/* From tcp_retransmit_skb (after the SYN went out, so the socket has a
 * route again): remember a connecting socket until its outcome, with its
 * route. Only SYN_SENT sockets: a SYN retransmission is rare, other ones
 * skip here. */
static __always_inline void timeout_on_syn_retransmit(const struct sock *sk)
{
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return;
	struct tmo_stash s = {};
	if (!tmo_read_route(sk, &s.route))
		return;
	s.cookie = bpf_get_socket_cookie((void *)sk);
	sock_local(sk, &s.t);
	s.syn_retransmits = tmo_syn_retransmits(sk);
	__u64 key = sk_key(sk);
	bpf_map_update_elem(&tmo_pending, &key, &s, BPF_ANY);
	__u32 a = SYN_TMO_GATE_ADDED;
	__u64 *added = bpf_map_lookup_elem(&tmo_gate, &a);
	if (added)
		__sync_fetch_and_add(added, 1);
}

/* Was the connect() given up by its SYN retransmission timer? Asked of a
 * socket the kernel already closed (tmo_reported_error): the timer had
 * fired (its expiry, kept when tcp_done stops it, is not in the future)
 * after at least one retransmission. When a RST or an ICMP error ends the
 * attempt instead, the timer is still due for the next retransmission. */
static __always_inline bool tmo_syn_timer_expired(const struct sock *sk)
{
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
	if (tmo_syn_retransmits(sk) == 0)
		return false;
	__u64 expires = BPF_CORE_READ(icsk, icsk_retransmit_timer.expires);
	return (__s64)(expires - bpf_jiffies64()) <= 0;
}

/* A report of tcp_disconnect's ECONNRESET: the socket's own application
 * aborted it (a close with SO_LINGER 0, or connect() with AF_UNSPEC), in
 * its context; tcp_disconnect clears the destination port before the
 * report, which a peer's RST (tcp_reset) leaves in place. */
static __always_inline bool tmo_linger_abort(const struct sock *sk, int err)
{
	return err == ECONNRESET && BPF_CORE_READ(sk, __sk_common.skc_dport) == 0;
}

/* The error an inet_sk_error_report is about. Since 6.10 the report comes
 * after tcp_done (tcp_done_with_error), whose state change already woke
 * the application: one polling the socket can read SO_ERROR, which clears
 * sk_err, before this program runs (seen under load on a 2-CPU VM). A
 * connecting socket found closed, unanswered, with sk_err already 0, was
 * given up by the kernel: when its SYN timer had expired, the error was
 * tcp_write_err's (an ICMP soft error seen meanwhile, else ETIMEDOUT).
 * Another taken error (a RST's, an ICMP hard error's) is not known: 0. */
static __always_inline int tmo_reported_error(const struct sock *sk)
{
	int err = sk->sk_err;
	if (err != 0 || BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_CLOSE ||
	    BPF_CORE_READ((struct tcp_sock *)sk, rcv_nxt) != 0 || !tmo_syn_timer_expired(sk))
		return err;
	err = sk->sk_err_soft;
	return err ? err : ETIMEDOUT;
}

/* From inet_sk_error_report, a TCP socket's error `err` (not 0, not its
 * application's abort: refusals.bpf.c): any error is the outcome of a
 * pending socket (its entry goes); a connect() that timed out unanswered
 * is reported with its route. */
static __always_inline void timeout_on_error_report(const struct sock *sk, int err)
{
	/* Only a socket whose SYN was retransmitted is pending: a refusal
	 * storm's errors (answered at once) skip the lookup, and while no
	 * socket can be pending, the read of its retransmissions too. */
	if (err != ETIMEDOUT && (!tmo_maybe_pending() || tmo_syn_retransmits(sk) == 0))
		return;
	__u64 key = sk_key(sk);
	struct tmo_stash s = {};
	struct tmo_stash *stashed = bpf_map_lookup_elem(&tmo_pending, &key);
	bool mine = false;
	if (stashed) {
		s = *stashed;
		mine = s.cookie == bpf_get_socket_cookie((void *)sk);
		bpf_map_delete_elem(&tmo_pending, &key);
	}
	if (err != ETIMEDOUT || BPF_CORE_READ((struct tcp_sock *)sk, rcv_nxt) != 0)
		return; /* another error, or an established connection's timeout */

	struct syn_ev_connect_timeout *e = reserve(sizeof(*e), SYN_EV_CONNECT_TIMEOUT);
	if (!e)
		return;
	sock_local(sk, &e->t);
	if (!port_wanted(e->t.rport)) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	__builtin_memset(&e->route, 0, sizeof(e->route));
	tmo_route_at_outcome(sk, mine ? &s : NULL, &e->route);
	e->netns = sock_netns(sk);
	e->syn_retransmits = tmo_syn_retransmits(sk);
	e->total_retrans = BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
	e->_pad = 0;
	submit(e);
}

/* At a connecting socket's outcome: true, with its entry taken into `out`,
 * when the socket was pending and is still unanswered. */
static __always_inline bool tmo_take_unanswered(const struct sock *sk, struct tmo_stash *out)
{
	__u64 key = sk_key(sk);
	struct tmo_stash *s = bpf_map_lookup_elem(&tmo_pending, &key);
	if (!s)
		return false;
	*out = *s;
	if (bpf_map_delete_elem(&tmo_pending, &key) != 0)
		return false; /* run_tmo_watch forgot it meanwhile */
	if (out->cookie != bpf_get_socket_cookie((void *)sk))
		return false; /* an earlier socket's entry at the same address */
	return BPF_CORE_READ((struct tcp_sock *)sk, rcv_nxt) == 0; /* else answered: it connected */
}

/* At a connecting socket's close (tp_btf programs: a BTF-typed socket):
 * true, with its entry taken into `out`, when the socket was pending and
 * ends unanswered with no error reported: its application gave up. */
static __always_inline bool tmo_take_abandoned(const struct sock *sk, struct tmo_stash *out)
{
	if (!tmo_take_unanswered(sk, out))
		return false;
	/* An error was reported (or an ICMP soft error seen through SO_ERROR):
	 * the connect() failed, reported as such. */
	if (sk->sk_err != 0 || sk->sk_err_soft != 0)
		return false;
	/* Closed by its application in SYN_SENT, the SYN is still queued for
	 * retransmission (tcp_v4_destroy_sock purges the queue after this
	 * tracepoint); a connect() the kernel failed (tcp_done_with_error,
	 * tcp_write_err) had it purged first: its error was taken before the
	 * report saw it (tmo_reported_error), not given up by the application. */
	return BPF_CORE_READ(sk, tcp_rtx_queue.rb_node) != NULL;
}

/* SYN_EV_CONNECT_ABANDONED, from the close's process context: `ci` is the
 * connect() caller's entry (zero: not seen). `aborted`: closed with
 * SO_LINGER 0, whose tcp_disconnect cleared the socket's destination, its
 * unbound source address, route and retransmission count before the
 * report: the stash's, of its last retransmitted SYN, are used. */
static __always_inline void tmo_emit_abandoned(const struct sock *sk, const struct tmo_stash *stashed,
					       const struct connect_info *ci, bool aborted)
{
	struct syn_ev_connect_abandoned *e = reserve(sizeof(*e), SYN_EV_CONNECT_ABANDONED);
	if (!e)
		return;
	if (aborted)
		e->t = stashed->t;
	else
		sock_local_of(sk, &e->t, true);
	if (!port_wanted(e->t.rport)) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	e->task = ci->task;
	fill_task(&e->closer);
	e->connect_ts_ns = ci->ts_ns;
	__builtin_memset(&e->route, 0, sizeof(e->route));
	tmo_route_at_outcome(sk, stashed, &e->route);
	e->netns = sock_netns(sk);
	e->syn_retransmits = aborted ? stashed->syn_retransmits : tmo_syn_retransmits(sk);
	struct task_struct *cur = bpf_get_current_task_btf();
	e->closer_exiting = (cur->flags & PF_EXITING) ? 1 : 0;
	e->aborted = aborted;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	submit(e);
}

/*
 * run_tmo_watch: user space runs it (BPF_PROG_TEST_RUN) every 100 ms where
 * the destroy program is armed on demand, and attaches tcp_destroy_sock
 * while the count it returns is not zero. It walks tmo_pending: a socket
 * still connecting counts; one that connected (any other state) or whose
 * memory is another socket's now (its cookie changed) is forgotten; one
 * found closed counts once more (its destroy is due: the program must
 * still be attached when it comes) and is forgotten at the next sweep.
 */
static long tmo_watch_cb(struct bpf_map *map, __u64 *key, struct tmo_stash *s, __u32 *pending)
{
	__u64 k = *key;
	const struct sock *sk = (const struct sock *)k;
	bool same = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter) == s->cookie;
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (same && state == TCP_SYN_SENT) {
		(*pending)++;
		return 0;
	}
	if (same && state == TCP_CLOSE && !s->closed_seen) {
		s->closed_seen = 1;
		(*pending)++;
		return 0;
	}
	bpf_map_delete_elem(&tmo_pending, &k);
	return 0;
}

/* The pending sockets' count (tmo_watch_cb). */
static __always_inline int tmo_watch(void)
{
	__u32 pending = 0;
	bpf_for_each_map_elem(&tmo_pending, tmo_watch_cb, &pending, 0);
	return pending;
}
