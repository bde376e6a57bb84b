/* SPDX-License-Identifier: GPL-2.0 */
/* synsight: the packet-drop area's handler for kfree_skb, called by the one
 * kfree_skb program of refusals.bpf.c for every reason no other area owns.
 *
 * kfree_skb fires only when the kernel drops a packet (a normal free is
 * consume_skb), so healthy traffic never runs this. A drop costs one reason
 * comparison for the reasons other areas own or that are not a failed
 * connection attempt, then a parse of the IP and TCP headers: only a
 * handshake segment crosses to user space, with the kernel's own reason
 * number: a SYN or SYN-ACK with any reason (user space sets aside the few
 * benign ones), and the handshake's final ACK, or the RST or ICMP error
 * answering a SYN, only with a reason of cfg.answer_drop_reasons (below).
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
#include "sock.bpf.h"

/* Not a drop: kfree_skb_reason(skb, SKB_CONSUMED) is traced as consume_skb
 * since 6.3, but not on every kernel that has the value. A reason the
 * kernel lacks (CO-RE: the value does not exist) is skipped by its _exists
 * test. */
static __always_inline bool drop_reason_consumed(__u32 reason)
{
	return bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED);
}

/* Freed from a socket's queue as the socket closes or is disconnected
 * (__skb_queue_purge_reason, 6.8+): every Connection: close request frees
 * one (the server's unread bytes), and none is a handshake's segment in
 * flight (a Fast Open SYN's data queued on its child belongs to an
 * established connection). Out before the packet is parsed. */
static __always_inline bool drop_reason_purge(__u32 reason)
{
	return bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE) &&
	       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE);
}

/* A freed ACK or answer (RST, ICMP) is a failure only with one of these
 * reasons: healthy connections free pure ACKs too (a closing connection's
 * last ACK with TCP_CLOSE, NO_SOCKET, NOT_SPECIFIED, an old or out-of-window
 * ACK with TCP_OLD_ACK, TCP_INVALID_SEQUENCE, ...), and they must cost no
 * ring-buffer record. User space sets the bits from DropCause's families
 * of anomalies (rp_filter, no route, BPF programs, XFRM, socket filter,
 * martian source, bad destination, checksums, TCP MD5/AO, minimum TTL,
 * security hooks, IPv6 disabled), named in this kernel's BTF; netfilter's
 * drops take the firewall path. Core reasons only (< 256). */
static __always_inline bool answer_drop_reason(__u32 reason)
{
	if (reason >= 256)
		return false;
	/* The compiler, knowing reason < 256, may drop the `& 3` and index
	 * with a copy of `reason` reloaded from the stack, whose bound the
	 * verifier no longer knows (seen with one codegen: "invalid access to
	 * map value"): hide the bound from it so the mask stays. */
	__u32 r = reason;
	asm volatile("" : "+r"(r));
	return (cfg.answer_drop_reasons[(r >> 6) & 3] >> (r & 63)) & 1;
}

/* A payload-free ACK that is not a handshake's final ACK, told from the
 * socket the skb carries (docs/kernel-notes.md §2, "The rest of a
 * handshake"): received, early demux (ip_rcv_finish_core, before routing
 * and INPUT) set skb->sk to the socket the 4-tuple has here: the request
 * socket (TCP_NEW_SYN_RECV) for a handshake's ACK, an established or
 * TIME_WAIT socket otherwise; sent, the sending socket: a connection's own
 * ACK before any data came in is its handshake's (or the answer to a
 * retransmitted SYN-ACK), a later one or a control socket's is not. A
 * received skb may still carry its sender's socket from another namespace
 * (veth, until ip_rcv orphans it: tc ingress), and nothing may be known
 * (tc, PREROUTING, forwarded, early demux off): then it is taken for the
 * handshake's. Not inlined: one verification, outside the kfree_skb
 * program's branches (6.1's 1M-instruction limit). */
static __noinline bool ack_not_handshake(const struct sk_buff *skb)
{
	struct sock *sk = BPF_CORE_READ(skb, sk);
	if (!sk)
		return false;
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (BPF_CORE_READ(skb, skb_iif)) {
		struct net_device *dev = BPF_CORE_READ(skb, dev);
		if (!dev || BPF_CORE_READ(dev, nd_net.net, ns.inum) != sock_netns(sk))
			return false;
		return state != TCP_NEW_SYN_RECV;
	}
	if (state != TCP_ESTABLISHED)
		return true;
	return BPF_CORE_READ((struct tcp_sock *)sk, bytes_received) != 0;
}

