/* SPDX-License-Identifier: GPL-2.0 */
/* synsight: the syscall area's handlers, called by the programs of refusals.bpf.c. */
#pragma once

#include "defs.bpf.h"
#include "compat.bpf.h"
#include "config.bpf.h"
#include "listeners.bpf.h"
#include "ringbuf.bpf.h"
#include "sock.bpf.h"
#include "task.bpf.h"

/*
 * bind(), listen() and connect() failures, and why: EADDRINUSE (with the
 * requested address, never the 0 the kernel leaves behind), EADDRNOTAVAIL,
 * EACCES/EPERM told apart by the caller's credentials and by what happened
 * *during the call in the same thread*: CAP_NET_BIND_SERVICE over the
 * socket's network namespace, decided at the failing bind()'s exit as the
 * kernel decides it (bind_cap_state; no hook on capability checks), an
 * SELinux denial (tp_btf/selinux_audited, 5.10+), or a Landlock-sandboxed
 * process (Landlock has no tracepoint; landlock_restrict_self is remembered).
 * See docs/kernel-notes.md §5, §6, §8.
 *
 * Three interchangeable entry groups (programs sc_fx_*, sc_tp_*, sc_raw_* in
 * refusals.bpf.c) feed the same handlers; user space loads exactly one
 * (probe in Features+Syscall.swift), in this order of preference:
 *  - sc_fx_*  BPF trampolines on __sys_bind, __sys_listen, __sys_connect (and
 *             the landlock_restrict_self syscall; accept() has its own in
 *             overflow.bpf.h). No syscall tracepoint is attached at all: any
 *             one of them, classic or raw, puts every syscall of every task
 *             on the slow path (TIF_SYSCALL_TRACEPOINT), measured at about 2%
 *             of a Connection: close web server's requests/s. Refused on
 *             some VMs (EPERM), which then use:
 *  - sc_tp_*  classic syscalls:sys_{enter,exit}_{bind,listen,connect} (and
 *             sys_exit_landlock_restrict_self). Cheapest: the kernel filters
 *             by syscall number. Attaching needs tracefs mounted (libbpf
 *             reads the event id from /sys/kernel/tracing).
 *  - sc_raw_* tp_btf/sys_enter + sys_exit (raw_syscalls), filtering by
 *             syscall number in BPF: a few instructions on every syscall,
 *             but no tracefs needed.
 *
 * connect() is the hot one (every outgoing connection on the host) and almost
 * never fails synchronously. Where bpf_task_pt_regs exists (5.15+;
 * SYN_CFG_CONNECT_EXIT_ONLY) it has no entry program: the exit returns after
 * one compare unless the call failed with a reported error, and only then
 * reads the fd and the address from the task's saved user registers (the
 * address is still in user memory). An SELinux denial inside connect() makes
 * its own in-flight entry (sc_on_selinux_audited), counted in
 * connect_avc_pending so that exits look it up only while one exists. The
 * entry program and its map update and delete per connect() cost about 10%
 * of nginx's requests/s with short connections (docs/benchmarks.md).
 */

#if defined(__TARGET_ARCH_x86)
#define SYN_NR_CONNECT 42
#define SYN_NR_BIND 49
#define SYN_NR_LISTEN 50
#elif defined(__TARGET_ARCH_arm64)
#define SYN_NR_BIND 200
#define SYN_NR_LISTEN 201
#define SYN_NR_CONNECT 203
#else
#error "syscalls.bpf.h: add this architecture's bind/listen/connect numbers"
#endif
/* The same on every architecture (unified syscall table, 5.13+). */
#define SYN_NR_LANDLOCK_RESTRICT_SELF 446

/* A bind/listen/connect in progress, per thread (pid_tgid). LRU: a thread
 * killed inside the call never reaches sys_exit. */
struct sockcall_inflight {
	struct syn_tuple t;   /* the requested (bind) or destination (connect) address */
	__u64 start_ns;
	__s32 fd;
	__u8 op;
	__u8 _pad0;
	__u8 avc_count;
	__u8 lazy;            /* made by sc_selinux_audited inside an exit-only connect() */
};

/* In-flight entries made by sc_selinux_audited for exit-only connect()s and
 * not yet taken by their exit. A thread killed inside connect() leaves it
 * raised: exits then only look up more often than needed. */
