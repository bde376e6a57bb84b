/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: the listener registry. Listening sockets (for the
 * overflow handlers and for telling a closed listener from none), by socket
 * and by port, and the processes that ever listened (only their exits are
 * reported). Births and deaths are reported as SYN_EV_LISTEN and
 * SYN_EV_LISTEN_CLOSE; without the state-change hook a death is found when
 * something asks about the port (listeners_reap).
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "ringbuf.bpf.h"
#include "sock.bpf.h"
#include "task.bpf.h"
#include "dev.bpf.h"

/* Drops the listeners of `port` that are no longer listening (below). */
int listeners_reap(__u64 port);

/* Thread-group ids that have called listen(): only their exits are reported.
 * User space seeds it with the listeners found in the start-up snapshot. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} listener_pids SEC(".maps");

/* Listening sockets, for the overflow programs (overflow.bpf.h): filled at
 * CLOSE->LISTEN and, for listeners that predate tracing, by the iter/tcp
 * program run by user space in each network namespace. */
struct listen_info {
	__u64 ino;
	__u64 last_emit_ns;  /* rate limit of non-drop overflow events */
	__u32 tgid;          /* 0 when the listener predates tracing */
	__u32 netns;
	__u32 drops_seen;    /* sk_drops when last looked at */
	__u32 suppressed;
	__u16 port;
	__u16 family;
	__u32 _pad;
};

#define LISTEN_SOCKS_MAX 16384
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LISTEN_SOCKS_MAX);
	__type(key, __u64); /* struct sock * of the listener */
	__type(value, struct listen_info);
} listen_socks SEC(".maps");

/* Moves after every change to listen_socks' keys (listen_reg_put and
 * listen_reg_del are the only writers): the sweeps keep a dense copy of the
 * keys and rebuild it when this moved (listen_dense_refresh). Incremented
 * after the change, so a walk that read it before starting either saw the
 * change or sees the count move next time. */
volatile __u64 listen_gen;

/* The registry's keys, dense, so that a sweep costs the listeners there are
 * and not the registry's size: bpf_for_each_map_elem on a hash visits every
 * one of its 16,384 buckets, about 0.38 ms a walk on an idle host (BPF
 * statistics of 6.18): the overflow watch runs 4 times a second, the reap
 * sweep every 5 s. A sweep rebuilds it first (a walk of the whole registry
 * that only copies keys) when listen_gen moved since the last build, then
 * loops over it (bpf_loop) and looks each key up, skipping those gone: the
 * sweep's body is inlined once, so the verifier walks it once. The two
 * sweeps run on two threads of user space (the overflow watch's and the
 * consumer's), so they may overlap: `listen_dense_busy` keeps them from
 * rebuilding at once, and the second uses the keys as they are (a key gone
 * is skipped, one missed is swept next time). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LISTEN_SOCKS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} listen_dense SEC(".maps");
/* listen_gen when listen_dense was built (both 0 at load: no listener). */
volatile __u64 listen_dense_gen;
volatile __u32 listen_dense_len;
volatile __u32 listen_dense_busy;

static __always_inline void listen_reg_put(__u64 key, const struct listen_info *li, __u64 flags)
{
	if (bpf_map_update_elem(&listen_socks, &key, li, flags) == 0)
		__sync_fetch_and_add(&listen_gen, 1);
}

static __always_inline void listen_reg_del(__u64 key)
{
	if (bpf_map_delete_elem(&listen_socks, &key) == 0)
		__sync_fetch_and_add(&listen_gen, 1);
}

/* Listeners by local port, across namespaces: where a SYN's namespace is no
 * longer readable (skb->dev is gone when tcp_rcv_state_process consumes it),
 * the listener whose own counters moved is the one. 32 per port: the pods of
 * a node listening on the same port each in its namespace, or an
 * SO_REUSEPORT group (one listener per worker) in one. A listener past
 * them is still registered: its drops come as counted records (the watch
 * sweep), without the client. 8,192 ports x 256 bytes, preallocated: about
 * the memory 16,384 ports x 8 slots took. */
#define LISTEN_SLOTS 32
struct listen_slots {
	__u64 sk[LISTEN_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u16); /* local port */
	__type(value, struct listen_slots);
} listen_ports SEC(".maps");

/* A socket pointer as the plain number the slots keep. A global function
 * takes only numbers (or context and memory pointers) as arguments, and the
 * verifier types a socket pointer a program was given (tp_btf, iter) as a
 * pointer through any cast: read back as bytes, it is a number. */
