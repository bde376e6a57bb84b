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
	/* bind(), listen() or connect() failed (or SELinux audited a denial
	 * during one, also in permissive mode). Process context of the caller. */
	SYN_EV_SOCKCALL = 6,
	/* Netfilter dropped a TCP packet (kfree_skb reason NETFILTER_DROP):
	 * a firewall REJECT or DROP verdict (bpf/firewall.bpf.h). */
	SYN_EV_FW_DROP = 10,
	/* IPv4 ICMP error sent for a TCP packet (icmp:icmp_send): with a
	 * following NETFILTER_DROP of the same skb, a REJECT with ICMP. */
	SYN_EV_FW_ICMP = 11,
	/* A local client retransmitted its SYN (tcp_retransmit_skb in SYN_SENT):
	 * the first one got no answer. */
	SYN_EV_FW_SYN_RETRANS = 12,
	/* An ICMP error reached a connecting socket while connect() held its
	 * lock: only a soft error, seen by the caller through SO_ERROR, and no
	 * SYN_EV_CONNECT_ERROR. Layout: syn_ev_connect_error. */
	SYN_EV_FW_SOFT_ERROR = 13,
	/* A connection attempt dropped or answered because a listener's
	 * queue was full (stage says which queue and when). */
	SYN_EV_LISTEN_OVERFLOW = 14,
	/* accept()/accept4() on a listener failed with EMFILE/ENFILE. */
	SYN_EV_ACCEPT_ERROR = 15,
	/* 18-19 packet drops of issue 17 (bpf/drops.bpf.h) */
	/* A handshake segment (SYN, SYN-ACK) freed by kfree_skb with any drop
	 * reason the areas above do not handle (rp_filter, no route, tc/XDP/
	 * cgroup BPF, XFRM, checksum, ...). */
	SYN_EV_PKT_DROP = 18,
	/* A local client's connect() timed out unanswered (ETIMEDOUT): where
	 * its SYNs left this host and how many were sent (bpf/timeouts.bpf.h).
	 * Sent from inet_sk_error_report next to the client's
	 * SYN_EV_CONNECT_ERROR (before or after it); user space joins the two
	 * by 4-tuple and namespace. */
	SYN_EV_CONNECT_TIMEOUT = 20,
	/* A connecting socket (SYN_SENT) accepted a RST: the RST's TTL or hop
	 * limit and the baseline of the peer's SYN-ACKs (bpf/resets.bpf.h).
	 * Sent from tcp_reset, before the client's SYN_EV_CONNECT_ERROR;
	 * user space joins the two by 4-tuple and namespace. */
	SYN_EV_CONNECT_RESET = 21,
	/* A local client's connect() the application gave up on: a socket
	 * whose SYNs went unanswered past at least one retransmission, closed
	 * in SYN_SENT with no error (curl --connect-timeout, a dialer's
	 * deadline, the process exiting). Where its SYNs left this host and
	 * who connected and who closed (bpf/timeouts.bpf.h). */
	SYN_EV_CONNECT_ABANDONED = 22,
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

/* A network device, named in BPF where the event happens (bpf/dev.bpf.h):
 * a device renamed or deleted afterwards is still named as it was. */
struct syn_dev {
	__u32 ifindex;       /* 0: none (unbound socket; not an L3 slave) */
	__u8 l3mdev;         /* 1: an L3 master device (a VRF) */
	__u8 found;          /* 1: name is set (the device was found in its namespace) */
	__u8 _pad[2];
	char name[16];
};

struct syn_ev_no_socket_rst {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* local = where the SYN was sent; remote = the sender */
	__u32 netns;         /* inode of the netns the SYN arrived in */
	__u8 source;         /* enum syn_rst_source */
	__u8 tcp_flags;      /* flags of the offending segment */
	__u8 has_ct;         /* 1: the SYN had a conntrack entry (orig_* are set) */
	__u8 _pad;
	/* The destination the client used, from the conntrack entry's original
	 * tuple: differs from t.local/t.lport when the SYN was DNATed
	 * (published ports, Service NAT, REDIRECT). 16 bytes, IPv4 mapped. */
	__u8 orig_dst[16];
	__u16 orig_dport;
	__u16 _pad2;
	__u32 isn;           /* the SYN's sequence number: a retransmitted SYN (its RST was lost) repeats it */
	/* Where the SYN came in: the device it arrived on (an L3 slave's own
	 * device when it came through a VRF), and that VRF (ifindex 0: none).
	 * The kernel's socket lookup compares them with sk_bound_dev_if. */
	struct syn_dev in_dev;
	struct syn_dev in_vrf;
};

