/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: a packet's conntrack entry and its namespace's
 * conntrack table, read at a drop. Shared by the no-listener area (the SYN's
 * original destination before DNAT) and the firewall area (ct state of a
 * NETFILTER_DROP, table use of a conntrack "table full" drop).
 *
 * nf_conn and nf_conntrack_net are in the nf_conntrack module on many
 * kernels: without their BTF (module not loaded) the reads are compiled out
 * by CO-RE and report "unknown" (docs/kernel-notes.md, "Conntrack").
 */
#pragma once

#include "defs.bpf.h"

/* netns_ct before 5.13 (c53bd0e96662 moved the count to net_generic). */
struct netns_ct___old {
	atomic_t count;
} __attribute__((preserve_access_index));

/* The skb's conntrack entry (skb->_nfct: the nf_conn pointer with the
 * ip_conntrack_info in the low 3 bits); NULL without one. */
static __always_inline struct nf_conn *skb_conntrack_of(const struct sk_buff *skb, __u8 *ctinfo, bool btf)
{
	*ctinfo = 0;
	if (!bpf_core_type_exists(struct nf_conn))
		return NULL;
	unsigned long nfct = BTF_READ(btf, skb, _nfct);
	*ctinfo = nfct & 7UL;
	return (struct nf_conn *)(nfct & ~7UL);
}

static __always_inline struct nf_conn *skb_conntrack(const struct sk_buff *skb, __u8 *ctinfo)
{
	return skb_conntrack_of(skb, ctinfo, false);
}

/* The destination port of `ct`'s original tuple (before NAT: the port the
 * client connected to), host order; false when it cannot be read. */
static __always_inline bool ct_orig_dport(const struct nf_conn *ct, __u16 *port)
{
	__be16 p = 0;
	if (bpf_core_read(&p, sizeof(p), &ct->tuplehash[0].tuple.dst.u.tcp.port))
		return false;
	*port = bpf_ntohs(p);
	return true;
}

/* The state nft's `ct state` sees for the skb (nft_ct_get_eval): no entry is
 * INVALID unless conntrack marked it untracked (IP_CT_UNTRACKED, NULL ct). */
static __always_inline __u8 skb_ct_state(const struct sk_buff *skb)
{
	if (!bpf_core_type_exists(struct nf_conn))
		return SYN_CT_UNKNOWN;
	__u8 ctinfo;
	struct nf_conn *ct = skb_conntrack(skb, &ctinfo);
	if (!ct)
		return ctinfo == IP_CT_UNTRACKED ? SYN_CT_UNTRACKED : SYN_CT_INVALID;
	switch (ctinfo) {
	case IP_CT_NEW:
		return SYN_CT_NEW;
	case IP_CT_RELATED:
	case IP_CT_RELATED_REPLY:
		return SYN_CT_RELATED;
	default:
		return SYN_CT_ESTABLISHED;
	}
}

/* The index of nf_conntrack's per-namespace data in net->gen (its
 * nf_conntrack_net_id, a module variable neither BTF nor kallsyms gives on
 * every kernel), found once and kept. 0: not found yet. */
volatile __u32 ct_net_id;

/* net->gen->ptr[i] holds nf_conntrack's per-namespace data when its sysctl
 * table's nf_conntrack_count entry (index 1, NF_SYSCTL_CT_COUNT) points at
 * its own `count` (nf_conntrack_standalone_init_sysctl): a check of three
 * reads, true for that slot only. */
static __always_inline struct nf_conntrack_net *ct_net_at(struct net_generic *gen, __u32 i)
{
	/* ptr[] overlays the start of net_generic (DECLARE_FLEX_ARRAY in a union). */
	void *p = NULL;
	if (bpf_probe_read_kernel(&p, sizeof(p), (void **)gen + i) || !p)
		return NULL;
	struct nf_conntrack_net *cnet = p;
	struct ctl_table_header *hdr = BPF_CORE_READ(cnet, sysctl_header);
	if (!hdr)
		return NULL;
	const struct ctl_table *table = BPF_CORE_READ(hdr, ctl_table);
	if (!table)
		return NULL;
	void *data = NULL;
	const struct ctl_table *count_entry = (const void *)table + bpf_core_type_size(struct ctl_table);
	if (bpf_core_read(&data, sizeof(data), &count_entry->data))
		return NULL;
	return data == (void *)cnet + bpf_core_field_offset(struct nf_conntrack_net, count) ? cnet : NULL;
}

#define CT_NET_ID_SCAN 64

struct ct_scan {
	struct net_generic *gen;
	__u32 len;
	__u32 found;
};

/* One slot of the scan (bpf_loop, 5.17+ like NETFILTER_DROP: the verifier
 * checks the body once, not once per iteration, in a program near its limit
 * on 6.1). */
static long ct_scan_slot(__u32 i, void *ctx)
{
	struct ct_scan *s = ctx;
	if (i >= s->len)
		return 1;
	if (ct_net_at(s->gen, i)) {
		s->found = i;
		return 1;
	}
	return 0;
}

/* The number of conntrack entries of `net` (nf_conntrack_count(net)), or
 * -1 when it cannot be read. Before 5.13 it is net->ct.count; since then
 * nf_conntrack_net.count in net_generic (c53bd0e96662). */
static __noinline __s64 ct_netns_count(struct net *net)
{
	if (!net)
		return -1;
	if (bpf_core_field_exists(struct netns_ct___old, count)) {
		struct netns_ct___old *old = (void *)&net->ct;
		return (__s64)BPF_CORE_READ(old, count.counter);
	}
	if (!bpf_core_type_exists(struct nf_conntrack_net))
		return -1;
	struct net_generic *gen = BPF_CORE_READ(net, gen);
	if (!gen)
		return -1;
	__u32 len = BPF_CORE_READ(gen, s.len);
	__u32 id = ct_net_id;
	struct nf_conntrack_net *cnet = NULL;
	if (id && id < len)
		cnet = ct_net_at(gen, id);
	if (!cnet) {
		/* ptr[0..2] overlay s.len and s.rcu (MIN_PERNET_OPS_ID): they never match. */
		struct ct_scan scan = { .gen = gen, .len = len, .found = 0 };
		bpf_loop(CT_NET_ID_SCAN, ct_scan_slot, &scan, 0);
		if (scan.found) {
			ct_net_id = scan.found;
			cnet = ct_net_at(gen, scan.found);
		}
	}
	if (!cnet)
		return -1;
	return (__s64)BPF_CORE_READ(cnet, count.counter);
}