static __always_inline __u64 sock_number(const void *sk)
{
	__u64 p = (__u64)sk, n = 0;
	bpf_probe_read_kernel(&n, sizeof(n), &p);
	return n;
}

/* A port's first slots, copied from here: 256 bytes are too many for the
 * stack of a call chain (BPF's 512 bytes are for all frames together). */
struct listen_slots listen_slots_empty = {};

/* Global functions (verified once, not at every caller: the slots' loops
 * are long); the port is passed 64-bit (see port_in_filter in config.bpf.h),
 * the listener as sock_number(). */

__noinline int port_slot_add(__u64 wanted, __u64 sk)
{
	__u16 port = (__u16)wanted;
	struct listen_slots *ls = bpf_map_lookup_elem(&listen_ports, &port);
	if (!ls) {
		bpf_map_update_elem(&listen_ports, &port, &listen_slots_empty, BPF_NOEXIST);
		ls = bpf_map_lookup_elem(&listen_ports, &port);
		if (!ls)
			return 0;
	}
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		if (ls->sk[i] == sk)
			return 0;
	}
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		if (ls->sk[i] == 0) {
			ls->sk[i] = sk;
			return 0;
		}
	}
	/* Full: without the state-change hook closed listeners stay until
	 * found dead (listeners_reap). */
	if (no_state_hook() && listeners_reap(port) > 0) {
		for (int i = 0; i < LISTEN_SLOTS; i++) {
			if (ls->sk[i] == 0) {
				ls->sk[i] = sk;
				return 0;
			}
		}
	}
	return 0;
}

__noinline int port_slot_del(__u64 wanted, __u64 sk)
{
	__u16 port = (__u16)wanted;
	struct listen_slots *ls = bpf_map_lookup_elem(&listen_ports, &port);
	if (!ls)
		return 0;
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		if (ls->sk[i] == sk)
			ls->sk[i] = 0;
	}
	return 0;
}

/* Is the socket at `key` still a listener on `port`? TCP sockets are
 * SLAB_TYPESAFE_BY_RCU: a closed listener's memory stays a socket, reused
 * or not, so reading it is safe and tells. */
static __always_inline bool listener_alive(__u64 key, __u16 port)
{
	const struct sock *sk = (const struct sock *)key;
	return BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_LISTEN &&
	       BPF_CORE_READ(sk, __sk_common.skc_num) == port;
}

/* A listener found dead: its close, as inet_sock_set_state would have
 * reported it (the closing process and the exact time unknown: task zero,
 * ts = now). */
static __always_inline void emit_lazy_close(const struct listen_info *li)
{
	struct syn_ev_listen *e = reserve(sizeof(*e), SYN_EV_LISTEN_CLOSE);
	if (!e)
		return;
	__builtin_memset(&e->t, 0, sizeof(e->t));
	e->t.lport = li->port;
	e->t.family = li->family;
	__builtin_memset(&e->task, 0, sizeof(e->task));
	e->sock_ino = li->ino;
	e->netns = li->netns;
	e->ipv6only = 0;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	submit(e);
}

/* The listener `key` of `port` if it is dead: its close reported and its
 * registration dropped; 1, else 0. A global function, so that the loop
 * over a port's slots stays short for the verifier. */
__noinline int reap_if_dead(__u64 key, __u64 wanted)
{
	if (listener_alive(key, (__u16)wanted))
		return 0;
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	if (li) {
		emit_lazy_close(li);
		listen_reg_del(key);
	}
	return 1;
}

/* A global function (verified once). 1 if any listener of the port was
 * reaped, else 0. The port is passed 64-bit (see port_in_filter in
 * config.bpf.h). */
__noinline int listeners_reap(__u64 wanted)
{
	__u16 port = (__u16)wanted;
	struct listen_slots *ls = bpf_map_lookup_elem(&listen_ports, &port);
	int reaped = 0;
	if (!ls)
		return 0;
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		__u64 key = ls->sk[i];
		if (key && reap_if_dead(key, port)) {
			ls->sk[i] = 0;
			reaped = 1;
		}
	}
	return reaped;
}