struct syn_ev_listen {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* local = bound address and port; remote is zero */
	struct syn_task task;
	__u64 sock_ino;      /* inode of the socket (matches /proc/<pid>/fd) */
	__u32 netns;
	__u8 ipv6only;       /* IPV6_V6ONLY set on an AF_INET6 listener */
	__u8 _pad[3];
	struct syn_dev bound; /* sk_bound_dev_if: SO_BINDTODEVICE, `ip vrf exec` (ifindex 0: any) */
};

/* What iter/tcp writes (bpf_seq_write) for each listener it finds: what
 * /proc/net/tcp does not show, for the start-up snapshot. */
struct syn_seed_listener {
	__u64 sock_ino;
	__u32 netns;
	__u8 ipv6only;
	__u8 _pad[3];
	struct syn_dev bound;
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
	struct syn_task task;/* captured at connect() (CLOSE->SYN_SENT), process context;
			      * all 0 when that connect() was not seen (before synsight,
			      * or its entry given up before a retransmission kept a copy) */
	__u64 connect_ts_ns; /* when connect() started, CLOCK_BOOTTIME; 0: not seen */
	__u32 netns;
	__s32 err;           /* sk->sk_err when leaving SYN_SENT: 111, 110, 113, ... */
	__u32 segs_in;       /* TCP segments the socket received (tcp_sock.segs_in, counted by
			      * tcp_v{4,6}_rcv for every segment to it): 0 when an ICMP error,
			      * not a reset, ended the connect() */
	__u32 _pad;
};

/* Where in connection setup a listen-queue overflow happened. */
enum syn_overflow_stage {
	SYN_OVF_SYN_ACCEPTQ = 1,   /* SYN dropped: accept queue full (tcp_conn_request) */
	SYN_OVF_SYN_SYNQ_DROP = 2, /* SYN dropped: SYN queue full, syncookies off */
	SYN_OVF_SYN_COOKIE = 3,    /* SYN queue full, answered with a syncookie (not a drop) */
	SYN_OVF_ACK_DROP = 4,      /* handshake ACK dropped: accept queue full */
	SYN_OVF_ACK_RESET = 5,     /* handshake ACK answered with RST (tcp_abort_on_overflow) */
	SYN_OVF_SYN_UNANSWERED = 6, /* SYN dropped with neither queue full: tcp_conn_request could
				     * not answer it (no route back for its SYN-ACK, an LSM's
				     * inet_conn_request hook, the SYN backlog's reserve with
				     * syncookies off, no memory); user space replays the route
				     * back and reports a failing one, or the reserve */
};

/* How the overflow was seen. */
enum syn_overflow_method {
	SYN_OVF_M_CONSUME_SKB = 1, /* tp_btf/consume_skb in tcp_rcv_state_process + listener sk_drops */
	SYN_OVF_M_KFREE_SKB = 2,   /* tp_btf/kfree_skb reason TCP_LISTEN_OVERFLOW (6.15+) */
	SYN_OVF_M_SEND_RESET = 3,  /* tp_btf/tcp_send_reset, listener, reason INVALID_SYN */
	SYN_OVF_M_CONN_REQUEST = 4, /* fentry/tcp_conn_request: queue state as the SYN arrives */
	SYN_OVF_M_CONN_REQUEST_KPROBE = 5, /* kprobe/tcp_conn_request: the same where trampolines are refused */
	SYN_OVF_M_SYN_RECV_FEXIT = 6,      /* fexit/tcp_v{4,6}_syn_recv_sock: no child, accept queue full */
	SYN_OVF_M_SYN_RECV_KRETPROBE = 7,  /* kretprobe/tcp_v{4,6}_syn_recv_sock: the same */
	SYN_OVF_M_COUNTER = 8,     /* run_ovf_watch: drops counted from the listener's sk_drops while
				    * ovf_consume_skb was not attached (no SYN seen: no client, no remote) */
	SYN_OVF_M_CONN_REQUEST_FEXIT = 10, /* fexit/tcp_conn_request: the listener's drop counter rose and no
					    * request was queued (SYN_OVF_SYN_UNANSWERED beside fentry) */
	SYN_OVF_M_CONN_REQUEST_KRETPROBE = 11, /* kretprobe/tcp_conn_request: the same beside the kprobe */
};

