/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: where in the stack a freed packet was (namespace,
 * interface, netfilter hook), and its local client, from the skb's state.
 * Shared by the firewall's NETFILTER_DROP record and the other handshake
 * drops.
 */
#pragma once

#include "defs.bpf.h"
#include "conntab.bpf.h"
#include "sock.bpf.h"

/* Where a freed packet was in the stack, from the skb's state: shared by the
 * NETFILTER_DROP record and the other handshake drops (drops.bpf.h). */
struct skb_where {
	__u32 netns;
	__u32 ifindex;
	__u8 hook;   /* enum syn_fw_hook */
	__u8 flags;  /* SYN_FW_F_* */
};

/* Fills `w`, and `task` (zeroed otherwise) with the connect() caller when
 * the packet is a SYN of a local connecting socket (skb->sk). */
static __always_inline void skb_where(const struct sk_buff *skb, const struct syn_tuple *t,
				      __u8 tcp_flags, struct syn_task *task, struct skb_where *w)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct sock *sk = BPF_CORE_READ(skb, sk);
	unsigned long refdst = BPF_CORE_READ(skb, _skb_refdst) & ~1UL;
	__u8 flags = 0, hook = SYN_FW_HOOK_UNKNOWN;

	__builtin_memset(task, 0, sizeof(*task));
	w->netns = 0;
	w->ifindex = 0;
	if (dev) {
		flags |= SYN_FW_F_DEV;
		w->netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
		w->ifindex = BPF_CORE_READ(dev, ifindex);
	}
	if (refdst)
		flags |= SYN_FW_F_DST;
	/* A packet from a socket of another namespace still carries it until
	 * ip_rcv orphans it (veth, tc ingress): received, not sent, here. And a
	 * received packet gets a socket again from early demux (a SYN-ACK in
	 * INPUT carries its connecting socket): skb_iif is set for every
	 * received packet, never for one sent from here. */
	bool local_sk = false;
	if (sk) {
		__u32 sk_ns = sock_netns(sk);
		local_sk = (!w->netns || w->netns == sk_ns) && !BPF_CORE_READ(skb, skb_iif);
		if (!w->netns)
			w->netns = sk_ns;
	}
	if (local_sk)
		flags |= SYN_FW_F_SK;
	/* Only a SYN's skb->sk is the connecting socket (a SYN-ACK's is a
	 * request or listener socket, or, received, the connecting socket early
	 * demux found: the callers look a handshake segment's client up by its
	 * 4-tuple instead, handshake_client_here in conntab.bpf.h). */
	if (sk && (tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) {
		/* The client socket of a locally generated SYN: its connect()
		 * caller was captured in process context (connect.bpf.h). */
		struct connect_info ci;
		if (conn_get(sk_key(sk), &ci)) {
			*task = ci.task;
			flags |= SYN_FW_F_TASK;
			/* The first SYN is dropped inside connect(); retransmissions
			 * run from the timer, where current is unrelated. */
			if ((bpf_get_current_pid_tgid() >> 32) == ci.task.pid)
				flags |= SYN_FW_F_PROC_CTX;
		}
	}
	if (!dev)
		hook = sk ? SYN_FW_HOOK_OUTPUT : SYN_FW_HOOK_UNKNOWN;
	else if (local_sk)
		hook = SYN_FW_HOOK_POSTROUTING;
	else if (!refdst)
		hook = SYN_FW_HOOK_PREROUTING;
	else if (t->family == AF_INET)
		hook = BPF_CORE_READ((struct rtable *)refdst, rt_type) == RTN_LOCAL ?
			SYN_FW_HOOK_INPUT : SYN_FW_HOOK_FORWARD;
	else
		hook = SYN_FW_HOOK_INPUT;
	w->hook = hook;
	w->flags = flags;
}

