/* SPDX-License-Identifier: GPL-2.0 */
/* synsight BPF library: what a struct sock says about itself. */
#pragma once

#include "defs.bpf.h"

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* The socket's own view: local = its address, remote = its peer. */
static __always_inline void sock_local_of(const struct sock *sk, struct syn_tuple *t, bool btf)
{
	__u16 family = BTF_READ(btf, sk, __sk_common.skc_family);
	struct inet_sock *inet = (struct inet_sock *)sk;

	t->family = family;
	if (family == AF_INET) {
		v4_mapped(t->local, BTF_READ(btf, sk, __sk_common.skc_rcv_saddr));
		v4_mapped(t->remote, BTF_READ(btf, sk, __sk_common.skc_daddr));
	} else {
		bpf_core_read(t->local, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(t->remote, 16, &sk->__sk_common.skc_v6_daddr);
	}
	/* skc_num is already 0 at some ->CLOSE transitions (inet_put_port);
	 * inet_sport keeps the local port (an inet_sock field: BTF_READ). */
	t->lport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	t->rport = bpf_ntohs(BTF_READ(btf, sk, __sk_common.skc_dport));
	t->_pad = 0;
}

static __always_inline void sock_local(const struct sock *sk, struct syn_tuple *t)
{
	sock_local_of(sk, t, false);
}

static __always_inline __u64 sock_inode(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
}