struct syn_ev_listen_overflow {
	struct syn_hdr hdr;
	struct syn_tuple t;      /* local = the listener's side of the SYN/ACK; remote = the client */
	struct syn_task client;  /* the local connecting task, when found (client_found) */
	__u64 listener_ino;      /* socket inode of the listener (0 if unknown) */
	__u32 netns;
	__u32 listener_pid;      /* tgid that called listen(), 0 if it predates tracing */
	__u32 ack_backlog;       /* sk_ack_backlog: accept queue length */
	__u32 max_ack_backlog;   /* sk_max_ack_backlog = min(backlog, somaxconn) */
	__u32 syn_qlen;          /* icsk_accept_queue.qlen: SYN queue length */
	__u32 drops;             /* listener sk_drops */
	__s32 somaxconn;         /* net.core.somaxconn of the listener's netns */
	__u32 suppressed;        /* same-listener events folded into this one (rate limit) */
	__u8 stage;              /* enum syn_overflow_stage */
	__u8 method;             /* enum syn_overflow_method */
	__u8 client_found;       /* enum syn_client_lookup */
	__u8 _pad;
	__u32 counted;           /* SYN_OVF_M_COUNTER: the drops this record counts (else 0) */
	/* The listener's routing keys, as inet_csk_route_req and
	 * inet6_csk_route_req pass them to the SYN-ACK's route lookup (a
	 * no_route_back's lookup is replayed with them): SO_BINDTODEVICE (0:
	 * none), SO_MARK (the SYN's own mark instead where the listener has none
	 * and net.ipv4.tcp_fwmark_accept is set: not read here) and its owner. */
	__u32 bound_ifindex;
	__u32 mark;
	__u32 sk_uid;
	__u32 _pad2;
};

/* How the overflowed SYN's (or ACK's) local client was looked for. */
enum syn_client_lookup {
	SYN_CLIENT_NOT_FOUND = 0,
	SYN_CLIENT_FOUND = 1,
	SYN_CLIENT_NOT_LOOKED_UP = 2, /* this CPU's table walks for the window were spent (an overflow storm) */
};

struct syn_ev_accept_error {
	struct syn_hdr hdr;
	struct syn_task task;
	__u64 listener_ino;
	__u32 netns;
	__s32 err;               /* -EMFILE, -ENFILE, ... as returned */
	__u64 nofile_cur;        /* RLIMIT_NOFILE soft limit of the task */
	__u16 port;              /* the listener's local port */
	__u16 family;
	__u32 _pad;
};

/* Where in netfilter a SYN_EV_FW_DROP happened, from the skb's state. */
enum syn_fw_hook {
	SYN_FW_HOOK_UNKNOWN = 0,
	SYN_FW_HOOK_PREROUTING = 1, /* received, not routed yet (no dst) */
	SYN_FW_HOOK_INPUT = 2,      /* received, routed to a local address */
	SYN_FW_HOOK_FORWARD = 3,    /* received, routed elsewhere */
	SYN_FW_HOOK_OUTPUT = 4,     /* locally generated, before the device is set */
	SYN_FW_HOOK_POSTROUTING = 5,/* locally generated, device set */
};

