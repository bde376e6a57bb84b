/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: the connecting sockets, each with the process that
 * called connect() (captured in process context, the only moment it is
 * known), and the search for the local client of a SYN seen at the server.
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "ringbuf.bpf.h"
#include "sock.bpf.h"
#include "fold.bpf.h"

/* Sockets in SYN_SENT -> who called connect(), captured in process context. */
struct connect_info {
	struct syn_task task;
	__u64 ts_ns;
	__u64 established_ns; /* 0 while in SYN_SENT */
	__u64 cookie;         /* the socket's cookie (SYN_CFG_NO_STATE_HOOK: entries are not deleted at CLOSE) */
};

/* A reset this soon after the handshake is a setup failure (e.g. the
 * listener's tcp_abort_on_overflow RST), reported as reset_by_peer. */
#define RESET_AFTER_SETUP_NS (10ULL * 1000 * 1000 * 1000)

/*
 * The connecting sockets: struct sock * -> struct connect_info, from connect()
 * (CLOSE->SYN_SENT) to CLOSE. Written and read several times per TCP
 * connection on the host, so it is not a BPF hash map: a hash or LRU update
 * at connect() and its delete at CLOSE (bucket locks, free lists shared
 * between CPUs) cost 4% of a Connection: close web server's requests/s
 * (docs/benchmarks.md, fix 8). Instead, a set-associative table in a BPF
 * array (lookups inlined by the verifier, no locks): CONN_WAYS sockets per
 * set, the set chosen by a hash of the socket's address. A slot is claimed
 * with a compare-and-swap (marked CONN_BUSY while it is written); a full set
 * gives up its oldest entry, the least likely to be asked about (only
 * SYN_SENT and the first seconds after setup matter). Readers copy an entry
 * and check that its key did not change meanwhile.
 */
#define CONN_SET_BITS SYN_CONN_SET_BITS
#define CONN_SETS (1 << CONN_SET_BITS)
#define CONN_WAYS 8
#define CONN_BUSY 1ULL /* low bit of a key: the slot is being written */

struct conn_set {
	__u64 sk[CONN_WAYS];
	__u16 dport[CONN_WAYS]; /* destination port: find_client's walk skips the rest */
	__u32 next;             /* the way a full set gives up next (first in, first out) */
	__u32 _pad;
	struct connect_info ci[CONN_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CONN_SETS);
	__type(key, __u32);
	__type(value, struct conn_set);
} connecting SEC(".maps");

/* Per CPU: the socket of the latest connect() (a local client's first SYN,
 * and its ACK, are processed inside its connect() on this CPU), and
 * find_client's walk budget. */
struct conn_cpu {
	__u64 last_sk;
	__u64 window_ns;
	__u32 walks;
	__u32 _pad;
	__u64 scratch; /* sk_key */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn_cpu);
} conn_cpu SEC(".maps");

/*
 * A socket's address as a number (the key of `connecting`). The verifier
 * allows no arithmetic on a BTF pointer, but a pointer stored in a map value
 * reads back as a plain number (privileged programs only, which synsight's
 * always are); cheaper than a bpf_probe_read_kernel of it.
 */
static __always_inline __u64 sk_key(const struct sock *sk)
{
	__u32 zero = 0;
	struct conn_cpu *c = bpf_map_lookup_elem(&conn_cpu, &zero);
	if (!c)
		return 0;
	*(volatile const struct sock **)&c->scratch = sk;
	return READ_ONCE_U64(c->scratch);
}

static __always_inline struct conn_set *conn_set_of(__u64 sk)
{
	__u32 i = (__u32)((sk * 0x9E3779B97F4A7C15ULL) >> (64 - CONN_SET_BITS));
	if (cfg.conn_sets)
		i &= cfg.conn_sets - 1;
	return bpf_map_lookup_elem(&connecting, &i);
}

static __always_inline int conn_way(const struct conn_set *s, __u64 sk)
{
	for (int i = 0; i < CONN_WAYS; i++) {
		if (READ_ONCE_U64(s->sk[i]) == sk)
			return i;
	}
	return -1;
}

/* The entry of `sk` in place (for an update), or NULL. */
static __always_inline struct connect_info *conn_ref(__u64 sk, struct conn_set **set, int *way)
{
	struct conn_set *s = conn_set_of(sk);
	if (!s)
		return NULL;
	int w = conn_way(s, sk);
	if (w < 0)
		return NULL;
	w &= CONN_WAYS - 1;
	*set = s;
	*way = w;
	return &s->ci[w];
}