static __always_inline void track_listener(const struct sock *sk, __u8 kind, const struct syn_ev_listen *e)
{
	__u64 key = (__u64)sk;

	if (kind == SYN_EV_LISTEN) {
		struct listen_info li = {
			.ino = e->sock_ino, .tgid = e->task.pid, .netns = e->netns,
			.drops_seen = BPF_CORE_READ(sk, sk_drops.counter),
			.port = e->t.lport, .family = e->t.family,
		};
		listen_reg_put(key, &li, BPF_ANY);
		port_slot_add(e->t.lport, sock_number(sk));
	} else {
		listen_reg_del(key);
		port_slot_del(e->t.lport, sock_number(sk));
	}
}

static __always_inline int on_listen_change(const struct sock *sk, __u8 kind)
{
	struct syn_ev_listen *e = reserve(sizeof(*e), kind);
	if (!e)
		return 0;
	sock_local(sk, &e->t);
	__builtin_memset(e->t.remote, 0, 16);
	e->t.rport = 0;
	fill_task(&e->task);
	e->sock_ino = sock_inode(sk);
	e->netns = sock_netns(sk);
	e->ipv6only = e->t.family == AF_INET6 ?
		BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_ipv6only) : 0;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	sock_bound_dev(sk, &e->bound);
	__u32 tgid = e->task.pid; /* e is gone after submit */
	track_listener(sk, kind, e);
	submit(e);

	if (kind == SYN_EV_LISTEN) {
		__u8 one = 1;
		bpf_map_update_elem(&listener_pids, &tgid, &one, BPF_ANY);
	}
	return 0;
}

/* One key of the registry copied into listen_dense (the rebuild's walk). */
static long listen_index_cb(struct bpf_map *map, __u64 *key, void *li, __u32 *built)
{
	__u32 i = *built;
	__u64 *slot = bpf_map_lookup_elem(&listen_dense, &i);
	if (!slot)
		return 1;
	*slot = *key;
	(*built)++;
	return 0;
}

/* listen_dense rebuilt when the registry's keys changed since it was built. */
static __always_inline void listen_dense_refresh(void)
{
	__u64 gen = listen_gen;
	if (gen != listen_dense_gen && __sync_val_compare_and_swap(&listen_dense_busy, 0, 1) == 0) {
		__u32 built = 0;
		bpf_for_each_map_elem(&listen_socks, listen_index_cb, &built, 0);
		listen_dense_len = built;
		listen_dense_gen = gen;
		listen_dense_busy = 0;
	}
}

/* One key of listen_dense (a bpf_loop step of the reap sweep). */
static long reap_dense_cb(__u32 i, void *data)
{
	__u64 *k = bpf_map_lookup_elem(&listen_dense, &i);
	if (!k)
		return 1;
	__u64 key = *k;
	struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
	if (!li || listener_alive(key, li->port))
		return 0;
	emit_lazy_close(li);
	port_slot_del(li->port, key);
	listen_reg_del(key);
	return 0;
}

/* Listeners that closed while nothing asked about their port: user space
 * runs the program calling this (BPF_PROG_TEST_RUN, not attached to
 * anything) every few seconds (Tracer.run), so that the registries on both
 * sides stay bounded. */
static __always_inline void listeners_sweep(void)
{
	listen_dense_refresh();
	bpf_loop(listen_dense_len, reap_dense_cb, NULL, 0);
}

/* A listener that predates tracing, found by the iter/tcp program user
 * space runs once in each network namespace. */
/* A listener that predates tracing (iter/tcp): tracked like one seen in
 * listen(); `out` gets what /proc/net/tcp does not show (its bound device,
 * IPV6_V6ONLY). False for any other socket. */
static __always_inline bool listeners_seed(struct sock_common *skc, struct syn_seed_listener *out)
{
	if (!skc || skc->skc_state != TCP_LISTEN)
		return false;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return false;
	const struct sock *sk = (const struct sock *)tp;
	out->sock_ino = sock_inode(sk);
	out->netns = sock_netns(sk);
	out->ipv6only = skc->skc_family == AF_INET6 ?
		BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_ipv6only) : 0;
	sock_bound_dev(sk, &out->bound);
	__u64 key = (__u64)sk;
	if (bpf_map_lookup_elem(&listen_socks, &key))
		return true;
	struct listen_info li = {
		.ino = out->sock_ino,
		.netns = out->netns,
		.drops_seen = BPF_CORE_READ(sk, sk_drops.counter),
		.port = skc->skc_num,
		.family = skc->skc_family,
	};
	listen_reg_put(key, &li, BPF_NOEXIST);
	port_slot_add(li.port, sock_number(sk));
	return true;
}
