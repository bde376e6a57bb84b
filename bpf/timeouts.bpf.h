/* SPDX-License-Identifier: GPL-2.0 */
/* synsight: where a timed-out connect()'s SYNs went (issue 17, "timeouts
 * explained"). A library header: refusals.bpf.c's inet_sk_error_report and
 * tcp_retransmit_skb programs call the two functions below; its own map
 * (tmo_routes) and record (SYN_EV_CONNECT_TIMEOUT) are nobody else's.
 *
 * A connect() that is never answered fails in tcp_write_err /
 * tcp_done_with_error with sk_err ETIMEDOUT (when no ICMP error set
 * sk_err_soft) and rcv_nxt still 0 (tcp_connect_init): its SYNs left this
 * host, or were dropped on it (user space joins the drop records). The
 * record says through which device and next hop they left (the socket's
 * cached route, sk_dst_cache) and how many SYNs were retransmitted.
 *
 * Kernel differences: before 6.10 the report comes before tcp_done (state
 * still SYN_SENT), since then after it (state CLOSE); the cached route
 * survives both for IPv4, but IPv6 resets it at each retransmission timeout
 * (ip6_negative_advice for a non-cached route) and only routes again when it
 * sends: the route of the last retransmitted SYN is stashed here, by
 * socket, and used when the socket's own is gone.
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "conntab.bpf.h"
#include "ringbuf.bpf.h"
#include "sock.bpf.h"

#ifndef ETIMEDOUT
#define ETIMEDOUT 110
#endif
#define RTF_GATEWAY 0x0002
#define IFF_LOOPBACK 0x8

struct tmo_route {
	__u64 cookie;            /* bpf_get_socket_cookie: the stash is this socket's */
	__u8 gateway[16];
	__u32 ifindex;
	__u16 gw_family;
	__u8 flags;              /* SYN_TMO_F_ROUTE | SYN_TMO_F_GATEWAY | SYN_TMO_F_LOOPBACK */
	__u8 _pad;
	char ifname[SYN_IFNAMSIZ];
};

/* The route of each connecting socket's last retransmitted SYN (rare: a SYN
 * is retransmitted only when unanswered for a second). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tmo_route);
} tmo_routes SEC(".maps");

/* The socket's cached route: device, and gateway if it has one. */
static __always_inline bool tmo_read_route(const struct sock *sk, struct tmo_route *r)
{
	struct dst_entry *dst = BPF_CORE_READ(sk, sk_dst_cache);
	if (!dst)
		return false;
	struct net_device *dev = BPF_CORE_READ(dst, dev);
	if (!dev)
		return false;
	r->ifindex = BPF_CORE_READ(dev, ifindex);
	bpf_core_read_str(r->ifname, sizeof(r->ifname), &dev->name);
	r->flags = SYN_TMO_F_ROUTE;
	if (BPF_CORE_READ(dev, flags) & IFF_LOOPBACK)
		r->flags |= SYN_TMO_F_LOOPBACK;
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET) {
		/* dst is the first member of struct rtable. rt_gw_family (5.2)
		 * predates inet_sk_error_report (5.14); tested all the same. */
		struct rtable *rt = (struct rtable *)dst;
		if (!bpf_core_field_exists(rt->rt_gw_family))
			return true;
		__u8 gwf = BPF_CORE_READ(rt, rt_gw_family);
		if (gwf == AF_INET) {
			v4_mapped(r->gateway, BPF_CORE_READ(rt, rt_gw4));
		} else if (gwf == AF_INET6) {
			bpf_core_read(r->gateway, 16, &rt->rt_gw6);
		} else {
			return true;
		}
		r->gw_family = gwf;
		r->flags |= SYN_TMO_F_GATEWAY;
	} else {
		struct rt6_info *rt = (struct rt6_info *)dst;
		if (!(BPF_CORE_READ(rt, rt6i_flags) & RTF_GATEWAY))
			return true;
		bpf_core_read(r->gateway, 16, &rt->rt6i_gateway);
		r->gw_family = AF_INET6;
		r->flags |= SYN_TMO_F_GATEWAY;
	}
	return true;
}

/* From tcp_retransmit_skb (after the SYN went out, so the socket has a
 * route again): remember a connecting socket's route for the error report.
 * Only SYN_SENT sockets: a SYN retransmission is rare, other ones skip here. */
static __always_inline void timeout_on_syn_retransmit(const struct sock *sk)
{
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return;
	struct tmo_route r = {};
	if (!tmo_read_route(sk, &r))
		return;
	r.cookie = bpf_get_socket_cookie((void *)sk);
	__u64 key = sk_key(sk);
	bpf_map_update_elem(&tmo_routes, &key, &r, BPF_ANY);
}

/* SYN retransmissions so far: icsk_retransmits, else (a kernel without the
 * field) the socket's total retransmissions, which in SYN_SENT are SYNs. */
static __always_inline __u32 tmo_syn_retransmits(const struct sock *sk)
{
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
	if (bpf_core_field_exists(icsk->icsk_retransmits))
		return BPF_CORE_READ(icsk, icsk_retransmits);
	return BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
}

/* From inet_sk_error_report: a connect() that timed out unanswered. */
static __always_inline void timeout_on_error_report(const struct sock *sk)
{
	if (!sk)
		return;
	/* Called from tp_btf/inet_sk_error_report only: a BTF-typed socket,
	 * read with direct loads (see BTF_READ). */
	if (BPF_CORE_READ_BITFIELD(sk, sk_protocol) != IPPROTO_TCP)
		return;
	if (sk->sk_err != ETIMEDOUT)
		return;
	if (BPF_CORE_READ((struct tcp_sock *)sk, rcv_nxt) != 0)
		return; /* answered once: an established connection's timeout */
	__u64 key = sk_key(sk);
	struct tmo_route r = {};
	bool have = tmo_read_route(sk, &r);
	struct tmo_route *stashed = bpf_map_lookup_elem(&tmo_routes, &key);
	if (!have && stashed && stashed->cookie == bpf_get_socket_cookie((void *)sk)) {
		r = *stashed;
		r.flags |= SYN_TMO_F_STASHED;
	}
	if (stashed)
		bpf_map_delete_elem(&tmo_routes, &key);

	struct syn_ev_connect_timeout *e = reserve(sizeof(*e), SYN_EV_CONNECT_TIMEOUT);
	if (!e)
		return;
	sock_local(sk, &e->t);
	if (!port_wanted(e->t.rport)) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	__builtin_memcpy(e->gateway, r.gateway, 16);
	__builtin_memcpy(e->ifname, r.ifname, SYN_IFNAMSIZ);
	e->netns = sock_netns(sk);
	e->ifindex = r.ifindex;
	e->syn_retransmits = tmo_syn_retransmits(sk);
	e->total_retrans = BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
	e->gw_family = r.gw_family;
	e->flags = r.flags;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	submit(e);
}
