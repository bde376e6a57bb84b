/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight: the overflow area's handlers (listen-queue overflow and accept()
 * failures), called by the programs of refusals.bpf.c.
 *
 * A SYN dropped because a queue is full leaves no drop reason and no
 * tracepoint of its own (docs/kernel-notes.md §3): tcp_conn_request drops it, bumps
 * the listener's sk_drops, and tcp_rcv_state_process *consumes* it. So, on
 * kernels where consume_skb carries its call site (6.12+), the SYN consumed
 * inside tcp_rcv_state_process is matched to its listener (by port, from
 * listen_ports: up to LISTEN_SLOTS listeners of the port across namespaces)
 * and each listener's sk_drops and queue lengths are compared with what was
 * seen before: a rise means this very SYN was dropped (with neither queue
 * full: left unanswered, SYN_OVF_SYN_UNANSWERED, e.g. no route back).
 * Where fentry is allowed, tcp_conn_request gives the same per SYN (kernel
 * matrix).
 *
 * ACK stage (6.15+): kfree_skb TCP_LISTEN_OVERFLOW with rx_sk = the listener,
 * and with tcp_abort_on_overflow the listener's RST (tcp_send_reset,
 * state LISTEN, reason INVALID_SYN).
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "conntab.bpf.h"
#include "listeners.bpf.h"
#include "ringbuf.bpf.h"
#include "skb.bpf.h"
#include "sock.bpf.h"
#include "task.bpf.h"

#define SYN_COOKIE_EVENT_GAP_NS (100 * 1000 * 1000ULL)

static __always_inline __u32 listener_drops(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_drops.counter);
}

/* The listener's routing keys (struct syn_ev_listen_overflow). */
static __always_inline void fill_routing(struct syn_ev_listen_overflow *e, const struct sock *sk)
{
	e->bound_ifindex = BPF_CORE_READ(sk, __sk_common.skc_bound_dev_if);
	e->mark = BPF_CORE_READ(sk, sk_mark);
	e->sk_uid = BPF_CORE_READ(sk, sk_uid.val);
	e->_pad2 = 0;
}

/* The listener's side of an overflow record (every method). */
static __always_inline void fill_overflow(struct syn_ev_listen_overflow *e, const struct sock *sk,
					  const struct listen_info *li, __u32 netns, __u8 stage, __u8 method)
{
	e->listener_ino = li ? li->ino : 0;
	e->netns = netns;
	e->listener_pid = li ? li->tgid : 0;
	e->ack_backlog = BPF_CORE_READ(sk, sk_ack_backlog);
	e->max_ack_backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
	e->syn_qlen = BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_accept_queue.qlen.counter);
	e->drops = listener_drops(sk);
	e->somaxconn = BPF_CORE_READ(sk, __sk_common.skc_net.net, core.sysctl_somaxconn);
	e->suppressed = 0;
	e->stage = stage;
	e->method = method;
	e->_pad = 0;
	e->counted = 0;
	__builtin_memset(&e->client, 0, sizeof(e->client));
	e->client_found = SYN_CLIENT_NOT_FOUND;
	fill_routing(e, sk);
}

/* Not built on fill_overflow: that costs ovf_consume_skb's chain of calls
 * 16 bytes of stack it does not have (BPF's 512). */
static __always_inline int emit_overflow(const struct sock *sk, struct listen_info *li,
					 const struct syn_tuple *t, __u32 netns,
					 __u8 stage, __u8 method, __u32 suppressed)
{
	struct syn_ev_listen_overflow *e = reserve(sizeof(*e), SYN_EV_LISTEN_OVERFLOW);
	if (!e)
		return 0;
	e->t = *t;
	e->listener_ino = li ? li->ino : 0;
	e->netns = netns;
	e->listener_pid = li ? li->tgid : 0;
	e->ack_backlog = BPF_CORE_READ(sk, sk_ack_backlog);
	e->max_ack_backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
	e->syn_qlen = BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_accept_queue.qlen.counter);
	e->drops = listener_drops(sk);
	e->somaxconn = BPF_CORE_READ(sk, __sk_common.skc_net.net, core.sysctl_somaxconn);
	e->suppressed = suppressed;
	e->stage = stage;
	e->method = method;
	e->_pad = 0;
	e->counted = 0;
	__builtin_memset(&e->client, 0, sizeof(e->client));
	e->client_found = find_client(t, &e->client);
	fill_routing(e, sk);
	submit(e);
	return 0;
}