/* syn_ev_fw_drop.flags */
#define SYN_FW_F_SK 0x01        /* skb->sk was a socket of the packet's own namespace (sent from this one) */
#define SYN_FW_F_DEV 0x02       /* skb->dev was set */
#define SYN_FW_F_DST 0x04       /* the skb had a route (dst) */
#define SYN_FW_F_TASK 0x08      /* task is the connect() caller of skb->sk */
#define SYN_FW_F_PROC_CTX 0x10  /* the drop ran in that caller's own context */
#define SYN_FW_F_CT_COUNT 0x20  /* ct_count was read (the namespace's conntrack entries at the drop) */
#define SYN_FW_F_ICMP 0x40      /* the packet is an ICMP destination unreachable (v4 type 3, v6 type 1)
				 * quoting a TCP SYN: `t` and tcp_flags are the quoted SYN's (local = its
				 * destination, the server; remote = its source, the client) and the
				 * ICMP's code is in ct_count (syn_ev_fw_drop) or icmp_code (syn_ev_pkt_drop) */
#define SYN_FW_F_HANDSHAKE 0x80 /* the TCP segment has a handshake segment's shape: a SYN, a SYN-ACK, an
				 * ACK without SYN/RST/FIN and without payload (the handshake's final
				 * ACK), or a RST|ACK with sequence 0 (the answer to a SYN) */

/* syn_ev_fw_drop.ct_state: what nft's `ct state` saw for the packet
 * (skb->_nfct at the drop; bpf/conntrack.bpf.h). */
enum syn_ct_state {
	SYN_CT_UNKNOWN = 0,    /* conntrack's types are not in the kernel's BTF */
	SYN_CT_INVALID = 1,    /* no entry: invalid, or conntrack refused to create one */
	SYN_CT_NEW = 2,
	SYN_CT_ESTABLISHED = 3,
	SYN_CT_RELATED = 4,
	SYN_CT_UNTRACKED = 5,  /* notrack */
};

struct syn_ev_fw_drop {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* local = destination of the packet, remote = its source */
	struct syn_task task;/* valid with SYN_FW_F_TASK: from connect() of skb->sk */
	__u64 skbaddr;       /* joins a preceding SYN_EV_FW_ICMP */
	__u64 location;      /* kernel address of the dropper (nft_do_chain, nf_hook_slow) */
	__u32 netns;
	__u32 mark;          /* skb->mark at the drop */
	__u32 ifindex;       /* skb->dev's ifindex, 0 without a device */
	__u8 tcp_flags;
	__u8 hook;           /* enum syn_fw_hook */
	__u8 flags;          /* SYN_FW_F_* */
	__u8 ct_state;       /* enum syn_ct_state */
	__u32 ct_count;      /* with SYN_FW_F_CT_COUNT: conntrack entries of the namespace (read for INVALID
			      * only); with SYN_FW_F_ICMP: the dropped ICMP's code */
	__u32 reason;        /* the kernel's drop reason (NETFILTER_DROP on this kernel's numbering) */
	char ifname[16];     /* skb->dev's name (SYN_IFNAMSIZ), empty without a device */
	__u32 isn;           /* the attempt's client ISN: equal for a retransmission, not for a new
			      * attempt reusing the 4-tuple (skb.bpf.h, seg_isn); 0 for a segment
			      * without SYN_FW_F_HANDSHAKE or SYN_FW_F_ICMP */
	__u32 _pad;
};

struct syn_ev_fw_icmp {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* of the offending TCP packet: local = its destination */
	__u64 skbaddr;       /* the offending skb */
	__u32 netns;
	__u8 type;
	__u8 code;
	__u8 tcp_flags;
	__u8 _pad;
};

struct syn_ev_fw_syn_retrans {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* local = client address/port; remote = destination */
	struct syn_task task;/* captured at connect() (CLOSE->SYN_SENT), process context */
	__u64 connect_ts_ns;
	__u32 netns;
	__u32 _pad;
};

#define SYN_IFNAMSIZ 16

/* A handshake segment dropped by the kernel (SYN_EV_PKT_DROP). The numeric
 * reason is the running kernel's `enum skb_drop_reason` (since 6.4 a
 * subsystem id in bits 16..31): user space names it from the kernel's BTF. */