__u64 connect_avc_pending = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sockcall_inflight);
} sockcalls SEC(".maps");

/* The first SELinux denial of an in-progress call (rare: kept apart so the
 * in-flight entries of healthy connects stay small). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct syn_avc);
} sockcall_avc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syn_avc);
} avc_scratch SEC(".maps");

/* Thread-group ids that restricted themselves with Landlock (value: the
 * thread that called landlock_restrict_self), and their children. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} landlocked SEC(".maps");

static __always_inline bool read_user_sockaddr(const void *uaddr, long len, __u8 addr[16],
					       __u16 *port, __u16 *family)
{
	__u16 fam = 0;

	if (!uaddr || len < 2)
		return false;
	if (bpf_probe_read_user(&fam, sizeof(fam), uaddr))
		return false;
	if (fam == AF_INET) {
		struct sockaddr_in sin;
		if (len < (long)sizeof(sin) || bpf_probe_read_user(&sin, sizeof(sin), uaddr))
			return false;
		v4_mapped(addr, sin.sin_addr.s_addr);
		*port = bpf_ntohs(sin.sin_port);
	} else if (fam == AF_INET6) {
		struct sockaddr_in6 sin6;
		if (len < 24 || bpf_probe_read_user(&sin6, 24, uaddr))
			return false;
		__builtin_memcpy(addr, &sin6.sin6_addr, 16);
		*port = bpf_ntohs(sin6.sin6_port);
	} else {
		return false;
	}
	*family = fam;
	return true;
}

/* The errors synsight reports, one bit per errno (below 64, and 64-127):
 * any call's EPERM and EACCES (capabilities, LSMs, cgroup programs); bind()
 * and listen() EADDRINUSE; bind() and connect() EADDRNOTAVAIL; connect()
 * refused by the routing table: ENETUNREACH (no route), EHOSTUNREACH and
 * EINVAL (unreachable and blackhole routes; prohibit is EACCES), which user
 * space checks by replaying the lookup. Masks rather than a switch: the
 * verifier then does not follow each errno as a constant through
 * sockcall_finish (twice the instructions walked). */
#define SC_BIT(e) (1ULL << ((e) & 63))
#define SC_ANY_LO (SC_BIT(EPERM) | SC_BIT(EACCES))
static __always_inline bool sockcall_reported(__u8 op, long err)
{
	__u64 lo = SC_ANY_LO, hi;

	if (op == SYN_CALL_CONNECT) {
		lo |= SC_BIT(EINVAL);
		hi = SC_BIT(EADDRNOTAVAIL) | SC_BIT(ENETUNREACH) | SC_BIT(EHOSTUNREACH);
	} else if (op == SYN_CALL_BIND) {
		hi = SC_BIT(EADDRINUSE) | SC_BIT(EADDRNOTAVAIL);
	} else {
		hi = SC_BIT(EADDRINUSE);
	}
	if (err <= 0 || err >= 128)
		return false;
	return ((err < 64 ? lo : hi) >> (err & 63)) & 1;
}

static __always_inline int sockcall_enter(__u8 op, long fd, const void *uaddr, long len)
{
	struct sockcall_inflight in = {};
	__u64 id = bpf_get_current_pid_tgid();

	in.op = op;
	in.fd = fd;
	in.start_ns = bpf_ktime_get_boot_ns();
	if (op == SYN_CALL_BIND) {
		if (!read_user_sockaddr(uaddr, len, in.t.local, &in.t.lport, &in.t.family))
			return 0;
	} else if (op == SYN_CALL_CONNECT) {
		if (!read_user_sockaddr(uaddr, len, in.t.remote, &in.t.rport, &in.t.family))
			return 0;
	}
	bpf_map_update_elem(&sockcalls, &id, &in, BPF_ANY);
	return 0;
}

