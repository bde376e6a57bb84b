/* SPDX-License-Identifier: GPL-2.0 */
/* synsight BPF library: reading a packet's IP and TCP headers from its skb. */
#pragma once

#include "defs.bpf.h"

#define SYN_IPPROTO_ICMPV6 58
#define SYN_TCP_FLAG_FIN 0x01
#define SYN_TCP_FLAG_RST 0x04

/* The network namespace of the device `skb` came in on (as BTF_READ: a
 * direct load of each pointer where `btf`). */
static __always_inline __u32 skb_netns_of(const struct sk_buff *skb, bool btf)
{
	return btf ? skb->dev->nd_net.net->ns.inum : BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
}

/* What parse_tcp_seg reads besides the tuple and flags. */
struct tcp_seg {
	__u32 isn;      /* the attempt's client ISN (seg_isn) */
	__u16 payload;  /* bytes after the TCP header (IP length - headers) */
	__u8 seq_zero;  /* the sequence number is 0 */
	__u8 _pad;
};  /* 8 bytes: drops_on_kfree_skb's frame is at 6.1's combined limit (32-byte rounding) */

/* The client's initial sequence number of the handshake a segment belongs
 * to: the same for a segment and its retransmissions, different for a new
 * attempt that reuses the 4-tuple (an ISN is a hash of the 4-tuple plus a
 * clock of 64 ns ticks, RFC 6528). A SYN carries it; a SYN-ACK and a RST
 * answering a SYN acknowledge it + 1; the final ACK's sequence is it + 1;
 * an ICMP error quotes the SYN. User space tells a retransmission from a
 * new attempt with it. */
static __always_inline __u32 seg_isn(__u8 flags, __u32 seq, __u32 ack)
{
	if ((flags & TCP_FLAG_SYN) && !(flags & TCP_FLAG_ACK))
		return seq;
	if (flags & (TCP_FLAG_SYN | SYN_TCP_FLAG_RST))
		return ack - 1;
	return seq - 1;
}

/*
 * Parse a received TCP segment: local = its destination, remote = its
 * sender. Returns false if it is not TCP over IPv4/IPv6. `seg` (may be
 * NULL, a constant for the inlined callers) gets its attempt's ISN, its
 * payload length and whether its sequence number is 0.
 */
static __always_inline bool parse_tcp_seg_of(const struct sk_buff *skb, struct syn_tuple *t,
					     __u8 *tcp_flags, struct tcp_seg *seg, bool btf)
{
	__u32 iplen = 0;  /* the IP packet's length past the network header */
	unsigned char *head = BTF_READ(btf, skb, head);
	__u16 nh = BTF_READ(btf, skb, network_header);
	__u16 th = BTF_READ(btf, skb, transport_header);
	__u8 vbyte = 0;
	struct tcphdr tcp;

	if (!head || bpf_probe_read_kernel(&vbyte, 1, head + nh))
		return false;
	if ((vbyte >> 4) == 4) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return false;
		if (ip.protocol != IPPROTO_TCP)
			return false;
		/* transport_header is set by ip_local_deliver before tcp_v4_rcv,
		 * but compute it from ihl in case a caller has not. */
		th = nh + ip.ihl * 4;
		iplen = bpf_ntohs(ip.tot_len);
		v4_mapped(t->local, ip.daddr);
		v4_mapped(t->remote, ip.saddr);
		t->family = AF_INET;
	} else if ((vbyte >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return false;
		/* Up to three extension headers (hop-by-hop, routing, destination
		 * options) before TCP; anything else (ICMPv6 behind a hop-by-hop
		 * header, as MLD sends it) is not TCP. */
		__u8 next = ip6.nexthdr;
		__u16 off = nh + sizeof(ip6);
		for (int i = 0; i < 3 && next != IPPROTO_TCP; i++) {
			__u8 ext[2];
			if (next != 0 && next != 43 && next != 60)
				return false;
			if (bpf_probe_read_kernel(ext, sizeof(ext), head + off))
				return false;
			next = ext[0];
			off += (ext[1] + 1) * 8;
		}
		if (next != IPPROTO_TCP)
			return false;
		th = off;
		iplen = bpf_ntohs(ip6.payload_len) + sizeof(ip6);
		__builtin_memcpy(t->local, &ip6.daddr, 16);
		__builtin_memcpy(t->remote, &ip6.saddr, 16);
		t->family = AF_INET6;
	} else {
		return false;
	}
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th))
		return false;
	*tcp_flags = ((__u8 *)&tcp)[13];
	t->lport = bpf_ntohs(tcp.dest);
	t->rport = bpf_ntohs(tcp.source);
	t->_pad = 0;
	if (seg) {
		__u32 hdrs = (__u32)(th - nh) + tcp.doff * 4;
		__u32 seq = bpf_ntohl(tcp.seq);
		seg->seq_zero = seq == 0;
		seg->payload = iplen > hdrs ? iplen - hdrs : 0;
		seg->isn = seg_isn(*tcp_flags, seq, bpf_ntohl(tcp.ack_seq));
	}
	return true;
}