/* What the healthy case reads per SYN to a listener: the drop counter, the
 * SYN queue length and the backlog. */
struct listener_queue {
	__u32 drops;
	__u32 max;
	__u32 qlen;
};

static __always_inline void read_listener_queue(const struct sock *sk, struct listener_queue *q)
{
	q->drops = listener_drops(sk);
	q->max = BPF_CORE_READ(sk, sk_max_ack_backlog);
	q->qlen = BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_accept_queue.qlen.counter);
}

/* Did the drop counter move, or the SYN queue pass the backlog, since the
 * listener was last looked at? */
static __always_inline bool listener_queue_moved(const struct listen_info *li, const struct listener_queue *q)
{
	return q->drops != li->drops_seen || q->qlen > q->max;
}

/* Did this SYN overflow the listener `key`? Returns 1 if it was reported.
 * A global function: the verifier checks it once, not once per listener slot
 * of ovf_consume_skb's loop (which took ~180 ms of start-up). */
__noinline int check_listener(__u64 key, const struct syn_tuple *t)
{
	if (!t)
		return 0;
	const struct sock *sk = (const struct sock *)key;
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	if (!li || li->family != t->family)
		return 0;

	/* Per SYN to a listener: read only what the healthy case needs, the
	 * rest once something moved. */
	struct listener_queue q;
	read_listener_queue(sk, &q);
	if (!listener_queue_moved(li, &q))
		return 0;
	__u32 drops = q.drops, max = q.max, qlen = q.qlen;
	__u32 ack = BPF_CORE_READ(sk, sk_ack_backlog);
	__u8 cookies = BPF_CORE_READ(sk, __sk_common.skc_net.net, ipv4.sysctl_tcp_syncookies);

	__u32 seen = li->drops_seen;
	if (drops != seen) {
		/* Claimed once: run_ovf_watch may be counting the same rise. */
		if (__sync_val_compare_and_swap(&li->drops_seen, seen, drops) != seen)
			return 0;
		/* tcp_conn_request checks the SYN queue first (a drop there only
		 * without syncookies), then the accept queue. */
		__u8 stage;
		if (qlen > max && cookies == 0)
			stage = SYN_OVF_SYN_SYNQ_DROP;
		else if (ack > max)
			stage = SYN_OVF_SYN_ACCEPTQ;
		else
			/* Neither queue full, yet the listener counted a drop as
			 * this SYN was consumed: tcp_conn_request dropped it past
			 * the queue checks, most often because its SYN-ACK has no
			 * route back (route_req). Another cause (an ACK-stage or
			 * socket-filter drop in between) is told apart in user
			 * space, which replays the route back. */
			stage = SYN_OVF_SYN_UNANSWERED;
		emit_overflow(sk, li, t, li->netns, stage, SYN_OVF_M_CONSUME_SKB, 0);
		return 1;
	}
	if (qlen > max && cookies != 0) {
		/* SYN queue full, answered with a cookie: not a drop, but a SYN
		 * flood or a backlog too small. Rate-limited per listener; the
		 * folded count travels in `suppressed`. */
		__u64 now = bpf_ktime_get_boot_ns();
		if (now - li->last_emit_ns < SYN_COOKIE_EVENT_GAP_NS) {
			li->suppressed++;
			return 1;
		}
		__u32 folded = li->suppressed;
		li->suppressed = 0;
		li->last_emit_ns = now;
		emit_overflow(sk, li, t, li->netns, SYN_OVF_SYN_COOKIE, SYN_OVF_M_CONSUME_SKB, folded);
		return 1;
	}
	return 0;
}

/* The listener `key` is tracked and its queue moved (listener_queue_moved).
 * A global function (verified once, not once per slot of the caller's
 * loop); 1 or 0. */
__noinline int listener_moved(__u64 key)
{
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	if (!li)
		return 0;
	/* Without the state-change hook a closed listener stays registered
	 * until found dead: its memory may be another socket's now. */
	if (no_state_hook() && !listener_alive(key, li->port))
		return 0;
	struct listener_queue q;
	read_listener_queue((const struct sock *)key, &q);
	return listener_queue_moved(li, &q) ? 1 : 0;
}