static __always_inline void netns_sysctls(struct syn_ev_sockcall *e)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct net *net = BPF_CORE_READ(task, nsproxy, net_ns);

	e->netns = BPF_CORE_READ(net, ns.inum);
	e->unpriv_port_start = -1;
	if (bpf_core_field_exists(net->ipv4.sysctl_ip_prot_sock))
		e->unpriv_port_start = BPF_CORE_READ(net, ipv4.sysctl_ip_prot_sock);
	e->nonlocal_bind = 0;
	if (bpf_core_field_exists(net->ipv4.sysctl_ip_nonlocal_bind))
		e->nonlocal_bind = BPF_CORE_READ(net, ipv4.sysctl_ip_nonlocal_bind) != 0;
	compat_local_port_range(net, &e->port_range_lo, &e->port_range_hi);
}

/*
 * CAP_NET_BIND_SERVICE at a failed bind(), decided from the caller's
 * credentials as the kernel decides it: __inet_bind/__inet6_bind check
 * ns_capable(sock_net(sk)->user_ns, CAP_NET_BIND_SERVICE) only for a port
 * below the socket namespace's ip_unprivileged_port_start, and commoncap's
 * cap_capable_helper walks from that user namespace up to the caller's:
 * the effective set where they meet, every capability for the owner of a
 * child namespace, none where the walk passes the caller's level.
 *
 * This replaces a hook on the cap_capable tracepoint (6.14+), which ran for
 * every capability check on the host -- the kernel's memory accounting
 * checks CAP_SYS_ADMIN on brk/mmap/mprotect -- about 0.3 times per healthy
 * connection on a busy host, for a question asked only when bind() fails.
 * Not seen by this: an LSM refusing the capability itself (SELinux shows as
 * its own denial; AppArmor's has no hook).
 */
#define SYN_MAX_USERNS_DEPTH 33 /* the kernel nests at most 32 */

static __always_inline __u8 cap_effective_state(const struct cred *cred)
{
	/* kernel_cap_t: a u64 from 6.3, two u32 before; the same 8 bytes on a
	 * little-endian machine. */
	__u64 eff = 0;
	bpf_core_read(&eff, sizeof(eff), &cred->cap_effective);
	return (eff >> CAP_NET_BIND_SERVICE) & 1 ? SYN_CAP_GRANTED : SYN_CAP_DENIED;
}

/* A global function (verified once, not on every path of sockcall_finish);
 * arguments 64-bit (see port_in_filter in config.bpf.h).
 * cap_capable_helper's walk, in closed form for the verifier: going up from
 * the target, only the ancestor one level below the caller's namespace can
 * have the caller's namespace as parent (then its owner has every
 * capability, anyone else the effective set); any other path ends below the
 * caller's level without meeting it. One read per level climbed. */
__noinline int bind_cap_state(__u64 sock, __u64 wanted)
{
	struct sock *sk = (struct sock *)sock;
	__u16 port = (__u16)wanted;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct net *net = sk ? BPF_CORE_READ(sk, __sk_common.skc_net.net) : BPF_CORE_READ(task, nsproxy, net_ns);

	if (!net || !port || !bpf_core_field_exists(net->ipv4.sysctl_ip_prot_sock) ||
	    (int)port >= BPF_CORE_READ(net, ipv4.sysctl_ip_prot_sock))
		return SYN_CAP_NOT_CHECKED; /* the kernel does not check */

	const struct cred *cred = BPF_CORE_READ(task, cred);
	struct user_namespace *cred_ns = BPF_CORE_READ(cred, user_ns);
	struct user_namespace *ns = BPF_CORE_READ(net, user_ns);
	if (ns == cred_ns)
		return cap_effective_state(cred);
	int d = BPF_CORE_READ(ns, level) - BPF_CORE_READ(cred_ns, level);
	if (d <= 0)
		return SYN_CAP_OTHER_USERNS;
	if (d >= SYN_MAX_USERNS_DEPTH)
		return SYN_CAP_NOT_CHECKED; /* deeper than the kernel nests: not judged */
	for (int i = 1; i < SYN_MAX_USERNS_DEPTH; i++) {
		if (i >= d || !ns)
			break;
		ns = BPF_CORE_READ(ns, parent);
	}
	if (!ns || BPF_CORE_READ(ns, parent) != cred_ns)
		return SYN_CAP_OTHER_USERNS;
	if (BPF_CORE_READ(ns, owner.val) == BPF_CORE_READ(cred, euid.val))
		return SYN_CAP_GRANTED;
	return cap_effective_state(cred);
}

