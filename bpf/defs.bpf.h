/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: the includes every other header needs, and the one
 * definition of the constants the kernel's UAPI headers would give (they
 * cannot be included next to vmlinux.h): address families, protocols, TCP
 * flags, errno values.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "synsight_abi.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define SOCK_STREAM 1
#define RTN_LOCAL 2

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

/* errno values (asm-generic/errno-base.h, errno.h). */
#define EPERM 1
#define EACCES 13
#define EINVAL 22
#define ENFILE 23
#define EMFILE 24
#define EADDRINUSE 98
#define EADDRNOTAVAIL 99
#define ENETUNREACH 101
#define ECONNRESET 104
#define ECONNREFUSED 111
#define EHOSTUNREACH 113

#define CAP_NET_BIND_SERVICE 10

/* A field of `p` (an sk_buff, a sock). Where `btf` (a constant after
 * inlining) says the pointer is BTF-typed (tp_btf and fentry arguments), a
 * direct load, which the verifier allows and guards; otherwise (kprobe
 * arguments, or addresses kept as numbers) one bpf_probe_read_kernel. A
 * refusal storm's programs read a dozen such fields per refusal, one helper
 * call each before (issue 16: 490 -> 340 ns for on_tcp_send_reset). Only a
 * field of the pointer's own type: a cast to a larger socket type
 * (inet_sock, tcp_sock) is outside the type the verifier knows. */
#define BTF_READ(btf, p, field) ((btf) ? (p)->field : BPF_CORE_READ(p, field))

#define READ_ONCE_U64(x) (*(volatile __u64 *)&(x))
#ifndef barrier
#define barrier() asm volatile("" ::: "memory")
#endif

/* An IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d), the ABI's form. */
static __always_inline void v4_mapped(__u8 dst[16], __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}