/* consume_skb: every consumed skb on the host. */
static __always_inline int ovf_on_consume_skb(struct sk_buff *skb, void *location)
{
	__u64 loc = (__u64)location;
	struct syn_tuple t = {};
	struct tcphdr th;
	__u8 flags = 0;

	/* Hot path: every consumed skb on the host. Two compares and out. */
	if (loc < trs_range.start || loc >= trs_range.end)
		return 0;
	/* Consumed by tcp_rcv_state_process: ~3 segments per connection, one of
	 * them a SYN to a listener. tcp_rcv_state_process itself reads the
	 * header at tcp_hdr(skb), so the transport header is set here (skb is
	 * a BTF pointer: direct loads). One read gives the flags and the port;
	 * the addresses are parsed only when a listener's counters moved. */
	if (bpf_probe_read_kernel(&th, sizeof(th), skb->head + skb->transport_header))
		return 0;
	if (!is_first_syn(((__u8 *)&th)[13]))
		return 0;
	__u16 port = bpf_ntohs(th.dest);
	struct listen_slots *ls = bpf_map_lookup_elem(&listen_ports, &port);
	if (!ls)
		return 0;
	/* Two passes, each one path for the verifier whatever the slots
	 * hold: did any listener of the port move? Then parse the SYN once
	 * and let each listener that moved claim it. */
	int moved = 0;
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		__u64 key = ls->sk[i];
		if (key)
			moved |= listener_moved(key);
	}
	if (!moved || !parse_tcp(skb, &t, &flags) || !is_first_syn(flags))
		return 0;
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		__u64 key = ls->sk[i];
		if (key && check_listener(key, &t) > 0)
			break;
	}
	return 0;
}

/*
 * Overflow armed on anomaly: the per-SYN programs (ovf_consume_skb, which
 * runs for every consumed packet, or fentry/kprobe on tcp_conn_request,
 * for every SYN to a listener), the ACK-stage fexit/kretprobes and the
 * accept() exits are attached only while some listener's queue is full or
 * its drop counter moves (Sources/SynsightKernel/OverflowArming.swift).
 * User space runs
 * run_ovf_watch (BPF_PROG_TEST_RUN, on its own thread) every few hundred
 * ms: it walks the listener registry and
 *  - reports the sk_drops rise no per-SYN record claimed as one record per
 *    listener (SYN_OVF_M_COUNTER, `counted`: no SYN seen, so no client and
 *    no remote), classified by the queues as the sweep finds them;
 *  - returns the number of listeners that moved or whose queue is full or
 *    one connection from it, which arms ovf_consume_skb.
 * A rise with no queue full at the sweep is absorbed unreported, as
 * check_listener does: sk_drops also counts drops of other causes.
 */
struct ovf_watch_ctx {
	__u32 anomalies;
};

/* The kernel drops when len > max (sk_acceptq_is_full,
 * inet_csk_reqsk_queue_is_full); len == max is one SYN from it. */
static __always_inline bool queue_at_limit(__u32 len, __u32 max)
{
	return len > 0 && len >= max;
}

static __always_inline void emit_counted(const struct sock *sk, const struct listen_info *li,
					 __u32 counted, __u8 stage)
{
	struct syn_ev_listen_overflow *e = reserve(sizeof(*e), SYN_EV_LISTEN_OVERFLOW);
	if (!e)
		return;
	fill_overflow(e, sk, li, li->netns, stage, SYN_OVF_M_COUNTER);
	__builtin_memset(&e->t, 0, sizeof(e->t));
	sock_local(sk, &e->t);
	__builtin_memset(e->t.remote, 0, 16);
	e->t.rport = 0;
	e->t.lport = li->port;
	e->counted = counted;
	submit(e);
}