/* After copying from the entry of `sk` at (s, w): was it still sk's
 * entry, not given up to another socket while being copied? */
static __always_inline bool conn_still_sk(const struct conn_set *s, int w, __u64 sk)
{
	barrier();
	return READ_ONCE_U64(s->sk[w]) == sk;
}

/* A copy of the entry of `sk`; false if there is none or it was replaced
 * while being copied. */
static __always_inline bool conn_get(__u64 sk, struct connect_info *out)
{
	struct conn_set *s;
	int w;
	struct connect_info *ci = conn_ref(sk, &s, &w);
	if (!ci)
		return false;
	*out = *ci;
	return conn_still_sk(s, w, sk);
}

/* conn_get's task only, written straight to `out` (a ring-buffer record's
 * field: no 64-byte copy on the caller's stack). On false `out` may hold a
 * stale task: the caller must not report it. */
static __always_inline bool conn_get_task(__u64 sk, struct syn_task *out)
{
	struct conn_set *s;
	int w;
	struct connect_info *ci = conn_ref(sk, &s, &w);
	if (!ci)
		return false;
	*out = ci->task;
	return conn_still_sk(s, w, sk);
}

static __always_inline void conn_put(__u64 sk, __u16 dport, const struct connect_info *ci)
{
	struct conn_set *s = conn_set_of(sk);
	if (!s)
		return;
	int w = -1;
	__u64 old = 0;
	for (int i = 0; i < CONN_WAYS; i++) {
		__u64 k = READ_ONCE_U64(s->sk[i]);
		if (k == sk || k == 0) { /* the same address reused, or free */
			w = i;
			old = k;
			break;
		}
	}
	if (w < 0) {
		/* Full (always, once entries outlive their sockets: see
		 * SYN_CFG_NO_STATE_HOOK): give up the way filled longest ago,
		 * reading only this set's first cache lines, not every entry's
		 * time (8 cache lines per connect()). */
		w = __sync_fetch_and_add(&s->next, 1) & (CONN_WAYS - 1);
		old = READ_ONCE_U64(s->sk[w]);
		if (old & CONN_BUSY)
			return;
	}
	w &= CONN_WAYS - 1;
	/* Lost a race for the slot with another CPU: this connect() is not
	 * remembered (its refusal is still reported, without the caller). */
	if (__sync_val_compare_and_swap(&s->sk[w], old, sk | CONN_BUSY) != old)
		return;
	s->ci[w] = *ci;
	s->dport[w] = dport;
	__sync_lock_test_and_set(&s->sk[w], sk); /* publish: a full barrier */
}

/* Remove the entry of `sk`; false if it was replaced meanwhile (then a copy
 * taken before may be torn). */
static __always_inline bool conn_del(struct conn_set *s, int way, __u64 sk)
{
	return __sync_val_compare_and_swap(&s->sk[way & (CONN_WAYS - 1)], sk, 0) == sk;
}

/*
 * The connecting sockets that retransmitted their SYN: a copy of their
 * entry, kept apart from `connecting`. A connect() that gets no answer
 * fails only after its SYN retries (~127 s by default, tcp_syn_retries=6),
 * while `connecting` gives up its entries first in, first out: on a host
 * making 1,000 connections a second, an entry lives about a minute. The
 * first retransmission (1 s after connect()) copies the entry here, so the
 * timeout, or a late refusal, still names its caller. Written only on a
 * SYN retransmission: nothing for healthy traffic. An LRU hash: a storm of
 * unanswered connects gives up its oldest.
 */
#define CONN_RETRY_ENTRIES 16384

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CONN_RETRY_ENTRIES);
	__type(key, __u64);
	__type(value, struct connect_info);
} connecting_retry SEC(".maps");

/* When conn_keep last kept an entry (boot ns). An entry whose connect() is
 * later than that has no kept copy: taking it needs no delete from
 * `connecting_retry` (an LRU hash delete, bucket lock included, on every
 * failed connect() of a refusal storm otherwise). */
__u64 conn_last_keep_ns = 0;

/* Keep `ci` (the entry of `key`) past `connecting`'s eviction. */
static __always_inline void conn_keep(__u64 key, const struct connect_info *ci)
{
	bpf_map_update_elem(&connecting_retry, &key, ci, BPF_ANY);
	/* After the update (whose bucket lock orders it): a taker that sees
	 * this time also finds the copy. */
	*(volatile __u64 *)&conn_last_keep_ns = bpf_ktime_get_boot_ns();
}

