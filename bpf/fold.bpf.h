/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: storms folded in the kernel (issue 16).
 *
 * Per key (record kind, network namespace, port, family) and per CPU, the
 * first cfg.fold_per_window records of each SYN_FOLD_WINDOW_NS window cross
 * the ring buffer one by one (user space attributes them: reason, cause,
 * process, client); every further one only increments the key's counters
 * in `folded`. The counters are monotonic and never reset by the kernel:
 * user space reads them (SynsightKernel KernelFold) and emits the
 * difference since its last read as a `summary` record attributed like the
 * key's last individual record, so a count is never lost between a read
 * and a reset. A key that finds the map full is not folded (its records
 * pass one by one). cfg.fold_per_window == 0 turns folding off.
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"

#define SYN_FOLD_WINDOW_NS 1000000000ULL
#define SYN_FOLD_MAX_KEYS 4096

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SYN_FOLD_MAX_KEYS);
	__type(key, struct syn_fold_key);
	__type(value, struct syn_fold_val);
} folded SEC(".maps");

/*
 * The last record this CPU folded: its local client's failed connect()
 * (ECONNREFUSED), which on loopback and veth follows on the same CPU inside
 * that connect(), is then counted with it (`clients`) instead of crossing
 * the ring buffer on its own.
 */
struct fold_last {
	struct syn_fold_key key;
	__u8 client[16];  /* the RST's remote: the client's address */
	__u8 server[16];  /* the RST's local: the address connected to */
	__u16 cport;
	__u16 sport;
	__u32 _pad;
	__u64 ts_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fold_last);
} fold_last SEC(".maps");

/* How long after a folded RST its client's error is still its own. The
 * match is on the exact 4-tuple and the slot is cleared when it matches, so
 * the window only ages out RSTs of remote clients; 10 ms was too short on a
 * TCG guest with kprobes (kernel matrix, 6.12). */
#define SYN_FOLD_CLIENT_NS 1000000000ULL

static __always_inline bool fold_addr_eq(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;
	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

/* True when this record is folded (counted, not to be submitted). */
static __always_inline bool fold_take(const struct syn_fold_key *key, __u64 now)
{
	if (cfg.fold_per_window == 0)
		return false;
	struct syn_fold_val *v = bpf_map_lookup_elem(&folded, key);
	if (!v) {
		struct syn_fold_val zero = {};
		zero.window_ns = now;
		zero.passed = 1;
		/* Full map: not folded. A racing insert of the same key: this
		 * one passes too (at most one extra individual record). */
		bpf_map_update_elem(&folded, key, &zero, BPF_NOEXIST);
		return false;
	}
	if (now - v->window_ns >= SYN_FOLD_WINDOW_NS) {
		v->window_ns = now;
		v->passed = 0;
	}
	if (v->passed < cfg.fold_per_window) {
		v->passed++;
		return false;
	}
	/* Per-CPU value: no other CPU writes it; user space only reads. */
	if (v->count == 0 || v->first_ns == 0)
		v->first_ns = now;
	v->count++;
	v->last_ns = now;
	return true;
}

/* Remember the folded RST for its client's error (fold_client). */
static __always_inline void fold_note_client(const struct syn_fold_key *key, const struct syn_tuple *t, __u64 now)
{
	__u32 zero = 0;
	struct fold_last *l = bpf_map_lookup_elem(&fold_last, &zero);
	if (!l)
		return;
	l->key = *key;
	__builtin_memcpy(l->client, t->remote, 16);
	__builtin_memcpy(l->server, t->local, 16);
	l->cport = t->rport;
	l->sport = t->lport;
	l->ts_ns = now;
}

/*
 * A client's ECONNREFUSED (`t` from the client's socket: local = client,
 * remote = server): true when it answers the RST this CPU just folded; it is
 * counted with the fold and must not be submitted.
 */
static __always_inline bool fold_client(const struct syn_tuple *t)
{
	if (cfg.fold_per_window == 0)
		return false;
	__u32 zero = 0;
	struct fold_last *l = bpf_map_lookup_elem(&fold_last, &zero);
	if (!l || l->ts_ns == 0)
		return false;
	if (bpf_ktime_get_boot_ns() - l->ts_ns > SYN_FOLD_CLIENT_NS)
		return false;
	if (l->cport != t->lport || l->sport != t->rport ||
	    !fold_addr_eq(l->client, t->local) || !fold_addr_eq(l->server, t->remote))
		return false;
	l->ts_ns = 0; /* one client per folded RST */
	struct syn_fold_val *v = bpf_map_lookup_elem(&folded, &l->key);
	if (!v)
		return false;
	v->clients++;
	return true;
}