static __always_inline void ovf_watch_one(__u64 k, struct listen_info *li, struct ovf_watch_ctx *ctx)
{
	const struct sock *sk = (const struct sock *)k;
	if (no_state_hook() && !listener_alive(k, li->port))
		return; /* the reap sweep's business */
	struct listener_queue q;
	read_listener_queue(sk, &q);
	__u32 ack = BPF_CORE_READ(sk, sk_ack_backlog);
	__u32 seen = li->drops_seen;
	/* Negative: per-SYN programs claimed drops the kernel is about to
	 * count (ovf_claim_drop); nothing is unclaimed. */
	__s32 unclaimed = (__s32)(q.drops - seen);
	if (queue_at_limit(ack, q.max) || queue_at_limit(q.qlen, q.max) || unclaimed > 0)
		ctx->anomalies++;
	if (unclaimed <= 0)
		return;
	if (__sync_val_compare_and_swap(&li->drops_seen, seen, q.drops) != seen)
		return; /* a per-SYN record claimed the rise meanwhile */
	__u8 cookies = BPF_CORE_READ(sk, __sk_common.skc_net.net, ipv4.sysctl_tcp_syncookies);
	if (q.qlen > q.max && cookies == 0)
		emit_counted(sk, li, q.drops - seen, SYN_OVF_SYN_SYNQ_DROP);
	else if (ack > q.max)
		emit_counted(sk, li, q.drops - seen, SYN_OVF_SYN_ACCEPTQ);
}

/* One key of listen_dense (a bpf_loop step). */
static long ovf_dense_cb(__u32 i, void *data)
{
	struct ovf_watch_ctx *ctx = data;
	__u64 *k = bpf_map_lookup_elem(&listen_dense, &i);
	if (!k)
		return 1;
	__u64 key = *k;
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	if (li)
		ovf_watch_one(key, li, ctx);
	return 0;
}

/* Returns how many listeners are anomalous (ovf_watch_one). */
static __always_inline int ovf_watch(void)
{
	listen_dense_refresh();
	struct ovf_watch_ctx ctx = {};
	bpf_loop(listen_dense_len, ovf_dense_cb, &ctx, 0);
	return ctx.anomalies;
}

/* A drop reported one by one is claimed in the listener's `drops_seen`, so
 * run_ovf_watch does not count it again: by one, atomically (SYNs of one
 * listener are dropped on several CPUs at once). tcp_conn_request's entry
 * claims a drop the kernel counts just after (tcp_listendrop); a sweep in
 * between sees the claim ahead of sk_drops and takes nothing. */
static __always_inline void ovf_claim_drop(struct listen_info *li)
{
	if (li)
		__sync_fetch_and_add(&li->drops_seen, 1);
}

/*
 * A SYN left unanswered where the per-SYN hook runs before the decision
 * (fentry/kprobe on tcp_conn_request). Past the queue checks,
 * tcp_conn_request drops a SYN with no drop reason, no RST and no ICMP
 * error (`goto drop_and_free`, then tcp_listendrop; 6.1, 6.12) when
 * af_ops->route_req finds no route for the SYN-ACK (or the LSM's
 * inet_conn_request hook refuses it), when syncookies are off and the SYN
 * backlog's reserve is reached for a peer it has not talked to before
 * (pr_drop_req), or when no request can be allocated. The entry keeps the
 * listener's sk_drops and SYN queue length per CPU (softirq: the call does
 * not nest on one CPU); at the exit a drop counted meanwhile with no
 * request added to the SYN queue is this SYN's. User space tells the
 * causes apart (NoRouteBack.swift, SynBacklogReserve.swift), replaying
 * the route back: a drop on another CPU in the same microseconds while a
 * request of this listener left its SYN queue would be taken for this
 * SYN's, and is reported only if this client's route back fails too.
 */
struct conn_request_entry {
	__u64 sk;  /* 0: no first SYN pending, or its drop already claimed */
	__u64 skb;
	__u64 ts;
	__u32 drops;
	__u32 qlen;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn_request_entry);
} conn_request_entry SEC(".maps");

/* A return probe seen without its entry (attached in between) has nothing
 * to compare with: an entry older than this is not its call's. */
#define CONN_REQUEST_ENTRY_MAX_NS (100 * 1000 * 1000ULL)

/* The per-CPU entry, emptied: the exit compares only what this call kept. */
static __always_inline struct conn_request_entry *ovf_conn_request_entry(void)
{
	__u32 zero = 0;
	struct conn_request_entry *e = bpf_map_lookup_elem(&conn_request_entry, &zero);
	if (e)
		e->sk = 0;
	return e;
}

