/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight: network devices named where an event happens. A listener bound
 * to a device (SO_BINDTODEVICE, `ip vrf exec`) takes only the SYNs whose
 * arrival device (or VRF) is that device (inet_bound_dev_eq in
 * include/net/inet_sock.h); a SYN that came in elsewhere is refused as if
 * nobody listened. Both sides are named here, in the event's own namespace,
 * so user space needs no netlink and a device deleted since is still named.
 */
#pragma once

#include "defs.bpf.h"

/* include/linux/netdevice.h: NETDEV_HASHBITS 8 (unchanged since 2.6). */
#define SYN_NETDEV_HASHENTRIES 256
/* Devices sharing one of the 256 index buckets walked: more is a namespace
 * with thousands of devices; the device is then left unnamed (found = 0). */
#define SYN_DEV_CHAIN_MAX 8
/* include/net/ip.h and include/linux/ipv6.h: inet{,6}_skb_parm.flags. */
#define SYN_IPSKB_L3SLAVE (1 << 7)
#define SYN_IP6SKB_L3SLAVE 64

/* The net_device of `ifindex` in `net` (dev_get_by_index without the lock:
 * each read is a probe read, so a device freed under us reads as absent). */
static __always_inline const struct net_device *dev_by_index(const struct net *net, int ifindex)
{
	struct hlist_head *heads = BPF_CORE_READ(net, dev_index_head);
	struct hlist_node *n = NULL;
	if (!heads || bpf_core_read(&n, sizeof(n), &heads[ifindex & (SYN_NETDEV_HASHENTRIES - 1)].first))
		return NULL;
	__u32 off = bpf_core_field_offset(struct net_device, index_hlist);
	for (int i = 0; i < SYN_DEV_CHAIN_MAX && n; i++) {
		const struct net_device *dev = (const void *)((const char *)n - off);
		if (BPF_CORE_READ(dev, ifindex) == ifindex)
			return dev;
		n = BPF_CORE_READ(n, next);
	}
	return NULL;
}

/* Name and kind of a device already in hand. */
static __always_inline void dev_describe(const struct net_device *dev, struct syn_dev *out)
{
	if (!dev)
		return;
	if (bpf_core_read_str(out->name, sizeof(out->name), &dev->name) > 0)
		out->found = 1;
	if (bpf_core_field_exists(dev->l3mdev_ops))
		out->l3mdev = BPF_CORE_READ(dev, l3mdev_ops) != NULL;
}

static __always_inline void dev_fill(const struct net *net, int ifindex, struct syn_dev *out)
{
	__builtin_memset(out, 0, sizeof(*out));
	if (ifindex <= 0)
		return;
	out->ifindex = ifindex;
	dev_describe(dev_by_index(net, ifindex), out);
}

/* The device a socket is bound to (sk_bound_dev_if), 0 for none. */
static __always_inline void sock_bound_dev(const struct sock *sk, struct syn_dev *out)
{
	int ifindex = BPF_CORE_READ(sk, __sk_common.skc_bound_dev_if);
	/* dev_fill zeroes `out` for an unbound socket: its namespace is read only for a bound one. */
	dev_fill(ifindex > 0 ? BPF_CORE_READ(sk, __sk_common.skc_net.net) : NULL, ifindex, out);
}

/* Where a received segment came in, as tcp_v{4,6}_rcv's socket lookup sees
 * it after tcp_v{4,6}_fill_cb moved IPCB into TCP_SKB_CB (the no-socket
 * path does that before answering): through a VRF, skb->dev is the VRF and
 * the L3 slave's ifindex is the control block's iif (inet{,6}_sdif). */
static __always_inline void skb_in_dev(const struct sk_buff *skb, __u16 family,
				       struct syn_dev *in_dev, struct syn_dev *in_vrf)
{
	__builtin_memset(in_dev, 0, sizeof(*in_dev));
	__builtin_memset(in_vrf, 0, sizeof(*in_vrf));
	const struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (!dev)
		return;
	const struct tcp_skb_cb *cb = (const void *)((const char *)skb + bpf_core_field_offset(struct sk_buff, cb));
	__u16 flags = 0;
	int slave = 0;
	if (family == AF_INET) {
		bpf_core_read(&flags, sizeof(flags), &cb->header.h4.flags);
		if (flags & SYN_IPSKB_L3SLAVE)
			bpf_core_read(&slave, sizeof(slave), &cb->header.h4.iif);
	} else {
		bpf_core_read(&flags, sizeof(flags), &cb->header.h6.flags);
		if (flags & SYN_IP6SKB_L3SLAVE)
			bpf_core_read(&slave, sizeof(slave), &cb->header.h6.iif);
	}
	if (slave > 0) {
		in_vrf->ifindex = BPF_CORE_READ(dev, ifindex);
		dev_describe(dev, in_vrf);
		dev_fill(BPF_CORE_READ(dev, nd_net.net), slave, in_dev);
		return;
	}
	in_dev->ifindex = BPF_CORE_READ(dev, ifindex);
	dev_describe(dev, in_dev);
}
