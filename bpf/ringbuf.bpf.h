/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: the ring buffer every record crosses to user space,
 * and the count of records it had no room for.
 */
#pragma once

#include "defs.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* resized by user space before load */
} events SEC(".maps");

/* Ring-buffer reservations that failed, per CPU: never lose silently. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost_events, &zero);
	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline void *reserve(__u32 size, __u8 kind)
{
	struct syn_hdr *h = bpf_ringbuf_reserve(&events, size, 0);
	if (!h) {
		count_lost();
		return NULL;
	}
	h->kind = kind;
	h->abi = SYN_ABI_VERSION;
	h->size = size;
	h->cpu = bpf_get_smp_processor_id();
	h->ts_ns = bpf_ktime_get_boot_ns();
	return h;
}

/*
 * Submit without waking the consumer for every record: a wakeup is an
 * irq_work plus a cross-CPU wakeup, and it dominated the cost of a refusal
 * (about 6 us of the 8 us spent in BPF per refusal on a 2-vCPU VM; see
 * docs/benchmarks.md). The consumer polls the ring at least every tick
 * (50 ms) anyway; it is woken early only when the unread data crosses
 * SYN_WAKEUP_BYTES, so a storm is drained in batches long before the ring
 * fills. A crossing missed by a race between CPUs costs at most one tick.
 */
#define SYN_WAKEUP_BYTES (256 * 1024)

static __always_inline void submit(void *e)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 size = ((struct syn_hdr *)e)->size + 8; /* + the ring's record header */
	__u64 flags = avail >= SYN_WAKEUP_BYTES && avail < SYN_WAKEUP_BYTES + size
		? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

/*
 * Submit and wake the consumer now, at most once per URGENT_WAKEUP_NS on
 * this CPU: for records whose evidence can vanish within a tick (a firewall
 * drop's network namespace, deleted right after the drop by a crash-looping
 * container or a test harness, must be pinned by the consumer while it still
 * exists). A storm of them still wakes the consumer at most 200 times a
 * second per CPU.
 */
#define URGENT_WAKEUP_NS (5 * 1000 * 1000)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_urgent_wakeup SEC(".maps");

static __always_inline void submit_urgent(void *e)
{
	__u32 zero = 0;
	__u64 *last = bpf_map_lookup_elem(&last_urgent_wakeup, &zero);
	__u64 now = ((struct syn_hdr *)e)->ts_ns;
	if (last && now - *last >= URGENT_WAKEUP_NS) {
		*last = now;
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
		return;
	}
	submit(e);
}