/* A first SYN past the queue checks: what its exit compares. */
static __always_inline void ovf_conn_request_keep(struct conn_request_entry *e, const struct sock *sk,
						  const struct sk_buff *skb, __u32 qlen)
{
	if (!e)
		return;
	e->sk = (__u64)sk;
	e->skb = (__u64)skb;
	e->ts = bpf_ktime_get_ns();
	e->drops = listener_drops(sk);
	e->qlen = qlen;
}

/*
 * Where BPF trampolines or kprobes exist: the queue state as tcp_conn_request
 * starts, which decides the SYN's fate exactly as the kernel will:
 *   if ((syncookies == 2 || reqsk_queue_len > max) && !isn)
 *           cookie, or drop when syncookies are off;
 *   if (sk_acceptq_is_full(sk)) drop;
 * (6.1 and 6.12 tcp_input.c). Runs only for SYNs to listeners: cheaper than
 * consume_skb, so it is preferred where it loads.
 */
static __always_inline int ovf_on_conn_request(const struct sock *sk, const struct sk_buff *skb, __u8 method)
{
	struct syn_tuple t = {};
	__u8 flags = 0;

	struct conn_request_entry *e = ovf_conn_request_entry();
	if (!parse_tcp(skb, &t, &flags) || !is_first_syn(flags))
		return 0;
	__u64 key = (__u64)sk;
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	__u32 ack = BPF_CORE_READ(sk, sk_ack_backlog);
	__u32 max = BPF_CORE_READ(sk, sk_max_ack_backlog);
	__u32 qlen = BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_accept_queue.qlen.counter);
	__u8 cookies = BPF_CORE_READ(sk, __sk_common.skc_net.net, ipv4.sysctl_tcp_syncookies);
	bool synq_full = cookies == 2 || qlen > max;

	if (synq_full && cookies == 0) {
		ovf_claim_drop(li);
		return emit_overflow(sk, li, &t, sock_netns(sk), SYN_OVF_SYN_SYNQ_DROP, method, 0);
	}
	if (ack > max) {
		ovf_claim_drop(li);
		return emit_overflow(sk, li, &t, sock_netns(sk), SYN_OVF_SYN_ACCEPTQ, method, 0);
	}
	if (synq_full && cookies == 1 && li) {
		__u64 now = bpf_ktime_get_boot_ns();
		if (now - li->last_emit_ns < SYN_COOKIE_EVENT_GAP_NS) {
			li->suppressed++;
			return 0;
		}
		__u32 folded = li->suppressed;
		li->suppressed = 0;
		li->last_emit_ns = now;
		return emit_overflow(sk, li, &t, sock_netns(sk), SYN_OVF_SYN_COOKIE, method, folded);
	}
	if (!synq_full)
		ovf_conn_request_keep(e, sk, skb, qlen);
	return 0;
}

/* `sk`, `skb`: fexit's arguments; NULL for a kretprobe, which has only the
 * entry's. */
static __always_inline int ovf_on_conn_request_done(const struct sock *sk, const struct sk_buff *skb, __u8 method)
{
	__u32 zero = 0;
	struct conn_request_entry *e = bpf_map_lookup_elem(&conn_request_entry, &zero);
	if (!e || !e->sk)
		return 0;
	__u64 esk = e->sk, eskb = e->skb;
	e->sk = 0;
	if (sk ? (esk != (__u64)sk || eskb != (__u64)skb) : bpf_ktime_get_ns() - e->ts > CONN_REQUEST_ENTRY_MAX_NS)
		return 0;
	sk = (const struct sock *)esk;
	skb = (const struct sk_buff *)eskb;
	struct listener_queue q;
	read_listener_queue(sk, &q);
	if (q.drops == e->drops || q.qlen > e->qlen)
		return 0; /* not dropped, or a request was queued: answered */
	struct syn_tuple t = {};
	__u8 flags = 0;
	if (!parse_tcp(skb, &t, &flags))
		return 0;
	__u64 key = esk;
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	/* Counted already (tcp_listendrop before the return): claimed unless
	 * run_ovf_watch took the rise meanwhile (it absorbs a rise with
	 * neither queue full without a record). */
	if (li) {
		__u32 seen = li->drops_seen;
		if ((__s32)(q.drops - seen) > 0)
			__sync_val_compare_and_swap(&li->drops_seen, seen, seen + 1);
	}
	return emit_overflow(sk, li, &t, sock_netns(sk), SYN_OVF_SYN_UNANSWERED, method, 0);
}

