/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: compatibility shims, one per kernel difference a
 * program must read around. Each names the kernel change that made it
 * necessary (docs/kernel-notes.md §9 lists the argument changes). The
 * programs never compare version numbers: a shim either relocates against
 * the running kernel's BTF (CO-RE) or is switched by a flag user space set
 * after probing.
 */
#pragma once

#include "defs.bpf.h"

/*
 * netns_ipv4.ip_local_ports before 6.8: `seqlock_t lock; int range[2];`
 * (the seqlock since 227b60f5102c); since d9f28735af87 ("Use
 * READ/WRITE_ONCE() for IP local_port_range.", 6.8) one packed u32
 * (lo | hi << 16) without a lock. 6.1 has the old layout. The seqlock's
 * presence tells the layouts apart: a size test on `range` itself fails to
 * relocate on the other layout (kernel matrix, 6.1).
 */
struct local_ports___old {
	seqlock_t lock;
	int range[2];
} __attribute__((preserve_access_index));

/* The ephemeral port range of `net`: [*lo, *hi]. */
static __always_inline void compat_local_port_range(struct net *net, __u16 *lo, __u16 *hi)
{
	struct local_ports___old *lp = (void *)__builtin_preserve_access_index(&net->ipv4.ip_local_ports);
	*lo = 0;
	*hi = 0;
	if (bpf_core_field_exists(lp->lock)) {
		int r[2] = {};
		if (!bpf_core_read(r, sizeof(r), &lp->range)) {
			*lo = r[0];
			*hi = r[1];
		}
	} else {
		__u32 r = BPF_CORE_READ(net, ipv4.ip_local_ports.range);
		*lo = r & 0xffff;
		*hi = r >> 16;
	}
}

/*
 * kfree_skb's fourth argument, rx_sk: added by c53795d48ee8 ("net: add
 * rx_sk to trace_kfree_skb", 6.11). A tp_btf program that reads an argument
 * the tracepoint lacks is refused at load, so the kfree_skb program declares
 * three and reads the fourth only here, behind a condition the verifier
 * knows to be false where it is missing (the branch is then never
 * verified): `present` must be a load-time constant (CO-RE or cfg).
 */
static __always_inline struct sock *compat_kfree_skb_rx_sk(unsigned long long *ctx, bool present)
{
	if (!present)
		return NULL;
	return (struct sock *)ctx[3];
}

/*
 * Arguments that later kernels appended to a tracepoint or function, never
 * read (a program declaring them would not load where they are missing):
 *  - tcp_send_reset: `reason` since 19822a980e19 ("trace: tcp: fully
 *    support trace_tcp_send_reset", 6.10); tcp_v{4,6}_send_reset gained the
 *    same third argument in the 6.10 rstreason series;
 *  - sched_process_exit: `group_dead` (6.18; 6.12 has (p));
 *  - tcp_retransmit_skb: `err` (6.18; older kernels (sk, skb));
 *  - tcp_v{4,6}_syn_recv_sock: a seventh argument, an MPTCP callback
 *    (6.1.192 and 6.18), so the fexit programs read the return value with
 *    bpf_get_func_ret (5.17+) instead of after the last argument.
 */

/* The syscall number in the saved user registers: orig_ax on x86-64;
 * arm64 keeps it in pt_regs.syscallno, a field x86's vmlinux.h lacks. */
#if defined(__TARGET_ARCH_x86)
#define SYN_SYSCALL_NR(regs) BPF_CORE_READ(regs, orig_ax)
#define SYN_SYSCALL_FN(name) "__x64_sys_" name
#else
struct pt_regs___syn_arm64 {
	__s32 syscallno;
} __attribute__((preserve_access_index));
#define SYN_SYSCALL_NR(regs) BPF_CORE_READ((struct pt_regs___syn_arm64 *)(regs), syscallno)
#define SYN_SYSCALL_FN(name) "__arm64_sys_" name
#endif