struct syn_ev_pkt_drop {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* local = destination of the packet, remote = its source */
	struct syn_task task;/* valid with SYN_FW_F_TASK: the connect() caller on this host */
	__u64 location;      /* kernel address that freed the skb (kfree_skb's `location`) */
	__u32 netns;         /* of skb->dev, else of skb->sk */
	__u32 reason;        /* enum skb_drop_reason, as the kernel numbers it */
	__u32 ifindex;       /* skb->dev's ifindex, 0 without a device */
	__u8 tcp_flags;
	__u8 hook;           /* enum syn_fw_hook: where in the stack (from the skb's state) */
	__u8 flags;          /* SYN_FW_F_* */
	__u8 icmp_code;      /* with SYN_FW_F_ICMP: the dropped ICMP's code */
	char ifname[SYN_IFNAMSIZ]; /* skb->dev->name, NUL-terminated unless it fills the field */
	__u32 isn;           /* the attempt's client ISN, as syn_ev_fw_drop's */
	__u32 _pad;
};

/* syn_ev_connect_timeout.flags */
#define SYN_TMO_F_ROUTE 0x01    /* the egress device (and next hop) are known */
#define SYN_TMO_F_GATEWAY 0x02  /* the route goes via `gateway`; without it: directly connected */
#define SYN_TMO_F_STASHED 0x04  /* the route of the last retransmitted SYN: the socket's own was
				 * reset on retransmission (IPv6: ip6_negative_advice) */
#define SYN_TMO_F_LOOPBACK 0x08 /* the route's device is a loopback (IFF_LOOPBACK): the SYNs never left
				 * the host (a local destination, or one NAT sent elsewhere after routing) */

/* The route a connecting socket's SYNs left by: its cached route at the
 * outcome, else the last retransmitted SYN's (bpf/timeouts.bpf.h). */
struct syn_egress {
	__u8 gateway[16];    /* next hop with SYN_TMO_F_GATEWAY (IPv4 mapped, or IPv6) */
	__u32 ifindex;       /* egress device of the route (dst->dev), with SYN_TMO_F_ROUTE */
	__u16 gw_family;     /* AF_INET or AF_INET6 (an IPv4 route may go via an IPv6 gateway) */
	__u8 flags;          /* SYN_TMO_F_* */
	__u8 _pad;
	char ifname[SYN_IFNAMSIZ]; /* dst->dev->name, NUL-terminated unless it fills the field */
};

/* Where a timed-out connect()'s SYNs left this host (SYN_EV_CONNECT_TIMEOUT). */
struct syn_ev_connect_timeout {
	struct syn_hdr hdr;
	struct syn_tuple t;  /* local = client address/port; remote = destination */
	struct syn_egress route;
	__u32 netns;
	__u32 syn_retransmits; /* SYN retransmissions: icsk_retransmits (else tcp_sock.total_retrans) */
	__u32 total_retrans; /* tcp_sock.total_retrans */
	__u32 _pad;
};

/* The two __u64 entries of the `tmo_gate` array map (bpf/timeouts.bpf.h):
 * SYN_TMO_GATE_ADDED counts the sockets ever added to tmo_pending (BPF);
 * SYN_TMO_GATE_QUIET_AT is that count as user space read it before a
 * run_tmo_watch walk that found none pending (HookArming). Equal: no socket
 * can be pending, and neither the watch nor the error report's lookup is needed. */
enum syn_tmo_gate_entry {
	SYN_TMO_GATE_ADDED = 0,
	SYN_TMO_GATE_QUIET_AT = 1,
};

/* A connect() given up by its application (SYN_EV_CONNECT_ABANDONED): the
 * connecting socket was closed in SYN_SENT, unanswered, with no error
 * reported, after at least one SYN retransmission. */
