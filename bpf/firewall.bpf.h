/* SPDX-License-Identifier: GPL-2.0 */
/* synsight: the firewall area's handlers, called by the programs of refusals.bpf.c.
 *
 * A firewall REJECT or DROP verdict ends in kfree_skb with reason
 * NETFILTER_DROP (nft_do_chain or nf_hook_slow; docs/kernel-notes.md §4): the same
 * event for both. What tells them apart comes later or elsewhere, and is
 * decided in user space: an ICMP error sent for the same skb (icmp_send,
 * IPv4 REJECT with ICMP), the local client's errno (ECONNREFUSED after a
 * REJECT), or a retransmitted SYN (the first got no answer: DROP).
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "conntab.bpf.h"
#include "conntrack.bpf.h"
#include "ringbuf.bpf.h"
#include "skb.bpf.h"
#include "skb_where.bpf.h"
#include "sock.bpf.h"

/* The packet's conntrack side, packed in one scalar so the caller has no
 * branch on it: bits 0..31 the namespace's conntrack count, 32..39 the ct
 * state (enum syn_ct_state), bit 40 set when the count was read. Only a
 * packet without an entry needs the count: a `ct state invalid` rule, or
 * conntrack itself refusing to create one (its table full: nf_conntrack_in
 * returns NF_DROP); the table's use tells them apart in user space. Not
 * inlined, and called before skb_where branches: the kfree_skb program
 * stays within 6.1's verifier limit (1M instructions). */
static __noinline __u64 fw_conntrack(const struct sk_buff *skb)
{
	__u64 state = skb_ct_state(skb);
	if (state != SYN_CT_INVALID)
		return state << 32;
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct sock *sk = BPF_CORE_READ(skb, sk);
	struct net *net = dev ? BPF_CORE_READ(dev, nd_net.net) : sk ? BPF_CORE_READ(sk, __sk_common.skc_net.net) : NULL;
	__s64 count = ct_netns_count(net);
	if (count < 0)
		return state << 32;
	return (1ULL << 40) | (state << 32) | (__u32)count;
}

/* A TCP packet, or an ICMP error quoting a SYN, freed with NETFILTER_DROP: a
 * firewall REJECT or DROP. Called by the kfree_skb program, which checked
 * the reason and parsed the packet (`t`, `tcp_flags`; `shape`: the
 * SYN_FW_F_HANDSHAKE / SYN_FW_F_ICMP flags, `icmp_code` with the latter;
 * `isn` the attempt's client ISN, seg_isn). */
static __always_inline int fw_drop(struct sk_buff *skb, void *location, const struct syn_tuple *t,
				   __u8 tcp_flags, __u32 reason, __u8 shape, __u8 icmp_code, __u32 isn)
{
	/* The service's port: a SYN-ACK's or a SYN's RST's source (their
	 * destination is the client's); an ICMP's tuple is the quoted SYN's. */
	bool from_service = !(shape & SYN_FW_F_ICMP) &&
		((tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK) ||
		 ((shape & SYN_FW_F_HANDSHAKE) && (tcp_flags & SYN_TCP_FLAG_RST)));
	if (!port_wanted(from_service ? t->rport : t->lport))
		return 0;
	__u64 ct = fw_conntrack(skb);
	struct syn_ev_fw_drop *e = reserve(sizeof(*e), SYN_EV_FW_DROP);
	if (!e)
		return 0;
	e->t = *t;
	struct skb_where w;
	skb_where(skb, t, tcp_flags, &e->task, &w);
	/* A handshake segment without the client's socket (a SYN or its final
	 * ACK as the server receives them, a SYN-ACK or RST from the server, an
	 * ICMP error quoting the SYN): the client of this CPU's latest connect(),
	 * as drops.bpf.h does. */
	if (shape & (SYN_FW_F_HANDSHAKE | SYN_FW_F_ICMP))
		w.flags |= handshake_client_flags(t, from_service, from_service || (shape & SYN_FW_F_ICMP), w.flags, &e->task);
	e->netns = w.netns;
	e->ifindex = w.ifindex;
	e->skbaddr = (__u64)skb;
	e->location = (__u64)location;
	e->mark = BPF_CORE_READ(skb, mark);
	e->tcp_flags = tcp_flags;
	e->hook = w.hook;
	/* Read even without a device: the failed read leaves it zeroed. */
	__builtin_memset(e->ifname, 0, sizeof(e->ifname));
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	bpf_core_read_str(e->ifname, sizeof(e->ifname), &dev->name);
	e->ct_state = (ct >> 32) & 0xff;
	e->reason = reason;
	/* Other TCP (data, a FIN) is one "attempt" per 4-tuple: no ISN. */
	e->isn = shape ? isn : 0;
	e->_pad = 0;
	if (shape & SYN_FW_F_ICMP) {
		e->ct_count = icmp_code;
		e->flags = w.flags | shape;
	} else {
		e->ct_count = (__u32)ct;
		e->flags = w.flags | shape | (((ct >> 40) & 1) * SYN_FW_F_CT_COUNT);
	}
	submit_urgent(e);
	return 0;
}