/* The service's side sent it: a SYN-ACK, or a RST answering a SYN (its
 * destination is the client). An ICMP's tuple is already the SYN's. */
static __always_inline bool answer_from_service(__u8 tcp_flags, __u8 shape)
{
	if (shape & SYN_FW_F_ICMP)
		return false;
	return (tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK) ||
	       (tcp_flags & SYN_TCP_FLAG_RST);
}

/* A handshake segment dropped with any other reason: a SYN or SYN-ACK, the
 * handshake's final ACK, a RST answering a SYN, or an ICMP error quoting a
 * SYN (`shape`: SYN_FW_F_HANDSHAKE or SYN_FW_F_ICMP, `icmp_code`). */
static __always_inline int handshake_drop(struct sk_buff *skb, void *location, __u32 reason,
					  const struct syn_tuple *t, __u8 tcp_flags, __u8 shape, __u8 icmp_code,
					  __u32 isn)
{
	bool synack = answer_from_service(tcp_flags, shape);
	/* The service port: a SYN's or ACK's destination, a SYN-ACK's or RST's source. */
	if (!port_wanted(synack ? t->rport : t->lport))
		return 0;
	struct syn_ev_pkt_drop *e = reserve(sizeof(*e), SYN_EV_PKT_DROP);
	if (!e)
		return 0;
	e->t = *t;
	struct skb_where w;
	skb_where(skb, t, tcp_flags, &e->task, &w);
	/* A received SYN's or ACK's client, or any answer's (a SYN-ACK's or
	 * RST's skb->sk is the server's, an ICMP error's the ICMP socket's),
	 * may be a local socket in another namespace (veth, bridge): the socket
	 * of this CPU's latest connect(), if its 4-tuple matches. Only the first
	 * drop of an attempt is reported, and that one runs inside the client's
	 * connect(). */
	w.flags |= handshake_client_flags(t, synack, synack || (shape & SYN_FW_F_ICMP), w.flags, &e->task);
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
	e->flags = w.flags | shape;
	e->icmp_code = icmp_code;
	e->isn = isn;
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
	if (!netfilter && (drop_reason_consumed(reason) || drop_reason_purge(reason)))
		return 0;
	struct syn_tuple t;
	struct tcp_seg seg = {};
	__u8 tcp_flags = 0, icmp_code = 0, shape = 0;
	if (parse_tcp_seg(skb, &t, &tcp_flags, &seg)) {
		/* A healthy connection frees about one segment with a reason as
		 * it closes: out with one bitmap test, before the socket reads of
		 * ack_not_handshake. */
		if (!netfilter && !(tcp_flags & TCP_FLAG_SYN) && !answer_drop_reason(reason))
			return 0;
		shape = handshake_shape(tcp_flags, &seg) ? SYN_FW_F_HANDSHAKE : 0;
		if (shape && (tcp_flags & (TCP_FLAG_SYN | SYN_TCP_FLAG_RST)) == 0 && ack_not_handshake(skb))
			shape = 0;
	} else {
		/* Not TCP: an ICMP error answering a SYN, dropped by netfilter
		 * or with a failure's reason. */
		if (!netfilter && !answer_drop_reason(reason))
			return 0;
		__s64 quoted = parse_icmp_tcp(skb, &t, &tcp_flags, &icmp_code);
		if (quoted < 0 || !is_first_syn(tcp_flags))
			return 0;
		seg.isn = quoted;
		shape = SYN_FW_F_ICMP;
	}
	if (netfilter)
		return fw_drop(skb, location, &t, tcp_flags, reason, shape, icmp_code, seg.isn);
	/* Besides a firewall's drop, only a handshake segment is of interest:
	 * a SYN or SYN-ACK with any reason, the rest with a failure's (both
	 * tested above, before parsing further). */
	if (!shape)
		return 0;
	return handshake_drop(skb, location, reason, &t, tcp_flags, shape, icmp_code, seg.isn);
}