/*
 * ACK stage where the kernel has neither the TCP_LISTEN_OVERFLOW drop
 * reason (6.15) nor reset reasons (6.10): tcp_v{4,6}_syn_recv_sock returns
 * no child when the accept queue is full (`if (sk_acceptq_is_full(sk)) goto
 * exit_overflow;`, 6.1 and 6.12), and tcp_check_req then drops the ACK, or
 * answers it with RST when tcp_abort_on_overflow is set. cfg.flags says
 * which of the two no tracepoint reports on this kernel.
 */
static __always_inline int ovf_on_syn_recv_done(const struct sock *sk, const struct sk_buff *skb,
					 const struct sock *child, __u8 method)
{
	struct syn_tuple t = {};
	__u8 flags = 0;

	if (child || !sk || !skb)
		return 0;
	/* No child for another reason (memory, route): not an overflow. */
	if (BPF_CORE_READ(sk, sk_ack_backlog) <= BPF_CORE_READ(sk, sk_max_ack_backlog))
		return 0;
	bool abort = BPF_CORE_READ(sk, __sk_common.skc_net.net, ipv4.sysctl_tcp_abort_on_overflow) != 0;
	if (!(cfg.flags & (abort ? SYN_CFG_ACK_RESET_SYN_RECV : SYN_CFG_ACK_DROP_SYN_RECV)))
		return 0;
	if (!parse_tcp(skb, &t, &flags))
		return 0;
	__u64 key = (__u64)sk;
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	ovf_claim_drop(li); /* counted already (tcp_listendrop before the return) */
	return emit_overflow(sk, li, &t, sock_netns(sk), abort ? SYN_OVF_ACK_RESET : SYN_OVF_ACK_DROP, method, 0);
}

/* kretprobes see only the return value: the arguments are kept per CPU at
 * entry (softirq; the call does not nest on one CPU). */
struct syn_recv_args {
	__u64 sk;
	__u64 skb;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syn_recv_args);
} syn_recv_args SEC(".maps");

static __always_inline int ovf_on_syn_recv_enter(const struct sock *sk, const struct sk_buff *skb)
{
	__u32 zero = 0;
	struct syn_recv_args *a = bpf_map_lookup_elem(&syn_recv_args, &zero);
	if (a) {
		a->sk = (__u64)sk;
		a->skb = (__u64)skb;
	}
	return 0;
}

static __always_inline int ovf_on_syn_recv_exit(const struct sock *child)
{
	__u32 zero = 0;
	struct syn_recv_args *a = bpf_map_lookup_elem(&syn_recv_args, &zero);
	if (!a || !a->sk)
		return 0;
	const struct sock *sk = (const struct sock *)a->sk;
	const struct sk_buff *skb = (const struct sk_buff *)a->skb;
	a->sk = 0;
	return ovf_on_syn_recv_done(sk, skb, child, SYN_OVF_M_SYN_RECV_KRETPROBE);
}

/* kfree_skb with reason TCP_LISTEN_OVERFLOW (6.15+, "tcp: add four drop
 * reasons to tcp_check_req()"): the handshake ACK dropped because the
 * accept queue is full. False, and a constant, where the kernel lacks the
 * reason: then the kfree_skb program's rx_sk read is never verified. */
static __always_inline bool ovf_ack_overflow_traced(void)
{
	return bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW);
}

static __always_inline bool ovf_ack_overflow_reason(__u32 reason)
{
	return ovf_ack_overflow_traced() &&
	       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW);
}

/* The ACK-stage drop (ovf_ack_overflow_reason); rx_sk is the listener. Not
 * inlined (nor ovf_on_send_reset): in the shared programs the frames of the
 * handlers and of find_client would add up past BPF's 512 bytes of stack. */