static __always_inline bool parse_tcp_seg(const struct sk_buff *skb, struct syn_tuple *t,
					  __u8 *tcp_flags, struct tcp_seg *seg)
{
	return parse_tcp_seg_of(skb, t, tcp_flags, seg, false);
}

static __always_inline bool parse_tcp(const struct sk_buff *skb, struct syn_tuple *t,
				      __u8 *tcp_flags)
{
	return parse_tcp_seg_of(skb, t, tcp_flags, NULL, false);
}

/*
 * An ICMP destination unreachable (IPv4 type 3, ICMPv6 type 1) quoting a
 * TCP segment: `t` gets the quoted segment's view (local = its destination,
 * remote = its source), `tcp_flags` its flags and `code` the ICMP's code.
 * Returns the quoted segment's sequence number (its ISN when it is a SYN),
 * or -1 when the packet is not such an ICMP error: a result and not an
 * out-parameter, which would put the caller's copy on its stack (the
 * kfree_skb program's frames are at 6.1's combined limit).
 * The quote holds the offending packet's IP header and, from Linux
 * (icmp_send, icmp6_send: as much as fits in 576/1280 bytes), its whole TCP
 * header; a quote too short for the flags (RFC 792's 8 bytes) is not read.
 * IPv6: the ICMPv6 header directly after the fixed header only.
 */
static __noinline __s64 parse_icmp_tcp(const struct sk_buff *skb, struct syn_tuple *t, __u8 *tcp_flags,
				       __u8 *code)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u8 vbyte = 0, icmp[2];
	struct tcphdr tcp;
	__u16 off;

	if (!head || bpf_probe_read_kernel(&vbyte, 1, head + nh))
		return -1;
	if ((vbyte >> 4) == 4) {
		struct iphdr ip, inner;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) || ip.protocol != IPPROTO_ICMP)
			return -1;
		off = nh + ip.ihl * 4;
		if (bpf_probe_read_kernel(icmp, sizeof(icmp), head + off) || icmp[0] != 3)
			return -1;
		off += 8;
		if (bpf_probe_read_kernel(&inner, sizeof(inner), head + off) || inner.protocol != IPPROTO_TCP)
			return -1;
		off += inner.ihl * 4;
		v4_mapped(t->local, inner.daddr);
		v4_mapped(t->remote, inner.saddr);
		t->family = AF_INET;
	} else if ((vbyte >> 4) == 6) {
		struct ipv6hdr ip6, inner6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh) || ip6.nexthdr != SYN_IPPROTO_ICMPV6)
			return -1;
		off = nh + sizeof(ip6);
		if (bpf_probe_read_kernel(icmp, sizeof(icmp), head + off) || icmp[0] != 1)
			return -1;
		off += 8;
		if (bpf_probe_read_kernel(&inner6, sizeof(inner6), head + off) || inner6.nexthdr != IPPROTO_TCP)
			return -1;
		off += sizeof(inner6);
		__builtin_memcpy(t->local, &inner6.daddr, 16);
		__builtin_memcpy(t->remote, &inner6.saddr, 16);
		t->family = AF_INET6;
	} else {
		return -1;
	}
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + off))
		return -1;
	*tcp_flags = ((__u8 *)&tcp)[13];
	*code = icmp[1];
	t->lport = bpf_ntohs(tcp.dest);
	t->rport = bpf_ntohs(tcp.source);
	t->_pad = 0;
	return bpf_ntohl(tcp.seq);
}

/* A SYN without ACK: the first packet of a connection attempt. */
static __always_inline bool is_first_syn(__u8 flags)
{
	return (flags & TCP_FLAG_SYN) && !(flags & TCP_FLAG_ACK);
}

/* A segment with the shape of a handshake's: a SYN or SYN-ACK, an ACK
 * without SYN/RST/FIN and without payload (the handshake's final ACK; an
 * established connection's pure ACKs have this shape too), or a RST|ACK
 * with sequence 0 (what tcp_v{4,6}_send_reset and nft/iptables' tcp reset
 * answer a SYN with: seq 0, ack = the SYN's seq + 1; an abortive close
 * sends its snd_nxt). */
static __always_inline bool handshake_shape(__u8 flags, const struct tcp_seg *seg)
{
	__u8 f = flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | SYN_TCP_FLAG_RST | SYN_TCP_FLAG_FIN);
	if (f & TCP_FLAG_SYN)
		return !(f & (SYN_TCP_FLAG_RST | SYN_TCP_FLAG_FIN));
	if (f == TCP_FLAG_ACK)
		return seg->payload == 0;
	return f == (SYN_TCP_FLAG_RST | TCP_FLAG_ACK) && seg->seq_zero;
}