struct syn_ev_connect_abandoned {
	struct syn_hdr hdr;
	struct syn_tuple t;    /* local = client address/port; remote = destination */
	struct syn_task task;  /* the connect() caller, as syn_ev_connect_error's (pid 0: not seen) */
	struct syn_task closer;/* the task that closed the socket (process context of close()/exit) */
	__u64 connect_ts_ns;   /* when connect() started, CLOCK_BOOTTIME; 0: not seen */
	struct syn_egress route;
	__u32 netns;
	__u32 syn_retransmits; /* SYNs sent again after the first (icsk_retransmits) */
	__u8 closer_exiting;   /* 1: the closer was exiting (PF_EXITING): the process died while connecting */
	__u8 aborted;          /* 1: closed with SO_LINGER 0 (tcp_disconnect's ECONNRESET, seen at its error report) */
	__u8 _pad[6];
};

/* Which kernel hook produced a SYN_EV_CONNECT_RESET record. */
enum syn_reset_ttl_source {
	SYN_RTTL_SRC_FENTRY = 1,  /* fentry/tcp_reset */
	SYN_RTTL_SRC_KPROBE = 2,  /* kprobe/tcp_reset */
};

/* A RST that refused a local connect() (SYN_EV_CONNECT_RESET), with what the
 * same peer's SYN-ACKs arrived with. TTLs are IPv4 TTLs or IPv6 hop limits. */
struct syn_ev_connect_reset {
	struct syn_hdr hdr;
	struct syn_tuple t;        /* local = client address/port; remote = the peer the RST came from */
	__u64 baseline_last_ns;    /* CLOCK_BOOTTIME of the peer's latest SYN-ACK measured; 0: none */
	__u32 netns;               /* of the client socket */
	__u32 baseline_packets;    /* SYN-ACKs of the peer measured (0: no baseline yet) */
	__u8 ttl;                  /* of the RST (0: unreadable) */
	__u8 baseline_min;         /* lowest and highest TTL of the peer's SYN-ACKs, and the latest */
	__u8 baseline_max;
	__u8 baseline_last;
	__u8 source;               /* enum syn_reset_ttl_source */
	__u8 _pad[3];
};

/* The socket system call of a SYN_EV_SOCKCALL record. */
enum syn_sockcall_op {
	SYN_CALL_BIND = 1,
	SYN_CALL_LISTEN = 2,
	SYN_CALL_CONNECT = 3,
};

/* CAP_NET_BIND_SERVICE at a failed bind() (EACCES/EPERM), decided from the
 * caller's credentials over the socket's network namespace as the kernel's
 * capability check decides it (bind_cap_state in syscalls.bpf.h). */
enum syn_cap_state {
	SYN_CAP_NOT_CHECKED = 0,     /* not checked: port 0 or not below ip_unprivileged_port_start */
	SYN_CAP_GRANTED = 1,
	SYN_CAP_DENIED = 2,       /* not in the effective set */
	SYN_CAP_OTHER_USERNS = 3, /* the netns belongs to a user namespace outside the caller's */
};

#define SYN_AVC_CTX_LEN 128
#define SYN_AVC_CLASS_LEN 32

/* The first SELinux denial (avc:selinux_audited, denied != 0) of the call.
 * Strings are bounded copies, NUL-terminated unless they filled the field. */
struct syn_avc {
	__u32 requested;
	__u32 denied;
	__u32 audited;
	__s32 result;        /* 0 with denied != 0: permissive */
	char tclass[SYN_AVC_CLASS_LEN];
	char scontext[SYN_AVC_CTX_LEN];
	char tcontext[SYN_AVC_CTX_LEN];
};