/* IPv4 only (icmpv6_send has no tracepoint); fires after the rate limits,
 * just before the ICMP is pushed (6.10+, backported to 6.6.81 and 6.1). The
 * tracepoint's own sport/dport are filled for UDP only: parse the skb. */
static __always_inline int fw_on_icmp_send(const struct sk_buff *skb, int type, int code)
{
	if (!skb)
		return 0;
	struct syn_ev_fw_icmp *e = reserve(sizeof(*e), SYN_EV_FW_ICMP);
	if (!e)
		return 0;
	__u8 tcp_flags = 0;
	if (!parse_tcp(skb, &e->t, &tcp_flags) || !port_wanted(e->t.lport)) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct sock *sk = BPF_CORE_READ(skb, sk);
	e->netns = 0;
	if (dev)
		e->netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	else if (sk)
		e->netns = sock_netns(sk);
	e->skbaddr = (__u64)skb;
	e->type = type;
	e->code = code;
	e->tcp_flags = tcp_flags;
	e->_pad = 0;
	submit(e);
	return 0;
}

/* A SYN retransmitted by a local client: its first SYN got no answer.
 * Only SYN_SENT sockets whose connect() was seen are reported, and their
 * entry is kept for the outcome (conntab.bpf.h, connecting_retry); every
 * other retransmission costs a state read. Only the first argument is read: 6.18
 * has (sk, skb, err), older kernels (sk, skb). */
static __always_inline int fw_on_syn_retransmit(const struct sock *sk)
{
	if (!sk)
		return 0;
	if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return 0;
	__u64 key = sk_key(sk);
	struct connect_info ci;
	if (conn_get(key, &ci)) {
		/* Kept past `connecting`'s eviction until the outcome (only
		 * entries with a cookie are ever evicted: SYN_CFG_NO_STATE_HOOK). */
		if (ci.cookie)
			conn_keep(key, &ci);
	} else if (!conn_kept(sk, key, &ci, false)) {
		return 0;
	}
	/* The retransmitted SYN is processed on this CPU (loopback, veth): a
	 * listener's overflow finds its client here (find_client). */
	conn_mark_cpu(key);
	struct syn_ev_fw_syn_retrans *e = reserve(sizeof(*e), SYN_EV_FW_SYN_RETRANS);
	if (!e)
		return 0;
	sock_local(sk, &e->t);
	if (!port_wanted(e->t.rport)) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	e->task = ci.task;
	e->connect_ts_ns = ci.ts_ns;
	e->netns = sock_netns(sk);
	e->_pad = 0;
	submit(e);
	return 0;
}

/* A connect() that fails on an ICMP error processed while the caller held
 * the socket lock (loopback, veth: all in one softirq run) only sets
 * sk_err_soft; a non-blocking caller reads ECONNREFUSED from SO_ERROR (which
 * clears it) and closes the socket in SYN_SENT with sk_err == 0, which
 * conn_on_state_change does not report. tcp_v4_err queues the ICMP on the error queue
 * first (ip_icmp_error -> sock_queue_err_skb -> sk_error_report, error 0,
 * docs/kernel-notes.md §1): report it there, for a locked SYN_SENT socket only (an
 * unlocked one fails at once with sk_err, reported by connect.bpf.h). */
static __always_inline int fw_on_soft_error(const struct sock *sk)
{
	/* Called from tp_btf/inet_sk_error_report only: a BTF-typed socket,
	 * read with direct loads (see BTF_READ). */
	if (!sk || sk->__sk_common.skc_state != TCP_SYN_SENT)
		return 0;
	if (sk->sk_err != 0 || !sk->sk_lock.owned)
		return 0;
	struct connect_info ci;
	if (!conn_get(sk_key(sk), &ci))
		return 0;
	struct sk_buff *q = BPF_CORE_READ(sk, sk_error_queue.prev);
	if (!q || (void *)q == (void *)&sk->sk_error_queue)
		return 0;
	struct sock_exterr_skb *serr = (struct sock_exterr_skb *)&q->cb;
	__u32 err = BPF_CORE_READ(serr, ee.ee_errno);
	if (err == 0)
		return 0;
	emit_connect_error(sk, &ci, SYN_EV_FW_SOFT_ERROR, err, true);
	return 0;
}