/* Reports the call `in` (a map entry, or the stack copy of an exit-only
 * connect) if it failed with a reported error or met an SELinux denial. */
static __always_inline int sockcall_finish(__u64 id, struct sockcall_inflight *in, long ret)
{
	struct syn_avc *avc = NULL;

	/* Without the state-change hook a successful listen() is the
	 * listener's birth (connect.bpf.h, SYN_CFG_NO_STATE_HOOK). */
	if (in->op == SYN_CALL_LISTEN && ret == 0 && no_state_hook()) {
		struct socket *s = fd_socket(in->fd);
		struct sock *lsk = s ? BPF_CORE_READ(s, sk) : NULL;
		if (lsk && BPF_CORE_READ(lsk, __sk_common.skc_state) == TCP_LISTEN &&
		    BPF_CORE_READ_BITFIELD_PROBED(lsk, sk_protocol) == IPPROTO_TCP) {
			/* This socket's memory was a listener that closed unseen:
			 * that one's close first, and off its port's slots. */
			__u64 key = (__u64)lsk;
			struct listen_info *old = bpf_map_lookup_elem(&listen_socks, &key);
			if (old && old->ino != sock_inode(lsk)) {
				emit_lazy_close(old);
				port_slot_del(old->port, key);
			}
			on_listen_change(lsk, SYN_EV_LISTEN);
		}
	}

	if (in->avc_count)
		avc = bpf_map_lookup_elem(&sockcall_avc, &id);
	if (!(ret < 0 && sockcall_reported(in->op, -ret)) && !avc)
		goto out;

	struct socket *sock = fd_socket(in->fd);
	struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
	__u8 type = sock ? (__u8)BPF_CORE_READ(sock, type) : 0;
	/* connect() returns EACCES for a UDP send to broadcast, EPERM for ...:
	 * only stream sockets are connections being refused. */
	if (in->op == SYN_CALL_CONNECT && type != SOCK_STREAM && !avc)
		goto out;
	/* A blocking connect() returns the error its handshake met (an ICMP
	 * error, a failed neighbour): the socket still has its destination
	 * port, and inet_sk_error_report saw the error (connect.bpf.h). Every
	 * failure of tcp_v{4,6}_connect itself (no route, no local port) and
	 * every check before it (LSMs, cgroup connect programs) leaves it 0. */
	if (in->op == SYN_CALL_CONNECT && !avc && sk && BPF_CORE_READ(sk, __sk_common.skc_dport) != 0)
		goto out;

	struct syn_tuple bound = {};
	if (sk && in->op != SYN_CALL_BIND)
		sock_local(sk, &bound);
	__u16 port = in->op == SYN_CALL_BIND ? in->t.lport :
		     in->op == SYN_CALL_LISTEN ? bound.lport : in->t.rport;
	if (!port_wanted(port))
		goto out;
	/* The holder of the port is looked up in the listener registry: drop
	 * the listeners of the port that closed unseen first (their closes
	 * reach user space before this record). */
	if (no_state_hook() && ret == -EADDRINUSE)
		listeners_reap(port);

	struct syn_ev_sockcall *e = reserve(sizeof(*e), SYN_EV_SOCKCALL);
	if (!e)
		goto out;
	e->t = in->t;
	if (in->op != SYN_CALL_BIND) {
		__builtin_memcpy(e->t.local, bound.local, 16);
		e->t.lport = bound.lport;
		if (in->op == SYN_CALL_LISTEN) {
			e->t.family = bound.family;
			__builtin_memset(e->t.remote, 0, 16);
			e->t.rport = 0;
		}
	}
	e->t._pad = 0;
	fill_task(&e->task);
	e->start_ns = in->start_ns;
	netns_sysctls(e);
	e->ret = ret;
	e->fd = in->fd;
	e->op = in->op;
	e->sock_type = type;
	e->cap_state = SYN_CAP_NOT_CHECKED;
	if (in->op == SYN_CALL_BIND && (ret == -EACCES || ret == -EPERM))
		e->cap_state = (__u8)bind_cap_state((__u64)sk, in->t.lport);
	__u32 tgid = id >> 32;
	e->landlocked = bpf_map_lookup_elem(&landlocked, &tgid) != NULL;
	e->avc_count = in->avc_count;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	e->bound_ifindex = sk ? BPF_CORE_READ(sk, __sk_common.skc_bound_dev_if) : 0;
	e->mark = sk ? BPF_CORE_READ(sk, sk_mark) : 0;
	e->sk_uid = sk ? BPF_CORE_READ(sk, sk_uid.val) : SYN_UID_UNKNOWN;
	if (avc)
		bpf_probe_read_kernel(&e->avc, sizeof(e->avc), avc);
	else
		__builtin_memset(&e->avc, 0, sizeof(e->avc));
	submit(e);
out:
	bpf_map_delete_elem(&sockcalls, &id);
	if (avc)
		bpf_map_delete_elem(&sockcall_avc, &id);
	return 0;
}

