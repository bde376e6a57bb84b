/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight: the no-listener area's packet handlers. A SYN that matched no
 * socket is answered with RST; one record per such SYN (SYN_EV_NO_SOCKET_RST).
 * Several hooks see it, on different kernels (docs/kernel-notes.md §1, §2,
 * §10); user space probes the running kernel and enables exactly one: the
 * fentry/kprobe programs by loading only them, the shared tracepoints
 * (tcp_send_reset, kfree_skb) by a cfg flag (SYN_CFG_RST_SEND_RESET,
 * SYN_CFG_RST_KFREE_SKB). They are never chosen by kernel version.
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "conntrack.bpf.h"
#include "listeners.bpf.h"
#include "dev.bpf.h"
#include "ringbuf.bpf.h"
#include "skb.bpf.h"
#include "fold.bpf.h"

/* A SYN for which no socket matched: local = the port nobody listens on. */
static __always_inline bool parse_syn(const struct sk_buff *skb,
				      struct syn_ev_no_socket_rst *e, bool btf)
{
	__u8 flags = 0;
	struct tcp_seg seg;
	if (!parse_tcp_seg_of(skb, &e->t, &flags, &seg, btf))
		return false;
	/* Only the first packet of a connection attempt: a SYN without ACK. A
	 * stray segment of a vanished connection is a different story. */
	if (!is_first_syn(flags))
		return false;
	e->tcp_flags = flags;
	e->isn = seg.isn;
	return true;
}

/* The conntrack entry of the SYN (skb->_nfct, attached in PREROUTING and
 * kept on tcp_v{4,6}_rcv's no-socket path; bpf/conntrack.bpf.h): its
 * original destination is the address the client used before DNAT. */
static __always_inline void read_conntrack(const struct sk_buff *skb, struct syn_ev_no_socket_rst *e, bool btf)
{
	e->has_ct = 0;
	e->orig_dport = 0;
	__builtin_memset(e->orig_dst, 0, sizeof(e->orig_dst));
	e->_pad2 = 0;
	__u8 ctinfo;
	struct nf_conn *ct = skb_conntrack_of(skb, &ctinfo, btf);
	if (!ct)
		return;
	union nf_inet_addr dst = {};
	__u16 port = 0;
	if (bpf_core_read(&dst, sizeof(dst), &ct->tuplehash[0].tuple.dst.u3) || !ct_orig_dport(ct, &port))
		return;
	if (e->t.family == AF_INET) {
		e->orig_dst[10] = 0xff;
		e->orig_dst[11] = 0xff;
		__builtin_memcpy(&e->orig_dst[12], &dst.ip, 4);
	} else {
		__builtin_memcpy(e->orig_dst, &dst.ip6, 16);
	}
	e->orig_dport = port;
	e->has_ct = 1;
}

/* The --port filter for a refused SYN: the port nobody listens on, or the
 * port its client connected to before DNAT (a published port, a Service's
 * port): `--port 8080` for `-p 8080:80` sees the refusals at port 80 of the
 * container. The conntrack read only under a filter that missed. */
static __always_inline bool refusal_wanted(const struct sk_buff *skb, const struct syn_ev_no_socket_rst *ev, bool btf)
{
	if (port_wanted(ev->t.lport))
		return true;
	__u8 ctinfo;
	struct nf_conn *ct = skb_conntrack_of(skb, &ctinfo, btf);
	__u16 port;
	return ct && ct_orig_dport(ct, &port) && port_wanted(port);
}

/* A storm past cfg.fold_per_window per second on this CPU (bpf/fold.bpf.h):
 * counted per (netns, port, family), not sent. A DNATed SYN is never folded
 * (user space joins its client across the NAT). */
static __always_inline bool fold_no_socket_rst(const struct sk_buff *skb, const struct syn_ev_no_socket_rst *ev,
						bool btf)
{
	if (cfg.fold_per_window == 0)
		return false;
	struct syn_ev_no_socket_rst ct = {};
	read_conntrack(skb, &ct, btf);
	if (ct.has_ct && (ct.orig_dport != ev->t.lport || !fold_addr_eq(ct.orig_dst, ev->t.local)))
		return false;
	struct syn_fold_key key = {};
	key.netns = skb_netns_of(skb, btf);
	key.port = ev->t.lport;
	key.kind = SYN_EV_NO_SOCKET_RST;
	key.family = (__u8)ev->t.family;
	__u64 now = bpf_ktime_get_boot_ns();
	if (!fold_take(&key, now))
		return false;
	fold_note_client(&key, &ev->t, now);
	return true;
}

static __always_inline int emit_no_socket_rst(const struct sk_buff *skb, __u8 source)
{
	struct syn_ev_no_socket_rst ev = {};
	struct syn_ev_no_socket_rst *e;
	/* Every source but kprobes passes a BTF-typed skb (BTF_READ). */
	bool btf = source != SYN_RST_SRC_KPROBE;

	if (!parse_syn(skb, &ev, btf) || !refusal_wanted(skb, &ev, btf))
		return 0;
	if (fold_no_socket_rst(skb, &ev, btf))
		return 0;
	/* Without the state-change hook, a listener that closed on this port
	 * is found now, and its close reaches user space before the refusal.
	 * Not for a folded refusal: the first ones of each namespace and port
	 * every second are not folded, and reap it. */
	if (no_state_hook())
		listeners_reap(ev.t.lport);
	e = reserve(sizeof(*e), SYN_EV_NO_SOCKET_RST);
	if (!e)
		return 0;
	e->t = ev.t;
	e->tcp_flags = ev.tcp_flags;
	e->netns = skb_netns_of(skb, btf);
	e->source = source;
	e->_pad = 0;
	e->isn = ev.isn;
	read_conntrack(skb, e, btf);
	skb_in_dev(skb, ev.t.family, &e->in_dev, &e->in_vrf);
	submit(e);
	return 0;
}

/* tcp_send_reset (6.10+, 19822a980e19 "trace: tcp: fully support
 * trace_tcp_send_reset"): fires for every RST, sk==NULL for "no socket". */
static __noinline int rst_on_send_reset(const struct sock *sk, const struct sk_buff *skb,
					enum sk_rst_reason reason)
{
	if (sk || !skb)
		return 0;
	if (reason != bpf_core_enum_value(enum sk_rst_reason, SK_RST_REASON_NO_SOCKET))
		return 0;
	return emit_no_socket_rst(skb, SYN_RST_SRC_TP_SEND_RESET);
}

/* kfree_skb with reason NO_SOCKET (5.17+; the caller checked the reason):
 * tcp_v{4,6}_rcv's no_tcp_socket path frees the SYN right after sending the
 * RST. Not inlined (nor rst_on_send_reset): the shared program's other
 * handlers' stack frames would add up past BPF's 512 bytes. */
static __noinline int rst_on_kfree_skb(const struct sk_buff *skb)
{
	return emit_no_socket_rst(skb, SYN_RST_SRC_KFREE_SKB);
}

/* Before 6.10: the function that sends the RST, tcp_v{4,6}_send_reset, by
 * fentry or kprobe (`source`); sk==NULL for the no-socket RST. */
static __always_inline int rst_on_send_reset_fn(const struct sock *sk, struct sk_buff *skb, __u8 source)
{
	if (sk)
		return 0;
	return emit_no_socket_rst(skb, source);
}