/* Can the entry of a connect() made at `connect_ns` have a kept copy? */
static __always_inline bool conn_maybe_kept(__u64 connect_ns)
{
	return READ_ONCE_U64(conn_last_keep_ns) >= connect_ns;
}

/* The kept entry of socket `sk` at `key` (its cookie must match: the
 * address may be another socket's by now), removed when `take`. */
static __always_inline bool conn_kept(const struct sock *sk, __u64 key, struct connect_info *out, bool take)
{
	struct connect_info *ci = bpf_map_lookup_elem(&connecting_retry, &key);
	if (!ci)
		return false;
	*out = *ci;
	/* The delete decides between two CPUs taking it at once. */
	if (take && bpf_map_delete_elem(&connecting_retry, &key) != 0)
		return false;
	return out->cookie == bpf_get_socket_cookie((void *)sk);
}

/*
 * Find the local connecting socket of a SYN (or of a handshake's ACK) by its
 * 4-tuple, in `connecting` (filled in process context at connect()). Used
 * only on rare paths (a dropped SYN or ACK). First the socket of this CPU's
 * latest connect(): a local client's first SYN and its ACK are processed
 * inside its own connect(). Otherwise (a retransmission, from a timer) the
 * table is walked, skipping entries for other destination ports; a walk
 * visits all CONN_SETS sets, so each CPU walks at most FIND_CLIENT_WALKS times
 * per FIND_CLIENT_WINDOW_NS: in an overflow storm the rest are reported
 * without their client (SYN_CLIENT_NOT_LOOKED_UP) rather than spending the
 * CPU the storm needs.
 */
#define FIND_CLIENT_WALKS 8
#define FIND_CLIENT_WINDOW_NS (100 * 1000 * 1000ULL)

struct find_client_ctx {
	struct syn_tuple want;   /* as the server saw it: local = server, remote = client */
	struct syn_task task;
	bool found;
};

/* Is `key` the client end of `want` (the server's view)? A global function:
 * verified once, with any arguments, instead of at each of find_client_cb's
 * CONN_WAYS calls in every state that reaches them (static, it was 60-80%
 * of the instructions the verifier walked for each program calling
 * find_client: ~31k of on_tcp_send_reset's 38k, start-up's longest part). */
__noinline int sock_is_client(__u64 key, const struct syn_tuple *want)
{
	struct syn_tuple t = {};

	if (!want)
		return false;
	sock_local((const struct sock *)key, &t);
	if (t.lport != want->rport || t.rport != want->lport)
		return false;
	return __builtin_memcmp(t.local, want->remote, 16) == 0 &&
	       __builtin_memcmp(t.remote, want->local, 16) == 0;
}

static long find_client_cb(struct bpf_map *map, __u32 *key, struct conn_set *s,
			   struct find_client_ctx *ctx)
{
	for (int i = 0; i < CONN_WAYS; i++) {
		__u64 k = READ_ONCE_U64(s->sk[i]);
		if (k == 0 || (k & CONN_BUSY) || s->dport[i] != ctx->want.lport)
			continue;
		if (!sock_is_client(k, &ctx->want))
			continue;
		ctx->task = s->ci[i].task;
		barrier();
		if (READ_ONCE_U64(s->sk[i]) != k)
			continue;
		ctx->found = true;
		return 1;
	}
	return 0;
}

/* The first half of find_client, alone: this CPU's latest connect() only.
 * A local client's first SYN, and the SYN-ACK answering it, are processed
 * inside its connect() on its CPU. Without the walk it costs the verifier
 * little: each program calling find_client spent ~100 ms in BPF_PROG_LOAD
 * (strace, this 2-vCPU VM under load), which the kfree_skb program
 * (drops.bpf.h) does not pay. */
static __always_inline bool find_client_here(struct conn_cpu *c, const struct syn_tuple *server_view,
					     struct syn_task *out)
{
	struct connect_info ci;

	if (!c->last_sk || !sock_is_client(c->last_sk, server_view) || !conn_get(c->last_sk, &ci))
		return false;
	*out = ci.task;
	return true;
}

/* The local client of a handshake segment that carries no connecting
 * socket, from this CPU's latest connect() (as find_client_here): a first
 * SYN's answers (SYN-ACK, RST, an ICMP error) and the client's SYN and
 * final ACK as the server receives them are processed inside it. `t` as
 * the packet's receiver sees it (an ICMP error's is the quoted SYN's);
 * `from_service`: a SYN-ACK or RST, whose receiver is the client; `answer`:
 * one of those or an ICMP error, whose skb->sk is not the client's;
 * `flags`: skb_where's. Returns the SYN_FW_F_* flags to add: TASK when
 * `out` was filled, PROC_CTX when this is the client's own context.
 * Arguments and result 64-bit (see port_in_filter in config.bpf.h).
 * A global function returning flags, so that its callers (the kfree_skb
 * handlers) neither branch on it, which multiplied the states the verifier
 * walked after it, nor hold its stack (the server's view, the table
 * entry), which took 6.1's combined stack past 512 bytes. */