static __always_inline int sockcall_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sockcall_inflight *in = bpf_map_lookup_elem(&sockcalls, &id);

	if (!in)
		return 0;
	return sockcall_finish(id, in, ret);
}

/* connect() failed with an error synsight reports. */
static __always_inline bool connect_error_reported(long ret)
{
	return ret < 0 && sockcall_reported(SYN_CALL_CONNECT, -ret);
}

/* Exit-only connect(): the hot path, a connect() that succeeded or is in
 * progress, is this one compare. */
static __always_inline bool connect_exit_wanted(long ret)
{
	return connect_error_reported(ret) || connect_avc_pending;
}

/* Exit-only connect() (SYN_CFG_CONNECT_EXIT_ONLY, or the fexit program): the
 * arguments come from the task's saved user registers or from the
 * trampoline. Call only when connect_exit_wanted(ret). */
static __always_inline int connect_exit(long ret, long fd, const void *uaddr, long len)
{
	bool reported = connect_error_reported(ret);
	__u64 id = bpf_get_current_pid_tgid();
	struct sockcall_inflight local = {};
	struct sockcall_inflight *in = bpf_map_lookup_elem(&sockcalls, &id);
	if (in && in->lazy) {
		__sync_fetch_and_add(&connect_avc_pending, -1);
		in->lazy = 0;
	} else {
		/* No entry program runs for connect() here: any other entry of
		 * this thread was left by a call it never finished. */
		if (in)
			bpf_map_delete_elem(&sockcalls, &id);
		if (!reported)
			return 0;
		local.start_ns = bpf_ktime_get_boot_ns();
		in = &local;
	}
	in->op = SYN_CALL_CONNECT;
	in->fd = fd;
	if (!read_user_sockaddr(uaddr, len, in->t.remote, &in->t.rport, &in->t.family)) {
		bpf_map_delete_elem(&sockcalls, &id);
		bpf_map_delete_elem(&sockcall_avc, &id);
		return 0;
	}
	return sockcall_finish(id, in, ret);
}

/* connect_exit with the arguments still in the syscall's saved user
 * registers (the tracepoint exits). */
static __always_inline int connect_exit_regs(long ret, struct pt_regs *regs)
{
	return connect_exit(ret, PT_REGS_PARM1_CORE_SYSCALL(regs),
			    (const void *)PT_REGS_PARM2_CORE_SYSCALL(regs), PT_REGS_PARM3_CORE_SYSCALL(regs));
}

static __always_inline int landlock_restricted(long ret)
{
	if (ret != 0)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	bpf_map_update_elem(&landlocked, &tgid, &tid, BPF_ANY);
	return 0;
}

/* syscalls:sys_exit_connect (classic tracepoint). */
static __always_inline int sc_on_tp_exit_connect(long ret)
{
	if (!connect_exit_only())
		return sockcall_exit(ret);
	if (!connect_exit_wanted(ret))
		return 0;
	return connect_exit_regs(ret, user_regs());
}

/* fexit/__sys_connect: connect() at exit only, its arguments from the
 * trampoline. */
static __always_inline int sc_on_fx_exit_connect(int fd, void *uaddr, int addrlen, int ret)
{
	if (!connect_exit_wanted(ret))
		return 0;
	return connect_exit(ret, fd, uaddr, addrlen);
}

