/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * synsight kernel <-> user ABI.
 *
 * The one definition of every record the BPF programs send to user space
 * through the ring buffer, and of the read-only configuration user space
 * writes before load. Included by the bpf/ programs (after vmlinux.h) and, through
 * the CSynsightABI module, by Swift, which decodes records with
 * loadUnaligned(as:) of these very structs. Change a layout here and both
 * sides change together; the _Static_asserts pin the sizes so that an
 * accidental change is a compile error on both sides.
 *
 * Rules: fixed-width types only, explicit padding, addresses always 16 bytes
 * (IPv4 is stored IPv4-mapped, ::ffff:a.b.c.d), ports in host byte order.
 */
#ifndef SYNSIGHT_ABI_H
#define SYNSIGHT_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define SYN_ABI_VERSION 1
#define SYN_COMM_LEN 16
#define SYN_MAX_FILTER_PORTS 16

/* Record kinds. Values are part of the ABI: never reuse a number. */
enum syn_event_kind {
	/* A SYN that matched no socket was answered with RST (server side,
	 * softirq context: no process information). */
	SYN_EV_NO_SOCKET_RST = 1,
	/* A TCP socket entered LISTEN (process context of listen()). */
	SYN_EV_LISTEN = 2,
	/* A listening socket left LISTEN (close(), or exit closing its files). */
	SYN_EV_LISTEN_CLOSE = 3,
	/* A process that once listened exited (last thread of the group). */
	SYN_EV_EXIT = 4,
	/* A connecting socket left SYN_SENT with an error (client side). */
	SYN_EV_CONNECT_ERROR = 5,
	/* Reserved for the areas of issue 3 (one owner each):
	 * 6-9   bind/listen/connect syscall failures, capability, LSM (bpf/syscalls.bpf.h)
	 * 10-13 firewall drops and rejects (bpf/firewall.bpf.h)
	 * 14-17 listen-queue overflow, accept() failures (bpf/overflow.bpf.h) */
};

/* Which kernel hook produced a SYN_EV_NO_SOCKET_RST record. */
enum syn_rst_source {
	SYN_RST_SRC_TP_SEND_RESET = 1, /* tp_btf/tcp_send_reset, sk==NULL, reason NO_SOCKET (6.10+) */
	SYN_RST_SRC_KFREE_SKB = 2,     /* tp_btf/kfree_skb, reason NO_SOCKET (5.17+) */
	SYN_RST_SRC_FENTRY = 3,        /* fentry/tcp_v{4,6}_send_reset, sk==NULL */
	SYN_RST_SRC_KPROBE = 4,        /* kprobe/tcp_v{4,6}_send_reset, sk==NULL */
};

struct syn_hdr {
	__u8 kind;      /* enum syn_event_kind */
	__u8 abi;       /* SYN_ABI_VERSION */
	__u16 size;     /* total record size in bytes, header included */
	__u32 cpu;
	__u64 ts_ns;    /* bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME */
};

/* Both ends of a connection as seen from one side. */
struct syn_tuple {
	__u8 local[16];
	__u8 remote[16];
	__u16 lport;
	__u16 rport;
	__u16 family;   /* AF_INET (2) or AF_INET6 (10) */
	__u16 _pad;
};

/* The current task, captured only in process context. */
struct syn_task {
	__u32 pid;      /* thread-group id (what user space calls a PID) */
	__u32 tid;
	__u32 uid;
	__u32 _pad;
	__u64 cgroup_id;
	char comm[SYN_COMM_LEN];
};

struct syn_ev_no_socket_rst {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* local = where the SYN was sent; remote = the sender */
	__u32 netns;         /* inode of the netns the SYN arrived in */
	__u8 source;         /* enum syn_rst_source */
	__u8 tcp_flags;      /* flags of the offending segment */
	__u16 _pad;
};

struct syn_ev_listen {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* local = bound address and port; remote is zero */
	struct syn_task task;
	__u64 sock_ino;      /* inode of the socket (matches /proc/<pid>/fd) */
	__u32 netns;
	__u8 ipv6only;       /* IPV6_V6ONLY set on an AF_INET6 listener */
	__u8 _pad[3];
};

struct syn_ev_exit {
	struct syn_hdr hdr;
	struct syn_task task;
	__u32 exit_code;     /* task->exit_code: (status << 8) | signal | 0x80 core */
	__u32 _pad;
};

struct syn_ev_connect_error {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* local = client address/port; remote = destination */
	struct syn_task task;/* captured at connect() (CLOSE->SYN_SENT), process context */
	__u64 connect_ts_ns; /* when connect() started, CLOCK_BOOTTIME */
	__u32 netns;
	__s32 err;           /* sk->sk_err when leaving SYN_SENT: 111, 110, 113, ... */
};

/*
 * Read-only configuration (.rodata), written by user space between open and
 * load. Zero values mean "no filter".
 */
struct syn_config {
	__u16 ports[SYN_MAX_FILTER_PORTS]; /* only report RSTs for these local ports */
	__u32 nports;
	__u32 _pad;
};

#ifndef __cplusplus
_Static_assert(sizeof(struct syn_hdr) == 16, "syn_hdr layout");
_Static_assert(sizeof(struct syn_tuple) == 40, "syn_tuple layout");
_Static_assert(sizeof(struct syn_task) == 40, "syn_task layout");
_Static_assert(sizeof(struct syn_ev_no_socket_rst) == 64, "syn_ev_no_socket_rst layout");
_Static_assert(sizeof(struct syn_ev_listen) == 112, "syn_ev_listen layout");
_Static_assert(sizeof(struct syn_ev_exit) == 64, "syn_ev_exit layout");
_Static_assert(sizeof(struct syn_ev_connect_error) == 112, "syn_ev_connect_error layout");
_Static_assert(sizeof(struct syn_config) == 40, "syn_config layout");
#endif

#endif /* SYNSIGHT_ABI_H */
