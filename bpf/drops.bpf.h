/* SPDX-License-Identifier: GPL-2.0 */
/* synsight: the packet-drop area's handler for kfree_skb, called by the one
 * kfree_skb program of refusals.bpf.c for every reason no other area owns.
 *
 * kfree_skb fires only when the kernel drops a packet (a normal free is
 * consume_skb), so healthy traffic never runs this. A drop costs one reason
 * comparison for the reasons other areas own or that are not a failed
 * connection attempt, then a parse of the IP and TCP headers: only a SYN or
 * SYN-ACK crosses to user space, with the kernel's own reason number.
 * User space names that number from the running kernel's BTF (the enum is
 * renumbered between kernels and split into subsystems since 6.4); nothing
 * here depends on its numbering except the few reasons tested below, which
 * CO-RE resolves from the running kernel's BTF.
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "conntab.bpf.h"
#include "firewall.bpf.h"
#include "ringbuf.bpf.h"
#include "skb.bpf.h"
#include "skb_where.bpf.h"

/* Not a drop: kfree_skb_reason(skb, SKB_CONSUMED) is traced as consume_skb
 * since 6.3, but not on every kernel that has the value. A reason the
 * kernel lacks (CO-RE: the value does not exist) is skipped by its _exists
 * test. */
static __always_inline bool drop_reason_consumed(__u32 reason)
{
	return bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED);
}

/* A SYN or SYN-ACK dropped with any other reason. */
static __always_inline int handshake_drop(struct sk_buff *skb, void *location, __u32 reason,
					  const struct syn_tuple *t, __u8 tcp_flags)
{
	bool synack = tcp_flags & TCP_FLAG_ACK;
	/* The service port: a SYN's destination, a SYN-ACK's source. */
	if (!port_wanted(synack ? t->rport : t->lport))
		return 0;
	struct syn_ev_pkt_drop *e = reserve(sizeof(*e), SYN_EV_PKT_DROP);
	if (!e)
		return 0;
	e->t = *t;
	struct skb_where w;
	skb_where(skb, t, tcp_flags, &e->task, &w);
	if (!(w.flags & SYN_FW_F_TASK) && (synack || !(w.flags & SYN_FW_F_SK))) {
		/* A received SYN's client, or any SYN-ACK's (its skb->sk is the
		 * server's), may be a local socket in another namespace (veth,
		 * bridge): the socket of this CPU's latest connect(), if its
		 * 4-tuple matches. Only the first drop of an attempt is
		 * reported, and that one runs inside the client's connect(). */
		struct syn_tuple server_view = *t;
		if (synack) {
			__builtin_memcpy(server_view.local, t->remote, 16);
			__builtin_memcpy(server_view.remote, t->local, 16);
			server_view.lport = t->rport;
			server_view.rport = t->lport;
		}
		__u32 zero = 0;
		struct conn_cpu *c = bpf_map_lookup_elem(&conn_cpu, &zero);
		if (c && find_client_here(c, &server_view, &e->task))
			w.flags |= SYN_FW_F_TASK;
	}
	__builtin_memset(e->ifname, 0, sizeof(e->ifname));
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (dev)
		bpf_core_read_str(e->ifname, sizeof(e->ifname), &dev->name);
	e->location = (__u64)location;
	e->netns = w.netns;
	e->reason = reason;
	e->ifindex = w.ifindex;
	e->tcp_flags = tcp_flags;
	e->hook = w.hook;
	e->flags = w.flags;
	e->_pad = 0;
	/* Urgent, like a firewall drop: user space reads the drop's namespace
	 * (its route lookup, its interface's programs), which may be deleted
	 * right after the drop. */
	submit_urgent(e);
	return 0;
}

/* A freed skb with a reason no other area owns (the caller took NO_SOCKET
 * and TCP_LISTEN_OVERFLOW). NETFILTER_DROP needs 5.18 (2df3041ba3be): on a
 * kernel without it (5.17) the kfree_skb program may still load for the
 * no-listener area, and this handler is then compiled out by CO-RE. The
 * packet is parsed once, before anything is reserved in the ring (most
 * drops are not of TCP), for both records. Not inlined: the kfree_skb
 * program's handlers would otherwise share one stack frame, and with
 * find_client's (the overflow handler) pass BPF's 512 bytes. */
static __noinline int drops_on_kfree_skb(struct sk_buff *skb, void *location, __u32 reason)
{
	if (!bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		return 0;
	bool netfilter = reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP);
	if (!netfilter && drop_reason_consumed(reason))
		return 0;
	struct syn_tuple t;
	__u8 tcp_flags = 0;
	if (!parse_tcp(skb, &t, &tcp_flags))
		return 0;
	if (netfilter)
		return fw_drop(skb, location, &t, tcp_flags, reason);
	/* Besides a firewall's drop, only a handshake segment is of interest. */
	if (!(tcp_flags & TCP_FLAG_SYN))
		return 0;
	return handshake_drop(skb, location, reason, &t, tcp_flags);
}