/* raw_syscalls:sys_enter: every syscall, filtered here by number. */
static __always_inline int sc_on_raw_enter(struct pt_regs *regs, long nr)
{
	__u8 op;

	if (nr == SYN_NR_BIND)
		op = SYN_CALL_BIND;
	else if (nr == SYN_NR_CONNECT && !connect_exit_only())
		op = SYN_CALL_CONNECT;
	else if (nr == SYN_NR_LISTEN)
		op = SYN_CALL_LISTEN;
	else
		return 0;
	return sockcall_enter(op, PT_REGS_PARM1_CORE_SYSCALL(regs),
			      (const void *)PT_REGS_PARM2_CORE_SYSCALL(regs),
			      PT_REGS_PARM3_CORE_SYSCALL(regs));
}

/* raw_syscalls:sys_exit. */
static __always_inline int sc_on_raw_exit(struct pt_regs *regs, long ret)
{
	long nr = SYN_SYSCALL_NR(regs);

	if (nr == SYN_NR_CONNECT && connect_exit_only()) {
		if (!connect_exit_wanted(ret))
			return 0;
		return connect_exit_regs(ret, regs);
	}
	if (nr == SYN_NR_BIND || nr == SYN_NR_CONNECT || nr == SYN_NR_LISTEN)
		return sockcall_exit(ret);
	if (nr == SYN_NR_LANDLOCK_RESTRICT_SELF)
		return landlock_restricted(ret);
	return 0;
}

/* selinux_audited (5.10+): fires for audited SELinux decisions, in the
 * caller's context. */
static __always_inline int sc_on_selinux_audited(struct selinux_audit_data *sad, char *scontext,
						 char *tcontext, const char *tclass)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sockcall_inflight *in = bpf_map_lookup_elem(&sockcalls, &id);
	__u32 zero = 0;

	if (!sad)
		return 0;
	__u32 denied = BPF_CORE_READ(sad, denied);
	if (!denied)
		return 0; /* an auditallow grant */
	if (!in && connect_exit_only() && SYN_SYSCALL_NR(user_regs()) == SYN_NR_CONNECT) {
		/* An exit-only connect(): its exit fills in the arguments. */
		struct sockcall_inflight fresh = { .op = SYN_CALL_CONNECT, .lazy = 1 };
		fresh.start_ns = bpf_ktime_get_boot_ns();
		if (bpf_map_update_elem(&sockcalls, &id, &fresh, BPF_NOEXIST) == 0)
			__sync_fetch_and_add(&connect_avc_pending, 1);
		in = bpf_map_lookup_elem(&sockcalls, &id);
	}
	if (!in)
		return 0;
	if (in->avc_count < 255)
		in->avc_count++;
	if (bpf_map_lookup_elem(&sockcall_avc, &id))
		return 0; /* keep the first denial (name_bind comes before node_bind) */
	struct syn_avc *a = bpf_map_lookup_elem(&avc_scratch, &zero);
	if (!a)
		return 0;
	__builtin_memset(a, 0, sizeof(*a));
	a->requested = BPF_CORE_READ(sad, requested);
	a->denied = denied;
	a->audited = BPF_CORE_READ(sad, audited);
	a->result = BPF_CORE_READ(sad, result);
	bpf_probe_read_kernel_str(a->tclass, sizeof(a->tclass), tclass);
	bpf_probe_read_kernel_str(a->scontext, sizeof(a->scontext), scontext);
	bpf_probe_read_kernel_str(a->tcontext, sizeof(a->tcontext), tcontext);
	bpf_map_update_elem(&sockcall_avc, &id, a, BPF_ANY);
	return 0;
}

/* sched_process_fork: a Landlock domain is inherited by children, and so
 * is the mark. */
static __always_inline int sc_on_process_fork(struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	__u32 *v;

	if (ptgid == ctgid)
		return 0;
	v = bpf_map_lookup_elem(&landlocked, &ptgid);
	if (v) {
		__u32 tid = *v;
		bpf_map_update_elem(&landlocked, &ctgid, &tid, BPF_ANY);
	}
	return 0;
}

/* sched_process_exit, for the last thread of process `tgid`: its Landlock
 * mark goes. */
static __always_inline int sc_on_process_exit(__u32 tgid)
{
	bpf_map_delete_elem(&landlocked, &tgid);
	return 0;
}