__noinline __u64 handshake_client_flags(const struct syn_tuple *t, __u64 from_service, __u64 answer, __u64 flags,
					struct syn_task *out)
{
	if (!t || !out || (flags & SYN_FW_F_TASK) || (!(answer & 1) && (flags & SYN_FW_F_SK)))
		return 0;
	struct syn_tuple server_view = *t;
	if (from_service & 1) {
		__builtin_memcpy(server_view.local, t->remote, 16);
		__builtin_memcpy(server_view.remote, t->local, 16);
		server_view.lport = t->rport;
		server_view.rport = t->lport;
	}
	__u32 zero = 0;
	struct conn_cpu *c = bpf_map_lookup_elem(&conn_cpu, &zero);
	if (!c || !c->last_sk || !sock_is_client(c->last_sk, &server_view) || !conn_get_task(c->last_sk, out))
		return 0;
	if ((bpf_get_current_pid_tgid() >> 32) == out->pid)
		return SYN_FW_F_TASK | SYN_FW_F_PROC_CTX;
	return SYN_FW_F_TASK;
}

/* A global function: verified once, not inline in every overflow program. */
__noinline int find_client(const struct syn_tuple *server_view, struct syn_task *out)
{
	__u32 zero = 0;
	if (!server_view || !out)
		return SYN_CLIENT_NOT_FOUND;
	struct conn_cpu *c = bpf_map_lookup_elem(&conn_cpu, &zero);

	if (!c)
		return SYN_CLIENT_NOT_FOUND;
	if (find_client_here(c, server_view, out))
		return SYN_CLIENT_FOUND;
	__u64 now = bpf_ktime_get_boot_ns();
	if (now - c->window_ns >= FIND_CLIENT_WINDOW_NS) {
		c->window_ns = now;
		c->walks = 0;
	}
	if (c->walks >= FIND_CLIENT_WALKS)
		return SYN_CLIENT_NOT_LOOKED_UP;
	c->walks++;

	struct find_client_ctx ctx = {};
	ctx.want = *server_view;
	bpf_for_each_map_elem(&connecting, find_client_cb, &ctx, 0);
	if (!ctx.found)
		return SYN_CLIENT_NOT_FOUND;
	*out = ctx.task;
	return SYN_CLIENT_FOUND;
}

/* Remember this CPU's latest connecting socket (see find_client). */
static __always_inline void conn_mark_cpu(__u64 sk)
{
	__u32 zero = 0;
	struct conn_cpu *c = bpf_map_lookup_elem(&conn_cpu, &zero);
	if (c)
		c->last_sk = sk;
}

/* The answer to a refusal the kernel folded (`t`: the client socket's
 * tuple): counted with it, not sent. Checked before reserving: a discard
 * wakes the consumer. */
static __always_inline bool connect_error_folded(const struct syn_tuple *t, int err)
{
	return err == ECONNREFUSED && fold_client(t);
}

/* The client's failed connect, with the task captured at connect() time,
 * for a caller that has the socket's tuple `t` and checked the fold.
 * `filter`: apply the --port filter to the destination port. */
static __always_inline void emit_connect_error_of(const struct sock *sk, const struct syn_tuple *t,
						  const struct connect_info *ci, __u8 kind, int err, bool filter)
{
	struct syn_ev_connect_error *e = reserve(sizeof(*e), kind);
	if (!e)
		return;
	e->t = *t;
	if (filter && !port_wanted(e->t.rport)) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	e->task = ci->task;
	e->connect_ts_ns = ci->ts_ns;
	e->netns = sock_netns(sk);
	e->err = err;
	e->segs_in = BPF_CORE_READ((const struct tcp_sock *)sk, segs_in);
	e->_pad = 0;
	submit(e);
}

static __always_inline void emit_connect_error(const struct sock *sk, const struct connect_info *ci,
					       __u8 kind, int err, bool filter)
{
	struct syn_tuple t = {};
	sock_local_of(sk, &t, true); /* from tp_btf programs only: a BTF-typed socket */
	if (!connect_error_folded(&t, err))
		emit_connect_error_of(sk, &t, ci, kind, err, filter);
}