static __noinline int ovf_on_kfree_skb(struct sk_buff *skb, struct sock *rx_sk)
{
	struct syn_tuple t = {};
	__u8 flags = 0;

	if (!skb || !rx_sk)
		return 0;
	if (!parse_tcp(skb, &t, &flags))
		return 0;
	__u64 key = (__u64)rx_sk;
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	if (li)
		li->drops_seen = listener_drops(rx_sk);
	return emit_overflow(rx_sk, li, &t, sock_netns(rx_sk), SYN_OVF_ACK_DROP,
			     SYN_OVF_M_KFREE_SKB, 0);
}

/* tcp_abort_on_overflow=1: the listener answers the overflowing ACK with RST. */
static __noinline int ovf_on_send_reset(const struct sock *sk, const struct sk_buff *skb,
					enum sk_rst_reason reason)
{
	struct syn_tuple t = {};
	__u8 flags = 0;

	if (!sk || !skb)
		return 0;
	if (!bpf_core_enum_value_exists(enum sk_rst_reason, SK_RST_REASON_INVALID_SYN) ||
	    reason != bpf_core_enum_value(enum sk_rst_reason, SK_RST_REASON_INVALID_SYN))
		return 0;
	if (sk->__sk_common.skc_state != TCP_LISTEN)
		return 0;
	if (!parse_tcp(skb, &t, &flags))
		return 0;
	__u64 key = (__u64)sk;
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	return emit_overflow(sk, li, &t, sock_netns(sk), SYN_OVF_ACK_RESET,
			     SYN_OVF_M_SEND_RESET, 0);
}

/* accept() failing on a listener: EMFILE/ENFILE means the queue cannot drain. */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);   /* tgid */
	__type(value, __u64); /* last report, boot ns */
} accept_err_last SEC(".maps");

/*
 * Only the exit: every accept() of every server passes here, and a healthy
 * one must cost a compare, not a map update at entry and a lookup and delete
 * at exit (docs/benchmarks.md). The listener's fd, the first argument, is
 * still in the task's saved user registers at syscall exit (x86-64 keeps it
 * in di, arm64 in orig_x0: PT_REGS_PARM1_CORE_SYSCALL).
 */
static __always_inline bool accept_exit_wanted(long ret)
{
	return ret == -EMFILE || ret == -ENFILE;
}

/* An accept() on listener `fd` failed with `ret` (accept_exit_wanted). */
static __always_inline int accept_exit(long ret, __u32 fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	/* A server out of fds usually spins on accept(): one report per
	 * process per second is enough to explain its overflows. */
	__u32 tgid = id >> 32;
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 *last = bpf_map_lookup_elem(&accept_err_last, &tgid);
	if (last && now - *last < 1000000000ULL)
		return 0;
	bpf_map_update_elem(&accept_err_last, &tgid, &now, BPF_ANY);

	/* fd_socket (task.bpf.h): bounds-checked, and only a socket's file. */
	struct socket *sock = fd_socket((int)fd);
	const struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
	struct syn_ev_accept_error *e = reserve(sizeof(*e), SYN_EV_ACCEPT_ERROR);
	if (!e)
		return 0;
	fill_task(&e->task);
	e->err = (__s32)ret;
	e->listener_ino = sk ? sock_inode(sk) : 0;
	e->netns = sk ? sock_netns(sk) : 0;
	e->port = sk ? BPF_CORE_READ(sk, __sk_common.skc_num) : 0;
	e->family = sk ? BPF_CORE_READ(sk, __sk_common.skc_family) : 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	e->nofile_cur = BPF_CORE_READ(task, signal, rlim[7].rlim_cur); /* RLIMIT_NOFILE */
	e->_pad = 0;
	submit(e);
	return 0;
}

/* syscalls:sys_exit_accept{,4}: the listener's fd from the saved user
 * registers. */
static __always_inline int ovf_on_tp_exit_accept(long ret)
{
	if (!accept_exit_wanted(ret))
		return 0;
	return accept_exit(ret, (__u32)PT_REGS_PARM1_CORE_SYSCALL(user_regs()));
}

/* fexit/__sys_accept4 (accept() and accept4() both end there). */
static __always_inline int ovf_on_fx_exit_accept(int fd, int ret)
{
	if (!accept_exit_wanted(ret))
		return 0;
	return accept_exit(ret, fd);
}
