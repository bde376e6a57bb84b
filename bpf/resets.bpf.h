/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight: injected resets (issue 17). A library header: refusals.bpf.c's
 * tcp_reset and tcp_finish_connect programs call the two functions below;
 * its map (rttl_peers) and record (SYN_EV_CONNECT_RESET) are nobody else's.
 *
 * When a connecting socket (SYN_SENT) accepts a RST, the record carries the
 * RST's IPv4 TTL or IPv6 hop limit next to what the same peer's SYN-ACKs
 * arrived with (the baseline). User space infers both hop counts and flags
 * a likely middlebox when they differ: a box on the path that answers for
 * the server (an IPS, a firewall's `reject with tcp reset`, a spoofer) is
 * nearer, or starts from another initial TTL.
 *
 * Why these hooks (docs/kernel-notes.md §11): a RST that ends a SYN_SENT
 * socket is freed in tcp_rcv_synsent_state_process without kfree_skb or
 * consume_skb, and the tracepoints that do fire (tcp_receive_reset 6.10+,
 * inet_sk_error_report) carry the socket, not the packet. tcp_reset(sk, skb)
 * runs for every RST a socket accepts and for nothing else: no cost on
 * healthy traffic. The baseline needs the SYN-ACK of a connection that
 * succeeded: tcp_finish_connect(sk, skb) runs once per completed outgoing
 * handshake, so user space attaches it only after a refusal (on anomaly),
 * and it measures only the peers the reset handler put in `rttl_peers`.
 */
#pragma once

#include "defs.bpf.h"
#include "config.bpf.h"
#include "ringbuf.bpf.h"
#include "sock.bpf.h"

/* A peer as seen from one network namespace. */
struct rttl_peer_key {
	__u8 addr[16];   /* IPv4 mapped, or IPv6 */
	__u32 netns;
};

/* What the peer's SYN-ACKs arrived with while the baseline program was attached. */
struct rttl_baseline {
	__u64 last_ns;   /* CLOCK_BOOTTIME of the latest SYN-ACK measured (0: none yet) */
	__u32 packets;   /* SYN-ACKs measured */
	__u8 ttl_min;
	__u8 ttl_max;
	__u8 ttl_last;
	__u8 _pad;
	/* The reset records of this peer in the current second (a refusal storm
	 * sends RTTL_PER_WINDOW of them, the rest of its refusals carry no TTL). */
	__u64 window_ns;
	__u32 sent;
	__u32 _pad2;
};

#define RTTL_PER_WINDOW 16
#define RTTL_WINDOW_NS 1000000000ULL

/* The watched peers: a peer enters when one of its RSTs refuses a local
 * connect(); the oldest give way (LRU). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rttl_peer_key);
	__type(value, struct rttl_baseline);
} rttl_peers SEC(".maps");

/* The IPv4 TTL or IPv6 hop limit of a received packet; 0 if unreadable. */
static __always_inline __u8 rttl_read_ttl(const struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u8 hdr[9];

	if (!head || bpf_probe_read_kernel(hdr, sizeof(hdr), head + nh))
		return 0;
	if ((hdr[0] >> 4) == 4)
		return hdr[8];   /* struct iphdr.ttl */
	if ((hdr[0] >> 4) == 6)
		return hdr[7];   /* struct ipv6hdr.hop_limit */
	return 0;
}

static __always_inline void rttl_key(const struct sock *sk, const struct syn_tuple *t,
				     struct rttl_peer_key *k)
{
	__builtin_memcpy(k->addr, t->remote, 16);
	k->netns = sock_netns(sk);
}

/* tcp_reset(sk, skb): a socket accepted a RST. Only connecting sockets: a
 * refused connect(). */
static __always_inline int rttl_on_reset(const struct sock *sk, const struct sk_buff *skb, __u8 source)
{
	if (!sk || !skb || BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return 0;
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	struct syn_tuple t = {};
	sock_local(sk, &t);
	if (!port_wanted(t.rport))
		return 0;
	struct rttl_peer_key k = {};
	rttl_key(sk, &t, &k);
	struct rttl_baseline *b = bpf_map_lookup_elem(&rttl_peers, &k);
	if (!b) {
		/* Watch this peer: the baseline program measures its SYN-ACKs from now on. */
		struct rttl_baseline none = {};
		bpf_map_update_elem(&rttl_peers, &k, &none, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&rttl_peers, &k);
		if (!b)
			return 0;
	}
	/* A refusal storm: a few records per peer and second, not one per RST. */
	__u64 now = bpf_ktime_get_boot_ns();
	if (now - b->window_ns > RTTL_WINDOW_NS) {
		b->window_ns = now;
		b->sent = 0;
	}
	if (b->sent >= RTTL_PER_WINDOW)
		return 0;
	b->sent++;
	struct syn_ev_connect_reset *e = reserve(sizeof(*e), SYN_EV_CONNECT_RESET);
	if (!e)
		return 0;
	e->t = t;
	e->baseline_last_ns = b->last_ns;
	e->netns = k.netns;
	e->baseline_packets = b->packets;
	e->ttl = rttl_read_ttl(skb);
	e->baseline_min = b->ttl_min;
	e->baseline_max = b->ttl_max;
	e->baseline_last = b->ttl_last;
	e->source = source;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	submit(e);
	return 0;
}

/* tcp_finish_connect(sk, skb): a local client's handshake completed with
 * the SYN-ACK `skb`. Attached only while a peer is watched; measures only
 * watched peers (one lookup for the others). */
static __always_inline int rttl_on_finish_connect(const struct sock *sk, const struct sk_buff *skb)
{
	if (!sk || !skb)
		return 0;
	struct syn_tuple t = {};
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET)
		v4_mapped(t.remote, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	else
		bpf_core_read(t.remote, 16, &sk->__sk_common.skc_v6_daddr);
	struct rttl_peer_key k = {};
	rttl_key(sk, &t, &k);
	struct rttl_baseline *b = bpf_map_lookup_elem(&rttl_peers, &k);
	if (!b)
		return 0;
	__u8 ttl = rttl_read_ttl(skb);
	if (ttl == 0)
		return 0;
	/* Racy between CPUs, and that is fine: a baseline, not a count to the packet. */
	if (b->packets == 0 || ttl < b->ttl_min)
		b->ttl_min = ttl;
	if (ttl > b->ttl_max)
		b->ttl_max = ttl;
	b->ttl_last = ttl;
	b->last_ns = bpf_ktime_get_boot_ns();
	__sync_fetch_and_add(&b->packets, 1);
	return 0;
}