struct syn_ev_sockcall {
	struct syn_hdr hdr;
	struct syn_tuple t;      /* bind: local = the requested address/port; listen: local = the
	                          * bound address/port; connect: remote = the destination,
	                          * local = the socket's bound address/port (often zero) */
	struct syn_task task;
	__u64 start_ns;          /* when the call entered the kernel */
	__u32 netns;             /* task->nsproxy->net_ns */
	__s32 ret;               /* as returned: -98, -99, -13, -1, ... (0: permissive SELinux) */
	__s32 fd;
	__s32 unpriv_port_start; /* net.ipv4.ip_unprivileged_port_start of the netns, -1 unknown */
	__u16 port_range_lo;     /* net.ipv4.ip_local_port_range of the netns, 0 0 unknown */
	__u16 port_range_hi;
	__u8 op;                 /* enum syn_sockcall_op */
	__u8 sock_type;          /* SOCK_STREAM 1, SOCK_DGRAM 2; 0 unknown */
	__u8 cap_state;          /* enum syn_cap_state */
	__u8 landlocked;         /* the process called landlock_restrict_self (or descends from one) */
	__u8 avc_count;          /* SELinux denials audited during the call; the first is in avc */
	__u8 nonlocal_bind;      /* net.ipv4.ip_nonlocal_bind of the netns */
	__u8 _pad[2];
	/* The socket's routing keys, as tcp_v{4,6}_connect passes them to the
	 * route lookup (a no_route connect's lookup is replayed with them):
	 * SO_BINDTODEVICE (0: none; a VRF's slaves and `ip vrf exec` too),
	 * SO_MARK, and the socket's owner (SYN_UID_UNKNOWN: no socket read). */
	__u32 bound_ifindex;
	struct syn_avc avc;      /* zero unless avc_count != 0 */
	__u32 mark;
	__u32 sk_uid;
};
#define SYN_UID_UNKNOWN 0xffffffffu

/*
 * Read-only configuration (.rodata), written by user space between open and
 * load. Zero values mean "no filter".
 */
/* syn_config.flags */
enum syn_config_flags {
	SYN_CFG_ACK_DROP_SYN_RECV = 1,  /* ACK-stage drops: no kfree_skb TCP_LISTEN_OVERFLOW (before 6.15) */
	SYN_CFG_ACK_RESET_SYN_RECV = 2, /* abort_on_overflow RSTs: no reset reason (before 6.10) */
	SYN_CFG_CONNECT_EXIT_ONLY = 4,  /* connect() seen at exit only, its arguments read from the saved
					 * user registers (bpf_task_pt_regs, 5.15+); see syscalls.bpf.h */
	SYN_CFG_NO_STATE_HOOK = 8,      /* inet_sock_set_state is not attached (issue 16): connect()
					 * callers from cgroup/connect{4,6}, connection errors from
					 * inet_sk_error_report, listener births from listen()'s exit,
					 * listener deaths found when a SYN or a refusal needs them */
	SYN_CFG_RST_KFREE_SKB = 16,     /* the no-listener RST from kfree_skb NO_SOCKET (the one
					 * kfree_skb program serves other areas too) */
	SYN_CFG_RST_SEND_RESET = 32,    /* the no-listener RST from tcp_send_reset NO_SOCKET (6.10+;
					 * the one tcp_send_reset program serves the overflow area too) */
	SYN_CFG_PORT_FILTER = 64,       /* --port: records are kept for the ports of `port_filter` only */
};

/* The connecting-socket table (bpf/conntab.bpf.h): 2^SYN_CONN_SET_BITS sets. */
#define SYN_CONN_SET_BITS 13

/* [start, end) of a kernel function's text, from /proc/kallsyms. Written
 * after the programs load (not in syn_config): reading kallsyms takes the
 * kernel ~60 ms, done while the verifier runs. */
struct syn_text_range {
	__u64 start;
	__u64 end;
};

/* The --port filter (bpf/config.bpf.h's port_wanted), in a data section of
 * its own so that it can grow while tracing: user space writes it after
 * loading, and again when a container starts to publish a named port (its
 * container port is added). Entries are only appended, so a reader never
 * sees a port vanish mid-update. nports 0: every port (more ports than fit). */
struct syn_port_filter {
	__u16 ports[SYN_MAX_FILTER_PORTS];
	__u32 nports;
};

struct syn_config {
	__u32 flags;   /* SYN_CFG_*: which handlers of a shared hook run */
	/* Storms folded in the kernel (bpf/fold.bpf.h): per key, CPU and
	 * second, this many records cross the ring buffer one by one, the
	 * rest are counted in the `folded` map. 0: no folding. */
	__u32 fold_per_window;
	/* The sets of the connecting-socket table in use (a power of two up
	 * to 2^SYN_CONN_SET_BITS); 0: every set. Tests shrink the table to
	 * make its first-in-first-out eviction happen (bpf/conntab.bpf.h). */
	__u32 conn_sets;
	/* The kernel's drop reasons (core values 0..255, bit n of word n/64)
	 * that count as a failure when they free a handshake's final ACK or
	 * the RST/ICMP answering a SYN (bpf/drops.bpf.h): user space sets
	 * them from the reasons' names in this kernel's BTF (DropCause). */
	__u64 answer_drop_reasons[4];
};

