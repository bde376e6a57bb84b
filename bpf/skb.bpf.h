/* SPDX-License-Identifier: GPL-2.0 */
/* synsight BPF library: reading a packet's IP and TCP headers from its skb. */
#pragma once

#include "defs.bpf.h"

/*
 * Parse a received TCP segment: local = its destination, remote = its
 * sender. Returns false if it is not TCP over IPv4/IPv6.
 */
static __always_inline bool parse_tcp(const struct sk_buff *skb, struct syn_tuple *t,
				      __u8 *tcp_flags)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
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
	return true;
}

/* A SYN without ACK: the first packet of a connection attempt. */
static __always_inline bool is_first_syn(__u8 flags)
{
	return (flags & TCP_FLAG_SYN) && !(flags & TCP_FLAG_ACK);
}