/* The key of a folded storm (map `folded`, bpf/fold.bpf.h). */
struct syn_fold_key {
	__u32 netns;   /* inode of the netns the SYN arrived in */
	__u16 port;    /* the local port the SYN was sent to */
	__u8 kind;     /* enum syn_event_kind of the folded records */
	__u8 family;   /* AF_INET (2) or AF_INET6 (10) */
};

/* One CPU's counters of a folded storm. count and clients only grow: user
 * space emits the difference since its last read. */
struct syn_fold_val {
	__u64 count;     /* records folded (not sent individually) */
	__u64 clients;   /* of them, with a local client's ECONNREFUSED folded too */
	__u64 first_ns;  /* CLOCK_BOOTTIME of the first folded record */
	__u64 last_ns;   /* CLOCK_BOOTTIME of the latest folded record */
	__u64 window_ns; /* start of this CPU's current window */
	__u32 passed;    /* records sent individually in that window */
	__u32 _pad;
};

#ifndef __cplusplus
_Static_assert(sizeof(struct syn_hdr) == 16, "syn_hdr layout");
_Static_assert(sizeof(struct syn_fold_key) == 8, "syn_fold_key layout");
_Static_assert(sizeof(struct syn_fold_val) == 48, "syn_fold_val layout");
_Static_assert(sizeof(struct syn_tuple) == 40, "syn_tuple layout");
_Static_assert(sizeof(struct syn_task) == 40, "syn_task layout");
_Static_assert(sizeof(struct syn_dev) == 24, "syn_dev layout");
_Static_assert(sizeof(struct syn_ev_no_socket_rst) == 136, "syn_ev_no_socket_rst layout");
_Static_assert(sizeof(struct syn_ev_listen) == 136, "syn_ev_listen layout");
_Static_assert(sizeof(struct syn_seed_listener) == 40, "syn_seed_listener layout");
_Static_assert(sizeof(struct syn_ev_exit) == 64, "syn_ev_exit layout");
_Static_assert(sizeof(struct syn_ev_connect_error) == 120, "syn_ev_connect_error layout");
_Static_assert(sizeof(struct syn_ev_fw_drop) == 160, "syn_ev_fw_drop layout");
_Static_assert(sizeof(struct syn_ev_fw_icmp) == 72, "syn_ev_fw_icmp layout");
_Static_assert(sizeof(struct syn_ev_fw_syn_retrans) == 112, "syn_ev_fw_syn_retrans layout");
_Static_assert(sizeof(struct syn_avc) == 304, "syn_avc layout");
_Static_assert(sizeof(struct syn_ev_sockcall) == 448, "syn_ev_sockcall layout");
_Static_assert(sizeof(struct syn_config) == 48, "syn_config layout");
_Static_assert(sizeof(struct syn_port_filter) == 36, "syn_port_filter layout");
_Static_assert(sizeof(struct syn_text_range) == 16, "syn_text_range layout");
_Static_assert(sizeof(struct syn_ev_listen_overflow) == 160, "syn_ev_listen_overflow layout");
_Static_assert(sizeof(struct syn_ev_accept_error) == 88, "syn_ev_accept_error layout");
_Static_assert(sizeof(struct syn_ev_pkt_drop) == 144, "syn_ev_pkt_drop layout");
_Static_assert(sizeof(struct syn_egress) == 40, "syn_egress layout");
_Static_assert(sizeof(struct syn_ev_connect_timeout) == 112, "syn_ev_connect_timeout layout");
_Static_assert(sizeof(struct syn_ev_connect_abandoned) == 200, "syn_ev_connect_abandoned layout");
_Static_assert(sizeof(struct syn_ev_connect_reset) == 80, "syn_ev_connect_reset layout");
#endif

#endif /* SYNSIGHT_ABI_H */
